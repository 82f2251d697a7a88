//! The CPython face of `rust/http`: the functions `interpreters_aio.http`
//! calls per connection (`http_parser`, `http_feed`, `http_resume`,
//! `http_take_rest`) and per response (`http_response`).
//!
//! Speed is the point of this module (issue 11): one call per
//! `data_received` parses everything that arrived and returns a flat list
//! of events whose parts are already the Python objects the ASGI scope
//! needs, and one call frames a response head with its first body part.
//!
//! A connection's parser is a `PyCapsule` owning a boxed Rust parser: it
//! needs no type object and no module state, and like every object here it
//! lives and dies in the interpreter that made it (DESIGN rules 1 and 2).
//! Event shapes are documented on `http_feed` in `interpreters_aio/_core.pyi`.

mod events;
mod frame;

pub use events::{http_feed, http_parser, http_resume, http_take_rest};
pub use frame::http_response;

use std::ffi::c_int;

use pyo3_ffi::*;

use crate::py::{self, PyResult};

/// The bytes of a bytes-like argument, borrowed for the call: `bytes`
/// directly, anything else through the buffer protocol (released on drop).
pub struct Bytes {
    ptr: *const u8,
    len: usize,
    view: Option<Box<Py_buffer>>,
}

impl Bytes {
    /// # Safety
    /// The GIL is held and `obj` outlives the returned value.
    pub unsafe fn of(obj: *mut PyObject) -> PyResult<Bytes> {
        // SAFETY: the GIL is held; a bytes object's buffer lives as long as it.
        unsafe {
            if PyBytes_Check(obj) != 0 {
                let len = PyBytes_Size(obj) as usize;
                return Ok(Bytes { ptr: PyBytes_AsString(obj).cast(), len, view: None });
            }
            let mut view: Box<Py_buffer> = Box::new(std::mem::zeroed());
            if PyObject_GetBuffer(obj, &mut *view, PyBUF_SIMPLE as c_int) < 0 {
                PyErr_Clear();
                let msg = format!("expected a bytes-like object, not {}", py::type_name(obj));
                return Err(py::raise(PyExc_TypeError, &msg));
            }
            Ok(Bytes { ptr: view.buf.cast(), len: view.len as usize, view: Some(view) })
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` and `len` describe memory kept alive by the object
        // (and the exported view) for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Bytes {
    fn drop(&mut self) {
        if let Some(view) = self.view.as_mut() {
            // SAFETY: the view was exported by PyObject_GetBuffer under the
            // GIL, which the holder of a `Bytes` still holds.
            unsafe { PyBuffer_Release(&mut **view) };
        }
    }
}

/// A new `bytes` copied from `data` (null with an exception on failure).
///
/// # Safety
/// The GIL is held.
pub unsafe fn new_bytes(data: &[u8]) -> *mut PyObject {
    // SAFETY: pointer and length describe `data`.
    unsafe { PyBytes_FromStringAndSize(data.as_ptr().cast(), data.len() as Py_ssize_t) }
}
