//! Running code in another interpreter: `exec`, `call`, `prepare_main`.
//!
//! Each operation converts its inputs to `Value`s in the caller, enters the
//! target, builds objects there, runs, and converts the outcome back to plain
//! data before leaving. An exception raised in the target never leaves it:
//! it comes back as a `Snapshot` (type names, message, formatted traceback,
//! and a pickle of the exception if it has one) (DESIGN rule 7).

use interpreters_aio_core::Value;
use pyo3_ffi::*;

use crate::by_value;
use crate::from_value::{from_value, main_dict};
use crate::interp::{self, InterpError};
use crate::py::{self, Owned, PyResult};
use crate::to_value::{to_value, ConvertError, Fallback};

/// An exception raised in another interpreter, as plain data.
#[derive(Clone)]
pub struct Snapshot {
    pub type_name: String,
    pub type_qualname: String,
    pub type_module: String,
    pub msg: String,
    pub formatted: String,
    pub errdisplay: String,
    pub pickled: Option<Box<[u8]>>,
}

/// How a run in the target ended.
pub enum Outcome {
    Returned(Value),
    Failed(Snapshot),
    /// The result (or an input, once rebuilt) could not cross; the text says why.
    NotShareable(String),
}

/// Runs `work` inside interpreter `id` and brings its outcome back.
///
/// # Safety
/// The caller holds its interpreter's GIL and owns no object it touches while
/// `work` runs; `work` runs under the target's GIL.
unsafe fn run_in(id: i64, work: impl FnOnce() -> Outcome) -> Result<Outcome, InterpError> {
    // SAFETY: forwarded from the caller.
    let entered = unsafe { interp::enter(id)? };
    let outcome = work();
    entered.leave();
    Ok(outcome)
}

/// Runs the code object `code()` makes with the current interpreter's
/// `__main__` dict as globals and locals (`exec(code, main.__dict__)`), and
/// turns what happened into the caller's outcome.
///
/// # Safety
/// Runs inside the target interpreter, under its GIL.
unsafe fn exec_in_main(code: impl FnOnce() -> PyResult<Owned>) -> Outcome {
    // SAFETY: forwarded from the caller: the target's GIL is held.
    let ran = unsafe {
        (|| -> PyResult<()> {
            let code = code()?;
            let globals = main_dict()?;
            py::check(PyEval_EvalCode(code.as_ptr(), globals.as_ptr(), globals.as_ptr()))?;
            Ok(())
        })()
    };
    match ran {
        Ok(()) => Outcome::Returned(Value::None),
        // SAFETY: as above; the failed evaluation left its exception set.
        Err(_) => Outcome::Failed(unsafe { snapshot() }),
    }
}

/// Executes source code in the target's `__main__`.
///
/// # Safety
/// The caller holds its interpreter's GIL.
pub unsafe fn exec(id: i64, source: &str) -> Result<Outcome, InterpError> {
    let source = std::ffi::CString::new(source)
        // SAFETY: the caller's GIL is held.
        .map_err(|_| unsafe { py::raise(PyExc_ValueError, "source code must not contain NUL characters") })?;
    // SAFETY: the closure runs inside the target, under its GIL.
    unsafe { run_in(id, || exec_in_main(|| compiled(&source))) }
}

/// Executes a code object (its `marshal` serialization) in the target's
/// `__main__`, as `exec(code, main.__dict__)` there would.
///
/// # Safety
/// The caller holds its interpreter's GIL.
pub unsafe fn exec_code(id: i64, marshalled: &[u8]) -> Result<Outcome, InterpError> {
    // SAFETY: the closure runs inside the target, under its GIL.
    unsafe {
        run_in(id, || {
            exec_in_main(|| {
                let code = py::check(PyMarshal_ReadObjectFromString(
                    marshalled.as_ptr().cast(),
                    marshalled.len() as Py_ssize_t,
                ))?;
                if PyCode_Check(code.as_ptr()) == 0 {
                    return Err(py::raise(PyExc_TypeError, "exec() payload is not a code object"));
                }
                Ok(code)
            })
        })
    }
}

/// How many compiled sources each interpreter keeps; the cache is emptied
/// when full (cheap, and repeated snippets refill it at once).
const EXEC_CACHE_SIZE: Py_ssize_t = 256;

