//! The channel functions of `_core` (PEP 554 channels). Each takes a `Handle`
//! of a channel end first; `interpreters_aio.RecvChannel` / `SendChannel`
//! wrap them.
//!
//! A rendezvous send (`maxsize` 0) queues the item and waits for its ack; if
//! the sender stops waiting (timeout, Ctrl-C) it retracts the item, which
//! either removes it or finds it already received: delivered once or not at
//! all (DESIGN rule 6). A signal's handler runs only once the outcome is
//! known (see `rendezvous_send`).

use std::sync::Arc;

use interpreters_aio_core::channel::{Channel, End, EndError, CHANNELS};
use interpreters_aio_core::fifo::{Ack, Capacity, Item, Received, Unbound, Wait};
use interpreters_aio_core::parker::WaitResult;
use interpreters_aio_core::{Shared, Value};
use pyo3_ffi::*;

use crate::from_value::from_value;
use crate::handles::{self, Target};
use crate::interp;
use crate::module::{raise_named, state};
use crate::py::{self, Owned, PyResult, Raised};
use crate::queues::{bool_arg, check_nargs, fd_pair, float_arg, int_arg, pair};
use crate::to_value::{to_value_lending, ConvertError, Fallback};
use crate::wait::{deadline, pop_or_wait, push_or_wait, raise_cancelled, wait_once, Popped, Pushed};

type Args = *mut *mut PyObject;

fn null<T>(_: T) -> *mut PyObject {
    std::ptr::null_mut()
}

/// The channel and end behind a `Handle` argument.
///
/// # Safety
/// The GIL is held and `obj` is live.
unsafe fn end_arg<'a>(obj: *mut PyObject) -> PyResult<(&'a Arc<Channel>, End)> {
    // SAFETY: forwarded from the caller.
    match unsafe { handles::handle_of(obj) } {
        Some(Target::Channel(c, end)) => Ok((c, *end)),
        // SAFETY: the GIL is held.
        _ => Err(unsafe { py::raise(PyExc_TypeError, "expected a channel end") }),
    }
}

/// Raises the error for a refused association.
unsafe fn raise_end(module: *mut PyObject, id: u64, end: End, err: EndError) -> *mut PyObject {
    let side = if end == End::Recv { "receiving" } else { "sending" };
    // SAFETY: the GIL is held.
    unsafe {
        match err {
            EndError::Closed => {
                null(raise_named(module, c"ChannelClosedError", &format!("channel {id} is closed")))
            }
            EndError::Released => null(raise_named(
                module,
                c"ChannelReleasedError",
                &format!("the {side} end of channel {id} was released by this interpreter"),
            )),
        }
    }
}

/// `channel_create(recv_cls, send_cls, maxsize, allow_pickle) -> (recv, send)`.
pub unsafe extern "C" fn channel_create(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("channel_create", nargs, 4)?;
            Ok((int_arg(args, 2)?, bool_arg(args, 3)?))
        })();
        let Ok((maxsize, allow_pickle)) = parsed else { return std::ptr::null_mut() };
        let (recv_cls, send_cls) = (*args, *args.add(1));
        if PyType_Check(recv_cls) == 0 || PyType_Check(send_cls) == 0 {
            return null(py::raise(PyExc_TypeError, "channel_create() takes two classes"));
        }
        let channel = Channel::create(maxsize.max(0) as usize, allow_pickle);
        let Some(recv) = Owned::from_new(handles::new_handle(
            recv_cls.cast(),
            Target::Channel(Arc::clone(&channel), End::Recv),
        )) else {
            return std::ptr::null_mut();
        };
        let send = handles::new_handle(send_cls.cast(), Target::Channel(channel, End::Send));
        pair(recv, send)
    }
}

/// `channel_send(end, obj, block, timeout, as_buffer) -> bool`: True when
/// sent (for a non-blocking send: handed to a parked receiver, or queued in
/// the buffer), False when a non-blocking send would have had to wait.
pub unsafe extern "C" fn channel_send(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("channel_send", nargs, 5)?;
            Ok((end_arg(*args)?, bool_arg(args, 2)?, float_arg(args, 3)?, bool_arg(args, 4)?))
        })();
        let Ok(((channel, end), block, timeout, as_buffer)) = parsed else { return std::ptr::null_mut() };
        let id = channel.id();
        if end != End::Send {
            return null(py::raise(PyExc_TypeError, "send() needs the sending end of a channel"));
        }
        let me = interp::current_id();
        if let Err(e) = channel.associate(End::Send, me) {
            return raise_end(module, id, end, e);
        }
        let obj = *args.add(1);
        let value = if as_buffer {
            match handles::buffer_of(obj) {
                Some(bytes) => Value::Buffer(Shared(Arc::clone(bytes))),
                None => match handles::copy_buffer(obj) {
                    Ok(bytes) => Value::Buffer(Shared(bytes)),
                    Err(Raised) => return std::ptr::null_mut(),
                },
            }
        } else {
            let fallback = if channel.allow_pickle { Fallback::Pickle } else { Fallback::Refuse };
            crate::lending::settle(module);
            match to_value_lending(obj, fallback, crate::lending::lender(module)) {
                Ok(v) => v,
                Err(ConvertError::NotShareable(msg)) => {
                    let class = state(module).not_shareable;
                    let class = if class.is_null() { PyExc_TypeError } else { class };
                    let hint = if channel.allow_pickle {
                        ""
                    } else {
                        " (create the channel with pickle=True to send it by pickle)"
                    };
                    return null(py::raise(class, &format!("{msg}{hint}")));
                }
                Err(ConvertError::Raised) => return std::ptr::null_mut(),
            }
        };
        let item = Item { value, origin: me, unbound: Unbound::Replace };
        let until = deadline(timeout);
        if block && channel.fifo.capacity() == Capacity::Rendezvous {
            return rendezvous_send(module, channel, item, until);
        }
        match push_or_wait(module, &channel.fifo, item, block, until) {
            Ok(Pushed::Sent) => py::new_bool(true),
            Ok(Pushed::Full) if !block => py::new_bool(false),
            Ok(Pushed::Full) => null(raise_named(
                module,
                c"NotReceivedError",
                &format!("channel {id} stayed full: the object was not sent"),
            )),
            Ok(Pushed::Closed) => raise_end(module, id, end, EndError::Closed),
            Err(Raised) => std::ptr::null_mut(),
        }
    }
}

