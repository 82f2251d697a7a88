//! The functions `interpreters_aio._core` exposes, and the one place where the
//! core's errors become Python exceptions with messages naming the object.
//!
//! Every function takes positional arguments only; the Python package gives
//! them their public signatures, defaults and docstrings.

use interpreters_aio_core::{TableError, Value};
use pyo3_ffi::*;

use crate::from_value::from_value;
use crate::interp::{self, InterpError};
use crate::module::state;
use crate::py::{self, Owned, PyResult, Raised};
use crate::run::{self, Outcome, Snapshot};
use crate::to_value::{self, ConvertError, Fallback};
use crate::{channels, http, queues};

type Args = *mut *mut PyObject;

macro_rules! method {
    ($name:literal, $func:path, $doc:literal) => {
        PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: PyMethodDefPointer { PyCFunctionFast: $func },
            ml_flags: METH_FASTCALL,
            ml_doc: $doc.as_ptr(),
        }
    };
}

pub static mut METHODS: [PyMethodDef; 45] = [
    method!(
        c"_register_errors",
        register_errors,
        c"_register_errors(InterpreterError, InterpreterNotFoundError, NotShareableError)"
    ),
    method!(c"create", create, c"create(sys_path, daemon_threads) -> id"),
    method!(c"close", close, c"close(id)"),
    method!(c"all_ids", all_ids, c"all_ids() -> list of every interpreter id in the process"),
    method!(c"our_ids", our_ids, c"our_ids() -> list of ids of interpreters this package created"),
    method!(c"current_id", current_id, c"current_id() -> id"),
    method!(c"main_id", main_id, c"main_id() -> id"),
    method!(c"exists", exists, c"exists(id) -> bool"),
    method!(c"is_ours", is_ours, c"is_ours(id) -> bool"),
    method!(c"incref", incref, c"incref(id) -> bool: an Interpreter object now stands for id (ours only)"),
    method!(
        c"decref",
        decref,
        c"decref(id) -> bool: an Interpreter object for id went away; true if it was the last and id may be closed now"
    ),
    method!(c"is_running", is_running, c"is_running(id) -> bool"),
    method!(c"exec", exec, c"exec(id, source) -> None or excinfo tuple"),
    method!(c"call", call, c"call(id, callable, args, kwargs) -> (True, result) or (False, excinfo)"),
    method!(
        c"call_many",
        call_many,
        c"call_many(id, tasks, budget) -> (results, failures, seconds) for a prefix of tasks (objects with fn, args, kwargs)"
    ),
    method!(c"set_main_attrs", set_main_attrs, c"set_main_attrs(id, dict) -> None or excinfo tuple"),
    method!(c"is_shareable", is_shareable, c"is_shareable(obj) -> bool"),
    method!(
        c"interrupt",
        interrupt,
        c"interrupt(id) -> bool: raise KeyboardInterrupt in the thread running in id"
    ),
    method!(c"wait_idle", wait_idle, c"wait_idle(id, timeout) -> bool: wait until nobody runs code in id"),
    method!(c"thread_state_count", thread_state_count, c"thread_state_count(id) -> int (for tests)"),
    method!(
        c"_register_error_classes",
        register_error_classes,
        c"_register_error_classes(dict of name -> class): add to (or replace in) the classes the core raises"
    ),
    method!(
        c"queue_create",
        queues::queue_create,
        c"queue_create(cls, maxsize, unbound_op, strict) -> queue"
    ),
    method!(c"queue_put", queues::queue_put, c"queue_put(q, obj, block, timeout, unbound_op)"),
    method!(c"queue_get", queues::queue_get, c"queue_get(q, block, timeout) -> (obj, unbound_op or None)"),
    method!(
        c"queue_info",
        queues::queue_info,
        c"queue_info(q) -> (id, maxsize, qsize, full, closed, unbound_op, strict)"
    ),
    method!(c"queue_close", queues::queue_close, c"queue_close(q)"),
    method!(c"queue_fds", queues::queue_fds, c"queue_fds(q) -> (recv_fd, send_fd)"),
    method!(c"queue_ids", queues::queue_ids, c"queue_ids() -> list of live queue ids"),
    method!(
        c"channel_create",
        channels::channel_create,
        c"channel_create(recv_cls, send_cls, maxsize, pickle) -> (recv, send)"
    ),
    method!(
        c"channel_send",
        channels::channel_send,
        c"channel_send(end, obj, block, timeout, as_buffer) -> bool"
    ),
    method!(c"channel_recv", channels::channel_recv, c"channel_recv(end, block, timeout) -> (received, obj)"),
    method!(c"channel_release", channels::channel_release, c"channel_release(end) -> bool"),
    method!(c"channel_close", channels::channel_close, c"channel_close(end, force)"),
    method!(
        c"channel_info",
        channels::channel_info,
        c"channel_info(end) -> (id, maxsize, count, closed, pickle, parked)"
    ),
    method!(
        c"channel_interpreters",
        channels::channel_interpreters,
        c"channel_interpreters(end) -> list of ids"
    ),
    method!(c"channel_fds", channels::channel_fds, c"channel_fds(end) -> (recv_fd, send_fd)"),
    method!(c"channel_ids", channels::channel_ids, c"channel_ids() -> list of open channel ids"),
    method!(
        c"close_all_for_exit",
        channels::close_all_for_exit,
        c"close_all_for_exit(): close every queue and channel"
    ),
    method!(
        c"channel_async_receiver",
        channels::channel_async_receiver,
        c"channel_async_receiver(end, arriving): a coroutine starts/stops awaiting a receive"
    ),
    method!(c"http_parser", http::http_parser, c"http_parser(max_head, max_headers) -> parser"),
    method!(c"http_feed", http::http_feed, c"http_feed(parser, data) -> list of request events"),
    method!(c"http_resume", http::http_resume, c"http_resume(parser) -> list of events after an upgrade head"),
    method!(c"http_take_rest", http::http_take_rest, c"http_take_rest(parser) -> bytes after an upgrade head"),
    method!(
        c"http_response",
        http::http_response,
        c"http_response(status, default_headers, headers, flags, body, more_body) -> (data, mode, remaining, keep_alive)"
    ),
    PyMethodDef::zeroed(),
];