/// The code object for `source` in the current interpreter, compiled once.
///
/// Compiling even `pass` costs 6-15 µs, most of a trivial `exec`, and
/// programs tend to exec the same snippets over and over. The cache lives in
/// the interpreter's own state dict (`PyInterpreterState_GetDict`), so it is
/// per interpreter and freed with it. A code object is immutable, so running
/// a cached one is the same as compiling again.
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn compiled(source: &std::ffi::CStr) -> PyResult<Owned> {
    // SAFETY: the GIL is held; every reference taken here is owned.
    unsafe {
        let cache = py::interpreter_cached(c"interpreters_aio.exec_cache", || py::check(PyDict_New()))?;
        let key = py::check(PyUnicode_FromString(source.as_ptr()))?;
        if let Some(hit) = py::dict_get(cache.as_ptr(), key.as_ptr())? {
            return Ok(hit);
        }
        let code = py::check(Py_CompileString(source.as_ptr(), c"<string>".as_ptr(), Py_file_input))?;
        if PyDict_Size(cache.as_ptr()) >= EXEC_CACHE_SIZE {
            PyDict_Clear(cache.as_ptr());
        }
        if PyDict_SetItem(cache.as_ptr(), key.as_ptr(), code.as_ptr()) < 0 {
            PyErr_Clear(); // caching is an optimization; the code still runs
        }
        Ok(code)
    }
}

/// Calls a function in the target and returns its result.
///
/// # Safety
/// The caller holds its interpreter's GIL and `callable`, `args`, `kwargs`
/// are live objects of the caller's interpreter (`args` a tuple, `kwargs` a
/// dict or null).
pub unsafe fn call(
    id: i64,
    callable: *mut PyObject,
    args: *mut PyObject,
    kwargs: *mut PyObject,
) -> Result<Result<Outcome, ConvertError>, InterpError> {
    // SAFETY: the caller's GIL is held and the objects are live.
    let inputs = unsafe {
        (|| -> Result<(Value, Value, Value), ConvertError> {
            let f = to_value(callable, Fallback::Pickle)?;
            let a = to_value(args, Fallback::Pickle)?;
            let k = if kwargs.is_null() { Value::None } else { to_value(kwargs, Fallback::Pickle)? };
            Ok((f, a, k))
        })()
    };
    let (f, a, k) = match inputs {
        Ok(inputs) => inputs,
        Err(e) => return Ok(Err(e)),
    };
    let mut not_rebuilt = false;
    // SAFETY: the closure runs inside the target, under its GIL.
    let outcome = unsafe {
        run_in(id, || {
            let rebuilt = (|| -> PyResult<(Owned, Owned, Option<Owned>)> {
                let k = if k == Value::None { None } else { Some(from_value(&k)?) };
                Ok((from_value(&f)?, from_value(&a)?, k))
            })();
            let (f, a, k) = match rebuilt {
                Ok(objs) => objs,
                Err(_) => {
                    not_rebuilt = true;
                    return rebuild_failed();
                }
            };
            call_outcome(call_in_main(&f, &a, k.as_ref()))
        })
    };
    // SAFETY: back in the caller's interpreter, under its GIL.
    outcome.map(|outcome| Ok(unsafe { explain_not_rebuilt(outcome, not_rebuilt, &[&f, &a, &k]) }))
}

/// One call of a batch: objects of the caller's interpreter (`args` a
/// tuple, `kwargs` a dict or null).
pub struct BatchCall {
    pub callable: *mut PyObject,
    pub args: *mut PyObject,
    pub kwargs: *mut PyObject,
}

/// What became of one call of a batch.
pub enum BatchItem {
    /// It crossed and ran (or its inputs could not be rebuilt there).
    Ran(Outcome),
    /// Its inputs could not be converted in the caller; it did not cross.
    NotSent(NotSent),
}

/// Why a call's inputs stayed in the caller.
pub enum NotSent {
    NotShareable(String),
    /// Conversion raised; the exception, taken so the next call can convert.
    Raised(Option<Owned>),
}

/// A call's inputs as data: its callable by index into the batch's
/// distinct callables (a batch usually calls one function many times, and
/// converting and rebuilding it once saves most of a tiny call's cost).
struct SentCall {
    index: usize,
    callable: usize,
    args: Value,
    kwargs: Value,
}