/// Queues `item` and waits until a receiver takes it; gives it back if the
/// wait ends first.
///
/// A signal that interrupts the wait is looked at only after the item is
/// taken back: if a receiver got it first, the send succeeded and the
/// handler runs at the caller's next check; otherwise the handler runs now
/// and, if it raises, nothing was sent (if it does not, the item is queued
/// again and the wait goes on). Running the handler first would let a
/// receiver take the item meanwhile, and the caller, seeing
/// KeyboardInterrupt, would send it twice.
unsafe fn rendezvous_send(
    module: *mut PyObject,
    channel: &Channel,
    item: Item,
    until: Option<std::time::Instant>,
) -> *mut PyObject {
    let id = channel.id();
    // SAFETY: the GIL is held.
    let closed = || unsafe { raise_end(module, id, End::Send, EndError::Closed) };
    let Ok(mut seq) = channel.fifo.try_push(item, true, true) else { return closed() };
    loop {
        // SAFETY: the GIL is held and we hold no borrowed object.
        let waited = unsafe { wait_once(&channel.fifo, Wait::Ack(seq), until) };
        if waited == WaitResult::Ready {
            break;
        }
        let Some(item) = channel.fifo.take_back(seq) else {
            break; // received (or discarded by a forced close) meanwhile
        };
        match waited {
            WaitResult::Interrupted => {
                // SAFETY: the GIL is held.
                if unsafe { PyErr_CheckSignals() } < 0 {
                    return std::ptr::null_mut();
                }
                match channel.fifo.try_push(item, true, true) {
                    Ok(again) => seq = again,
                    Err(_) => return closed(),
                }
            }
            // SAFETY: the GIL is held.
            WaitResult::Cancelled => return null(unsafe { raise_cancelled(module) }),
            _ => {
                // SAFETY: the GIL is held.
                return unsafe {
                    null(raise_named(
                        module,
                        c"NotReceivedError",
                        &format!("nothing received the object sent on channel {id} in time; it was not sent"),
                    ))
                };
            }
        }
    }
    match channel.fifo.take_ack(seq) {
        Some(Ack::Discarded) => closed(),
        // SAFETY: the GIL is held.
        _ => unsafe { py::new_bool(true) },
    }
}

/// `channel_recv(end, block, timeout) -> (True, obj)`, or `(False, None)`
/// when nothing came (non-blocking, or timed out).
pub unsafe extern "C" fn channel_recv(module: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("channel_recv", nargs, 3)?;
            Ok((end_arg(*args)?, bool_arg(args, 1)?, float_arg(args, 2)?))
        })();
        let Ok(((channel, end), block, timeout)) = parsed else { return std::ptr::null_mut() };
        let id = channel.id();
        if end != End::Recv {
            return null(py::raise(PyExc_TypeError, "recv() needs the receiving end of a channel"));
        }
        crate::lending::settle(module);
        let me = interp::current_id();
        if let Err(e) = channel.associate(End::Recv, me) {
            return raise_end(module, id, end, e);
        }
        let until = deadline(timeout);
        let still_associated = || {
            channel.check(End::Recv, me).map_err(|e| {
                raise_end(module, id, end, e);
                Raised
            })
        };
        loop {
            return match pop_or_wait(module, &channel.fifo, block, until, still_associated) {
                Ok(Popped::Got(Received::Value(value))) => match from_value(&value) {
                    Ok(obj) => pair(Owned::from_borrowed(Py_True()), obj.into_ptr()),
                    Err(Raised) => {
                        channel.fifo.restore_front(Item { value, origin: me, unbound: Unbound::Replace });
                        std::ptr::null_mut()
                    }
                },
                // Channels keep items of closed interpreters; this cannot happen.
                Ok(Popped::Got(Received::Unbound(_))) => continue,
                Ok(Popped::Empty) => pair(Owned::from_borrowed(Py_False()), py::none()),
                Ok(Popped::Closed) => raise_end(module, id, end, EndError::Closed),
                Err(Raised) => std::ptr::null_mut(),
            };
        }
    }
}

