//! The queue functions of `_core` (PEP 734 queues). Each takes a `Handle` of
//! a queue first; the Python class `interpreters_aio.Queue` wraps them.
//!
//! Errors are raised here, once, with messages that name the queue
//! (`queue 3 is empty`); the classes come from the Python layer.

use interpreters_aio_core::fifo::{Item, Received, Unbound};
use interpreters_aio_core::queue::{Queue, QUEUES};
use pyo3_ffi::*;

use crate::from_value::from_value;
use crate::handles::{self, Target};
use crate::interp;
use crate::module::{raise_named, state};
use crate::py::{self, Owned, PyResult, Raised};
use crate::to_value::{to_value_lending, ConvertError, Fallback};
use crate::wait::{deadline, pop_or_wait, push_or_wait, Popped, Pushed};

type Args = *mut *mut PyObject;

/// The queue behind a `Handle` argument.
///
/// # Safety
/// The GIL is held and `obj` is live.
pub unsafe fn queue_arg<'a>(obj: *mut PyObject) -> PyResult<&'a std::sync::Arc<Queue>> {
    // SAFETY: forwarded from the caller.
    match unsafe { handles::handle_of(obj) } {
        Some(Target::Queue(q)) => Ok(q),
        // SAFETY: the GIL is held.
        _ => Err(unsafe { py::raise(PyExc_TypeError, "expected a queue") }),
    }
}

pub fn unbound_from_int(op: i64) -> Option<Unbound> {
    match op {
        1 => Some(Unbound::Remove),
        2 => Some(Unbound::Error),
        3 => Some(Unbound::Replace),
        _ => None,
    }
}

pub fn unbound_to_int(op: Unbound) -> i64 {
    match op {
        Unbound::Remove => 1,
        Unbound::Error => 2,
        Unbound::Replace => 3,
    }
}

/// Reads positional argument `i` as an i64 / f64 / bool.
///
/// # Safety
/// The GIL is held and `args` has more than `i` items.
pub unsafe fn int_arg(args: Args, i: usize) -> PyResult<i64> {
    // SAFETY: forwarded from the caller.
    unsafe {
        let v = PyLong_AsLongLong(*args.add(i));
        if v == -1 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        Ok(v)
    }
}

/// # Safety
/// As for `int_arg`.
pub unsafe fn float_arg(args: Args, i: usize) -> PyResult<f64> {
    // SAFETY: forwarded from the caller.
    unsafe {
        let v = PyFloat_AsDouble(*args.add(i));
        if v == -1.0 && !PyErr_Occurred().is_null() {
            return Err(Raised);
        }
        Ok(v)
    }
}

/// # Safety
/// As for `int_arg`.
pub unsafe fn bool_arg(args: Args, i: usize) -> PyResult<bool> {
    // SAFETY: forwarded from the caller.
    unsafe {
        match PyObject_IsTrue(*args.add(i)) {
            -1 => Err(Raised),
            v => Ok(v == 1),
        }
    }
}

/// # Safety
/// The GIL is held.
pub unsafe fn check_nargs(name: &str, nargs: Py_ssize_t, expected: Py_ssize_t) -> PyResult<()> {
    if nargs == expected {
        return Ok(());
    }
    // SAFETY: the GIL is held.
    Err(unsafe {
        py::raise(PyExc_TypeError, &format!("{name}() takes {expected} arguments ({nargs} given)"))
    })
}

fn null<T>(_: T) -> *mut PyObject {
    std::ptr::null_mut()
}

/// `queue_create(cls, maxsize, unbound_op, strict) -> cls instance`.
pub unsafe extern "C" fn queue_create(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<(i64, Unbound, bool)> {
            check_nargs("queue_create", nargs, 4)?;
            let maxsize = int_arg(args, 1)?;
            let op = unbound_from_int(int_arg(args, 2)?)
                .ok_or_else(|| py::raise(PyExc_ValueError, "unknown unbound-items operation"))?;
            Ok((maxsize, op, bool_arg(args, 3)?))
        })();
        let Ok((maxsize, op, strict)) = parsed else { return std::ptr::null_mut() };
        let cls = *args;
        if PyType_Check(cls) == 0 {
            return null(py::raise(PyExc_TypeError, "queue_create() takes a class"));
        }
        let queue = Queue::create(maxsize, op, strict);
        handles::new_handle(cls.cast(), Target::Queue(queue))
    }
}

/// `queue_put(q, obj, block, timeout, unbound_op) -> None`; `unbound_op` 0
/// means the queue's default.
pub unsafe extern "C" fn queue_put(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("queue_put", nargs, 5)?;
            Ok((queue_arg(*args)?, bool_arg(args, 2)?, float_arg(args, 3)?, int_arg(args, 4)?))
        })();
        let Ok((queue, block, timeout, op)) = parsed else { return std::ptr::null_mut() };
        let unbound = unbound_from_int(op).unwrap_or(queue.default_unbound);
        let fallback = if queue.strict { Fallback::Refuse } else { Fallback::Pickle };
        crate::lending::settle(module);
        let value = match to_value_lending(*args.add(1), fallback, crate::lending::lender(module)) {
            Ok(v) => v,
            Err(ConvertError::NotShareable(msg)) => {
                return null(py::raise(or_type_error(state(module).not_shareable), &msg));
            }
            Err(ConvertError::Raised) => return std::ptr::null_mut(),
        };
        let id = queue.id();
        let item = Item { value, origin: interp::current_id(), unbound };
        match push_or_wait(module, &queue.fifo, item, block, deadline(timeout)) {
            Ok(Pushed::Sent) => py::none(),
            Ok(Pushed::Full) => null(raise_named(module, c"QueueFull", &format!("queue {id} is full"))),
            Ok(Pushed::Closed) => null(raise_named(module, c"QueueClosed", &format!("queue {id} is closed"))),
            Err(Raised) => std::ptr::null_mut(),
        }
    }
}