/// Calls each of `calls` in the target, in order, in one entry: what an
/// executor worker does with the tasks it took from its queue.
///
/// Stops starting calls once `budget` has passed since the first started
/// (at least one always runs), so a batch of slow calls hands back the
/// finished ones' results early; returns one item per call for a prefix of
/// `calls` (the caller runs the rest in another batch), and the time spent
/// running them in the target (without the waits for either GIL).
///
/// # Safety
/// The caller holds its interpreter's GIL and every object in `calls` is
/// live in it.
pub unsafe fn call_many(
    id: i64,
    calls: &[BatchCall],
    budget: std::time::Duration,
) -> Result<(Vec<BatchItem>, std::time::Duration), InterpError> {
    let mut callables: Vec<(*mut PyObject, Value)> = Vec::new();
    let mut sent: Vec<SentCall> = Vec::with_capacity(calls.len());
    let mut items: Vec<Option<BatchItem>> = Vec::with_capacity(calls.len());
    for (index, call) in calls.iter().enumerate() {
        // SAFETY: the caller's GIL is held and the objects are live.
        let converted = unsafe {
            (|| -> Result<SentCall, ConvertError> {
                let callable = match callables.iter().position(|(seen, _)| *seen == call.callable) {
                    Some(known) => known,
                    None => {
                        callables.push((call.callable, to_value(call.callable, Fallback::Pickle)?));
                        callables.len() - 1
                    }
                };
                let args = to_value(call.args, Fallback::Pickle)?;
                let kwargs = if call.kwargs.is_null() {
                    Value::None
                } else {
                    to_value(call.kwargs, Fallback::Pickle)?
                };
                Ok(SentCall { index, callable, args, kwargs })
            })()
        };
        match converted {
            Ok(call) => {
                sent.push(call);
                items.push(None);
            }
            Err(ConvertError::NotShareable(msg)) => {
                items.push(Some(BatchItem::NotSent(NotSent::NotShareable(msg))))
            }
            Err(ConvertError::Raised) => {
                // SAFETY: the caller's GIL is held; the failed conversion left its exception set.
                let exc = unsafe { py::take_exception() };
                items.push(Some(BatchItem::NotSent(NotSent::Raised(exc))))
            }
        }
    }
    if sent.is_empty() {
        return Ok((items.into_iter().flatten().collect(), std::time::Duration::ZERO));
    }
    // (outcome, whether an input failed to be rebuilt) per call started.
    let mut ran: Vec<(Outcome, bool)> = Vec::with_capacity(sent.len());
    let mut running = std::time::Duration::ZERO;
    // SAFETY: the closure runs inside the target, under its GIL; the objects
    // it builds are dropped before it returns.
    unsafe {
        run_in(id, || {
            let started = std::time::Instant::now();
            let stub = match CallStub::current() {
                Ok(stub) => stub,
                Err(_) => {
                    let failed = snapshot();
                    for _ in &sent {
                        ran.push((Outcome::Failed(failed.clone()), false));
                    }
                    return Outcome::Returned(Value::None);
                }
            };
            let mut rebuilt: Vec<Option<PreparedCall>> = (0..callables.len()).map(|_| None).collect();
            for call in &sent {
                if !ran.is_empty() && started.elapsed() >= budget {
                    break;
                }
                ran.push(call_sent(&stub, call, &callables[call.callable].1, &mut rebuilt[call.callable]));
            }
            running = started.elapsed();
            Outcome::Returned(Value::None)
        })?
    };
    let ran_count = ran.len();
    for (call, (outcome, not_rebuilt)) in sent.iter().zip(ran) {
        let callable = &callables[call.callable].1;
        // SAFETY: back in the caller's interpreter, under its GIL.
        let outcome =
            unsafe { explain_not_rebuilt(outcome, not_rebuilt, &[callable, &call.args, &call.kwargs]) };
        items[call.index] = Some(BatchItem::Ran(outcome));
    }
    // The prefix of calls that have an item: up to the first call not started.
    let handled = sent.get(ran_count).map_or(calls.len(), |first_not_started| first_not_started.index);
    let items =
        items.into_iter().take(handled).map(|item| item.expect("every call before `handled` has an item"));
    Ok((items.collect(), running))
}

