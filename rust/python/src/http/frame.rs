//! Response framing for Python: `http_response` turns an ASGI
//! `http.response.start` (and usually the first `http.response.body`) into
//! the bytes of one `transport.write`.

use interpreters_aio_http::response::frame_body;
use interpreters_aio_http::{BodyMode, FrameError, ResponseHead};
use pyo3_ffi::*;

use super::{new_bytes, Bytes};
use crate::py::{self, Owned, PyResult, Raised};

type Args = *mut *mut PyObject;

/// Request flag bits (mirrored in `interpreters_aio/http/_protocol.py`).
const HEAD_REQUEST: i64 = 1;
const HTTP10: i64 = 2;
const KEEP_ALIVE: i64 = 4;

/// Body mode numbers returned to Python.
const MODE_LENGTH: i64 = 0;
const MODE_CHUNKED: i64 = 1;
const MODE_UNTIL_CLOSE: i64 = 2;
const MODE_DISCARD: i64 = 3;

unsafe fn raise_frame(err: FrameError) -> Raised {
    // Same exception types as uvicorn's protocols for the same mistakes.
    let class = match err {
        // SAFETY: reading the exception class statics of this interpreter.
        FrameError::ContentLength => unsafe { PyExc_ValueError },
        // SAFETY: as above.
        _ => unsafe { PyExc_RuntimeError },
    };
    // SAFETY: the GIL is held.
    unsafe { py::raise(class, &err.to_string()) }
}

/// Adds each `(name, value)` pair of `headers` (any iterable of pairs).
///
/// # Safety
/// The GIL is held and `headers` is live.
unsafe fn add_headers(head: &mut ResponseHead, headers: *mut PyObject) -> PyResult<()> {
    // SAFETY: the GIL is held; PySequence_Fast returns the list or tuple
    // itself (or a new list), and its items are borrowed while it lives.
    unsafe {
        let seq = py::check(PySequence_Fast(headers, c"headers must be an iterable of pairs".as_ptr()))?;
        let n = PySequence_Fast_GET_SIZE(seq.as_ptr());
        for i in 0..n {
            let item = PySequence_Fast_GET_ITEM(seq.as_ptr(), i);
            let (name, value) = if PyTuple_Check(item) != 0 && PyTuple_GET_SIZE(item) == 2 {
                (PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1))
            } else {
                let pair = py::check(PySequence_Fast(item, c"each header must be a pair".as_ptr()))?;
                if PySequence_Fast_GET_SIZE(pair.as_ptr()) != 2 {
                    return Err(py::raise(PyExc_ValueError, "each header must be a (name, value) pair"));
                }
                let (name, value) =
                    (PySequence_Fast_GET_ITEM(pair.as_ptr(), 0), PySequence_Fast_GET_ITEM(pair.as_ptr(), 1));
                let (name, value) = (Owned::from_borrowed(name), Owned::from_borrowed(value));
                drop(pair);
                let result = add_one(head, name.as_ptr(), value.as_ptr());
                result?;
                continue;
            };
            add_one(head, name, value)?;
        }
        Ok(())
    }
}

unsafe fn add_one(head: &mut ResponseHead, name: *mut PyObject, value: *mut PyObject) -> PyResult<()> {
    // SAFETY: the GIL is held and both objects are live for the call.
    unsafe {
        let (name, value) = (Bytes::of(name)?, Bytes::of(value)?);
        head.header(name.as_slice(), value.as_slice()).map_err(|e| raise_frame(e))
    }
}

/// `http_response(status, default_headers, headers, flags, body, more_body)
/// -> (data, mode, remaining, keep_alive)`; `body` None frames the head only.
pub unsafe extern "C" fn http_response(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if nargs != 6 {
            return py::raise(PyExc_TypeError, "http_response() takes 6 arguments").into_null();
        }
        response(std::slice::from_raw_parts(args, 6)).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

unsafe fn response(args: &[*mut PyObject]) -> PyResult<Owned> {
    // SAFETY: the GIL is held; the arguments are live for the call.
    unsafe {
        let status = PyLong_AsLong(args[0]);
        if status == -1 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        let flags = PyLong_AsLongLong(args[3]);
        if flags == -1 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        let status = u16::try_from(status).map_err(|_| raise_frame(FrameError::Status))?;
        let mut head = ResponseHead::new(status, 256).map_err(|e| raise_frame(e))?;
        add_headers(&mut head, args[1])?;
        if args[2] != Py_None() {
            add_headers(&mut head, args[2])?;
        }
        let (mut out, mut mode, keep_alive) = head
            .finish(flags & HEAD_REQUEST != 0, flags & HTTP10 != 0, flags & KEEP_ALIVE != 0)
            .map_err(|e| raise_frame(e))?;
        if args[4] != Py_None() {
            let more_body = PyObject_IsTrue(args[5]);
            if more_body < 0 {
                return Err(Raised);
            }
            let body = Bytes::of(args[4])?;
            frame_body(&mut out, &mut mode, body.as_slice(), more_body != 0).map_err(|e| raise_frame(e))?;
        }
        let (mode, remaining) = match mode {
            BodyMode::Length(n) => (MODE_LENGTH, n),
            BodyMode::Chunked => (MODE_CHUNKED, 0),
            BodyMode::UntilClose => (MODE_UNTIL_CLOSE, 0),
            BodyMode::Discard => (MODE_DISCARD, 0),
        };
        let parts = [
            py::check(new_bytes(&out))?,
            py::check(PyLong_FromLongLong(mode))?,
            py::check(PyLong_FromUnsignedLongLong(remaining))?,
            py::check(py::new_bool(keep_alive))?,
        ];
        let tuple = py::check(PyTuple_New(4))?;
        for (i, part) in parts.into_iter().enumerate() {
            PyTuple_SET_ITEM(tuple.as_ptr(), i as Py_ssize_t, part.into_ptr());
        }
        Ok(tuple)
    }
}

trait IntoNull {
    fn into_null(self) -> *mut PyObject;
}

impl IntoNull for Raised {
    fn into_null(self) -> *mut PyObject {
        std::ptr::null_mut()
    }
}
