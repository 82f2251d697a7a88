"""Async-first views of queues, channel ends and interpreters (DESIGN section 7).

Waiting happens on the ends' descriptors inside the running event loop
(``loop.add_reader``): no helper thread per wait, no polling, no sleep. A
waiting coroutine retries the non-blocking operation when the descriptor
fires, with no ``await`` in between, so cancelling it (``Task.cancel``,
``asyncio.timeout``, ``wait_for``) can only interrupt the wait itself:
nothing has been taken or sent at that point, so nothing is lost or
duplicated.

    q = interpreters.create_queue().aio      # an asyncio.Queue-like view
    await q.put(1); item = await q.get()
    r, s = interpreters.create_channel()
    await s.aio.send("x"); got = await r.aio.recv()
    interp = await aio.create()              # an interpreter driven from async code
    result = await interp.call(work, 10)     # runs on its own worker thread

It works in any interpreter that runs an event loop.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from . import _core
from ._channels import ChannelClosedError, RecvChannel, SendChannel
from ._interpreter import Interpreter
from ._interpreter import create as _create_blocking
from ._queues import Queue, QueueClosed, QueueEmpty, QueueFull

__all__ = [
    "AsyncInterpreter",
    "AsyncQueue",
    "AsyncRecvChannel",
    "AsyncSendChannel",
    "InterpreterPool",
    "create",
    "select",
]


class _Readiness:
    """The coroutines of one event loop awaiting one descriptor.

    The loop watches the descriptor once, however many await it, and each
    readiness event wakes one waiter (FIFO). The descriptor is
    level-triggered, so while it stays readable the next waiter is woken on
    the next loop iteration: no waiter misses an item, and a thousand
    awaiters on one queue do not all wake for each item.

    Until the woken waiter has run (and taken the item, or given up), no
    other is woken: the descriptor still reads ready for the item it is about
    to take. The loop keeps watching when the last waiter leaves, until the
    next loop iteration: a coroutine that takes an item and awaits the next
    one (the usual loop) then costs no reader registration per item. While
    watched, the descriptor's owner is kept alive, so the descriptor cannot
    be closed (and its number reused) under the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        self._loop = loop
        self._fd = fd
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._woken: asyncio.Future[None] | None = None
        self._owner: object = None
        self._idle_check_pending = False

    def wait(self, owner: object) -> asyncio.Future[None]:
        """A future completed when the descriptor (owned by ``owner``) is
        readable and it is this waiter's turn; pass it to :meth:`discard` after."""
        fut = self._loop.create_future()
        self._waiters.append(fut)
        if self._owner is None:
            self._loop.add_reader(self._fd, self._ready)
            self._owner = owner
        return fut

    def _ready(self) -> None:
        if self._woken is not None:
            return  # the woken waiter has not run yet
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                self._woken = fut
                return
        self._unwatch()  # ready, and nobody waits

    def discard(self, fut: asyncio.Future[None]) -> None:
        """``fut``'s waiter is done waiting (woken, cancelled or timed out)."""
        if fut is self._woken:
            self._woken = None
        else:
            try:
                self._waiters.remove(fut)
            except ValueError:
                pass  # cancelled, and already skipped by _ready
        if self._waiters or self._idle_check_pending:
            return
        if self._loop.is_closed():  # a coroutine closed after its loop: nothing to unwatch
            self._owner = None
            return
        self._idle_check_pending = True
        self._loop.call_soon(self._unwatch_if_idle)

    def _unwatch_if_idle(self) -> None:
        self._idle_check_pending = False
        if not self._waiters and self._woken is None:
            self._unwatch()

    def _unwatch(self) -> None:
        if self._owner is not None:
            self._loop.remove_reader(self._fd)
            self._owner = None


_watched: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _Readiness]] = (
    weakref.WeakKeyDictionary()
)


def _readiness(fd: int) -> _Readiness:
    loop = asyncio.get_running_loop()
    per_loop = _watched.get(loop)
    if per_loop is None:
        per_loop = _watched[loop] = {}
    watcher = per_loop.get(fd)
    if watcher is None:
        watcher = per_loop[fd] = _Readiness(loop, fd)
    return watcher


async def _wait_readable(owner: object, fd: int) -> None:
    """Wait until ``fd`` (kept open by ``owner``) is readable and it is our turn."""
    watcher = _readiness(fd)
    fut = watcher.wait(owner)
    try:
        await fut
    finally:
        watcher.discard(fut)


_NOTHING = object()
"""A sentinel: no item now (the views' ``_take_nowait()``), or no default given."""


