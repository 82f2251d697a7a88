//! Heap types whose instances hold a reference to a shared Rust object:
//! `Handle` (a queue or one end of a channel; the Python classes subclass it)
//! and `SharedBuffer` (shared memory with the buffer protocol).
//!
//! Both are made per module with `PyType_FromModuleAndSpec`, so each
//! interpreter has its own type objects (DESIGN rule 2). Instances are
//! recognized in any interpreter by their `tp_dealloc` (see `handle_of`),
//! which needs no module state: the function pointers are the same in every
//! interpreter, the type objects are not.

use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;
use std::sync::Arc;

use interpreters_aio_core::channel::{Channel, End, CHANNELS};
use interpreters_aio_core::queue::{Queue, QUEUES};
use interpreters_aio_core::shared::SharedBytes;
use pyo3_ffi::*;

use crate::interp;
use crate::py::{self, PyResult};

/// What a `Handle` refers to.
pub enum Target {
    Queue(Arc<Queue>),
    Channel(Arc<Channel>, End),
}

/// Kind numbers used by the Python layer when making a handle.
pub const KIND_QUEUE: i64 = 0;
pub const KIND_RECV: i64 = 1;
pub const KIND_SEND: i64 = 2;

#[repr(C)]
struct HandleObject {
    ob_base: PyObject,
    target: ManuallyDrop<Target>,
}

#[repr(C)]
struct BufferObject {
    ob_base: PyObject,
    bytes: ManuallyDrop<Arc<SharedBytes>>,
}

/// The target of `obj` if it is a `Handle` (or an instance of a subclass).
///
/// # Safety
/// The GIL is held and `obj` is live; the reference lives as long as `obj`.
pub unsafe fn handle_of<'a>(obj: *mut PyObject) -> Option<&'a Target> {
    // SAFETY: walking the type's base chain reads only type objects.
    unsafe {
        let mut ty = Py_TYPE(obj);
        while !ty.is_null() {
            if (*ty).tp_dealloc.is_some_and(|f| same_fn(f, handle_dealloc)) {
                return Some(&(*obj.cast::<HandleObject>()).target);
            }
            ty = (*ty).tp_base;
        }
    }
    None
}

/// The shared bytes of `obj` if it is a `SharedBuffer`.
///
/// # Safety
/// As for `handle_of`.
pub unsafe fn buffer_of<'a>(obj: *mut PyObject) -> Option<&'a Arc<SharedBytes>> {
    // SAFETY: as above.
    unsafe {
        let mut ty = Py_TYPE(obj);
        while !ty.is_null() {
            if (*ty).tp_dealloc.is_some_and(|f| same_fn(f, buffer_dealloc)) {
                return Some(&(*obj.cast::<BufferObject>()).bytes);
            }
            ty = (*ty).tp_base;
        }
    }
    None
}

/// Whether two deallocators are the same function. Sound for ours: they are
/// non-generic and never inlined, so each has one definition in this library,
/// and their bodies differ, so they are never merged.
#[allow(unpredictable_function_pointer_comparisons)]
fn same_fn(a: destructor, b: destructor) -> bool {
    std::ptr::fn_addr_eq(a, b)
}

#[inline(never)]
unsafe extern "C" fn handle_dealloc(obj: *mut PyObject) {
    // SAFETY: called once by CPython when the last reference goes; the
    // payload was initialized by `new_handle`. Heap types must decref their type.
    unsafe {
        let ty = Py_TYPE(obj);
        let this = obj.cast::<HandleObject>();
        if let Target::Channel(channel, end) = &*(*this).target {
            // The Python layer keeps one object per end per interpreter, so
            // this was the last one here: the interpreter is no longer associated.
            channel.forget(*end, interp::current_id());
        }
        ManuallyDrop::drop(&mut (*this).target);
        if let Some(free) = (*ty).tp_free {
            free(obj.cast());
        }
        Py_DECREF(ty.cast());
    }
}

/// `Handle.__new__(cls, kind, id)`: attaches to the live queue or channel `id`.
unsafe extern "C" fn handle_new(
    cls: *mut PyTypeObject,
    args: *mut PyObject,
    _kw: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython passes a type and an args tuple under the GIL.
    unsafe {
        if PyTuple_GET_SIZE(args) != 2 {
            return py::raise(PyExc_TypeError, "Handle(kind, id) takes 2 arguments").into_null();
        }
        let (kind, id) =
            (PyLong_AsLongLong(PyTuple_GET_ITEM(args, 0)), PyLong_AsLongLong(PyTuple_GET_ITEM(args, 1)));
        if !PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let target = match kind {
            KIND_QUEUE => QUEUES.get(id as u64).map(Target::Queue),
            KIND_RECV => CHANNELS.get(id as u64).map(|c| Target::Channel(c, End::Recv)),
            KIND_SEND => CHANNELS.get(id as u64).map(|c| Target::Channel(c, End::Send)),
            _ => return py::raise(PyExc_ValueError, "unknown handle kind").into_null(),
        };
        let Some(target) = target else {
            let what = if kind == KIND_QUEUE { "queue" } else { "channel" };
            return py::raise(PyExc_LookupError, &format!("{what} {id} not found")).into_null();
        };
        new_handle(cls, target)
    }
}