/// Runs one call of a batch in the target: rebuilds its inputs (the
/// callable once per batch, prepared with the stub and kept in `prepared`),
/// calls it from `__main__`'s top level as `call` does, and converts the
/// result.
///
/// # Safety
/// Runs inside the target interpreter, under its GIL.
unsafe fn call_sent(
    stub: &CallStub,
    call: &SentCall,
    callable: &Value,
    prepared: &mut Option<PreparedCall>,
) -> (Outcome, bool) {
    // SAFETY: forwarded from the caller: the target's GIL is held.
    unsafe {
        let inputs = (|| -> PyResult<(Owned, Option<Owned>)> {
            if prepared.is_none() {
                *prepared = Some(stub.prepare(&from_value(callable)?)?);
            }
            let k = if call.kwargs == Value::None { None } else { Some(from_value(&call.kwargs)?) };
            Ok((from_value(&call.args)?, k))
        })();
        let (Some(prepared), Ok((a, k))) = (prepared.as_ref(), inputs) else {
            return (rebuild_failed(), true);
        };
        (call_outcome(prepared.call(&a, k.as_ref())), false)
    }
}

/// What a call in the target came to: its result as data, or the exception
/// it raised (or that converting its result raised) as a snapshot.
///
/// # Safety
/// Runs inside the target interpreter, under its GIL, right after the call
/// (its exception, if it failed, is still set).
unsafe fn call_outcome(called: PyResult<Owned>) -> Outcome {
    // SAFETY: forwarded from the caller.
    unsafe {
        match called {
            Err(_) => Outcome::Failed(snapshot()),
            Ok(result) => match to_value(result.as_ptr(), Fallback::Pickle) {
                Ok(value) => Outcome::Returned(value),
                Err(ConvertError::NotShareable(why)) => {
                    Outcome::NotShareable(format!("the call's result cannot be sent back: {why}"))
                }
                Err(ConvertError::Raised) => Outcome::Failed(snapshot()),
            },
        }
    }
}

/// Adds to a failed rebuild (in the target) of inputs pickled by reference to
/// the sender's `__main__` why that happened and what helps: without
/// cloudpickle, what is defined in `__main__` can only be looked up in the
/// target's own `__main__`, which does not have it.
///
/// # Safety
/// The caller's GIL is held.
unsafe fn explain_not_rebuilt(outcome: Outcome, not_rebuilt: bool, inputs: &[&Value]) -> Outcome {
    let Outcome::NotShareable(msg) = outcome else { return outcome };
    if !not_rebuilt || !inputs.iter().any(|value| pickled_refers_to_main(value, 0)) {
        return Outcome::NotShareable(msg);
    }
    // SAFETY: the caller's GIL is held.
    let available = unsafe { by_value::available() }.unwrap_or_else(|_| {
        // SAFETY: as above; the lookup's failure only means "no hint".
        unsafe { PyErr_Clear() };
        true
    });
    if available {
        return Outcome::NotShareable(msg);
    }
    Outcome::NotShareable(format!(
        "{msg} (it refers to something defined in __main__, which the standard pickle sends by \
         name and the target's own __main__ does not have: {})",
        by_value::INSTALL_HINT
    ))
}

/// Whether a pickled leaf of `value` refers to `__main__`.
fn pickled_refers_to_main(value: &Value, depth: usize) -> bool {
    if depth > interpreters_aio_core::MAX_DEPTH {
        return false;
    }
    let any = |items: &[Value]| items.iter().any(|item| pickled_refers_to_main(item, depth + 1));
    match value {
        Value::Pickled(data) => by_value::refers_to_main(data),
        Value::Tuple(items) | Value::List(items) | Value::Dict(items) => any(items),
        Value::Set(items) | Value::FrozenSet(items) => any(items),
        Value::Function(func) => {
            pickled_refers_to_main(&func.defaults, depth + 1)
                || pickled_refers_to_main(&func.kwdefaults, depth + 1)
        }
        _ => false,
    }
}

/// The call stub's source: a call of a constant with the arguments popped
/// from two constants, swapped for the callable and two lists by
/// `CallStub::prepare`. (Each constant is a conditional expression because a
/// plain constant callee makes the compiler warn "'str' object is not
/// callable", and nothing is folded through a conditional.)
const CALL_STUB: &std::ffi::CStr = c"('interpreters_aio:f' if 1 else 0)(\
    *('interpreters_aio:a' if 1 else 0).pop(), **('interpreters_aio:k' if 1 else 0).pop())";
const STUB_FILE: &std::ffi::CStr = c"<interpreters_aio call>";