/// Checks the positional argument count.
unsafe fn expect_args(name: &str, nargs: Py_ssize_t, expected: Py_ssize_t) -> PyResult<()> {
    if nargs == expected {
        return Ok(());
    }
    // SAFETY: the GIL is held in every module function.
    Err(unsafe {
        py::raise(PyExc_TypeError, &format!("{name}() takes {expected} arguments ({nargs} given)"))
    })
}

unsafe fn arg_id(obj: *mut PyObject) -> PyResult<i64> {
    // SAFETY: the GIL is held and `obj` is a live argument.
    unsafe {
        if PyLong_Check(obj) == 0 {
            let msg = format!("interpreter id must be an int, not {}", py::type_name(obj));
            return Err(py::raise(PyExc_TypeError, &msg));
        }
        let id = PyLong_AsLongLong(obj);
        if id == -1 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        if id < 0 {
            return Err(py::raise(PyExc_ValueError, &format!("interpreter id must be >= 0, not {id}")));
        }
        Ok(id)
    }
}

/// Turns an interpreter error into the matching exception of this interpreter.
unsafe fn raise_interp(module: *mut PyObject, err: InterpError) -> *mut PyObject {
    // SAFETY: the GIL is held; the state's classes were registered at import
    // (before that, builtin fallbacks are used).
    unsafe {
        let st = state(module);
        let base = or_default(st.interpreter_error, PyExc_RuntimeError);
        let (class, msg) = match err {
            InterpError::Raised => return std::ptr::null_mut(),
            InterpError::Table(TableError::NotFound(id)) => (
                or_default(st.interpreter_not_found, PyExc_RuntimeError),
                format!("interpreter {id} not found (it was closed or never existed)"),
            ),
            InterpError::Table(e) => (base, e.to_string()),
            InterpError::NotOurs(id) => (
                base,
                format!("interpreter {id} was not created by interpreters_aio, which only runs code in and closes its own"),
            ),
            InterpError::Refused(msg) => (base, msg),
        };
        py::raise(class, &msg);
    }
    std::ptr::null_mut()
}

unsafe fn raise_convert(module: *mut PyObject, err: ConvertError) -> *mut PyObject {
    if let ConvertError::NotShareable(msg) = err {
        // SAFETY: the GIL is held.
        unsafe { py::raise(or_default(state(module).not_shareable, PyExc_TypeError), &msg) };
    }
    std::ptr::null_mut()
}

fn or_default(registered: *mut PyObject, fallback: *mut PyObject) -> *mut PyObject {
    if registered.is_null() {
        fallback
    } else {
        registered
    }
}

