//! Pickling by value with cloudpickle, where the standard pickle cannot help.
//!
//! The standard pickle sends functions and classes by reference (module and
//! name), which the receiver cannot resolve for what was defined in
//! `__main__`, in a REPL or notebook, or inside a function: the receiver's
//! `__main__` is its own, and `<locals>` names are not importable. cloudpickle
//! (the serializer Dask, Ray and joblib ship functions with) writes those by
//! value instead. Its output is an ordinary pickle whose reconstructors live
//! in `cloudpickle`, so the receiver loads it with its own `pickle.loads`
//! (importing cloudpickle there) and nothing else changes on that side.
//!
//! cloudpickle is an optional dependency (`interpreters-aio[dask]`): the
//! default install stays dependency-free, and everything that crossed before
//! still crosses without it. It is looked up only on the paths that need it,
//! once per interpreter (the answer, module or absence, is kept in the
//! interpreter's state dict), and never on the native or stdlib-pickle paths.
//! As everything here, it runs in the sending interpreter, under its GIL, on
//! that interpreter's own objects (DESIGN rule 1).

use pyo3_ffi::*;

use crate::py::{self, Owned, PyResult, Raised};

/// What to tell a user whose object needs cloudpickle when it is missing.
pub const INSTALL_HINT: &str = "install cloudpickle (pip install 'interpreters-aio[dask]', or pip install \
                                cloudpickle) to send it by value";

/// How an attempt to pickle by value went.
pub enum ByValue {
    /// The pickle, loadable with `pickle.loads` where cloudpickle imports.
    Pickled(Box<[u8]>),
    /// cloudpickle is not installed (or does not import) here.
    Unavailable,
    /// cloudpickle could not pickle the object either; the text says why.
    Failed(String),
}

/// Whether a standard pickle refers to something in `__main__`, which the
/// receiver resolves in its own `__main__`, not the sender's. A match may be
/// a string that merely contains the name: that only costs a by-value pickle
/// of the same data. One SIMD scan, a small fraction of `pickle.dumps`.
pub fn refers_to_main(pickled: &[u8]) -> bool {
    memchr::memmem::find(pickled, b"__main__").is_some()
}

/// State-dict key for this interpreter's `cloudpickle.dumps` (None: absent).
const CACHE_KEY: &std::ffi::CStr = c"interpreters_aio.cloudpickle_dumps";

/// This interpreter's `cloudpickle.dumps`, or `None` if cloudpickle is not
/// installed. An import that fails with anything but `ImportError` is a bug
/// in the environment worth seeing, so it propagates.
///
/// # Safety
/// The GIL is held.
unsafe fn dumps_function() -> PyResult<Option<Owned>> {
    // SAFETY: the GIL is held; every reference taken here is owned.
    unsafe {
        let dumps = py::interpreter_cached(CACHE_KEY, || {
            match Owned::from_new(PyImport_ImportModule(c"cloudpickle".as_ptr())) {
                Some(module) => py::getattr(module.as_ptr(), c"dumps"),
                None if PyErr_ExceptionMatches(PyExc_ImportError) != 0 => {
                    PyErr_Clear();
                    Ok(Owned::from_borrowed(Py_None()))
                }
                None => Err(Raised),
            }
        })?;
        Ok((dumps.as_ptr() != Py_None()).then_some(dumps))
    }
}

/// Whether cloudpickle can be used in the current interpreter.
///
/// # Safety
/// The GIL is held.
pub unsafe fn available() -> PyResult<bool> {
    // SAFETY: forwarded from the caller.
    Ok(unsafe { dumps_function() }?.is_some())
}

/// Pickles `obj` with cloudpickle (protocol 5, as the stdlib path).
///
/// # Safety
/// The GIL is held and `obj` is a live object of the current interpreter.
pub unsafe fn dumps(obj: *mut PyObject) -> PyResult<ByValue> {
    // SAFETY: the GIL is held; every reference made here is owned.
    unsafe {
        let Some(dumps) = dumps_function()? else {
            return Ok(ByValue::Unavailable);
        };
        let protocol = py::check(PyLong_FromLong(5))?;
        let args = [obj, protocol.as_ptr()];
        let pickled =
            Owned::from_new(PyObject_Vectorcall(dumps.as_ptr(), args.as_ptr(), 2, std::ptr::null_mut()));
        let Some(pickled) = pickled else {
            let why = py::take_exception()
                .map(|exc| format!("{}: {}", py::type_name(exc.as_ptr()), py::display(exc.as_ptr())))
                .unwrap_or_default();
            return Ok(ByValue::Failed(why));
        };
        if PyBytes_Check(pickled.as_ptr()) == 0 {
            return Ok(ByValue::Failed("cloudpickle.dumps did not return bytes".into()));
        }
        let data = PyBytes_AsString(pickled.as_ptr()).cast::<u8>();
        let len = PyBytes_Size(pickled.as_ptr()) as usize;
        Ok(ByValue::Pickled(std::slice::from_raw_parts(data, len).into()))
    }
}
