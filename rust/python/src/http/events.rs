//! Request parsing for Python: the parser capsule and the event list that
//! `http_feed` returns (see `interpreters_aio/_core.pyi` for the shapes).

use std::cell::Cell;
use std::ffi::{c_void, CStr};

use interpreters_aio_http::{Framing, Head, HttpError, Limits, Parser, Sink};
use pyo3_ffi::*;

use super::{new_bytes, Bytes};
use crate::py::{self, Owned, PyResult, Raised};

type Args = *mut *mut PyObject;

const CAPSULE: &CStr = c"interpreters_aio._core.HttpParser";

/// Head flag bits (mirrored in `interpreters_aio/http/_protocol.py`).
const KEEP_ALIVE: i64 = 1;
const EXPECT_CONTINUE: i64 = 2;
const HAS_BODY: i64 = 4;
const HTTP10: i64 = 8;

/// What a capsule owns. `busy` refuses re-entry (a finalizer run by an
/// allocation inside `feed` could call back into the same parser).
struct Boxed {
    parser: Parser,
    busy: Cell<bool>,
}

unsafe extern "C" fn capsule_destructor(capsule: *mut PyObject) {
    // SAFETY: CPython calls this once, under the GIL of the interpreter that
    // made the capsule in `http_parser`, whose pointer came from `alloc_boxed`.
    unsafe {
        let ptr = PyCapsule_GetPointer(capsule, CAPSULE.as_ptr());
        if ptr.is_null() {
            PyErr_Clear();
            return;
        }
        free_boxed(ptr.cast::<Boxed>());
    }
}

/// A new `Boxed` in the interpreter's own allocator (`PyMem_Malloc`), or
/// null with `MemoryError` set.
///
/// Not `Box::new` (the C heap): a parser lives as long as its connection,
/// and one small C-heap block per connection, left between the large
/// transient buffers a server's reads allocate there (`sock.recv(256 KiB)`,
/// served from the heap once glibc has raised its mmap threshold), keeps
/// freed heap from being reused or returned: resident memory crept by tens
/// of bytes per connection under connection churn (issue 25 item 5).
/// pymalloc keeps such small objects in arenas of their own.
///
/// # Safety
/// The GIL is held.
unsafe fn alloc_boxed(boxed: Boxed) -> *mut Boxed {
    // SAFETY: the GIL is held; PyMem_Malloc's blocks are aligned for any
    // C type (16 bytes), more than `Boxed` needs (checked below).
    unsafe {
        const { assert!(std::mem::align_of::<Boxed>() <= 16) };
        let ptr = PyMem_Malloc(std::mem::size_of::<Boxed>()).cast::<Boxed>();
        if ptr.is_null() {
            PyErr_NoMemory();
            return ptr;
        }
        ptr.write(boxed);
        ptr
    }
}

/// Drops and frees a `Boxed` made by [`alloc_boxed`].
///
/// # Safety
/// The GIL of the interpreter that allocated it is held; `ptr` is not used again.
unsafe fn free_boxed(ptr: *mut Boxed) {
    // SAFETY: `ptr` came from `alloc_boxed` and holds an initialized `Boxed`.
    unsafe {
        std::ptr::drop_in_place(ptr);
        PyMem_Free(ptr.cast::<c_void>());
    }
}

/// The parser in `capsule`, marked busy until the guard drops.
///
/// # Safety
/// The GIL is held and `capsule` outlives the guard.
unsafe fn parser_of<'a>(capsule: *mut PyObject) -> PyResult<Guard<'a>> {
    // SAFETY: the name check makes sure the pointer is one of ours.
    unsafe {
        let ptr = PyCapsule_GetPointer(capsule, CAPSULE.as_ptr());
        if ptr.is_null() {
            return Err(Raised);
        }
        let boxed = &mut *ptr.cast::<Boxed>();
        if boxed.busy.replace(true) {
            return Err(py::raise(PyExc_RuntimeError, "HTTP parser re-entered"));
        }
        Ok(Guard(boxed))
    }
}

struct Guard<'a>(&'a mut Boxed);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
    }
}