/// A new instance of `cls` (the Handle type or a subclass) holding `target`.
///
/// # Safety
/// The GIL is held and `cls` is the Handle type of this interpreter or a subclass.
pub unsafe fn new_handle(cls: *mut PyTypeObject, target: Target) -> *mut PyObject {
    // SAFETY: tp_alloc returns zeroed memory of the type's size; the payload
    // is written before the object is visible to anyone.
    unsafe {
        let alloc = (*cls).tp_alloc.unwrap_or(PyType_GenericAlloc);
        let obj = alloc(cls, 0);
        if !obj.is_null() {
            std::ptr::write(&mut (*obj.cast::<HandleObject>()).target, ManuallyDrop::new(target));
        }
        obj
    }
}

#[inline(never)]
unsafe extern "C" fn buffer_dealloc(obj: *mut PyObject) {
    // SAFETY: as for `handle_dealloc`; memoryviews hold a reference to this
    // object, so the bytes outlive every view.
    unsafe {
        let ty = Py_TYPE(obj);
        ManuallyDrop::drop(&mut (*obj.cast::<BufferObject>()).bytes);
        if let Some(free) = (*ty).tp_free {
            free(obj.cast());
        }
        Py_DECREF(ty.cast());
    }
}

/// Wraps shared bytes in a new `SharedBuffer` of type `cls`.
///
/// # Safety
/// The GIL is held and `cls` is this interpreter's SharedBuffer type.
pub unsafe fn new_buffer(cls: *mut PyTypeObject, bytes: Arc<SharedBytes>) -> *mut PyObject {
    // SAFETY: as in `new_handle`.
    unsafe {
        let alloc = (*cls).tp_alloc.unwrap_or(PyType_GenericAlloc);
        let obj = alloc(cls, 0);
        if !obj.is_null() {
            std::ptr::write(&mut (*obj.cast::<BufferObject>()).bytes, ManuallyDrop::new(bytes));
        }
        obj
    }
}

/// `SharedBuffer(nbytes)`.
unsafe extern "C" fn buffer_new(
    cls: *mut PyTypeObject,
    args: *mut PyObject,
    kw: *mut PyObject,
) -> *mut PyObject {
    // SAFETY: CPython passes a type and an args tuple under the GIL.
    unsafe {
        if PyTuple_GET_SIZE(args) != 1 || (!kw.is_null() && PyDict_Size(kw) != 0) {
            return py::raise(PyExc_TypeError, "SharedBuffer(nbytes) takes one positional argument")
                .into_null();
        }
        let n = PyLong_AsSsize_t(PyTuple_GET_ITEM(args, 0));
        if n == -1 && !PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        if n < 0 {
            return py::raise(PyExc_ValueError, &format!("SharedBuffer size must be >= 0, not {n}"))
                .into_null();
        }
        new_buffer(cls, SharedBytes::zeroed(n as usize))
    }
}

/// `SharedBuffer.from_buffer(obj)`: a copy of any object with the buffer protocol.
unsafe extern "C" fn buffer_from_buffer(cls: *mut PyObject, source: *mut PyObject) -> *mut PyObject {
    // SAFETY: METH_O | METH_CLASS: `cls` is the class, `source` the argument.
    unsafe {
        match copy_buffer(source) {
            Ok(bytes) => new_buffer(cls.cast(), bytes),
            Err(_) => std::ptr::null_mut(),
        }
    }
}

/// Copies the bytes of any C-contiguous buffer into new shared memory.
///
/// # Safety
/// The GIL is held.
pub unsafe fn copy_buffer(source: *mut PyObject) -> PyResult<Arc<SharedBytes>> {
    // SAFETY: the view is filled by CPython and released before returning.
    unsafe {
        let mut view: Py_buffer = std::mem::zeroed();
        if PyObject_GetBuffer(source, &mut view, PyBUF_CONTIG_RO) < 0 {
            return Err(py::Raised);
        }
        let data = std::slice::from_raw_parts(view.buf.cast::<u8>(), view.len as usize);
        let bytes = SharedBytes::copy_of(data);
        PyBuffer_Release(&mut view);
        Ok(bytes)
    }
}

unsafe extern "C" fn buffer_getbuffer(obj: *mut PyObject, view: *mut Py_buffer, flags: c_int) -> c_int {
    // SAFETY: `obj` is a SharedBuffer; FillInfo keeps a reference to it in the
    // view, so the memory stays alive as long as the view.
    unsafe {
        let bytes = &(*obj.cast::<BufferObject>()).bytes;
        PyBuffer_FillInfo(view, obj, bytes.as_mut_ptr().cast(), bytes.len() as Py_ssize_t, 0, flags)
    }
}

