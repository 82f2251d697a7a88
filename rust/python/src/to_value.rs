//! Python object -> `Value`, under the sending interpreter's GIL.
//!
//! Only *exact* builtin types convert natively: a subclass (an `IntEnum`, a
//! `defaultdict`) would lose its type, so it takes the pickle path like any
//! other object. Pickling happens per leaf, so one odd item in a big list
//! does not force the whole list through pickle.
//!
//! Cycles and nesting deeper than `MAX_DEPTH` are refused with a message
//! rather than recursing until the native stack runs out.

use std::ffi::c_char;

use interpreters_aio_core::{Seq, Shared, SharedView, ShippedFunction, Value, MAX_DEPTH};
use pyo3_ffi::*;

use crate::by_value::{self, ByValue};
use crate::py::{self, Owned, PyResult, Raised};

/// Why an object could not be turned into a `Value`.
#[derive(Debug)]
pub enum ConvertError {
    /// A Python exception is set in the current interpreter (e.g. MemoryError).
    Raised,
    /// The object cannot cross; the text says what and why.
    NotShareable(String),
}

impl From<Raised> for ConvertError {
    fn from(_: Raised) -> Self {
        ConvertError::Raised
    }
}

type Result<T> = std::result::Result<T, ConvertError>;

/// Marker that a conversion step failed; the reason is in `Encoder::failure`
/// (none means a Python exception is set). Keeping the error out of the
/// return type lets `Step<Value>` share `Value`'s layout: moving a larger
/// `Result` per item through the stack cost 3x the whole conversion.
struct Failed;

type Step<T> = std::result::Result<T, Failed>;

impl From<Raised> for Failed {
    fn from(_: Raised) -> Self {
        Failed
    }
}

/// What may be used for objects that are not natively shareable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Pickle them (and ship `__main__` functions by their code).
    Pickle,
    /// Refuse them: only native data may cross.
    Refuse,
}

/// Converts `obj` into a `Value`.
///
/// # Safety
/// The GIL of the interpreter owning `obj` is held.
pub unsafe fn to_value(obj: *mut PyObject, fallback: Fallback) -> Result<Value> {
    // SAFETY: forwarded from the caller.
    unsafe { to_value_lending(obj, fallback, None) }
}

/// Converts `obj` into a `Value`, lending large `bytes` from `lender` (this
/// interpreter's) rather than copying them (see `lending`): for items that
/// wait in a queue or channel, received once.
///
/// # Safety
/// The GIL of the interpreter owning `obj` and `lender` is held.
pub unsafe fn to_value_lending(
    obj: *mut PyObject,
    fallback: Fallback,
    lender: Option<&std::sync::Arc<interpreters_aio_core::lending::Lender>>,
) -> Result<Value> {
    let mut encoder = Encoder {
        fallback,
        open_containers: Vec::new(),
        dumps: None,
        failure: None,
        lender: lender.cloned(),
    };
    // SAFETY: forwarded from the caller.
    unsafe { encoder.encode(obj) }.map_err(|Failed| encoder.failure.take().unwrap_or(ConvertError::Raised))
}

/// Whether `obj` converts without pickling.
///
/// # Safety
/// The GIL is held and `obj` is valid.
pub unsafe fn is_shareable(obj: *mut PyObject) -> bool {
    // SAFETY: forwarded from the caller.
    match unsafe { to_value(obj, Fallback::Refuse) } {
        Ok(_) => true,
        Err(ConvertError::NotShareable(_)) => false,
        Err(ConvertError::Raised) => {
            // SAFETY: the GIL is held; the failure (e.g. MemoryError) answers "no".
            unsafe { PyErr_Clear() };
            false
        }
    }
}

struct Encoder {
    fallback: Fallback,
    /// Containers being converted right now, to spot one that holds itself.
    open_containers: Vec<*mut PyObject>,
    /// `pickle.dumps` of the current interpreter, fetched on first need.
    dumps: Option<Owned>,
    /// Why the conversion failed, when it was not a Python exception.
    failure: Option<ConvertError>,
    /// Where large `bytes` are lent from, if they may be.
    lender: Option<std::sync::Arc<interpreters_aio_core::lending::Lender>>,
}

fn is_type(obj: *mut PyObject, ty: *mut PyTypeObject) -> bool {
    // SAFETY: reading the type pointer of a valid object; callers pass live objects.
    unsafe { Py_TYPE(obj) == ty }
}

impl Encoder {
    fn refuse(&mut self, why: String) -> Failed {
        self.failure = Some(ConvertError::NotShareable(why));
        Failed
    }

    /// Converts one object on its own (the top level, function defaults).
    unsafe fn encode(&mut self, obj: *mut PyObject) -> Step<Value> {
        let mut out = Vec::with_capacity(1);
        // SAFETY: forwarded from the caller.
        unsafe { self.encode_into(obj, &mut out)? };
        Ok(out.pop().unwrap_or(Value::None))
    }

