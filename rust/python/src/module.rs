//! The `interpreters_aio._core` module definition: multi-phase init (PEP 489)
//! declaring per-interpreter-GIL support, and per-interpreter module state.
//!
//! Each interpreter that imports the package gets its own module object and
//! state; the state holds that interpreter's exception classes (registered by
//! the Python layer at import). No `static` holds a `PyObject*` (DESIGN rule
//! 2): the only statics are the C definition tables CPython requires.

use std::ffi::{c_int, c_void};
use std::ptr;

use pyo3_ffi::*;

use crate::api;

/// Per-interpreter state of the module. The pointers are strong references
/// owned by the module, visited by the GC and cleared on module teardown.
#[repr(C)]
pub struct State {
    pub interpreter_error: *mut PyObject,
    pub interpreter_not_found: *mut PyObject,
    pub not_shareable: *mut PyObject,
    /// Queue and channel exception classes by name (a dict), registered by
    /// the Python layer; see `raise_named`.
    pub errors: *mut PyObject,
    pub handle_type: *mut PyObject,
    pub buffer_type: *mut PyObject,
    /// The interned attribute names `call_many` reads on every task
    /// (`PyObject_GetAttrString` makes and hashes a new string each time).
    pub name_fn: *mut PyObject,
    pub name_args: *mut PyObject,
    pub name_kwargs: *mut PyObject,
    /// This interpreter's loans of large `bytes` (see `lending`): a
    /// `Box::into_raw`, set in exec and closed in free. Not a Python object.
    pub lender: *mut std::sync::Arc<interpreters_aio_core::lending::Lender>,
}

impl State {
    fn fields(&mut self) -> [&mut *mut PyObject; 9] {
        [
            &mut self.interpreter_error,
            &mut self.interpreter_not_found,
            &mut self.not_shareable,
            &mut self.errors,
            &mut self.handle_type,
            &mut self.buffer_type,
            &mut self.name_fn,
            &mut self.name_args,
            &mut self.name_kwargs,
        ]
    }
}

/// Raises the registered exception class `name` (falling back to
/// RuntimeError before the Python layer registered it) with `msg`.
///
/// # Safety
/// The GIL is held and `module` is this extension's module.
pub unsafe fn raise_named(module: *mut PyObject, name: &std::ffi::CStr, msg: &str) -> crate::py::Raised {
    // SAFETY: the dict, if set, is owned by the module state; the class is
    // held by a reference of ours while the exception is made.
    unsafe {
        let errors = state(module).errors;
        let class = if errors.is_null() { Ok(None) } else { crate::py::dict_get_str(errors, name) };
        match class {
            Ok(Some(class)) => crate::py::raise(class.as_ptr(), msg),
            Ok(None) => crate::py::raise(PyExc_RuntimeError, msg),
            Err(raised) => raised,
        }
    }
}

/// The state of `module`.
///
/// # Safety
/// `module` is this extension's module object (CPython passes it as `self`
/// to every module-level function) and the GIL is held.
pub unsafe fn state<'a>(module: *mut PyObject) -> &'a mut State {
    // SAFETY: m_size makes CPython allocate a zeroed `State` for each module object.
    unsafe { &mut *PyModule_GetState(module).cast::<State>() }
}

unsafe extern "C" fn traverse(module: *mut PyObject, visit: visitproc, arg: *mut c_void) -> c_int {
    // SAFETY: called by the GC with our module; state pointers are null or owned.
    unsafe {
        let state = PyModule_GetState(module).cast::<State>();
        if state.is_null() {
            return 0;
        }
        for field in (*state).fields() {
            if !field.is_null() {
                let rc = visit(*field, arg);
                if rc != 0 {
                    return rc;
                }
            }
        }
    }
    0
}

unsafe extern "C" fn clear(module: *mut PyObject) -> c_int {
    // SAFETY: called by CPython with our module under its interpreter's GIL.
    unsafe {
        let state = PyModule_GetState(module).cast::<State>();
        if !state.is_null() {
            for field in (*state).fields() {
                let old = std::mem::replace(field, ptr::null_mut());
                Py_XDECREF(old);
            }
        }
    }
    0
}