/// `channel_async_receiver(end, arriving)`: a coroutine starts (true) or stops
/// (false) awaiting a receive, so rendezvous senders may hand it an item.
pub unsafe extern "C" fn channel_async_receiver(
    _m: *mut PyObject,
    args: Args,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("channel_async_receiver", nargs, 2)?;
            Ok((end_arg(*args)?, bool_arg(args, 1)?))
        })();
        let Ok(((channel, _), arriving)) = parsed else { return std::ptr::null_mut() };
        channel.fifo.async_receiver(arriving);
        py::none()
    }
}

/// `channel_release(end) -> bool` (PEP 554 `release()`).
pub unsafe extern "C" fn channel_release(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("channel_release", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok((channel, end)) = end_arg(*args) else { return std::ptr::null_mut() };
        py::new_bool(channel.release(end, interp::current_id()))
    }
}

/// `channel_close(end, force)` with the PEP's per-end rules.
pub unsafe extern "C" fn channel_close(
    module: *mut PyObject,
    args: Args,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        let parsed = (|| -> PyResult<_> {
            check_nargs("channel_close", nargs, 2)?;
            Ok((end_arg(*args)?, bool_arg(args, 1)?))
        })();
        let Ok(((channel, end), force)) = parsed else { return std::ptr::null_mut() };
        match end {
            End::Send => {
                channel.fifo.close_sending(force);
                py::none()
            }
            End::Recv => match channel.fifo.close_now(force) {
                Ok(()) => py::none(),
                Err(_) => null(raise_named(
                    module,
                    c"ChannelNotEmptyError",
                    &format!(
                        "channel {} is not empty (close(force=True) discards what is left)",
                        channel.id()
                    ),
                )),
            },
        }
    }
}

/// `channel_info(end) -> (id, maxsize, count, closed, allow_pickle, parked_receivers)`.
pub unsafe extern "C" fn channel_info(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("channel_info", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok((c, end)) = end_arg(*args) else { return std::ptr::null_mut() };
        let info = Value::Tuple(vec![
            Value::Int(c.id() as i64),
            Value::Int(c.maxsize() as i64),
            Value::Int(c.fifo.len() as i64),
            Value::Bool(c.end_closed(end)),
            Value::Bool(c.allow_pickle),
            Value::Int(c.fifo.parked_receivers() as i64),
        ]);
        from_value(&info).map_or(std::ptr::null_mut(), Owned::into_ptr)
    }
}

/// `channel_interpreters(end) -> list of interpreter ids`.
pub unsafe extern "C" fn channel_interpreters(
    module: *mut PyObject,
    args: Args,
    nargs: Py_ssize_t,
) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("channel_interpreters", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok((c, end)) = end_arg(*args) else { return std::ptr::null_mut() };
        match c.interpreters(end) {
            Ok(ids) => from_value(&Value::List(ids.into_iter().map(Value::Int).collect()))
                .map_or(std::ptr::null_mut(), Owned::into_ptr),
            Err(e) => raise_end(module, c.id(), end, e),
        }
    }
}

/// `channel_fds(end) -> (recv_fd, send_fd)`.
pub unsafe extern "C" fn channel_fds(_m: *mut PyObject, args: Args, nargs: Py_ssize_t) -> *mut PyObject {
    // SAFETY: CPython passes `nargs` valid arguments under the GIL.
    unsafe {
        if check_nargs("channel_fds", nargs, 1).is_err() {
            return std::ptr::null_mut();
        }
        let Ok((c, _)) = end_arg(*args) else { return std::ptr::null_mut() };
        fd_pair(c.fifo.recv_fd(), c.fifo.send_fd())
    }
}

/// `channel_ids() -> list of ids of live, open channels`.
pub unsafe extern "C" fn channel_ids(_m: *mut PyObject, _args: Args, _nargs: Py_ssize_t) -> *mut PyObject {
    let ids = CHANNELS
        .live()
        .iter()
        .filter(|c| !c.end_closed(End::Recv))
        .map(|c| Value::Int(c.id() as i64))
        .collect();
    // SAFETY: the GIL is held.
    unsafe { from_value(&Value::List(ids)).map_or(std::ptr::null_mut(), Owned::into_ptr) }
}

/// `close_all_for_exit()`: closes every queue and channel so that any thread
/// blocked on one wakes up (used at process exit).
pub unsafe extern "C" fn close_all_for_exit(
    _m: *mut PyObject,
    _args: Args,
    _nargs: Py_ssize_t,
) -> *mut PyObject {
    for channel in CHANNELS.live() {
        channel.fifo.close_sending(false);
        let _ = channel.fifo.close_now(true);
    }
    for queue in interpreters_aio_core::queue::QUEUES.live() {
        queue.fifo.close_sending(false);
        let _ = queue.fifo.close_now(true);
    }
    // SAFETY: the GIL is held.
    unsafe { py::none() }
}