/// A failed run as the tuple the Python layer turns into `ExecutionFailed`:
/// (type name, qualname, module, msg, formatted, errdisplay, pickled or None).
unsafe fn excinfo(snap: Snapshot) -> PyResult<Owned> {
    // SAFETY: the GIL is held; all parts become objects of this interpreter.
    unsafe {
        let pickled = snap.pickled.map_or(Value::None, Value::Bytes);
        let value = Value::Tuple(vec![
            Value::Str(snap.type_name.into()),
            Value::Str(snap.type_qualname.into()),
            Value::Str(snap.type_module.into()),
            Value::Str(snap.msg.into()),
            Value::Str(snap.formatted.into()),
            Value::Str(snap.errdisplay.into()),
            pickled,
        ]);
        from_value(&value)
    }
}

/// Common tail of exec / set_main_attrs: None on success, excinfo on failure.
unsafe fn none_or_excinfo(module: *mut PyObject, outcome: Result<Outcome, InterpError>) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match outcome {
            Ok(Outcome::Returned(_)) => py::none(),
            Ok(Outcome::Failed(snap)) => excinfo(snap).map_or(std::ptr::null_mut(), Owned::into_ptr),
            Ok(Outcome::NotShareable(msg)) => raise_convert(module, ConvertError::NotShareable(msg)),
            Err(e) => raise_interp(module, e),
        }
    }
}

fn into_ptr(result: PyResult<Owned>) -> *mut PyObject {
    result.map_or(std::ptr::null_mut(), Owned::into_ptr)
}

unsafe extern "C" fn register_errors(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("_register_errors", nargs, 3).is_err() {
            return std::ptr::null_mut();
        }
        for i in 0..3 {
            if PyExceptionClass_Check(*args.add(i)) == 0 {
                return py::raise(PyExc_TypeError, "_register_errors() takes exception classes").into_null();
            }
        }
        let Ok(retired) = retired_classes(module) else {
            return std::ptr::null_mut();
        };
        let st = state(module);
        let slots = [&mut st.interpreter_error, &mut st.interpreter_not_found, &mut st.not_shareable];
        for (i, slot) in slots.into_iter().enumerate() {
            let old = std::mem::replace(slot, Py_NewRef(*args.add(i)));
            // Other threads read these slots without a lock (a free-threaded
            // build has no GIL to stop them): a class replaced by a reload
            // stays alive, in the module's `errors` dict, until the module goes.
            if !old.is_null() {
                let kept = PyList_Append(retired.as_ptr(), old);
                Py_DECREF(old);
                if kept < 0 {
                    return std::ptr::null_mut();
                }
            }
        }
        py::none()
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

unsafe extern "C" fn create(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("create", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        let path_arg = *args;
        let daemon_threads = match PyObject_IsTrue(*args.add(1)) {
            rc if rc < 0 => return std::ptr::null_mut(),
            rc => rc == 1,
        };
        let sys_path = if path_arg == Py_None() {
            None
        } else {
            match to_value::to_value(path_arg, Fallback::Refuse) {
                Ok(value) => Some(value),
                Err(e) => return raise_convert(module, e),
            }
        };
        match interp::create(sys_path.as_ref(), daemon_threads) {
            Ok(id) => PyLong_FromLongLong(id),
            Err(e) => raise_interp(module, e),
        }
    }
}

unsafe extern "C" fn close(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("close", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        match interp::close(id) {
            Ok(()) => py::none(),
            Err(e) => raise_interp(module, e),
        }
    }
}

unsafe fn id_list(ids: &[i64]) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { into_ptr(from_value(&Value::List(ids.iter().map(|&id| Value::Int(id)).collect()))) }
}

unsafe extern "C" fn all_ids(_module: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { id_list(&interp::all_ids()) }
}

unsafe extern "C" fn our_ids(_module: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { id_list(&interp::TABLE.ids()) }
}

unsafe extern "C" fn current_id(_module: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { PyLong_FromLongLong(interp::current_id()) }
}

unsafe extern "C" fn main_id(_module: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { PyLong_FromLongLong(interp::main_id()) }
}

/// Shared shape of the `f(id) -> bool` queries.
unsafe fn id_query(
    args: Args,
    nargs: Py_ssize_t,
    name: &str,
    query: impl FnOnce(i64) -> bool,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args(name, nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        match arg_id(*args) {
            Ok(id) => py::new_bool(query(id)),
            Err(_) => std::ptr::null_mut(),
        }
    }
}

unsafe extern "C" fn exists(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held, as `exists` requires.
    unsafe { id_query(args, nargs, "exists", |id| interp::exists(id)) }
}

