//! Typed wrappers over the handful of C-API idioms every module here needs:
//! owned references, raising, strings, imports and version shims.
//!
//! `Owned` is deliberately `!Send`: an object belongs to the interpreter whose
//! GIL created it, and must be dropped under that GIL (DESIGN rule 1). Code
//! that swaps interpreters keeps its `Owned` values inside the scope of one
//! interpreter; what crosses is a `Value`.

use std::ffi::{c_char, CStr};
use std::ptr::NonNull;

use pyo3_ffi::*;

/// A strong reference to a Python object, released on drop.
pub struct Owned(NonNull<PyObject>);

impl Owned {
    /// Takes ownership of a new reference; `None` if the call that produced
    /// it failed (and so set an exception).
    ///
    /// # Safety
    /// `ptr` is null or a new (owned) reference, and the caller holds the GIL
    /// of the interpreter that owns it.
    pub unsafe fn from_new(ptr: *mut PyObject) -> Option<Owned> {
        NonNull::new(ptr).map(Owned)
    }

    /// Takes a new reference to a borrowed object.
    ///
    /// # Safety
    /// `ptr` is a valid, non-null object and the caller holds its interpreter's GIL.
    pub unsafe fn from_borrowed(ptr: *mut PyObject) -> Owned {
        // SAFETY: the caller guarantees `ptr` is live and the GIL is held.
        unsafe { Py_INCREF(ptr) };
        // SAFETY: the caller guarantees `ptr` is non-null.
        Owned(unsafe { NonNull::new_unchecked(ptr) })
    }

    pub fn as_ptr(&self) -> *mut PyObject {
        self.0.as_ptr()
    }

    /// Gives the reference to the caller (e.g. to return it to Python).
    pub fn into_ptr(self) -> *mut PyObject {
        let ptr = self.0.as_ptr();
        std::mem::forget(self);
        ptr
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: `Owned` is !Send and only built under the owning interpreter's
        // GIL, which every code path here still holds when it drops one.
        unsafe { Py_DECREF(self.0.as_ptr()) }
    }
}

/// Turns a C-API result into `Result`, keeping the Python exception set.
///
/// # Safety
/// As for [`Owned::from_new`].
pub unsafe fn check(ptr: *mut PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded from the caller.
    unsafe { Owned::from_new(ptr) }.ok_or(Raised)
}

/// A new heap type of `module`: `PyType_FromModuleAndSpec` with a spec made
/// of these fields. `slots` ends with the zero slot.
///
/// # Safety
/// The GIL is held, `module` is this extension's module, and every slot
/// points at what its kind requires (functions, method tables, a C string).
pub unsafe fn heap_type(
    module: *mut PyObject,
    name: &std::ffi::CStr,
    basicsize: usize,
    flags: std::ffi::c_ulong,
    slots: &mut [PyType_Slot],
) -> PyResult<Owned> {
    debug_assert!(slots.last().is_some_and(|last| last.slot == 0), "slots end with the zero slot");
    let mut spec = PyType_Spec {
        name: name.as_ptr(),
        basicsize: basicsize as std::ffi::c_int,
        itemsize: 0,
        flags: flags as _,
        slots: slots.as_mut_ptr(),
    };
    // SAFETY: the spec and slots live for the whole call, and CPython copies
    // what it needs into the new type; the rest is forwarded from the caller.
    unsafe { check(PyType_FromModuleAndSpec(module, &mut spec, std::ptr::null_mut())) }
}

/// Marker: a Python exception is set in the current interpreter.
#[derive(Debug)]
pub struct Raised;

pub type PyResult<T> = Result<T, Raised>;

/// Sets `exc_type(msg)` as the current exception and returns the marker.
///
/// # Safety
/// The GIL is held and `exc_type` is an exception class.
pub unsafe fn raise(exc_type: *mut PyObject, msg: &str) -> Raised {
    // SAFETY: the caller holds the GIL; the string is a new reference or null.
    unsafe {
        // Without the text, MemoryError is already set.
        if let Some(text) = Owned::from_new(new_str(msg)) {
            PyErr_SetObject(exc_type, text.as_ptr());
        }
    }
    Raised
}

