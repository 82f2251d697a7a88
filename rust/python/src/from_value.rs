//! `Value` -> a new Python object, under the receiving interpreter's GIL.
//!
//! Everything built here belongs to the interpreter that is current when the
//! function runs. Pickled leaves are loaded with that interpreter's own
//! `pickle`; shipped functions get that interpreter's `__main__` as globals.

use std::ffi::c_char;

use interpreters_aio_core::{Seq, SharedView, ShippedFunction, Value};
use pyo3_ffi::*;

use crate::py::{self, Owned, PyResult, Raised};

/// Builds the object `value` describes in the current interpreter.
///
/// # Safety
/// The GIL of the current interpreter is held.
pub unsafe fn from_value(value: &Value) -> PyResult<Owned> {
    let mut decoder = Decoder { loads: None };
    // SAFETY: forwarded from the caller.
    unsafe { decoder.decode(value) }
}

struct Decoder {
    /// `pickle.loads` of the current interpreter, fetched on first need.
    loads: Option<Owned>,
}

impl Decoder {
    unsafe fn decode(&mut self, value: &Value) -> PyResult<Owned> {
        // SAFETY: for the whole body, the GIL is held; each constructor returns
        // a new reference or null with an exception set, which `check` turns
        // into `Err`; containers are filled before anyone else can see them.
        unsafe {
            match value {
                Value::None => Ok(Owned::from_borrowed(Py_None())),
                Value::Bool(b) => py::check(py::new_bool(*b)),
                Value::Int(i) => py::check(PyLong_FromLongLong(*i)),
                Value::BigInt(hex) => {
                    let text = std::ffi::CString::new(hex.as_bytes())
                        .map_err(|_| py::raise(PyExc_ValueError, "corrupt integer payload"))?;
                    // Base 0 reads the "0x" prefix CPython wrote (with its sign).
                    py::check(PyLong_FromString(text.as_ptr(), std::ptr::null_mut(), 0))
                }
                Value::Float(f) => py::check(PyFloat_FromDouble(*f)),
                Value::Complex(re, im) => py::check(PyComplex_FromDoubles(*re, *im)),
                Value::Str(s) => py::check(py::new_str(s)),
                Value::StrSurrogates(bytes) => py::check(PyUnicode_DecodeUTF8(
                    bytes.as_ptr().cast::<c_char>(),
                    bytes.len() as Py_ssize_t,
                    c"surrogatepass".as_ptr(),
                )),
                Value::Bytes(bytes) => py::check(PyBytes_FromStringAndSize(
                    bytes.as_ptr().cast::<c_char>(),
                    bytes.len() as Py_ssize_t,
                )),
                Value::Lent(loan) => {
                    loan.0.read(|lent| {
                        let len = lent.len();
                        let bytes =
                            py::check(PyBytes_FromStringAndSize(std::ptr::null(), len as Py_ssize_t))?;
                        let data = PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
                        // The one copy, from the sender's memory into the new
                        // object, which no one else sees yet.
                        interpreters_aio_core::parallel_copy::copy(
                            std::slice::from_raw_parts_mut(data, len),
                            lent,
                        );
                        Ok(bytes)
                    })
                }
                Value::Tuple(items) => {
                    let tuple = py::check(PyTuple_New(items.len() as Py_ssize_t))?;
                    for (i, item) in items.iter().enumerate() {
                        let obj = self.decode(item)?;
                        PyTuple_SET_ITEM(tuple.as_ptr(), i as Py_ssize_t, obj.into_ptr());
                    }
                    Ok(tuple)
                }
                Value::List(items) => {
                    let list = py::check(PyList_New(items.len() as Py_ssize_t))?;
                    for (i, item) in items.iter().enumerate() {
                        let obj = self.decode(item)?;
                        PyList_SET_ITEM(list.as_ptr(), i as Py_ssize_t, obj.into_ptr());
                    }
                    Ok(list)
                }
                Value::Ints(seq, ints) => fill_sequence(*seq, ints.len(), |i| PyLong_FromLongLong(ints[i])),
                Value::Floats(seq, floats) => {
                    fill_sequence(*seq, floats.len(), |i| PyFloat_FromDouble(floats[i]))
                }
                Value::Dict(items) => {
                    let dict = py::check(PyDict_New())?;
                    for pair in items.chunks_exact(2) {
                        let (k, v) = (&pair[0], &pair[1]);
                        let (k, v) = (self.decode(k)?, self.decode(v)?);
                        if PyDict_SetItem(dict.as_ptr(), k.as_ptr(), v.as_ptr()) < 0 {
                            return Err(Raised);
                        }
                    }
                    Ok(dict)
                }
                Value::Set(items) | Value::FrozenSet(items) => {
                    let set = if matches!(value, Value::Set(_)) {
                        py::check(PySet_New(std::ptr::null_mut()))?
                    } else {
                        py::check(PyFrozenSet_New(std::ptr::null_mut()))?
                    };
                    for item in items {
                        let obj = self.decode(item)?;
                        // PySet_Add also fills a brand-new frozenset, by design.
                        if PySet_Add(set.as_ptr(), obj.as_ptr()) < 0 {
                            return Err(Raised);
                        }
                    }
                    Ok(set)
                }
                Value::Queue(q) => rebuild_handle(crate::handles::KIND_QUEUE, q.0.id()),
                Value::Channel(c, end) => {
                    let kind = match end {
                        interpreters_aio_core::channel::End::Recv => crate::handles::KIND_RECV,
                        interpreters_aio_core::channel::End::Send => crate::handles::KIND_SEND,
                    };
                    rebuild_handle(kind, c.0.id())
                }
                Value::Buffer(bytes) => {
                    let module = py::module(c"interpreters_aio._core")?;
                    let cls = crate::module::state(module.as_ptr()).buffer_type;
                    py::check(crate::handles::new_buffer(cls.cast(), std::sync::Arc::clone(&bytes.0)))
                }
                Value::MemoryView(view) => rebuild_memoryview(view),
                Value::Global { module, qualname } => {
                    let name = std::ffi::CString::new(module.as_bytes())
                        .map_err(|_| py::raise(PyExc_ValueError, "corrupt module name"))?;
                    let mut target = py::check(PyImport_ImportModule(name.as_ptr()))?;
                    for part in qualname.split('.') {
                        let attr = py::check(py::new_str(part))?;
                        target = py::check(PyObject_GetAttr(target.as_ptr(), attr.as_ptr()))?;
                    }
                    Ok(target)
                }
                Value::Pickled(data) => self.unpickle(data),
                Value::Function(func) => self.rebuild_function(func),
            }
        }
    }