    /// Converts `obj` and pushes the result onto `out`. Pushing in place,
    /// rather than returning each item's `Value`, keeps the per-item cost of
    /// big containers at a few nanoseconds.
    #[inline]
    unsafe fn encode_into(&mut self, obj: *mut PyObject, out: &mut Vec<Value>) -> Step<()> {
        // SAFETY: for the whole body, the GIL is held and `obj` is live; every
        // type-specific call below is made only after checking the exact type.
        unsafe {
            let ty = Py_TYPE(obj);
            if ty == &raw mut PyLong_Type {
                let mut overflow: std::ffi::c_int = 0;
                let small = PyLong_AsLongLongAndOverflow(obj, &mut overflow);
                if overflow != 0 {
                    out.push(encode_big_int(obj)?);
                } else if small == -1 && !PyErr_Occurred().is_null() {
                    return Err(Failed);
                } else {
                    push_int(out, small);
                }
            } else if ty == &raw mut PyUnicode_Type {
                out.push(encode_str(obj)?);
            } else if ty == &raw mut PyFloat_Type {
                push_float(out, PyFloat_AS_DOUBLE(obj));
            } else if obj == Py_None() {
                push_none(out);
            } else if ty == &raw mut PyBool_Type {
                out.push(Value::Bool(obj == Py_True()));
            } else if ty == &raw mut PyBytes_Type {
                let data = PyBytes_AsString(obj).cast::<u8>();
                let len = PyBytes_Size(obj) as usize;
                let lent =
                    self.lender.as_ref().and_then(|lender| crate::lending::lend(lender, obj, data, len));
                out.push(lent.unwrap_or_else(|| Value::Bytes(std::slice::from_raw_parts(data, len).into())));
            } else if ty == &raw mut PyComplex_Type {
                out.push(Value::Complex(PyComplex_RealAsDouble(obj), PyComplex_ImagAsDouble(obj)));
            } else if ty == &raw mut PyTuple_Type
                || ty == &raw mut PyList_Type
                || ty == &raw mut PyDict_Type
                || ty == &raw mut PySet_Type
                || ty == &raw mut PyFrozenSet_Type
            {
                out.push(self.encode_container(obj)?);
            } else if let Some(target) = crate::handles::handle_of(obj) {
                out.push(match target {
                    crate::handles::Target::Queue(q) => Value::Queue(Shared(std::sync::Arc::clone(q))),
                    crate::handles::Target::Channel(c, end) => {
                        Value::Channel(Shared(std::sync::Arc::clone(c)), *end)
                    }
                });
            } else if let Some(bytes) = crate::handles::buffer_of(obj) {
                out.push(Value::Buffer(Shared(std::sync::Arc::clone(bytes))));
            } else if ty == &raw mut PyMemoryView_Type {
                out.push(encode_memoryview(obj)?);
            } else {
                if ty == &raw mut PyFunction_Type {
                    if let Some(shipped) = self.ship_function(obj)? {
                        out.push(shipped);
                        return Ok(());
                    }
                }
                let function = ty == &raw mut PyFunction_Type || ty == &raw mut PyCFunction_Type;
                if function && self.fallback == Fallback::Pickle {
                    if let Some(global) = global_reference(obj) {
                        out.push(global);
                        return Ok(());
                    }
                }
                out.push(self.encode_fallback(obj)?);
            }
        }
        Ok(())
    }

    /// Converts an item borrowed from a mutable container. Converting may run
    /// Python code (a pickler) that removes the item from its container, so
    /// it is kept alive meanwhile, unless its conversion cannot run Python.
    #[cfg(not(Py_GIL_DISABLED))]
    #[inline]
    unsafe fn encode_item(&mut self, item: *mut PyObject, out: &mut Vec<Value>) -> Step<()> {
        // SAFETY: `item` is live when borrowed; the GIL is held throughout.
        unsafe {
            if runs_no_python(item) {
                self.encode_into(item, out)
            } else {
                let item = Owned::from_borrowed(item);
                self.encode_into(item.as_ptr(), out)
            }
        }
    }

    unsafe fn encode_container(&mut self, obj: *mut PyObject) -> Step<Value> {
        if self.open_containers.len() >= MAX_DEPTH {
            // SAFETY: the GIL is held and `obj` is live.
            let name = unsafe { py::type_name(obj) };
            return Err(self.refuse(format!("{name} object is nested more than {MAX_DEPTH} levels deep")));
        }
        if self.open_containers.contains(&obj) {
            // SAFETY: as above.
            let name = unsafe { py::type_name(obj) };
            return Err(self.refuse(format!(
                "{name} object contains itself (a reference cycle), which cannot be copied"
            )));
        }
        self.open_containers.push(obj);
        // SAFETY: the GIL is held and `obj` is one of the container types checked below.
        let result = unsafe { self.encode_items(obj) };
        self.open_containers.pop();
        result
    }