unsafe fn arg_count(name: &str, nargs: Py_ssize_t, expected: Py_ssize_t) -> PyResult<()> {
    if nargs == expected {
        return Ok(());
    }
    // SAFETY: the GIL is held in every module function.
    Err(unsafe {
        py::raise(PyExc_TypeError, &format!("{name}() takes {expected} arguments ({nargs} given)"))
    })
}

unsafe fn arg_size(obj: *mut PyObject) -> PyResult<usize> {
    // SAFETY: the GIL is held and `obj` is a live argument.
    unsafe {
        let n = PyLong_AsSsize_t(obj);
        if n == -1 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        if n < 1 {
            return Err(py::raise(PyExc_ValueError, "HTTP limits must be positive"));
        }
        Ok(n as usize)
    }
}

/// `http_parser(max_head, max_headers) -> parser`.
pub unsafe extern "C" fn http_parser(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if arg_count("http_parser", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        let (Ok(max_head), Ok(max_headers)) = (arg_size(*args), arg_size(*args.add(1))) else {
            return std::ptr::null_mut();
        };
        let boxed = Boxed { parser: Parser::new(Limits { max_head, max_headers }), busy: Cell::new(false) };
        let ptr = alloc_boxed(boxed);
        if ptr.is_null() {
            return std::ptr::null_mut();
        }
        let capsule = PyCapsule_New(ptr.cast::<c_void>(), CAPSULE.as_ptr(), Some(capsule_destructor));
        if capsule.is_null() {
            free_boxed(ptr);
        }
        capsule
    }
}

/// Builds the event list; body parts within one feed are joined.
struct Events {
    list: Owned,
    body: Vec<u8>,
}

impl Events {
    unsafe fn new() -> PyResult<Events> {
        // SAFETY: the GIL is held.
        Ok(Events { list: unsafe { py::check(PyList_New(0)) }?, body: Vec::new() })
    }

    /// Appends a new reference (consumed).
    unsafe fn push(&mut self, item: *mut PyObject) -> PyResult<()> {
        // SAFETY: the GIL is held; `item` is null (error set) or a new reference.
        unsafe {
            let item = py::check(item)?;
            if PyList_Append(self.list.as_ptr(), item.as_ptr()) < 0 {
                return Err(Raised);
            }
        }
        Ok(())
    }

    unsafe fn flush_body(&mut self) -> PyResult<()> {
        if self.body.is_empty() {
            return Ok(());
        }
        // SAFETY: the GIL is held.
        let result = unsafe { self.push(new_bytes(&self.body)) };
        self.body.clear();
        result
    }

    unsafe fn finish(mut self) -> PyResult<Owned> {
        // SAFETY: the GIL is held.
        unsafe { self.flush_body()? };
        Ok(self.list)
    }
}

impl Sink for Events {
    type Error = Raised;

    fn head(&mut self, head: &Head<'_>) -> PyResult<()> {
        // SAFETY: the sink is only driven from `feed` calls made under the GIL.
        unsafe {
            self.flush_body()?;
            let tuple = head_tuple(head)?;
            self.push(tuple.into_ptr())
        }
    }

    fn body(&mut self, data: &[u8]) -> PyResult<()> {
        self.body.extend_from_slice(data);
        Ok(())
    }

    fn end(&mut self) -> PyResult<()> {
        // SAFETY: as for `head`.
        unsafe {
            self.flush_body()?;
            self.push(py::none())
        }
    }

    fn error(&mut self, error: HttpError) -> PyResult<()> {
        // SAFETY: as for `head`.
        unsafe {
            self.flush_body()?;
            self.push(PyLong_FromLong(error.status.into()))?;
            self.push(py::new_str(error.reason))
        }
    }
}