    unsafe fn unpickle(&mut self, data: &[u8]) -> PyResult<Owned> {
        // SAFETY: for the whole body, the GIL is held; `loads` is this
        // interpreter's `pickle.loads`, fetched here and kept alive in `self`.
        unsafe {
            if self.loads.is_none() {
                let pickle = py::import(c"pickle")?;
                self.loads = Some(py::getattr(pickle.as_ptr(), c"loads")?);
            }
            let bytes = py::check(PyBytes_FromStringAndSize(
                data.as_ptr().cast::<c_char>(),
                data.len() as Py_ssize_t,
            ))?;
            let loads = self.loads.as_ref().map_or(std::ptr::null_mut(), Owned::as_ptr);
            py::call1(loads, bytes.as_ptr())
        }
    }

    unsafe fn rebuild_function(&mut self, func: &ShippedFunction) -> PyResult<Owned> {
        // SAFETY: for the whole body, the GIL is held; every object made here
        // is owned by the current interpreter.
        unsafe {
            let code = py::check(PyMarshal_ReadObjectFromString(
                func.code.as_ptr().cast::<c_char>(),
                func.code.len() as Py_ssize_t,
            ))?;
            if PyCode_Check(code.as_ptr()) == 0 {
                return Err(py::raise(PyExc_TypeError, "shipped function payload is not a code object"));
            }
            let main = match &func.script {
                Some(path) => hidden_main(path)?,
                None => main_dict()?,
            };
            let qualname = py::check(py::new_str(&func.qualname))?;
            let function =
                py::check(PyFunction_NewWithQualName(code.as_ptr(), main.as_ptr(), qualname.as_ptr()))?;
            if func.defaults != Value::None {
                let defaults = self.decode(&func.defaults)?;
                if PyFunction_SetDefaults(function.as_ptr(), defaults.as_ptr()) < 0 {
                    return Err(Raised);
                }
            }
            if func.kwdefaults != Value::None {
                let kwdefaults = self.decode(&func.kwdefaults)?;
                if PyFunction_SetKwDefaults(function.as_ptr(), kwdefaults.as_ptr()) < 0 {
                    return Err(Raised);
                }
            }
            Ok(function)
        }
    }
}

/// The object for queue or channel end `id` in this interpreter, made by the
/// Python layer (`interpreters_aio._handles.rebuild`), which keeps one object
/// per id. The `Value` being decoded keeps the queue or channel alive meanwhile.
///
/// # Safety
/// The GIL is held.
unsafe fn rebuild_handle(kind: i64, id: u64) -> PyResult<Owned> {
    // SAFETY: the GIL is held; every reference made here is owned.
    unsafe {
        let handles = py::module(c"interpreters_aio._handles")?;
        let rebuild = py::getattr(handles.as_ptr(), c"rebuild")?;
        let args = [py::check(PyLong_FromLongLong(kind))?, py::check(PyLong_FromUnsignedLongLong(id))?];
        let argv = [args[0].as_ptr(), args[1].as_ptr()];
        py::check(PyObject_Vectorcall(rebuild.as_ptr(), argv.as_ptr(), 2, std::ptr::null_mut()))
    }
}

