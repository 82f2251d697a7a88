//! Blocking on a FIFO from Python: the caller's GIL is released while parked
//! (DESIGN rule 4), and a signal that interrupts the wait runs Python's
//! signal handlers, so Ctrl-C raises KeyboardInterrupt in the main thread.
//! Nothing has been taken or queued at that point, so nothing is lost.
//! [`push_or_wait`] and [`pop_or_wait`] are the try-then-wait loops that
//! queues and channels share.
//!
//! A non-blocking call that finds nothing to do is also where a caller that
//! spins on `get_nowait()` is recognized: after a spin of
//! [`SPIN_BUDGET`](interpreters_aio_core::spin::SPIN_BUDGET) it yields the CPU
//! on each further empty call (see `interpreters_aio_core::spin`), so a
//! producer that shares its CPU is not kept waiting for a whole time slice.

use std::cell::Cell;
use std::time::{Duration, Instant};

use interpreters_aio_core::fifo::{Fifo, Item, PopError, PushError, Received, Wait};
use interpreters_aio_core::parker::WaitResult;
use interpreters_aio_core::spin::SpinWatch;
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
        // SAFETY: forwarded from the caller.
        match unsafe { wait_once(fifo, wait, deadline) } {
            WaitResult::Ready => return Ok(true),
            WaitResult::TimedOut => return Ok(false),
            // SAFETY: the GIL is held again.
            WaitResult::Cancelled => return Err(unsafe { raise_cancelled(module) }),
            WaitResult::Interrupted => {
                // SAFETY: the GIL is held again.
                if unsafe { PyErr_CheckSignals() } < 0 {
                    return Err(Raised);
                }
            }
        }
    }
}

/// One wait on `fifo`, with the caller's GIL released.
///
/// # Safety
/// As for [`block_on`].
pub unsafe fn wait_once(fifo: &Fifo, wait: Wait, deadline: Option<Instant>) -> WaitResult {
    // SAFETY: releasing and retaking this thread's own GIL around a wait
    // that touches no Python object.
    unsafe {
        let saved = PyEval_SaveThread();
        let result = fifo.wait(wait, deadline);
        PyEval_RestoreThread(saved);
        result
    }
}

/// Raises the error for a wait abandoned because its interpreter is closing.
///
/// # Safety
/// The GIL is held and `module` is this extension's module.
pub unsafe fn raise_cancelled(module: *mut PyObject) -> Raised {
    let msg = "the interpreter running this code is being closed; the wait was abandoned";
    // SAFETY: the class is registered or a builtin.
    unsafe {
        let class = crate::module::state(module).interpreter_error;
        crate::py::raise(if class.is_null() { PyExc_RuntimeError } else { class }, msg)
    }
}

thread_local! {
    /// This thread's run of fruitless non-blocking calls, on any queue or channel.
    static SPIN: Cell<SpinWatch> = const { Cell::new(SpinWatch::new()) };
}

/// A non-blocking call did its work: the caller is not spinning.
fn progressed() {
    SPIN.with(|spin| {
        let mut watch = spin.get();
        if watch.spinning() {
            watch.progressed();
            spin.set(watch);
        }
    });
}

/// A non-blocking call found nothing to do: if the caller has been spinning
/// on such calls, give the CPU to whoever else can run on it (the thread it
/// waits for, perhaps), with the GIL released so that threads of this
/// interpreter can run too. Returns at once when nothing else is runnable.
///
/// # Safety
/// As for [`block_on`].
unsafe fn fruitless() {
    let must_yield = SPIN.with(|spin| {
        let mut watch = spin.get();
        let must_yield = watch.fruitless(Instant::now());
        spin.set(watch);
        must_yield
    });
    if !must_yield {
        return;
    }
    // SAFETY: releasing and retaking this thread's own GIL around a yield
    // that touches no Python object.
    unsafe {
        let saved = PyEval_SaveThread();
        std::thread::yield_now();
        PyEval_RestoreThread(saved);
    }
    SPIN.with(|spin| {
        let mut watch = spin.get();
        watch.resumed(Instant::now());
        spin.set(watch);
    });
}

/// What [`push_or_wait`] came to.
pub enum Pushed {
    /// The item is in the FIFO.
    Sent,
    /// It stayed full (not blocking, or until the deadline); the item was dropped.
    Full,
    /// The FIFO is closed; the item was dropped.
    Closed,
}

/// Pushes `item`, waiting while the FIFO is full if `block`, until `deadline`.
///
/// # Safety
/// As for [`block_on`].
pub unsafe fn push_or_wait(
    module: *mut PyObject,
    fifo: &Fifo,
    mut item: Item,
    block: bool,
    deadline: Option<Instant>,
) -> PyResult<Pushed> {
    loop {
        match fifo.try_push(item, false, false) {
            Ok(_) => {
                progressed();
                return Ok(Pushed::Sent);
            }
            Err(PushError::Closed(_)) => return Ok(Pushed::Closed),
            Err(PushError::Full(back)) => {
                if !block {
                    drop(back);
                    // SAFETY: forwarded from the caller.
                    unsafe { fruitless() };
                    return Ok(Pushed::Full);
                }
                // SAFETY: forwarded from the caller.
                if !unsafe { block_on(module, fifo, Wait::CanSend, deadline) }? {
                    return Ok(Pushed::Full);
                }
                item = back;
            }
        }
    }
}

/// What [`pop_or_wait`] came to.
pub enum Popped {
    Got(Received),
    /// Nothing came (not blocking, or until the deadline).
    Empty,
    /// The FIFO is closed and drained.
    Closed,
}

/// Pops the oldest item, waiting while the FIFO is empty if `block`, until
/// `deadline`. `before_waiting` runs each time the FIFO is found empty, before
/// any wait: an error it raises ends the call (a channel end released meanwhile).
///
/// # Safety
/// As for [`block_on`].
pub unsafe fn pop_or_wait(
    module: *mut PyObject,
    fifo: &Fifo,
    block: bool,
    deadline: Option<Instant>,
    mut before_waiting: impl FnMut() -> PyResult<()>,
) -> PyResult<Popped> {
    loop {
        match fifo.try_pop() {
            Ok(received) => {
                progressed();
                return Ok(Popped::Got(received));
            }
            Err(PopError::Closed) => return Ok(Popped::Closed),
            Err(PopError::Empty) => {
                before_waiting()?;
                if !block {
                    // SAFETY: forwarded from the caller.
                    unsafe { fruitless() };
                    return Ok(Popped::Empty);
                }
                // SAFETY: forwarded from the caller.
                if !unsafe { block_on(module, fifo, Wait::CanRecv, deadline) }? {
                    return Ok(Popped::Empty);
                }
            }
        }
    }
}