    unsafe fn encode_items(&mut self, obj: *mut PyObject) -> Step<Value> {
        // SAFETY: for the whole body, the GIL is held, `obj`'s exact type was
        // checked by the caller, and every item is kept alive by a strong
        // reference while it is converted (converting may run Python code,
        // e.g. a pickler, that mutates the container).
        unsafe {
            if is_type(obj, &raw mut PyTuple_Type) {
                return self.encode_tuple(obj, Seq::Tuple);
            }
            if is_type(obj, &raw mut PyList_Type) {
                #[cfg(Py_GIL_DISABLED)]
                return self.encode_tuple(py::check(PyList_AsTuple(obj))?.as_ptr(), Seq::List);
                #[cfg(not(Py_GIL_DISABLED))]
                return self.encode_list(obj);
            }
            if is_type(obj, &raw mut PyDict_Type) {
                #[cfg(Py_GIL_DISABLED)]
                return self.encode_dict(py::check(PyDict_Copy(obj))?.as_ptr());
                #[cfg(not(Py_GIL_DISABLED))]
                return self.encode_dict(obj);
            }
            // A set's iterator refuses a set that changes size under it.
            #[cfg(Py_GIL_DISABLED)]
            let snapshot =
                if is_type(obj, &raw mut PySet_Type) { Some(py::check(PyFrozenSet_New(obj))?) } else { None };
            #[cfg(Py_GIL_DISABLED)]
            let items_of = snapshot.as_ref().map_or(obj, Owned::as_ptr);
            #[cfg(not(Py_GIL_DISABLED))]
            let items_of = obj;
            let iter = py::check(PyObject_GetIter(items_of))?;
            let mut items = Vec::with_capacity(PySet_Size(items_of).max(0) as usize);
            while let Some(item) = Owned::from_new(PyIter_Next(iter.as_ptr())) {
                self.encode_into(item.as_ptr(), &mut items)?;
            }
            if !PyErr_Occurred().is_null() {
                return Err(Failed);
            }
            if is_type(obj, &raw mut PySet_Type) {
                Ok(Value::Set(items))
            } else {
                Ok(Value::FrozenSet(items))
            }
        }
    }

    // Free-threaded builds (`Py_GIL_DISABLED`): no GIL keeps another thread
    // of this interpreter from changing a list, dict or set while it is
    // read, and items borrowed from it could be freed under us. So those
    // convert a private copy, made under the container's own lock (its
    // critical section, inside `PyList_AsTuple`, `PyDict_Copy` and
    // `PyFrozenSet_New`): the result is the container as it was at one
    // moment. Default builds read in place, as the GIL allows.

    /// The items of `tuple` (which we hold, so it owns its items) as a
    /// sequence of kind `seq`.
    ///
    /// # Safety
    /// The GIL is held and `tuple` is an exact tuple.
    unsafe fn encode_tuple(&mut self, tuple: *mut PyObject, seq: Seq) -> Step<Value> {
        // SAFETY: a tuple's items live as long as the tuple, which the caller holds.
        unsafe {
            let len = PyTuple_GET_SIZE(tuple) as usize;
            if len > 0 {
                let items = (&raw const (*tuple.cast::<PyTupleObject>()).ob_item).cast::<*mut PyObject>();
                if let Some(packed) = pack_numbers(seq, std::slice::from_raw_parts(items, len)) {
                    return Ok(packed);
                }
            }
            let mut values = Vec::with_capacity(len);
            for i in 0..len as Py_ssize_t {
                self.encode_into(PyTuple_GET_ITEM(tuple, i), &mut values)?;
            }
            Ok(match seq {
                Seq::Tuple => Value::Tuple(values),
                Seq::List => Value::List(values),
            })
        }
    }

    /// The items of `list`, read in place (default builds only).
    ///
    /// # Safety
    /// The GIL is held and `list` is an exact list.
    #[cfg(not(Py_GIL_DISABLED))]
    unsafe fn encode_list(&mut self, list: *mut PyObject) -> Step<Value> {
        // SAFETY: the GIL keeps other threads out; each item is kept alive
        // while it is converted (`encode_item`), and the length is read again
        // each time, since converting can run code that changes the list.
        unsafe {
            let len = PyList_GET_SIZE(list) as usize;
            let items = (*list.cast::<PyListObject>()).ob_item.cast_const();
            if len > 0 {
                if let Some(packed) = pack_numbers(Seq::List, std::slice::from_raw_parts(items, len)) {
                    return Ok(packed);
                }
            }
            let mut values = Vec::with_capacity(len);
            let mut i = 0;
            while i < PyList_GET_SIZE(list) {
                self.encode_item(PyList_GET_ITEM(list, i), &mut values)?;
                i += 1;
            }
            Ok(Value::List(values))
        }
    }