class _View:
    """Plumbing shared by the async views: each wraps one blocking object."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        self._target = target

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._target!r}>"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._target is self._target  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._target)

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return (type(self), (self._target,))

    @property
    def blocking(self) -> Any:
        """The blocking queue or channel end this view awaits."""
        return self._target


class AsyncQueue(_View):
    """An ``asyncio.Queue``-like view of a :class:`~interpreters_aio.Queue`.

    Views share their queue; ``.blocking`` is the queue itself. Iterating
    with ``async for`` gets items until the queue is closed and drained.
    """

    __slots__ = ()
    _target: Queue

    @property
    def maxsize(self) -> int:
        """The most items it holds (0: unbounded)."""
        return self._target.maxsize

    def qsize(self) -> int:
        """The number of items now."""
        return self._target.qsize()

    def empty(self) -> bool:
        """Whether it is empty now."""
        return self._target.empty()

    def full(self) -> bool:
        """Whether a put would have to wait now."""
        return self._target.full()

    def put_nowait(self, obj: object) -> None:
        """Add ``obj`` at once. Raises QueueFull, QueueClosed, NotShareableError."""
        self._target.put_nowait(obj)

    def get_nowait(self) -> Any:
        """Take the oldest item at once. Raises QueueEmpty, QueueClosed."""
        return self._target.get_nowait()

    async def put(self, obj: object) -> None:
        """Add ``obj``, waiting (without blocking the loop) while the queue is full.

        Raises:
            QueueClosed: the queue was closed.
            NotShareableError: ``obj`` cannot be sent.
            asyncio.CancelledError: cancelled while waiting; nothing was added.
        """
        while True:
            try:
                return self._target.put_nowait(obj)
            except QueueFull:
                await _wait_readable(self._target, self._target.put_fileno())

    async def get(self) -> Any:
        """Take the oldest item, waiting (without blocking the loop) while empty.

        Raises:
            QueueClosed: the queue was closed and is drained.
            asyncio.CancelledError: cancelled while waiting; nothing was taken.
        """
        while (got := self._take_nowait()) is _NOTHING:
            await _wait_readable(self._target, self._target.fileno())
        return got

    def _take_nowait(self) -> Any:
        """The oldest item, or ``_NOTHING`` if the queue is empty now."""
        try:
            return self._target.get_nowait()
        except QueueEmpty:
            return _NOTHING

    async def aclose(self) -> None:
        """Close the queue (puts fail; gets drain what is left)."""
        self._target.close()

    def __aiter__(self) -> AsyncQueue:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.get()
        except QueueClosed:
            raise StopAsyncIteration from None



class AsyncRecvChannel(_View):
    """An async view of a :class:`~interpreters_aio.RecvChannel` (trio/anyio style)."""

    __slots__ = ()
    _target: RecvChannel

    def recv_nowait(self, default: Any = _NOTHING) -> Any:
        """The next object if one is there; else ``default`` (or ChannelEmptyError)."""
        if default is _NOTHING:
            return self._target.recv_nowait()
        return self._target.recv_nowait(default)

    async def recv(self) -> Any:
        """Receive the next object, waiting without blocking the loop.

        While it waits, the coroutine counts as a waiting receiver, so a
        rendezvous sender may hand it an object.

        Raises:
            ChannelClosedError: the channel is closed (and empty).
            ChannelReleasedError: this interpreter released this end.
            asyncio.CancelledError: cancelled while waiting; nothing was taken
                (an object handed over meanwhile stays in the channel).
        """
        while True:
            got = self._take_nowait()
            if got is not _NOTHING:
                return got
            _core.channel_async_receiver(self._target, True)
            try:
                await _wait_readable(self._target, self._target.fileno())
            finally:
                _core.channel_async_receiver(self._target, False)

    def _take_nowait(self) -> Any:
        """The next object, or ``_NOTHING`` if none is there now."""
        return self._target.recv_nowait(_NOTHING)

    async def aclose(self) -> None:
        """Release this end in this interpreter (see ``RecvChannel.release``)."""
        self._target.release()

    async def __aenter__(self) -> AsyncRecvChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncRecvChannel:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.recv()
        except ChannelClosedError:
            raise StopAsyncIteration from None


class AsyncSendChannel(_View):
    """An async view of a :class:`~interpreters_aio.SendChannel`."""

    __slots__ = ()
    _target: SendChannel

    def send_nowait(self, obj: object) -> bool:
        """Send without waiting: True if sent, False if it would have had to wait."""
        return self._target.send_nowait(obj)

    async def send(self, obj: object) -> None:
        """Send ``obj``, waiting without blocking the loop until a receiver is
        waiting (``maxsize=0``) or the buffer has room.

        Raises:
            ChannelClosedError: the channel is closed.
            ChannelReleasedError: this interpreter released this end.
            NotShareableError: ``obj`` cannot be sent.
            asyncio.CancelledError: cancelled while waiting; nothing was sent.
        """
        while not self._target.send_nowait(obj):
            await _wait_readable(self._target, self._target.fileno())

    async def aclose(self) -> None:
        """Close the sending end; receivers get what was sent, then the end."""
        self._target.close()

    async def __aenter__(self) -> AsyncSendChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


AsyncEnd = AsyncQueue | AsyncRecvChannel


async def select(*ends: AsyncEnd) -> tuple[AsyncEnd, Any]:
    """Wait until the first of several queues or receiving ends has an item,
    and take it, like Go's ``select``: returns ``(end, item)``.

    Ends are tried in the order given, so earlier ends win ties. Cancelling
    it takes nothing.

    Raises:
        ValueError: no ends were given.
        QueueClosed, ChannelClosedError: an end is closed (and empty).
    """
    if not ends:
        raise ValueError("select() needs at least one queue or receiving end")
    while True:
        for end in ends:
            got = end._take_nowait()
            if got is not _NOTHING:
                return end, got
        waiting: list[tuple[_Readiness, asyncio.Future[None]]] = []
        channels = [end.blocking for end in ends if isinstance(end, AsyncRecvChannel)]
        for channel in channels:
            _core.channel_async_receiver(channel, True)
        try:
            for end in ends:
                watcher = _readiness(end.blocking.fileno())
                waiting.append((watcher, watcher.wait(end.blocking)))
            await asyncio.wait([fut for _, fut in waiting], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for watcher, fut in waiting:
                watcher.discard(fut)
            for channel in channels:
                _core.channel_async_receiver(channel, False)


class AsyncInterpreter:
    """An interpreter driven from async code.

    Work runs on a worker thread of its own, inside the interpreter, while
    the event loop keeps serving. Awaits on one interpreter queue up in
    order instead of failing with "already running".

    Cancelling an awaiting task stops the *waiting*: the code already started
    in the interpreter runs to completion on the worker thread (Python code
    in another interpreter cannot be stopped safely from outside), and the
    next queued await starts after it.
    """

    __slots__ = ("__weakref__", "_interp", "_worker")

    def __init__(self, interp: Interpreter) -> None:
        self._interp = interp
        self._worker = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix=f"interpreters_aio-{interp.id}"
        )

    def __repr__(self) -> str:
        return f"<AsyncInterpreter {self._interp.id}>"

    @property
    def blocking(self) -> Interpreter:
        """The interpreter this view drives."""
        return self._interp

    @property
    def id(self) -> int:
        """The interpreter's id."""
        return self._interp.id

    async def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, lambda: func(*args, **kwargs))

    async def exec(self, code: str, /) -> None:
        """``Interpreter.exec`` on the worker thread; raises ExecutionFailed on error."""
        await self._run(self._interp.exec, code)

    async def call(self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """``Interpreter.call`` on the worker thread; returns the result."""
        return await self._run(self._interp.call, callable, *args, **kwargs)

    async def prepare_main(self, ns: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """``Interpreter.prepare_main`` on the worker thread."""
        await self._run(self._interp.prepare_main, ns, **kwargs)

    async def close(self) -> None:
        """Close the interpreter after the queued work, and stop the worker thread."""
        try:
            await self._run(self._interp.close)
        finally:
            self._worker.shutdown(wait=False)


_async_interpreters: weakref.WeakKeyDictionary[Interpreter, AsyncInterpreter] = (
    weakref.WeakKeyDictionary()
)


_async_interpreters_lock = threading.Lock()


def view_of_interpreter(interp: Interpreter) -> AsyncInterpreter:
    """The one async view of ``interp`` in this interpreter."""
    with _async_interpreters_lock:  # one view, even when threads ask at once
        view = _async_interpreters.get(interp)
        if view is None:
            view = _async_interpreters[interp] = AsyncInterpreter(interp)
        return view


async def create(*, daemon_threads: bool = False) -> AsyncInterpreter:
    """Create an interpreter (on a worker thread, so the loop keeps serving).

    ``daemon_threads`` as for :func:`interpreters_aio.create`.
    """
    interp = await asyncio.to_thread(_create_blocking, daemon_threads=daemon_threads)
    return view_of_interpreter(interp)



class InterpreterPool:
    """An async-native pool of interpreters on worker threads.

    ``await pool.call(f, *args)`` runs ``f`` in one of the pool's
    interpreters; ``async for result in pool.map(f, items)`` yields results
    in order as they complete; ``async with`` closes the pool. Built on
    :class:`~interpreters_aio.InterpreterPoolExecutor` (workers are created up
    front). Cancelling an awaiting task stops the waiting; a task already
    running in an interpreter runs to completion.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        from .executor import InterpreterPoolExecutor

        self._executor = InterpreterPoolExecutor(
            max_workers, initializer=initializer, initargs=initargs, warm=True
        )

    @property
    def executor(self) -> Any:
        """The underlying ``InterpreterPoolExecutor``."""
        return self._executor

    async def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` in one of the pool's interpreters."""
        return await asyncio.wrap_future(self._executor.submit(fn, *args, **kwargs))

    async def map(self, fn: Callable[..., Any], *iterables: Any) -> Any:
        """Run ``fn`` over the items (all submitted at once); yield results in order."""
        futures = [self._executor.submit(fn, *args) for args in zip(*iterables, strict=False)]
        try:
            for future in futures:
                yield await asyncio.wrap_future(future)
        finally:
            for future in futures:
                future.cancel()

    async def aclose(self) -> None:
        """Finish the running tasks and close the interpreters."""
        await asyncio.to_thread(self._executor.shutdown)

    async def __aenter__(self) -> InterpreterPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