fn or_type_error(class: *mut PyObject) -> *mut PyObject {
    if class.is_null() {
        // SAFETY: reading a static exception class pointer.
        unsafe { PyExc_TypeError }
    } else {
        class
    }
}

/// `queue_get(q, block, timeout) -> (obj, unbound_op or None)`.
pub unsafe extern "C" fn queue_get(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("queue_get", nargs, 3)?;
            Ok((queue_arg(*args)?, bool_arg(args, 1)?, float_arg(args, 2)?))
        })();
        let Ok((queue, block, timeout)) = parsed else { return std::ptr::null_mut() };
        let id = queue.id();
        crate::lending::settle(module);
        match pop_or_wait(module, &queue.fifo, block, deadline(timeout), || Ok(())) {
            Ok(Popped::Got(Received::Value(value))) => match from_value(&value) {
                Ok(obj) => pair(obj, py::none()),
                Err(Raised) => {
                    // Rebuilding failed here (e.g. a class this interpreter
                    // cannot import): the item goes back, nothing is lost.
                    let origin = interp::current_id();
                    queue.fifo.restore_front(Item { value, origin, unbound: queue.default_unbound });
                    std::ptr::null_mut()
                }
            },
            Ok(Popped::Got(Received::Unbound(op))) => {
                pair(Owned::from_borrowed(Py_None()), PyLong_FromLongLong(unbound_to_int(op)))
            }
            Ok(Popped::Empty) => null(raise_named(module, c"QueueEmpty", &format!("queue {id} is empty"))),
            Ok(Popped::Closed) => null(raise_named(module, c"QueueClosed", &format!("queue {id} is closed"))),
            Err(Raised) => std::ptr::null_mut(),
        }
    }
}

/// A new 2-tuple; takes ownership of `b` (a new reference or null).
///
/// # Safety
/// The GIL is held.
pub unsafe fn pair(a: Owned, b: *mut PyObject) -> *mut PyObject {
    // SAFETY: the tuple takes both references.
    unsafe {
        if b.is_null() {
            return b;
        }
        let t = PyTuple_New(2);
        if t.is_null() {
            Py_DECREF(b);
            return t;
        }
        PyTuple_SET_ITEM(t, 0, a.into_ptr());
        PyTuple_SET_ITEM(t, 1, b);
        t
    }
}

/// `queue_info(q) -> (id, maxsize, qsize, full, closed, default_unbound_op, strict)`.
pub unsafe extern "C" fn queue_info(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("queue_info", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(q) = queue_arg(*args) else { return std::ptr::null_mut() };
        use interpreters_aio_core::fifo::Closing;
        use interpreters_aio_core::Value;
        let info = Value::Tuple(vec![
            Value::Int(q.id() as i64),
            Value::Int(q.maxsize()),
            Value::Int(q.fifo.len() as i64),
            Value::Bool(q.fifo.is_full()),
            Value::Bool(q.fifo.closing() != Closing::Open),
            Value::Int(unbound_to_int(q.default_unbound)),
            Value::Bool(q.strict),
        ]);
        from_value(&info).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

/// `queue_close(q)`: no more puts; gets drain what is left, then fail.
pub unsafe extern "C" fn queue_close(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("queue_close", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(q) = queue_arg(*args) else { return std::ptr::null_mut() };
        q.fifo.close_sending(false);
        py::none()
    }
}

/// `queue_fds(q) -> (recv_fd, send_fd)`.
pub unsafe extern "C" fn queue_fds(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("queue_fds", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok(q) = queue_arg(*args) else { return std::ptr::null_mut() };
        fd_pair(q.fifo.recv_fd(), q.fifo.send_fd())
    }
}

/// # Safety
/// The GIL is held.
pub unsafe fn fd_pair(recv: std::io::Result<i32>, send: std::io::Result<i32>) -> *mut PyObject {
    // SAFETY: the GIL is held.
    unsafe {
        match (recv, send) {
            (Ok(r), Ok(s)) => from_value(&interpreters_aio_core::Value::Tuple(vec![
                interpreters_aio_core::Value::Int(r as i64),
                interpreters_aio_core::Value::Int(s as i64),
            ]))
            .map_or(std::ptr::null_mut(), Owned::into_ptr),
            (Err(e), _) | (_, Err(e)) => {
                null(py::raise(PyExc_OSError, &format!("cannot create a descriptor: {e}")))
            }
        }
    }
}

/// `queue_ids() -> list of ids of live queues`.
pub unsafe extern "C" fn queue_ids(_m: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    let ids = QUEUES.live().iter().map(|q| interpreters_aio_core::Value::Int(q.id() as i64)).collect();
    // SAFETY: the GIL is held.
    unsafe {
        from_value(&interpreters_aio_core::Value::List(ids)).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}