    /// The keys and values of `dict`, flat.
    ///
    /// # Safety
    /// The GIL is held and `dict` is an exact dict that no other thread can
    /// change (on a free-threaded build, a private copy).
    unsafe fn encode_dict(&mut self, dict: *mut PyObject) -> Step<Value> {
        // SAFETY: as for `encode_items`; each pair is kept alive while it is
        // converted unless its conversion cannot run Python.
        unsafe {
            let mut values = Vec::with_capacity(2 * PyDict_Size(dict) as usize);
            let mut pos: Py_ssize_t = 0;
            let (mut key, mut value) = (std::ptr::null_mut(), std::ptr::null_mut());
            while PyDict_Next(dict, &mut pos, &mut key, &mut value) != 0 {
                if runs_no_python(key) && runs_no_python(value) {
                    self.encode_into(key, &mut values)?;
                    self.encode_into(value, &mut values)?;
                } else {
                    let (key, value) = (Owned::from_borrowed(key), Owned::from_borrowed(value));
                    self.encode_into(key.as_ptr(), &mut values)?;
                    self.encode_into(value.as_ptr(), &mut values)?;
                }
            }
            Ok(Value::Dict(values))
        }
    }

    /// Ships a function that pickle could not find by name in the receiver:
    /// one defined in `__main__`, a lambda, or a nested function. Returns
    /// `None` for functions that pickle can send by reference.
    ///
    /// Such a function goes by its code (fast, and no dependency) when that
    /// is enough: it uses no variables of an enclosing function, and either
    /// none of its module's globals or those of a main script the receiver
    /// can run again. Otherwise (a closure, or a REPL, notebook or nested
    /// function that uses its module's globals) cloudpickle sends it by
    /// value, with the globals it uses; without cloudpickle a closure is
    /// refused, and the rest still goes by code (running with the target's
    /// `__main__` as globals, as before).
    unsafe fn ship_function(&mut self, func: *mut PyObject) -> Step<Option<Value>> {
        // SAFETY: for the whole body, the GIL is held and `func` is an exact
        // function object; the accessors return borrowed references it owns.
        unsafe {
            let module = PyFunction_GetModule(func);
            let in_main = !module.is_null()
                && PyUnicode_Check(module) != 0
                && PyUnicode_CompareWithASCIIString(module, c"__main__".as_ptr()) == 0;
            let qualname = py::getattr(func, c"__qualname__")?;
            let qualname_text = if PyUnicode_Check(qualname.as_ptr()) != 0 {
                py::str_utf8(qualname.as_ptr())?.to_owned()
            } else {
                py::display(qualname.as_ptr())
            };
            let by_name_impossible = qualname_text.contains("<lambda>") || qualname_text.contains("<locals>");
            if !in_main && !by_name_impossible {
                return Ok(None);
            }
            if self.fallback == Fallback::Refuse {
                return Err(self.refuse(format!(
                    "function {qualname_text:?} is not shareable here: only data (None, bool, int, \
                     float, complex, str, bytes and tuples, lists, dicts and sets of them) can cross"
                )));
            }
            let closure = PyFunction_GetClosure(func);
            let has_closure = !closure.is_null() && closure != Py_None();
            let globals = PyFunction_GetGlobals(func);
            let uses = !globals.is_null()
                && PyDict_Check(globals) != 0
                && uses_globals(PyFunction_GetCode(func), globals, 0)?;
            let script = if in_main && !by_name_impossible && uses { main_script(globals)? } else { None };
            if has_closure || (uses && script.is_none()) {
                match by_value::dumps(func)? {
                    ByValue::Pickled(data) => return Ok(Some(Value::Pickled(data))),
                    ByValue::Failed(why) => {
                        return Err(self.refuse(format!(
                            "function {qualname_text:?} cannot be sent to another interpreter: \
                             cloudpickle could not pickle it ({why})"
                        )));
                    }
                    ByValue::Unavailable if has_closure => {
                        let free = py::getattr(PyFunction_GetCode(func), c"co_freevars")
                            .map(|names| py::display(names.as_ptr()))
                            .unwrap_or_else(|_| {
                                PyErr_Clear();
                                "?".to_owned()
                            });
                        return Err(self.refuse(format!(
                            "function {qualname_text:?} uses variables of an enclosing function \
                             {free}, which the standard pickle cannot send to another interpreter: \
                             {}, or define it at module level and pass those values as arguments",
                            by_value::INSTALL_HINT
                        )));
                    }
                    ByValue::Unavailable => {}
                }
            }
            let code = py::check(PyMarshal_WriteObjectToString(PyFunction_GetCode(func), 4))?;
            let code_bytes = {
                let data = PyBytes_AsString(code.as_ptr()).cast::<u8>();
                std::slice::from_raw_parts(data, PyBytes_Size(code.as_ptr()) as usize).into()
            };
            let name_obj = py::getattr(func, c"__name__")?;
            let name = py::str_utf8(name_obj.as_ptr())?.into();
            let defaults = PyFunction_GetDefaults(func);
            let defaults = if defaults.is_null() { Value::None } else { self.encode(defaults)? };
            let kwdefaults = PyFunction_GetKwDefaults(func);
            let kwdefaults = if kwdefaults.is_null() { Value::None } else { self.encode(kwdefaults)? };
            Ok(Some(Value::Function(Box::new(ShippedFunction {
                code: code_bytes,
                name,
                qualname: qualname_text.into(),
                defaults,
                kwdefaults,
                script,
            }))))
        }
    }