/// Calls `f(*a, **k)` from module-level code running in `__main__`'s
/// namespace (globals and locals), as 3.14 does: builtins that need a calling
/// frame (`eval`, `exec`, `dir`, `vars`, `globals`, `locals`) then work on the
/// target's `__main__`, as they would at its top level.
///
/// # Safety
/// The current interpreter's GIL is held; `a` is a tuple and `k` a dict.
unsafe fn call_in_main(f: &Owned, a: &Owned, k: Option<&Owned>) -> PyResult<Owned> {
    // SAFETY: forwarded from the caller.
    unsafe { CallStub::current()?.prepare(f)?.call(a, k) }
}

/// The current interpreter's call stub: compiled once per interpreter (kept
/// in its state dict), it calls a constant callable with arguments it pops
/// from two constant lists. `prepare` makes the copy for one callable
/// (`code.replace(co_consts=...)`, about 1 µs), which a batch then runs for
/// each of its calls of that callable, pushing each call's arguments first.
/// The copy is private to the thread using it, and the stub pops the
/// arguments before it calls, so a nested call cannot see another's
/// arguments. The stub's own frame is removed from the traceback of an
/// exception.
struct CallStub {
    consts: Owned,
    replace: Owned,
    globals: Owned,
}

/// The stub for one callable, with its two argument lists.
struct PreparedCall {
    code: Owned,
    args: Owned,
    kwargs: Owned,
    globals: *mut PyObject,
}

impl CallStub {
    /// # Safety
    /// The current interpreter's GIL is held; the stub is used and dropped
    /// in this interpreter.
    unsafe fn current() -> PyResult<CallStub> {
        // SAFETY: the GIL is held; every reference made here is owned.
        unsafe {
            let template = call_template()?;
            let consts = Owned::from_borrowed(PyTuple_GET_ITEM(template.as_ptr(), 0));
            let replace = Owned::from_borrowed(PyTuple_GET_ITEM(template.as_ptr(), 1));
            Ok(CallStub { consts, replace, globals: main_dict()? })
        }
    }

    /// # Safety
    /// As for `current`; the result does not outlive `self`.
    unsafe fn prepare(&self, f: &Owned) -> PyResult<PreparedCall> {
        // SAFETY: the GIL is held; every reference made here is owned or
        // borrowed from an object that outlives its use.
        unsafe {
            let consts = self.consts.as_ptr();
            let args = py::check(PyList_New(0))?;
            let kwargs = py::check(PyList_New(0))?;
            let n = PyTuple_GET_SIZE(consts);
            let swapped = py::check(PyTuple_New(n))?;
            let mut found = 0;
            for i in 0..n {
                let item = PyTuple_GET_ITEM(consts, i);
                let mut replacement = item;
                if PyUnicode_CheckExact(item) != 0 {
                    for (sentinel, obj) in [
                        (c"interpreters_aio:f", f.as_ptr()),
                        (c"interpreters_aio:a", args.as_ptr()),
                        (c"interpreters_aio:k", kwargs.as_ptr()),
                    ] {
                        if PyUnicode_CompareWithASCIIString(item, sentinel.as_ptr()) == 0 {
                            replacement = obj;
                            found += 1;
                        }
                    }
                }
                PyTuple_SET_ITEM(swapped.as_ptr(), i, Py_NewRef(replacement));
            }
            if found != 3 {
                return Err(py::raise(PyExc_SystemError, "call stub constants not found"));
            }
            let options = py::check(PyDict_New())?;
            if PyDict_SetItemString(options.as_ptr(), c"co_consts".as_ptr(), swapped.as_ptr()) < 0 {
                return Err(py::Raised);
            }
            let no_args = py::check(PyTuple_New(0))?;
            let code = py::check(PyObject_Call(self.replace.as_ptr(), no_args.as_ptr(), options.as_ptr()))?;
            Ok(PreparedCall { code, args, kwargs, globals: self.globals.as_ptr() })
        }
    }
}

