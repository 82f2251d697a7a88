//! `interpreters_aio._core`: the only code in the project that touches the
//! CPython C-API. It is written on raw `pyo3-ffi` because the high-level
//! `pyo3` crate refuses to load in subinterpreters and keeps process-global
//! object caches (DESIGN rule 2).
//!
//! Layout: `module` (definition and per-interpreter state), `api` (the
//! functions Python sees, and error mapping), `interp` (lifecycle and
//! thread states), `run` (exec/call/prepare_main and exception snapshots),
//! `to_value` / `from_value` (object <-> `Value`), `by_value` (cloudpickle,
//! where the standard pickle cannot help), `py` (small wrappers).

mod api;
mod by_value;
mod channels;
mod from_value;
mod handles;
mod handover;
mod http;
mod interp;
mod lending;
mod module;
mod py;
mod queues;
mod run;
mod to_value;
mod wait;

use pyo3_ffi::{PyModuleDef_Init, PyObject};

/// Entry point CPython calls on import; returns the module definition for
/// multi-phase initialization, so each interpreter gets its own module.
///
/// # Safety
/// Called by CPython's import machinery with the importing interpreter's GIL held.
#[allow(non_snake_case)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn PyInit__core() -> *mut PyObject {
    // SAFETY: MODULE_DEF is a valid, 'static definition; PyModuleDef_Init only
    // initializes its object header.
    unsafe { PyModuleDef_Init(&raw mut module::MODULE_DEF) }
}
