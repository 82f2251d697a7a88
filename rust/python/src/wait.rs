//! Blocking on a FIFO from Python: the caller's GIL is released while parked
//! (DESIGN rule 4), and a signal that interrupts the wait runs Python's
//! signal handlers, so Ctrl-C raises KeyboardInterrupt in the main thread.
//! Nothing has been taken or queued at that point, so nothing is lost.

use std::time::{Duration, Instant};

use interpreters_aio_core::fifo::{Fifo, Wait};
use interpreters_aio_core::parker::WaitResult;
use pyo3_ffi::*;

use crate::py::{PyResult, Raised};

/// A deadline `timeout` seconds from now; a negative timeout means none.
pub fn deadline(timeout: f64) -> Option<Instant> {
    if timeout < 0.0 || !timeout.is_finite() {
        return None;
    }
    Instant::now().checked_add(Duration::from_secs_f64(timeout.min(1e9)))
}

/// Waits until `wait` holds (true) or the deadline passes (false).
///
/// # Safety
/// The caller holds its interpreter's GIL and owns no borrowed object that
/// another thread could free while the GIL is released.
pub unsafe fn block_on(
    module: *mut PyObject,
    fifo: &Fifo,
    wait: Wait,
    deadline: Option<Instant>,
) -> PyResult<bool> {
    loop {
        // SAFETY: releasing and retaking this thread's own GIL around a wait
        // that touches no Python object.
        let result = unsafe {
            let saved = PyEval_SaveThread();
            let result = fifo.wait(wait, deadline);
            PyEval_RestoreThread(saved);
            result
        };
        match result {
            WaitResult::Ready => return Ok(true),
            WaitResult::TimedOut => return Ok(false),
            WaitResult::Cancelled => {
                let msg = "the interpreter running this code is being closed; the wait was abandoned";
                // SAFETY: the GIL is held again; the class is registered or a builtin.
                return Err(unsafe {
                    let class = crate::module::state(module).interpreter_error;
                    crate::py::raise(if class.is_null() { PyExc_RuntimeError } else { class }, msg)
                });
            }
            WaitResult::Interrupted => {
                // SAFETY: the GIL is held again.
                if unsafe { PyErr_CheckSignals() } < 0 {
                    return Err(Raised);
                }
            }
        }
    }
}