impl PreparedCall {
    /// Calls the prepared callable with `*a, **k`.
    ///
    /// # Safety
    /// The GIL of the interpreter that prepared it is held; `a` is a tuple
    /// and `k` a dict.
    unsafe fn call(&self, a: &Owned, k: Option<&Owned>) -> PyResult<Owned> {
        // SAFETY: the GIL is held; the lists and the code are ours, and
        // `globals` is borrowed from the `CallStub` that outlives `self`.
        unsafe {
            let kwargs = match k {
                Some(k) => Owned::from_borrowed(k.as_ptr()),
                None => py::check(PyDict_New())?,
            };
            // Empty unless a previous run stopped before its pops.
            for list in [&self.args, &self.kwargs] {
                if PyList_GET_SIZE(list.as_ptr()) != 0
                    && PyList_SetSlice(list.as_ptr(), 0, PY_SSIZE_T_MAX, std::ptr::null_mut()) < 0
                {
                    return Err(py::Raised);
                }
            }
            if PyList_Append(self.args.as_ptr(), a.as_ptr()) < 0
                || PyList_Append(self.kwargs.as_ptr(), kwargs.as_ptr()) < 0
            {
                return Err(py::Raised);
            }
            let result = Owned::from_new(PyEval_EvalCode(self.code.as_ptr(), self.globals, self.globals));
            if result.is_none() {
                drop_stub_frame();
            }
            result.ok_or(py::Raised)
        }
    }
}

/// The call stub's constants and its bound `replace` method, for the current
/// interpreter: compiled and looked up once, kept in the interpreter's state
/// dict as a `(co_consts, replace)` tuple.
///
/// # Safety
/// The current interpreter's GIL is held.
unsafe fn call_template() -> PyResult<Owned> {
    // SAFETY: the GIL is held; the state dict lives as long as the
    // interpreter, and every other reference is owned.
    unsafe {
        let build = || -> PyResult<Owned> {
            let code = py::check(Py_CompileString(CALL_STUB.as_ptr(), STUB_FILE.as_ptr(), Py_eval_input))?;
            let consts = py::getattr(code.as_ptr(), c"co_consts")?;
            if PyTuple_Check(consts.as_ptr()) == 0 {
                return Err(py::raise(PyExc_SystemError, "call stub has no constants tuple"));
            }
            let replace = py::getattr(code.as_ptr(), c"replace")?;
            let pair = py::check(PyTuple_New(2))?;
            PyTuple_SET_ITEM(pair.as_ptr(), 0, consts.into_ptr());
            PyTuple_SET_ITEM(pair.as_ptr(), 1, replace.into_ptr());
            Ok(pair)
        };
        py::interpreter_cached(c"interpreters_aio.call_stub", build)
    }
}

/// Removes the call stub's frame, the first entry, from the traceback of
/// the pending exception, so the remote traceback starts at the callable.
///
/// # Safety
/// The GIL is held and an exception is set.
unsafe fn drop_stub_frame() {
    // SAFETY: the GIL is held; references are owned and released here, and
    // the exception is set again before returning.
    unsafe {
        let Some(exc) = py::take_exception() else { return };
        if let Some(tb) = Owned::from_new(PyException_GetTraceback(exc.as_ptr())) {
            let is_stub = py::getattr(tb.as_ptr(), c"tb_frame")
                .and_then(|frame| py::getattr(frame.as_ptr(), c"f_code"))
                .and_then(|code| py::getattr(code.as_ptr(), c"co_filename"))
                .map(|name| {
                    PyUnicode_Check(name.as_ptr()) != 0
                        && PyUnicode_CompareWithASCIIString(name.as_ptr(), STUB_FILE.as_ptr()) == 0
                });
            match is_stub {
                Ok(true) => match py::getattr(tb.as_ptr(), c"tb_next") {
                    Ok(next) => {
                        PyException_SetTraceback(exc.as_ptr(), next.as_ptr());
                    }
                    Err(_) => PyErr_Clear(),
                },
                Ok(false) => {}
                Err(_) => PyErr_Clear(),
            }
        }
        PyErr_SetRaisedException(exc.into_ptr());
    }
}