/// A new `str` from Rust text (null with an exception on failure).
///
/// # Safety
/// The GIL is held.
pub unsafe fn new_str(text: &str) -> *mut PyObject {
    // SAFETY: pointer and length describe `text`, which is valid UTF-8.
    unsafe { PyUnicode_FromStringAndSize(text.as_ptr().cast::<c_char>(), text.len() as Py_ssize_t) }
}

/// The UTF-8 contents of a `str`, borrowed from the object.
///
/// # Safety
/// The GIL is held and `obj` is a `str` that outlives the returned slice.
pub unsafe fn str_utf8<'a>(obj: *mut PyObject) -> PyResult<&'a str> {
    let mut size: Py_ssize_t = 0;
    // SAFETY: `obj` is a str; CPython caches the UTF-8 form inside it.
    let data = unsafe { PyUnicode_AsUTF8AndSize(obj, &mut size) };
    if data.is_null() {
        return Err(Raised);
    }
    // SAFETY: CPython returned `size` bytes of valid UTF-8 owned by `obj`.
    Ok(unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast(), size as usize)) })
}

/// `str(obj)` as Rust text, or a placeholder when `str()` itself fails (the
/// failure is swallowed: this is used while reporting another error).
///
/// # Safety
/// The GIL is held and `obj` is a valid object.
pub unsafe fn display(obj: *mut PyObject) -> String {
    // SAFETY: the caller holds the GIL and `obj` is valid.
    unsafe {
        if let Some(text) = Owned::from_new(PyObject_Str(obj)) {
            if let Ok(s) = str_utf8(text.as_ptr()) {
                return s.to_owned();
            }
        }
        PyErr_Clear();
    }
    "<str() failed>".to_owned()
}

/// The qualified name of `obj`'s type, for messages.
///
/// # Safety
/// The GIL is held and `obj` is a valid object.
pub unsafe fn type_name(obj: *mut PyObject) -> String {
    // SAFETY: every object has a type, which outlives the call.
    unsafe {
        let ty = Py_TYPE(obj);
        CStr::from_ptr((*ty).tp_name).to_string_lossy().into_owned()
    }
}

/// A module of the current interpreter, from `sys.modules` when it is there
/// (a dict lookup; a full import costs ~0.4 µs even when cached).
///
/// # Safety
/// The GIL is held.
pub unsafe fn module(name: &CStr) -> PyResult<Owned> {
    // SAFETY: the GIL is held; the name object is released before returning.
    unsafe {
        let key = check(PyUnicode_FromString(name.as_ptr()))?;
        if let Some(found) = Owned::from_new(PyImport_GetModule(key.as_ptr())) {
            return Ok(found);
        }
        if !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        import(name)
    }
}

/// Imports (or finds in `sys.modules`) a module of the current interpreter.
///
/// # Safety
/// The GIL is held.
pub unsafe fn import(name: &CStr) -> PyResult<Owned> {
    // SAFETY: `name` is NUL-terminated and the GIL is held.
    unsafe { check(PyImport_ImportModule(name.as_ptr())) }
}

/// `getattr(obj, name)`.
///
/// # Safety
/// The GIL is held and `obj` is valid.
pub unsafe fn getattr(obj: *mut PyObject, name: &CStr) -> PyResult<Owned> {
    // SAFETY: as above; `name` is NUL-terminated.
    unsafe { check(PyObject_GetAttrString(obj, name.as_ptr())) }
}

/// Calls `callable(arg)`.
///
/// # Safety
/// The GIL is held and both objects are valid.
pub unsafe fn call1(callable: *mut PyObject, arg: *mut PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded from the caller.
    unsafe { check(PyObject_CallOneArg(callable, arg)) }
}