unsafe extern "C" fn is_ours(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { id_query(args, nargs, "is_ours", |id| interp::TABLE.contains(id)) }
}

unsafe extern "C" fn incref(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe { id_query(args, nargs, "incref", |id| interp::TABLE.incref(id)) }
}

unsafe extern "C" fn decref(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: the GIL is held; the current interpreter exists while we run in it.
    unsafe {
        let current = interp::current_id();
        // Not from an interpreter that is itself being closed: its teardown
        // drops its objects, and closing others from inside it is not ours to do.
        id_query(args, nargs, "decref", |id| {
            interp::TABLE.decref(id) == Some(0) && !interp::TABLE.is_closing(current)
        })
    }
}

unsafe extern "C" fn is_running(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("is_running", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        if id == interp::main_id() {
            return py::new_bool(true); // the main interpreter always runs its __main__
        }
        match interp::TABLE.is_running(id) {
            Ok(running) => py::new_bool(running),
            Err(_) if interp::exists(id) => py::new_bool(id == interp::current_id()),
            Err(e) => raise_interp(module, e.into()),
        }
    }
}

unsafe extern "C" fn exec(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("exec", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        let source = *args.add(1);
        if PyCode_Check(source) != 0 {
            let Some(marshalled) = Owned::from_new(PyMarshal_WriteObjectToString(source, 4)) else {
                return std::ptr::null_mut();
            };
            let data = PyBytes_AsString(marshalled.as_ptr()).cast::<u8>();
            let len = PyBytes_Size(marshalled.as_ptr()) as usize;
            let bytes = std::slice::from_raw_parts(data, len).to_vec();
            drop(marshalled);
            return none_or_excinfo(module, run::exec_code(id, &bytes));
        }
        if PyUnicode_Check(source) == 0 {
            let msg = format!("exec() expects source code as a str, not {}", py::type_name(source));
            return py::raise(PyExc_TypeError, &msg).into_null();
        }
        let Ok(text) = py::str_utf8(source) else {
            return std::ptr::null_mut();
        };
        let text = text.to_owned();
        none_or_excinfo(module, run::exec(id, &text))
    }
}

unsafe extern "C" fn call(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("call", nargs, 4).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        let (callable, call_args, kwargs) = (*args.add(1), *args.add(2), *args.add(3));
        if PyTuple_Check(call_args) == 0 || (kwargs != Py_None() && PyDict_Check(kwargs) == 0) {
            return py::raise(PyExc_TypeError, "call() takes an args tuple and a kwargs dict or None")
                .into_null();
        }
        let kwargs = if kwargs == Py_None() { std::ptr::null_mut() } else { kwargs };
        let outcome = match run::call(id, callable, call_args, kwargs) {
            Err(e) => return raise_interp(module, e),
            Ok(Err(e)) => return raise_convert(module, e),
            Ok(Ok(outcome)) => outcome,
        };
        let (ok, payload) = match outcome {
            Outcome::Returned(value) => (true, from_value(&value)),
            Outcome::Failed(snap) => (false, excinfo(snap)),
            Outcome::NotShareable(msg) => return raise_convert(module, ConvertError::NotShareable(msg)),
        };
        let Ok(payload) = payload else {
            return std::ptr::null_mut();
        };
        let pair = PyTuple_New(2);
        if pair.is_null() {
            return pair;
        }
        PyTuple_SET_ITEM(pair, 0, py::new_bool(ok));
        PyTuple_SET_ITEM(pair, 1, payload.into_ptr());
        pair
    }
}

/// How a call of `call_many` failed: 1 it raised there (payload: excinfo),
/// 2 it could not cross or raised while converting here (payload: the
/// exception to raise).
const CALL_RAISED: i64 = 1;
const CALL_NOT_SENT: i64 = 2;