/// Binds the items of `ns` (a dict of str keys) in the target's `__main__`.
///
/// # Safety
/// The caller holds its interpreter's GIL and `ns` is a live dict.
pub unsafe fn set_main_attrs(
    id: i64,
    ns: *mut PyObject,
) -> Result<Result<Outcome, ConvertError>, InterpError> {
    // SAFETY: the caller's GIL is held and `ns` is live.
    let value = match unsafe { to_value(ns, Fallback::Pickle) } {
        Ok(value) => value,
        Err(e) => return Ok(Err(e)),
    };
    let mut not_rebuilt = false;
    // SAFETY: the closure runs inside the target, under its GIL.
    let outcome = unsafe {
        run_in(id, || {
            let Ok(ns) = from_value(&value) else {
                not_rebuilt = true;
                return rebuild_failed();
            };
            let updated = main_dict().and_then(|globals| {
                if PyDict_Update(globals.as_ptr(), ns.as_ptr()) < 0 {
                    Err(py::Raised)
                } else {
                    Ok(())
                }
            });
            match updated {
                Ok(()) => Outcome::Returned(Value::None),
                Err(_) => Outcome::Failed(snapshot()),
            }
        })
    };
    // SAFETY: back in the caller's interpreter, under its GIL.
    outcome.map(|outcome| Ok(unsafe { explain_not_rebuilt(outcome, not_rebuilt, &[&value]) }))
}

/// An input converted fine in the sender but could not be rebuilt here
/// (typically: a pickled object whose class the target cannot import).
fn rebuild_failed() -> Outcome {
    // SAFETY: called inside the target, under its GIL, with an exception set.
    let snap = unsafe { snapshot() };
    Outcome::NotShareable(format!(
        "an object could not be rebuilt in the target interpreter: {}",
        snap.errdisplay.trim_end()
    ))
}

/// Takes the pending exception of the current interpreter as plain data.
/// Never fails: each part that cannot be computed gets a placeholder.
///
/// # Safety
/// The GIL is held and an exception is set.
pub unsafe fn snapshot() -> Snapshot {
    // SAFETY: for the whole body, the GIL is held; every failure inside is
    // cleared so the snapshot itself can never raise.
    unsafe {
        let Some(exc) = py::take_exception() else {
            return Snapshot {
                type_name: "SystemError".into(),
                type_qualname: "SystemError".into(),
                type_module: "builtins".into(),
                msg: "error return without exception set".into(),
                formatted: "SystemError: error return without exception set\n".into(),
                errdisplay: "SystemError: error return without exception set\n".into(),
                pickled: None,
            };
        };
        let ty = Py_TYPE(exc.as_ptr()).cast::<PyObject>();
        let attr = |name: &std::ffi::CStr| match py::getattr(ty, name) {
            Ok(v) => py::display(v.as_ptr()),
            Err(_) => {
                PyErr_Clear();
                "?".to_owned()
            }
        };
        let type_name = attr(c"__name__");
        let type_qualname = attr(c"__qualname__");
        let type_module = attr(c"__module__");
        let msg = match Owned::from_new(PyObject_Str(exc.as_ptr())) {
            Some(s) => py::display(s.as_ptr()),
            None => {
                PyErr_Clear();
                format!("<exception str() failed for {type_qualname}>")
            }
        };
        let qualified = if type_module == "builtins" {
            type_qualname.clone()
        } else {
            format!("{type_module}.{type_qualname}")
        };
        let plain = if msg.is_empty() { format!("{qualified}\n") } else { format!("{qualified}: {msg}\n") };
        let formatted = traceback_text(exc.as_ptr(), c"format_exception").unwrap_or_else(|| plain.clone());
        let errdisplay = traceback_text(exc.as_ptr(), c"format_exception_only").unwrap_or(plain);
        let pickled = match to_value(exc.as_ptr(), Fallback::Pickle) {
            Ok(Value::Pickled(data)) => Some(data),
            Ok(_) => None,
            Err(_) => {
                PyErr_Clear();
                None
            }
        };
        Snapshot { type_name, type_qualname, type_module, msg, formatted, errdisplay, pickled }
    }
}

/// `"".join(traceback.<func>(exc))`, or `None` if any step fails.
unsafe fn traceback_text(exc: *mut PyObject, func: &std::ffi::CStr) -> Option<String> {
    // SAFETY: the GIL is held; failures are cleared.
    unsafe {
        let text = (|| -> PyResult<String> {
            let traceback = py::import(c"traceback")?;
            let format = py::getattr(traceback.as_ptr(), func)?;
            let lines = py::call1(format.as_ptr(), exc)?;
            let empty = py::check(py::new_str(""))?;
            let joined = py::check(PyUnicode_Join(empty.as_ptr(), lines.as_ptr()))?;
            Ok(py::str_utf8(joined.as_ptr())?.to_owned())
        })();
        if text.is_err() {
            PyErr_Clear();
        }
        text.ok()
    }
}