unsafe extern "C" fn free(module: *mut c_void) {
    // SAFETY: CPython frees the module once, under its interpreter's GIL.
    unsafe {
        clear(module.cast());
        let state = PyModule_GetState(module.cast()).cast::<State>();
        if !state.is_null() && !(*state).lender.is_null() {
            // The interpreter is going: loans still out are copied into Rust
            // memory (items outlive their sender), then every reference goes.
            let lender = Box::from_raw(std::mem::replace(&mut (*state).lender, ptr::null_mut()));
            crate::lending::release(lender.close());
        }
    }
}

unsafe extern "C" fn exec_module(module: *mut PyObject) -> c_int {
    // Counted now, while no code of the importer's has pinned a thread to
    // one CPU (see `spinners_allowed`).
    interpreters_aio_core::parker::spinners_allowed();
    // SAFETY: `module` is the fresh module object; the state was zeroed by
    // CPython and takes the new references to the types.
    unsafe {
        state(module).lender = Box::into_raw(Box::new(interpreters_aio_core::lending::Lender::new()));
        let max_depth = PyLong_FromSize_t(interpreters_aio_core::MAX_DEPTH);
        if max_depth.is_null() {
            return -1;
        }
        let rc = PyModule_AddObjectRef(module, c"MAX_DEPTH".as_ptr(), max_depth);
        Py_DECREF(max_depth);
        if rc < 0 {
            return -1;
        }
        // The package's version is Cargo's: one source of truth for the
        // wheel's metadata (maturin reads it) and `interpreters_aio.__version__`.
        if PyModule_AddStringConstant(module, c"__version__".as_ptr(), VERSION.as_ptr()) < 0 {
            return -1;
        }
        let Ok((handle_type, buffer_type)) = crate::handles::create_types(module) else {
            return -1;
        };
        let st = state(module);
        st.handle_type = handle_type;
        st.buffer_type = buffer_type;
        for (field, name) in
            [(&mut st.name_fn, c"fn"), (&mut st.name_args, c"args"), (&mut st.name_kwargs, c"kwargs")]
        {
            *field = PyUnicode_InternFromString(name.as_ptr());
            if field.is_null() {
                return -1;
            }
        }
        if PyModule_AddObjectRef(module, c"Handle".as_ptr(), handle_type) < 0
            || PyModule_AddObjectRef(module, c"SharedBuffer".as_ptr(), buffer_type) < 0
        {
            return -1;
        }
        if crate::handover::add_to(module).is_err() {
            return -1;
        }
        0
    }
}

const VERSION: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the Cargo version has no NUL byte"),
    };

#[cfg(not(Py_3_13))]
const SLOTS_LEN: usize = 3;
#[cfg(Py_3_13)]
const SLOTS_LEN: usize = 4;

static mut SLOTS: [PyModuleDef_Slot; SLOTS_LEN] = [
    PyModuleDef_Slot { slot: Py_mod_exec, value: exec_module as *mut c_void },
    PyModuleDef_Slot { slot: Py_mod_multiple_interpreters, value: Py_MOD_PER_INTERPRETER_GIL_SUPPORTED },
    // Free-threaded builds (3.13t+) keep the GIL off when importing us: no
    // code here relies on a GIL for mutual exclusion or for the life of a
    // borrowed reference (docs/design.md, "Free-threaded builds"). Default
    // builds ignore the slot.
    #[cfg(Py_3_13)]
    PyModuleDef_Slot { slot: Py_mod_gil, value: Py_MOD_GIL_NOT_USED },
    PyModuleDef_Slot { slot: 0, value: ptr::null_mut() },
];

pub static mut MODULE_DEF: PyModuleDef = PyModuleDef {
    m_base: PyModuleDef_HEAD_INIT,
    m_name: c"interpreters_aio._core".as_ptr(),
    m_doc: c"The Rust core of interpreters_aio. Private: use the interpreters_aio package.".as_ptr(),
    m_size: std::mem::size_of::<State>() as Py_ssize_t,
    m_methods: (&raw mut api::METHODS).cast(),
    m_slots: (&raw mut SLOTS).cast(),
    m_traverse: Some(traverse),
    m_clear: Some(clear),
    m_free: Some(free),
};