    unsafe fn encode_fallback(&mut self, obj: *mut PyObject) -> Step<Value> {
        // SAFETY: for the whole body, the GIL is held and `obj` is live.
        unsafe {
            let name = py::type_name(obj);
            if self.fallback == Fallback::Refuse {
                return Err(self.refuse(format!(
                    "{name} object is not shareable: only None, bool, int, float, complex, str, \
                     bytes and tuples, lists, dicts, sets and frozensets of them cross without pickle"
                )));
            }
            if self.dumps.is_none() {
                let pickle = py::import(c"pickle")?;
                self.dumps = Some(py::getattr(pickle.as_ptr(), c"dumps")?);
            }
            let dumps = self.dumps.as_ref().map_or(std::ptr::null_mut(), Owned::as_ptr);
            let protocol = py::check(PyLong_FromLong(5))?;
            let args = [obj, protocol.as_ptr()];
            let pickled = Owned::from_new(PyObject_Vectorcall(dumps, args.as_ptr(), 2, std::ptr::null_mut()));
            let Some(pickled) = pickled else {
                return self.pickle_by_value(obj, &name);
            };
            if PyBytes_Check(pickled.as_ptr()) == 0 {
                return Err(self.refuse(format!("pickling a {name} object did not give bytes")));
            }
            let data = PyBytes_AsString(pickled.as_ptr()).cast::<u8>();
            let len = PyBytes_Size(pickled.as_ptr()) as usize;
            let data = std::slice::from_raw_parts(data, len);
            // By reference to `__main__` means the receiver's own `__main__`,
            // which lacks what the sender defined there: by value instead.
            if by_value::refers_to_main(data) {
                if let ByValue::Pickled(by_value) = by_value::dumps(obj)? {
                    return Ok(Value::Pickled(by_value));
                }
            }
            Ok(Value::Pickled(data.into()))
        }
    }

    /// The standard pickle failed on `obj` (its exception is set): cloudpickle
    /// may still manage, by value (a class or function defined in a function,
    /// an object of a class from a script run as a hidden module).
    unsafe fn pickle_by_value(&mut self, obj: *mut PyObject, name: &str) -> Step<Value> {
        // SAFETY: for the whole body, the GIL is held and `obj` is live.
        unsafe {
            let Some(exc) = py::take_exception() else {
                return Err(Failed);
            };
            let why = format!("{}: {}", py::type_name(exc.as_ptr()), py::display(exc.as_ptr()));
            // What fails to pickle by reference raises PicklingError (or, before
            // 3.14, AttributeError "Can't pickle local object"). Anything else
            // (a TypeError for a lock, a socket, a module) is the object's own
            // refusal, which stays a refusal, as in 3.14.
            let by_reference = PyErr_GivenExceptionMatches(exc.as_ptr(), PyExc_AttributeError) != 0
                || pickling_error(exc.as_ptr())?;
            if !by_reference {
                return Err(self.refuse(format!(
                    "{name} object is not shareable: it is not natively shareable and pickling it \
                     failed ({why})"
                )));
            }
            match by_value::dumps(obj)? {
                ByValue::Pickled(data) => Ok(Value::Pickled(data)),
                ByValue::Unavailable => Err(self.refuse(format!(
                    "{name} object is not shareable: the standard pickle cannot send it ({why}); {}",
                    by_value::INSTALL_HINT
                ))),
                ByValue::Failed(by_value_why) => Err(self.refuse(format!(
                    "{name} object is not shareable: it is not natively shareable and pickling it \
                     failed ({why}; by value with cloudpickle: {by_value_why})"
                ))),
            }
        }
    }
}

/// Whether `exc` is a `pickle.PicklingError`.
///
/// # Safety
/// The GIL is held and `exc` is an exception.
unsafe fn pickling_error(exc: *mut PyObject) -> Step<bool> {
    // SAFETY: the GIL is held; `pickle` is imported (its `dumps` just ran).
    unsafe {
        let pickle = py::module(c"pickle")?;
        let error = py::getattr(pickle.as_ptr(), c"PicklingError")?;
        Ok(PyErr_GivenExceptionMatches(exc, error.as_ptr()) != 0)
    }
}