/// The calling thread's current thread state, or null if it has none.
///
/// # Safety
/// Always safe to call; unsafe only because it is an FFI call.
pub unsafe fn current_tstate() -> *mut PyThreadState {
    // SAFETY: reading the thread-local current thread state has no preconditions.
    unsafe { compat::PyThreadState_GetUnchecked() }
}

/// `None`, as a new reference.
///
/// # Safety
/// The GIL is held.
pub unsafe fn none() -> *mut PyObject {
    // SAFETY: None is immortal and always valid.
    unsafe { Py_NewRef(Py_None()) }
}

/// A new `bool`.
///
/// # Safety
/// The GIL is held.
pub unsafe fn new_bool(value: bool) -> *mut PyObject {
    // SAFETY: returns a new reference to an immortal singleton.
    unsafe { PyBool_FromLong(value as std::ffi::c_long) }
}

/// Takes the pending exception out of the interpreter (null if none).
///
/// # Safety
/// The GIL is held.
pub unsafe fn take_exception() -> Option<Owned> {
    // SAFETY: returns a new reference or null.
    unsafe { Owned::from_new(PyErr_GetRaisedException()) }
}

/// `dict[key]` as a strong reference, `None` when the key is missing.
///
/// A borrowed item (`PyDict_GetItem*`) is only safe while no other thread can
/// replace it; on a free-threaded build another thread of the same
/// interpreter can, at any moment. So lookups here take a reference.
///
/// # Safety
/// The GIL is held (a thread state is attached) and `dict` is a dict.
pub unsafe fn dict_get(dict: *mut PyObject, key: *mut PyObject) -> PyResult<Option<Owned>> {
    let mut found = std::ptr::null_mut();
    // SAFETY: forwarded; `found` receives a new reference or null.
    match unsafe { compat::PyDict_GetItemRef(dict, key, &mut found) } {
        rc if rc < 0 => Err(Raised),
        // SAFETY: a new reference (null when missing).
        _ => Ok(unsafe { Owned::from_new(found) }),
    }
}

/// `dict[key]` for a text key, as [`dict_get`].
///
/// # Safety
/// As for [`dict_get`].
pub unsafe fn dict_get_str(dict: *mut PyObject, key: &CStr) -> PyResult<Option<Owned>> {
    // SAFETY: forwarded; the key is a new reference released on return.
    unsafe {
        let key = check(PyUnicode_FromString(key.as_ptr()))?;
        dict_get(dict, key.as_ptr())
    }
}

/// `dict.setdefault(key, value)`, as a strong reference to what the dict
/// holds afterwards: of two threads racing to fill a cache, both get the
/// winner's value.
///
/// # Safety
/// As for [`dict_get`]; `value` is a valid object.
pub unsafe fn dict_setdefault(
    dict: *mut PyObject,
    key: *mut PyObject,
    value: *mut PyObject,
) -> PyResult<Owned> {
    let mut held = std::ptr::null_mut();
    // SAFETY: forwarded; `held` receives a new reference or null on error.
    unsafe {
        if compat::PyDict_SetDefaultRef(dict, key, value, &mut held) < 0 {
            return Err(Raised);
        }
        check(held)
    }
}

/// The value cached under `key` in the current interpreter's state dict
/// (`PyInterpreterState_GetDict`: per interpreter, freed with it, shared by
/// its threads), made by `build` on first use. Two threads that miss at once
/// both build, and both get the one the dict kept. Where the interpreter has
/// no state dict, every call builds.
///
/// # Safety
/// The GIL is held.
pub unsafe fn interpreter_cached(key: &CStr, build: impl FnOnce() -> PyResult<Owned>) -> PyResult<Owned> {
    // SAFETY: the GIL is held; the state dict lives as long as the interpreter.
    unsafe {
        let state = PyInterpreterState_GetDict(PyInterpreterState_Get());
        if state.is_null() {
            return build();
        }
        let key = check(PyUnicode_FromString(key.as_ptr()))?;
        if let Some(hit) = dict_get(state, key.as_ptr())? {
            return Ok(hit);
        }
        let made = build()?;
        dict_setdefault(state, key.as_ptr(), made.as_ptr())
    }
}