/// A memoryview over the shared bytes of `view`, with its format and shape.
///
/// # Safety
/// The GIL is held.
unsafe fn rebuild_memoryview(view: &SharedView) -> PyResult<Owned> {
    // SAFETY: the GIL is held; every reference made here is owned.
    unsafe {
        let module = py::module(c"interpreters_aio._core")?;
        let cls = crate::module::state(module.as_ptr()).buffer_type;
        let buffer = py::check(crate::handles::new_buffer(cls.cast(), std::sync::Arc::clone(&view.bytes.0)))?;
        let mut mv = py::check(PyMemoryView_FromObject(buffer.as_ptr()))?;
        if view.offset != 0 || view.len != view.bytes.0.len() {
            let end = (view.offset + view.len) as Py_ssize_t;
            mv = py::check(PySequence_GetSlice(mv.as_ptr(), view.offset as Py_ssize_t, end))?;
        }
        if &*view.format != "B" || view.shape.len() != 1 {
            let cast = py::getattr(mv.as_ptr(), c"cast")?;
            let format = py::check(py::new_str(&view.format))?;
            let shape = py::check(PyList_New(view.shape.len() as Py_ssize_t))?;
            for (i, &n) in view.shape.iter().enumerate() {
                PyList_SET_ITEM(shape.as_ptr(), i as Py_ssize_t, py::check(PyLong_FromSize_t(n))?.into_ptr());
            }
            let argv = [format.as_ptr(), shape.as_ptr()];
            mv = py::check(PyObject_Vectorcall(cast.as_ptr(), argv.as_ptr(), 2, std::ptr::null_mut()))?;
        }
        if view.readonly {
            let toreadonly = py::getattr(mv.as_ptr(), c"toreadonly")?;
            mv = py::check(PyObject_CallNoArgs(toreadonly.as_ptr()))?;
        }
        Ok(mv)
    }
}

/// A new list or tuple of `len` items made by `make` (each a new reference).
///
/// # Safety
/// The GIL is held.
unsafe fn fill_sequence(seq: Seq, len: usize, make: impl Fn(usize) -> *mut PyObject) -> PyResult<Owned> {
    // SAFETY: the GIL is held; each slot of the fresh sequence is filled once
    // with a new reference before anyone else can see it.
    unsafe {
        let out = match seq {
            Seq::List => py::check(PyList_New(len as Py_ssize_t))?,
            Seq::Tuple => py::check(PyTuple_New(len as Py_ssize_t))?,
        };
        for i in 0..len {
            let item = make(i);
            if item.is_null() {
                return Err(Raised); // the unfilled slots are NULL, which dealloc skips
            }
            match seq {
                Seq::List => PyList_SET_ITEM(out.as_ptr(), i as Py_ssize_t, item),
                Seq::Tuple => PyTuple_SET_ITEM(out.as_ptr(), i as Py_ssize_t, item),
            }
        }
        Ok(out)
    }
}

/// Runs the main interpreter's script `path` as the module `<fake __main__>`
/// (so its `if __name__ == "__main__":` block does not run) and returns its
/// globals: 3.14's answer to unpickling a function of `__main__` in another
/// interpreter, whose own `__main__` stays untouched. Once per script and
/// interpreter: the module is kept in the interpreter's state dict, so its
/// globals keep their values between calls.
const HIDDEN_MAIN: &std::ffi::CStr = cr#"
import types as _types
_module = _types.ModuleType("<fake __main__>")
_module.__file__ = path
with open(path, "rb") as _f:
    _code = compile(_f.read(), path, "exec")
exec(_code, _module.__dict__)
result = _module.__dict__
"#;

/// # Safety
/// The GIL is held.
unsafe fn hidden_main(path: &str) -> PyResult<Owned> {
    // SAFETY: the GIL is held; every reference taken here is owned.
    unsafe {
        let key = py::check(py::new_str(path))?;
        let cache = py::interpreter_cached(c"interpreters_aio.hidden_main", || py::check(PyDict_New()))?;
        if let Some(hit) = py::dict_get(cache.as_ptr(), key.as_ptr())? {
            return Ok(hit);
        }
        let ns = py::check(PyDict_New())?;
        if PyDict_SetItemString(ns.as_ptr(), c"__builtins__".as_ptr(), PyEval_GetBuiltins()) < 0
            || PyDict_SetItemString(ns.as_ptr(), c"path".as_ptr(), key.as_ptr()) < 0
        {
            return Err(Raised);
        }
        py::check(PyRun_StringFlags(
            HIDDEN_MAIN.as_ptr(),
            Py_file_input,
            ns.as_ptr(),
            ns.as_ptr(),
            std::ptr::null_mut(),
        ))?;
        let Some(globals) = py::dict_get_str(ns.as_ptr(), c"result")? else {
            return Err(py::raise(PyExc_SystemError, "running the __main__ script gave no module"));
        };
        // Of two threads that ran the script at once, both keep the first cached.
        py::dict_setdefault(cache.as_ptr(), key.as_ptr(), globals.as_ptr())
    }
}

/// The `__dict__` of the current interpreter's `__main__` module.
///
/// # Safety
/// The GIL is held.
pub unsafe fn main_dict() -> PyResult<Owned> {
    // SAFETY: the GIL is held; AddModuleRef returns a new reference (creating
    // `__main__` if needed) and the module's dict is borrowed from it.
    unsafe {
        let main = py::check(compat::PyImport_AddModuleRef(c"__main__".as_ptr()))?;
        Ok(Owned::from_borrowed(PyModule_GetDict(main.as_ptr())))
    }
}