/// The path of the `__main__` script whose globals are `globals` (those of a
/// top-level function of it that uses them): 3.14 pickles such a function by
/// name and the receiver finds it by running the script as a hidden module.
/// `None` in a REPL, a notebook, `python -c` or `python -`: no script to run.
///
/// # Safety
/// The GIL is held and `globals` is a dict.
unsafe fn main_script(globals: *mut PyObject) -> Step<Option<Box<str>>> {
    // SAFETY: the GIL is held; the item is held by a reference of ours.
    unsafe {
        let Some(file) = py::dict_get_str(globals, c"__file__")? else {
            return Ok(None);
        };
        if PyUnicode_Check(file.as_ptr()) == 0 {
            return Ok(None);
        }
        let path = py::str_utf8(file.as_ptr())?;
        // `python -` names its `__main__` "<stdin>": no file to run again.
        Ok((!path.starts_with('<')).then(|| path.into()))
    }
}

/// Whether code (or code nested in it) reads a global variable that
/// `globals` has, by 3.14's rule for "stateless" functions
/// (`_PyCode_VerifyStateless`): only global reads (`LOAD_GLOBAL`) count, not
/// attribute names, imported names or assigned globals, so `import time` in
/// a function of a script that also imports `time` does not make it re-run
/// the script. Unlike 3.14, code nested in the function (a `def` or `class`
/// inside it) is looked at too, so that what it reads is there when it
/// runs; and a name the globals lack is left to the receiver's `__main__`
/// (3.14 re-runs the script for it, where it is rarely defined).
///
/// # Safety
/// The GIL is held; `code` is a code object and `globals` a dict.
unsafe fn uses_globals(code: *mut PyObject, globals: *mut PyObject, depth: usize) -> PyResult<bool> {
    // SAFETY: the GIL is held; the tuples and bytes are owned, their items borrowed.
    unsafe {
        if depth > MAX_DEPTH {
            return Ok(true);
        }
        let ops = opcodes()?;
        let names = py::getattr(code, c"co_names")?;
        let bytecode = py::getattr(code, c"co_code")?;
        if PyTuple_Check(names.as_ptr()) == 0 || PyBytes_Check(bytecode.as_ptr()) == 0 {
            return Ok(true);
        }
        let units = std::slice::from_raw_parts(
            PyBytes_AsString(bytecode.as_ptr()).cast::<u8>(),
            PyBytes_Size(bytecode.as_ptr()) as usize,
        );
        let mut extended: usize = 0;
        for unit in units.chunks_exact(2) {
            let (op, arg) = (unit[0], extended | usize::from(unit[1]));
            if op == ops.extended_arg {
                extended = arg << 8;
                continue;
            }
            extended = 0;
            let index = if op == ops.load_global {
                arg >> 1
            } else if depth > 0 && (op == ops.load_name || op == ops.load_from_dict_or_globals) {
                arg // a class body nested in the function
            } else {
                continue;
            };
            if index >= PyTuple_GET_SIZE(names.as_ptr()) as usize {
                return Ok(true);
            }
            match PyDict_Contains(globals, PyTuple_GET_ITEM(names.as_ptr(), index as Py_ssize_t)) {
                1 => return Ok(true),
                0 => {}
                _ => return Err(Raised),
            }
        }
        let consts = py::getattr(code, c"co_consts")?;
        if PyTuple_Check(consts.as_ptr()) != 0 {
            for i in 0..PyTuple_GET_SIZE(consts.as_ptr()) {
                let item = PyTuple_GET_ITEM(consts.as_ptr(), i);
                if PyCode_Check(item) != 0 && uses_globals(item, globals, depth + 1)? {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The opcodes [`uses_globals`] looks for, which differ between versions.
#[derive(Clone, Copy)]
struct Opcodes {
    load_global: u8,
    load_name: u8,
    load_from_dict_or_globals: u8,
    extended_arg: u8,
}

static OPCODES: std::sync::OnceLock<Opcodes> = std::sync::OnceLock::new();

/// This build's opcodes, read from the `opcode` module once per process.
///
/// # Safety
/// The GIL is held.
unsafe fn opcodes() -> PyResult<Opcodes> {
    if let Some(ops) = OPCODES.get() {
        return Ok(*ops);
    }
    // SAFETY: the GIL is held; every reference made here is owned.
    unsafe {
        let opmap = py::getattr(py::import(c"opcode")?.as_ptr(), c"opmap")?;
        let number = |name: &std::ffi::CStr| -> PyResult<u8> {
            let Some(value) = py::dict_get_str(opmap.as_ptr(), name)? else {
                return Ok(u8::MAX); // not in this version: matches nothing
            };
            let n = PyLong_AsLong(value.as_ptr());
            if n == -1 && !PyErr_Occurred().is_null() {
                return Err(Raised);
            }
            Ok(u8::try_from(n).unwrap_or(u8::MAX))
        };
        let ops = Opcodes {
            load_global: number(c"LOAD_GLOBAL")?,
            load_name: number(c"LOAD_NAME")?,
            load_from_dict_or_globals: number(c"LOAD_FROM_DICT_OR_GLOBALS")?,
            extended_arg: number(c"EXTENDED_ARG")?,
        };
        Ok(*OPCODES.get_or_init(|| ops))
    }
}

/// `obj` as a reference by module and qualified name, if it is exactly what
/// that name resolves to in its (already imported) module; `None` otherwise
/// (then pickle decides). Any error on the way is cleared: this is a probe.
///
/// # Safety
/// The GIL is held and `obj` is live.
unsafe fn global_reference(obj: *mut PyObject) -> Option<Value> {
    // SAFETY: the GIL is held; all references made here are owned and released.
    unsafe {
        let found = (|| -> PyResult<Option<Value>> {
            let module = py::getattr(obj, c"__module__")?;
            let qualname = py::getattr(obj, c"__qualname__")?;
            if PyUnicode_Check(module.as_ptr()) == 0 || PyUnicode_Check(qualname.as_ptr()) == 0 {
                return Ok(None);
            }
            let (module_name, path) = (py::str_utf8(module.as_ptr())?, py::str_utf8(qualname.as_ptr())?);
            if path.contains('<') || module_name == "__main__" {
                return Ok(None);
            }
            let Some(mut target) = Owned::from_new(PyImport_GetModule(module.as_ptr())) else {
                return Ok(None);
            };
            for part in path.split('.') {
                let name = py::check(py::new_str(part))?;
                target = py::check(PyObject_GetAttr(target.as_ptr(), name.as_ptr()))?;
            }
            Ok((target.as_ptr() == obj)
                .then(|| Value::Global { module: module_name.into(), qualname: path.into() }))
        })();
        found.unwrap_or_else(|_| {
            PyErr_Clear();
            None
        })
    }
}

/// Whether converting `obj` can never run Python code (so a borrowed
/// reference to it stays valid throughout).
#[inline]
fn runs_no_python(obj: *mut PyObject) -> bool {
    // SAFETY: reading the type of a live object.
    let ty = unsafe { Py_TYPE(obj) };
    // SAFETY: taking the addresses of CPython's static type objects.
    unsafe {
        ty == &raw mut PyLong_Type
            || ty == &raw mut PyUnicode_Type
            || ty == &raw mut PyFloat_Type
            || ty == &raw mut PyBool_Type
            || ty == &raw mut PyBytes_Type
            || ty == &raw mut PyComplex_Type
            || obj == Py_None()
    }
}

/// Packs a sequence holding only ints that fit 64 bits, or only floats, into
/// one flat buffer; `None` if it holds anything else. Runs no Python code, so
/// the borrowed items cannot change under it.
///
/// # Safety
/// The GIL is held and `items` are the live items of a list or tuple.
unsafe fn pack_numbers(seq: Seq, items: &[*mut PyObject]) -> Option<Value> {
    let first = *items.first()?;
    // SAFETY: for the whole body, every item is a live object whose exact type
    // is checked before its value is read.
    unsafe {
        if Py_TYPE(first) == &raw mut PyLong_Type {
            let mut ints = Vec::with_capacity(items.len());
            for &item in items {
                if Py_TYPE(item) != &raw mut PyLong_Type {
                    return None;
                }
                let mut overflow: std::ffi::c_int = 0;
                let value = PyLong_AsLongLongAndOverflow(item, &mut overflow);
                if overflow != 0 {
                    return None;
                }
                ints.push(value);
            }
            return Some(Value::Ints(seq, ints.into_boxed_slice()));
        }
        if Py_TYPE(first) == &raw mut PyFloat_Type {
            let mut floats = Vec::with_capacity(items.len());
            for &item in items {
                if Py_TYPE(item) != &raw mut PyFloat_Type {
                    return None;
                }
                floats.push(PyFloat_AS_DOUBLE(item));
            }
            return Some(Value::Floats(seq, floats.into_boxed_slice()));
        }
    }
    None
}

// Hot leaf kinds are written straight into the vector's next slot, reserved
// first. A plain `push` builds the `Value` on the stack in pieces (it must
// survive a possible reallocation) and reloads it whole, a store-forwarding
// stall that tripled the cost of converting a list of ints.
#[inline(always)]
fn push_in_place(out: &mut Vec<Value>, make: impl FnOnce() -> Value) {
    out.reserve(1);
    let len = out.len();
    out.spare_capacity_mut()[0].write(make());
    // SAFETY: the slot at `len` is within capacity and was just initialized.
    unsafe { out.set_len(len + 1) };
}

#[inline(never)]
fn push_int(out: &mut Vec<Value>, value: i64) {
    push_in_place(out, || Value::Int(value));
}

#[inline(never)]
fn push_float(out: &mut Vec<Value>, value: f64) {
    push_in_place(out, || Value::Float(value));
}

#[inline(never)]
fn push_none(out: &mut Vec<Value>) {
    push_in_place(out, || Value::None);
}

/// A memoryview, as 3.14 shares them: the receiver gets a memoryview of the
/// same format, shape and writability. One of a `SharedBuffer` shares its
/// memory; any other is copied (its exporter is an object of this
/// interpreter, which must not be touched from another: DESIGN rule 1).
///
/// # Safety
/// The GIL is held and `obj` is an exact memoryview.
unsafe fn encode_memoryview(obj: *mut PyObject) -> Step<Value> {
    // SAFETY: the view is filled by CPython and released before returning;
    // its format and shape arrays live as long as the view.
    unsafe {
        let mut view: Py_buffer = std::mem::zeroed();
        if PyObject_GetBuffer(obj, &mut view, PyBUF_FULL_RO) < 0 {
            return Err(Failed); // e.g. a released memoryview: ValueError
        }
        let format = if view.format.is_null() {
            "B".into()
        } else {
            std::ffi::CStr::from_ptr(view.format).to_string_lossy().into()
        };
        let ndim = view.ndim.max(0) as usize;
        let shape: Box<[usize]> = if view.shape.is_null() {
            Box::new([view.len as usize])
        } else {
            std::slice::from_raw_parts(view.shape, ndim).iter().map(|&n| n as usize).collect()
        };
        let len = view.len as usize;
        let contiguous = PyBuffer_IsContiguous(&view, b'C' as c_char) != 0;
        let shared = match Owned::from_new(PyObject_GetAttrString(obj, c"obj".as_ptr())) {
            Some(base) => crate::handles::buffer_of(base.as_ptr()).map(std::sync::Arc::clone),
            None => {
                PyErr_Clear();
                None
            }
        };
        let placed = shared.and_then(|bytes| {
            let start = bytes.as_mut_ptr() as usize;
            let at = view.buf as usize;
            (contiguous && at >= start && at - start + len <= bytes.len()).then(|| (bytes, at - start))
        });
        let (bytes, offset) = match placed {
            Some(placed) => placed,
            None => {
                let copy = interpreters_aio_core::shared::SharedBytes::zeroed(len);
                if PyBuffer_ToContiguous(copy.as_mut_ptr().cast(), &view, view.len, b'C' as c_char) < 0 {
                    PyBuffer_Release(&mut view);
                    return Err(Failed);
                }
                (copy, 0)
            }
        };
        let readonly = view.readonly != 0;
        PyBuffer_Release(&mut view);
        Ok(Value::MemoryView(Box::new(SharedView {
            bytes: Shared(bytes),
            offset,
            len,
            format,
            shape,
            readonly,
        })))
    }
}

/// An int too big for 64 bits, as hex: linear to produce and parse, and
/// exempt from the int/str digit limit.
unsafe fn encode_big_int(obj: *mut PyObject) -> Step<Value> {
    // SAFETY: `obj` is an int; the result is a new str such as "-0x1f".
    unsafe {
        PyErr_Clear();
        let hex = py::check(PyNumber_ToBase(obj, 16))?;
        let text = py::str_utf8(hex.as_ptr())?;
        Ok(Value::BigInt(text.into()))
    }
}

unsafe fn encode_str(obj: *mut PyObject) -> Step<Value> {
    let mut size: Py_ssize_t = 0;
    // SAFETY: `obj` is an exact str and the GIL is held.
    let data = unsafe { PyUnicode_AsUTF8AndSize(obj, &mut size) };
    if !data.is_null() {
        // SAFETY: CPython returned `size` bytes of valid UTF-8 owned by `obj`.
        let text =
            unsafe { std::str::from_utf8_unchecked(std::slice::from_raw_parts(data.cast(), size as usize)) };
        return Ok(Value::Str(text.into()));
    }
    // Lone surrogates: valid in Python, not UTF-8. Keep them exactly.
    // SAFETY: the GIL is held; the failed conversion left a UnicodeEncodeError to clear.
    unsafe {
        PyErr_Clear();
        let encoded = py::check(PyUnicode_AsEncodedString(
            obj,
            c"utf-8".as_ptr(),
            c"surrogatepass".as_ptr() as *const c_char,
        ))?;
        let data = PyBytes_AsString(encoded.as_ptr()).cast::<u8>();
        let len = PyBytes_Size(encoded.as_ptr()) as usize;
        Ok(Value::StrSurrogates(std::slice::from_raw_parts(data, len).into()))
    }
}
