//! Handing a taken item to Python code with no chance for Ctrl-C to lose it.
//!
//! CPython runs signal handlers at "eval-breaker" checks, and there is one
//! right after every call of a C function returns (`CALL`), before the
//! result is stored anywhere. So `obj = _core.queue_get(q, ...)` in the
//! Python layer could take the item, return it, and then have
//! `KeyboardInterrupt` raised over it: the item was gone from the queue and
//! never reached the caller (issue 25, item 7). A subscript (`BINARY_SUBSCR`,
//! 3.14's `BINARY_OP []`) has no such check, nor do the unpacking and the
//! `return` that follow in the wrapper, nor the caller's store of a Python
//! function's result. So the Python layer writes
//! `_core.handover_queue_get[q, block, timeout]`: Ctrl-C during the wait
//! still raises inside the call (nothing taken: see `wait`), and a signal
//! that arrives once the item is taken runs its handler at the caller's next
//! check, after the caller has the item.
//!
//! Each object here wraps one of the module's fast-call functions; indexing
//! it with a tuple calls the function with the tuple's items as arguments.

use std::ffi::c_void;

use pyo3_ffi::*;

use crate::py::{self, PyResult};

type Args = *mut *mut PyObject;
type FastCall = unsafe extern "C" fn(*mut PyObject, Args, Py_ssize_t) -> *mut PyObject;

#[repr(C)]
struct HandoverObject {
    ob_base: PyObject,
    call: FastCall,
}

/// The four calls that take or place an item, by module attribute name.
pub const CALLS: [(&std::ffi::CStr, FastCall); 4] = [
    (c"handover_queue_get", crate::queues::queue_get),
    (c"handover_queue_put", crate::queues::queue_put),
    (c"handover_channel_recv", crate::channels::channel_recv),
    (c"handover_channel_send", crate::channels::channel_send),
];

unsafe extern "C" fn handover_subscript(obj: *mut PyObject, key: *mut PyObject) -> *mut PyObject {
    // SAFETY: CPython calls this with the GIL held, `obj` one of our objects
    // and `key` a live reference it keeps for the whole call, so the tuple's
    // item array stays valid while the wrapped function reads it.
    unsafe {
        if PyTuple_Check(key) == 0 {
            py::raise(PyExc_TypeError, "a handover takes a tuple of arguments");
            return std::ptr::null_mut();
        }
        let module = PyType_GetModule(Py_TYPE(obj));
        if module.is_null() {
            return std::ptr::null_mut();
        }
        let items = (*key.cast::<PyTupleObject>()).ob_item.as_mut_ptr();
        ((*obj.cast::<HandoverObject>()).call)(module, items, PyTuple_GET_SIZE(key))
    }
}

unsafe extern "C" fn handover_dealloc(obj: *mut PyObject) {
    // SAFETY: called once by CPython when the last reference goes; heap
    // types must decref their type.
    unsafe {
        let ty = Py_TYPE(obj);
        if let Some(free) = (*ty).tp_free {
            free(obj.cast());
        }
        Py_DECREF(ty.cast());
    }
}

/// Adds the type's four objects to `module` (see [`CALLS`]).
///
/// # Safety
/// The GIL is held and `module` is the module being executed.
pub unsafe fn add_to(module: *mut PyObject) -> PyResult<()> {
    // SAFETY: the spec and slots live for the whole call; CPython copies what
    // it needs into the new heap type, which keeps `module` alive. Each object
    // is fully initialized before it is published.
    unsafe {
        let mut slots = [
            PyType_Slot { slot: Py_tp_dealloc, pfunc: handover_dealloc as *mut c_void },
            PyType_Slot { slot: Py_mp_subscript, pfunc: handover_subscript as *mut c_void },
            PyType_Slot {
                slot: Py_tp_doc,
                pfunc: c"Calls a function of the core when indexed with its arguments, with no \
signal check between its return and the caller's use of the result."
                    .as_ptr() as *mut c_void,
            },
            PyType_Slot { slot: 0, pfunc: std::ptr::null_mut() },
        ];
        let ty = py::heap_type(
            module,
            c"interpreters_aio._core.Handover",
            std::mem::size_of::<HandoverObject>(),
            (Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION) as _,
            &mut slots,
        )?;
        for (name, call) in CALLS {
            let obj = py::check(PyType_GenericAlloc(ty.as_ptr().cast(), 0))?;
            (*obj.as_ptr().cast::<HandoverObject>()).call = call;
            if PyModule_AddObjectRef(module, name.as_ptr(), obj.as_ptr()) < 0 {
                return Err(py::Raised);
            }
        }
        Ok(())
    }
}