/// `call_many(id, tasks, budget)`: each task is an object with `fn`, `args`
/// (a tuple) and `kwargs` (a dict or None) attributes. Returns `(results,
/// failures, seconds)` for a prefix of `tasks`: `results[i]` is task i's
/// result (None if it failed), `failures` a list of `(i, kind, payload)`,
/// `seconds` the time the calls ran in the target. No tuple per
/// task: a tiny task's cost is mostly allocations on the caller's side.
unsafe extern "C" fn call_many(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL. Each
    // object converted is held by a reference of ours (`held`) until the
    // conversion is over, since converting can run Python code.
    unsafe {
        if expect_args("call_many", nargs, 3).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        let (list, budget) = (*args.add(1), *args.add(2));
        if PyList_Check(list) == 0 {
            return py::raise(PyExc_TypeError, "call_many() takes a list of tasks").into_null();
        }
        let budget = PyFloat_AsDouble(budget);
        if budget == -1.0 && !PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        if !budget.is_finite() || budget < 0.0 {
            return py::raise(PyExc_ValueError, "call_many() budget must be a finite number of seconds >= 0")
                .into_null();
        }
        let st = state(module);
        let names = [st.name_fn, st.name_args, st.name_kwargs];
        if names.iter().any(|name| name.is_null()) {
            return py::raise(PyExc_SystemError, "call_many() called before the module was set up")
                .into_null();
        }
        let attr = |task: *mut PyObject, name: *mut PyObject| py::check(PyObject_GetAttr(task, name));
        let mut held = Vec::new();
        let mut calls = Vec::new();
        let mut i = 0;
        // A reference per task: reading its attributes can run code that
        // changes the list (and another thread may, on a free-threaded build).
        while i < PyList_Size(list) {
            let Ok(task) = py::check(compat::PyList_GetItemRef(list, i)) else {
                return std::ptr::null_mut();
            };
            i += 1;
            let task = task.as_ptr();
            let Ok(callable) = attr(task, names[0]) else { return std::ptr::null_mut() };
            let Ok(call_args) = attr(task, names[1]) else { return std::ptr::null_mut() };
            let Ok(kwargs) = attr(task, names[2]) else { return std::ptr::null_mut() };
            let (a, k) = (call_args.as_ptr(), kwargs.as_ptr());
            if PyTuple_Check(a) == 0 || (k != Py_None() && PyDict_Check(k) == 0) {
                return py::raise(
                    PyExc_TypeError,
                    "call_many() tasks need an args tuple and a kwargs dict or None",
                )
                .into_null();
            }
            let empty = k == Py_None() || PyDict_Size(k) == 0;
            calls.push(run::BatchCall {
                callable: callable.as_ptr(),
                args: a,
                kwargs: if empty { std::ptr::null_mut() } else { k },
            });
            held.extend([callable, call_args, kwargs]);
        }
        let (items, running) = match run::call_many(id, &calls, std::time::Duration::from_secs_f64(budget)) {
            Ok(done) => done,
            Err(e) => return raise_interp(module, e),
        };
        drop(calls);
        drop(held);
        let result = (|| -> PyResult<Owned> {
            let results = py::check(PyList_New(items.len() as Py_ssize_t))?;
            let failures = py::check(PyList_New(0))?;
            for (i, item) in items.into_iter().enumerate() {
                let failure = match item {
                    run::BatchItem::Ran(Outcome::Returned(value)) => {
                        PyList_SET_ITEM(results.as_ptr(), i as Py_ssize_t, from_value(&value)?.into_ptr());
                        continue;
                    }
                    run::BatchItem::Ran(Outcome::Failed(snap)) => (CALL_RAISED, excinfo(snap)?),
                    run::BatchItem::Ran(Outcome::NotShareable(msg))
                    | run::BatchItem::NotSent(run::NotSent::NotShareable(msg)) => {
                        (CALL_NOT_SENT, not_shareable_error(module, &msg)?)
                    }
                    run::BatchItem::NotSent(run::NotSent::Raised(exc)) => match exc {
                        Some(exc) => (CALL_NOT_SENT, exc),
                        None => (CALL_NOT_SENT, not_shareable_error(module, "conversion failed")?),
                    },
                };
                PyList_SET_ITEM(results.as_ptr(), i as Py_ssize_t, py::none());
                let (kind, payload) = failure;
                let entry = py::check(PyTuple_New(3))?;
                PyTuple_SET_ITEM(
                    entry.as_ptr(),
                    0,
                    py::check(PyLong_FromSsize_t(i as Py_ssize_t))?.into_ptr(),
                );
                PyTuple_SET_ITEM(entry.as_ptr(), 1, py::check(PyLong_FromLongLong(kind))?.into_ptr());
                PyTuple_SET_ITEM(entry.as_ptr(), 2, payload.into_ptr());
                if PyList_Append(failures.as_ptr(), entry.as_ptr()) < 0 {
                    return Err(Raised);
                }
            }
            let running = py::check(PyFloat_FromDouble(running.as_secs_f64()))?;
            let triple = py::check(PyTuple_New(3))?;
            PyTuple_SET_ITEM(triple.as_ptr(), 0, results.into_ptr());
            PyTuple_SET_ITEM(triple.as_ptr(), 1, failures.into_ptr());
            PyTuple_SET_ITEM(triple.as_ptr(), 2, running.into_ptr());
            Ok(triple)
        })();
        result.map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

/// A `NotShareableError(msg)` instance, to be raised later by the caller.
///
/// # Safety
/// The GIL is held.
unsafe fn not_shareable_error(module: *mut PyObject, msg: &str) -> PyResult<Owned> {
    // SAFETY: the GIL is held; the class is registered at import (a builtin
    // fallback before that).
    unsafe {
        let class = or_default(state(module).not_shareable, PyExc_TypeError);
        let text = py::check(py::new_str(msg))?;
        py::check(PyObject_CallOneArg(class, text.as_ptr()))
    }
}

unsafe extern "C" fn set_main_attrs(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("set_main_attrs", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        let ns = *args.add(1);
        if PyDict_Check(ns) == 0 {
            return py::raise(PyExc_TypeError, "set_main_attrs() takes a dict").into_null();
        }
        match run::set_main_attrs(id, ns) {
            Ok(Err(e)) => raise_convert(module, e),
            Ok(Ok(outcome)) => none_or_excinfo(module, Ok(outcome)),
            Err(e) => raise_interp(module, e),
        }
    }
}

unsafe extern "C" fn is_shareable(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("is_shareable", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        py::new_bool(to_value::is_shareable(*args))
    }
}

unsafe extern "C" fn interrupt(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("interrupt", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        if id == interp::current_id() {
            return raise_interp(
                module,
                InterpError::Refused("an interpreter cannot interrupt itself".into()),
            );
        }
        py::new_bool(interp::interrupt(id))
    }
}

unsafe extern "C" fn wait_idle(_module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("wait_idle", nargs, 2).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        let timeout = PyFloat_AsDouble(*args.add(1));
        if timeout == -1.0 && !PyErr_Occurred().is_null() {
            return std::ptr::null_mut();
        }
        let timeout = std::time::Duration::from_secs_f64(timeout.clamp(0.0, 1e9));
        // Waiting must not hold our GIL: the runner may need it to finish.
        let saved = PyEval_SaveThread();
        let idle = interp::TABLE.wait_until_idle(id, timeout);
        PyEval_RestoreThread(saved);
        py::new_bool(idle)
    }
}

unsafe extern "C" fn thread_state_count(
    module: *mut PyObject,
    args: Args,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("thread_state_count", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(id) = arg_id(*args) else {
            return std::ptr::null_mut();
        };
        match interp::thread_state_count(id) {
            Ok(n) => PyLong_FromSize_t(n),
            Err(e) => raise_interp(module, e),
        }
    }
}

/// The module's `errors` dict, made on first use.
///
/// # Safety
/// The GIL is held and `module` is this extension's module. Called only
/// while the package registers its classes, under the import lock.
unsafe fn errors_dict(module: *mut PyObject) -> PyResult<*mut PyObject> {
    // SAFETY: the dict, once made, is owned by the module state until it is cleared.
    unsafe {
        let st = state(module);
        if st.errors.is_null() {
            st.errors = py::check(PyDict_New())?.into_ptr();
        }
        Ok(st.errors)
    }
}

/// The list, in the `errors` dict, that keeps classes replaced by a later
/// registration alive for as long as the module.
///
/// # Safety
/// As for [`errors_dict`].
unsafe fn retired_classes(module: *mut PyObject) -> PyResult<Owned> {
    // SAFETY: forwarded; every reference taken here is owned.
    unsafe {
        let errors = errors_dict(module)?;
        let key = py::check(PyUnicode_FromString(c" retired".as_ptr()))?;
        let fresh = py::check(PyList_New(0))?;
        py::dict_setdefault(errors, key.as_ptr(), fresh.as_ptr())
    }
}

unsafe extern "C" fn register_error_classes(
    module: *mut PyObject,
    args: Args,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if expect_args("_register_error_classes", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        if PyDict_Check(*args) == 0 {
            return py::raise(PyExc_TypeError, "_register_error_classes() takes a dict").into_null();
        }
        // Each module registers its own classes; a later registration of a
        // name (after importlib.reload) replaces the earlier class.
        let Ok(errors) = errors_dict(module) else {
            return std::ptr::null_mut();
        };
        // PyDict_Update locks the dict; readers take references (raise_named).
        if PyDict_Update(errors, *args) < 0 {
            return std::ptr::null_mut();
        }
        py::none()
    }
}