/// `(method, path, raw_path, query_string, headers, flags, upgrade)`.
///
/// # Safety
/// The GIL is held.
unsafe fn head_tuple(head: &Head<'_>) -> PyResult<Owned> {
    // SAFETY: the GIL is held; every part is a new reference handed to the
    // tuple or list (which steal them) right after a null check.
    unsafe {
        let headers = py::check(PyList_New(head.headers.len() as Py_ssize_t))?;
        for (i, h) in head.headers.iter().enumerate() {
            let name = h.name.as_bytes();
            let pair = py::check(PyTuple_New(2))?;
            let lower = py::check(PyBytes_FromStringAndSize(std::ptr::null(), name.len() as Py_ssize_t))?;
            let dst =
                std::slice::from_raw_parts_mut(PyBytes_AsString(lower.as_ptr()).cast::<u8>(), name.len());
            interpreters_aio_http::request::lowercase(name, dst);
            PyTuple_SET_ITEM(pair.as_ptr(), 0, lower.into_ptr());
            PyTuple_SET_ITEM(pair.as_ptr(), 1, py::check(new_bytes(h.value))?.into_ptr());
            PyList_SET_ITEM(headers.as_ptr(), i as Py_ssize_t, pair.into_ptr());
        }
        let mut flags = 0;
        if head.keep_alive {
            flags |= KEEP_ALIVE;
        }
        if head.expect_continue {
            flags |= EXPECT_CONTINUE;
        }
        if head.framing != Framing::Empty {
            flags |= HAS_BODY;
        }
        if head.minor_version == 0 {
            flags |= HTTP10;
        }
        let upgrade = match head.upgrade {
            Some(value) => py::check(new_bytes(&value.to_ascii_lowercase()))?,
            None => Owned::from_borrowed(Py_None()),
        };
        let parts = [
            py::check(py::new_str(head.method))?,
            path_str(head.path)?,
            py::check(new_bytes(head.path))?,
            py::check(new_bytes(head.query))?,
            headers,
            py::check(PyLong_FromLongLong(flags))?,
            upgrade,
        ];
        let tuple = py::check(PyTuple_New(parts.len() as Py_ssize_t))?;
        for (i, part) in parts.into_iter().enumerate() {
            PyTuple_SET_ITEM(tuple.as_ptr(), i as Py_ssize_t, part.into_ptr());
        }
        Ok(tuple)
    }
}

/// The ASGI `path`: the raw path percent-decoded as UTF-8 with replacement
/// characters, as `urllib.parse.unquote` does (invalid escapes stay as sent).
///
/// # Safety
/// The GIL is held.
unsafe fn path_str(raw: &[u8]) -> PyResult<Owned> {
    // SAFETY: the GIL is held.
    unsafe {
        if !raw.contains(&b'%') {
            // The target was checked to be visible ASCII, so this is valid UTF-8.
            let text = std::str::from_utf8(raw).unwrap_or_default();
            return py::check(py::new_str(text));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                if let (Some(h), Some(l)) = (hex(raw[i + 1]), hex(raw[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
            }
            out.push(raw[i]);
            i += 1;
        }
        py::check(py::new_str(&String::from_utf8_lossy(&out)))
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `http_feed(parser, data) -> list of events`.
pub unsafe extern "C" fn http_feed(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if arg_count("http_feed", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        feed(*args, Some(*args.add(1))).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

/// `http_resume(parser) -> list of events`: serve a paused upgrade request
/// as plain HTTP and parse what arrived after it.
pub unsafe extern "C" fn http_resume(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if arg_count("http_resume", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        feed(*args, None).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

unsafe fn feed(capsule: *mut PyObject, data: Option<*mut PyObject>) -> PyResult<Owned> {
    // SAFETY: the GIL is held; `data` outlives the borrowed slice.
    unsafe {
        let guard = parser_of(capsule)?;
        let parser = &mut guard.0.parser;
        let mut events = Events::new()?;
        match data {
            Some(obj) => {
                let bytes = Bytes::of(obj)?;
                parser.feed(bytes.as_slice(), &mut events)?;
            }
            None => {
                parser.resume();
                parser.feed(&[], &mut events)?;
            }
        }
        events.finish()
    }
}

/// `http_take_rest(parser) -> bytes`: what arrived after an upgrade
/// request's head, for the protocol taking over; the parser stops.
pub unsafe extern "C" fn http_take_rest(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if arg_count("http_take_rest", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(guard) = parser_of(*args) else {
            return std::ptr::null_mut();
        };
        new_bytes(&guard.0.parser.take_rest())
    }
}