unsafe extern "C" fn buffer_len(obj: *mut PyObject) -> Py_ssize_t {
    // SAFETY: `obj` is a SharedBuffer.
    unsafe { (*obj.cast::<BufferObject>()).bytes.len() as Py_ssize_t }
}

unsafe extern "C" fn buffer_repr(obj: *mut PyObject) -> *mut PyObject {
    // SAFETY: `obj` is a SharedBuffer.
    unsafe { py::new_str(&format!("<SharedBuffer of {} bytes>", (*obj.cast::<BufferObject>()).bytes.len())) }
}

unsafe extern "C" fn buffer_nbytes(obj: *mut PyObject, _closure: *mut c_void) -> *mut PyObject {
    // SAFETY: `obj` is a SharedBuffer.
    unsafe { PyLong_FromSize_t((*obj.cast::<BufferObject>()).bytes.len()) }
}

static mut BUFFER_METHODS: [PyMethodDef; 2] = [
    PyMethodDef {
        ml_name: c"from_buffer".as_ptr(),
        ml_meth: PyMethodDefPointer { PyCFunction: buffer_from_buffer },
        ml_flags: METH_O | METH_CLASS,
        ml_doc: c"from_buffer(obj, /)\n--\n\nA new SharedBuffer holding a copy of the bytes of `obj` \
(any object with the buffer protocol)."
            .as_ptr(),
    },
    PyMethodDef::zeroed(),
];

static mut BUFFER_GETSET: [PyGetSetDef; 2] = [
    PyGetSetDef {
        name: c"nbytes".as_ptr(),
        get: Some(buffer_nbytes),
        set: None,
        doc: c"The size of the buffer in bytes.".as_ptr(),
        closure: std::ptr::null_mut(),
    },
    PyGetSetDef {
        name: std::ptr::null(),
        get: None,
        set: None,
        doc: std::ptr::null(),
        closure: std::ptr::null_mut(),
    },
];

/// Creates the two types for a module object; returns (Handle, SharedBuffer).
///
/// # Safety
/// The GIL is held and `module` is the module being executed.
pub unsafe fn create_types(module: *mut PyObject) -> PyResult<(*mut PyObject, *mut PyObject)> {
    // SAFETY: the specs and slot arrays live for the whole call; CPython copies
    // what it needs into the new heap types.
    unsafe {
        let mut handle_slots = [
            PyType_Slot { slot: Py_tp_dealloc, pfunc: handle_dealloc as *mut c_void },
            PyType_Slot { slot: Py_tp_new, pfunc: handle_new as *mut c_void },
            PyType_Slot {
                slot: Py_tp_doc,
                pfunc: c"A reference to a queue or a channel end owned by the Rust core.".as_ptr()
                    as *mut c_void,
            },
            PyType_Slot { slot: 0, pfunc: std::ptr::null_mut() },
        ];
        let handle_type = py::heap_type(
            module,
            c"interpreters_aio._core.Handle",
            std::mem::size_of::<HandleObject>(),
            (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE) as _,
            &mut handle_slots,
        )?;
        let mut buffer_slots = [
            PyType_Slot { slot: Py_tp_dealloc, pfunc: buffer_dealloc as *mut c_void },
            PyType_Slot { slot: Py_tp_new, pfunc: buffer_new as *mut c_void },
            PyType_Slot { slot: Py_tp_repr, pfunc: buffer_repr as *mut c_void },
            PyType_Slot { slot: Py_bf_getbuffer, pfunc: buffer_getbuffer as *mut c_void },
            PyType_Slot { slot: Py_sq_length, pfunc: buffer_len as *mut c_void },
            PyType_Slot { slot: Py_tp_methods, pfunc: (&raw mut BUFFER_METHODS).cast() },
            PyType_Slot { slot: Py_tp_getset, pfunc: (&raw mut BUFFER_GETSET).cast() },
            PyType_Slot {
                slot: Py_tp_doc,
                pfunc: c"SharedBuffer(nbytes)\n--\n\nMemory owned by Rust that every interpreter can read \
and write through the buffer protocol (memoryview, numpy.frombuffer) without a copy. Sending \
one to another interpreter sends a reference; the memory is freed when the last view in the \
last interpreter is gone. Writers in several interpreters must coordinate themselves."
                    .as_ptr() as *mut c_void,
            },
            PyType_Slot { slot: 0, pfunc: std::ptr::null_mut() },
        ];
        let buffer_type = py::heap_type(
            module,
            c"interpreters_aio.SharedBuffer",
            std::mem::size_of::<BufferObject>(),
            (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE) as _,
            &mut buffer_slots,
        )?;
        Ok((handle_type.into_ptr(), buffer_type.into_ptr()))
    }
}

trait IntoNull {
    fn into_null(self) -> *mut PyObject;
}

impl IntoNull for py::Raised {
    fn into_null(self) -> *mut PyObject {
        std::ptr::null_mut()
    }
}
