"""Cross-interpreter queues (PEP 734, as in CPython 3.14), on the Rust core.

Beyond 3.14: waiting is driven by the core's own wake-ups (no 10 ms polling,
exact float timeouts), every queue has pollable descriptors (:meth:`Queue.fileno`,
:meth:`Queue.put_fileno`), and a queue can be closed: after :meth:`Queue.close`,
``put`` raises :class:`QueueClosed` and ``get`` returns what is left, then
raises :class:`QueueClosed`; iterating a queue gets items until then.
"""

from __future__ import annotations

import queue as _stdlib_queue
from collections.abc import Iterator

from . import _core, _crossinterp, _handles
from ._crossinterp import _UNBOUND_CONSTANT_TO_FLAG, UNBOUND_ERROR, UNBOUND_REMOVE
from ._errors import InterpreterError

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "ItemInterpreterDestroyed",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "create",
    "create_queue",
    "list_all",
    "list_all_queues",
]


class QueueError(InterpreterError):
    """Base class of queue errors."""


class QueueNotFoundError(QueueError):
    """No queue with that id exists (any more)."""


class QueueEmpty(QueueError, _stdlib_queue.Empty):
    """Raised from ``get_nowait()`` when the queue is empty, and from ``get()`` on timeout."""


class QueueFull(QueueError, _stdlib_queue.Full):
    """Raised from ``put_nowait()`` when the queue is full, and from ``put()`` on timeout."""


class QueueClosed(QueueError):
    """The queue was closed: no more puts, and gets have drained what was left."""


class ItemInterpreterDestroyed(QueueError, _crossinterp.ItemInterpreterDestroyed):
    """Raised from ``get()`` for an item put with ``UNBOUND_ERROR`` whose interpreter was closed."""


UNBOUND = _crossinterp.UnboundItem.singleton("queue", __name__)
"""Returned by ``get()`` in place of an item whose interpreter was closed (the default)."""

# 3.14 accepts both its own and _crossinterp's UNBOUND here.
_UNBOUND_OPS = {**_UNBOUND_CONSTANT_TO_FLAG, UNBOUND: 3}
_OP_MARKERS = {1: UNBOUND_REMOVE, 2: UNBOUND_ERROR, 3: UNBOUND}


def _unbound_op(unbounditems: object) -> int:
    try:
        return _UNBOUND_OPS[unbounditems]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ValueError(
            f"unbounditems must be UNBOUND, UNBOUND_ERROR or UNBOUND_REMOVE, not {unbounditems!r}"
        ) from None


def _timeout(timeout: float | None) -> float:
    if timeout is None:
        return -1.0
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if timeout < 0:
        raise ValueError("timeout must be non-negative")
    return float(timeout)


def _resolve(obj: Any, op: int | None) -> Any:
    if op is None:
        return obj
    if op == 2:
        raise ItemInterpreterDestroyed("the item's interpreter was closed")
    return UNBOUND


class Queue(_handles.HandleObject):
    """A FIFO queue shared by all interpreters (PEP 734).

    Objects put on it are copied (natively, or by pickle unless the queue is
    strict); queues, channel ends and shared buffers are sent by reference.
    There is one ``Queue`` object per queue id in each interpreter, and the
    queue lives as long as one exists in any interpreter. ``Queue(id)`` finds
    a live queue, or raises :class:`QueueNotFoundError`.
    """

    __slots__ = ()
    _KIND = _handles.KIND_QUEUE
    _NOT_FOUND = QueueNotFoundError
    _WHAT = "queue"

    def __hash__(self) -> int:
        return hash(self.id)

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Any]:
        """Get items, blocking, until the queue is closed and drained."""
        while True:
            try:
                yield self.get()
            except QueueClosed:
                return

    @property
    def id(self) -> int:
        """The queue's id, the same in every interpreter."""
        return _core.queue_info(self)[0]

    @property
    def maxsize(self) -> int:
        """The most items it holds (0: unbounded, also when created with a negative size)."""
        return _core.queue_info(self)[1]

    @property
    def aio(self) -> Any:
        """An ``asyncio.Queue``-like view of this queue (``aio.AsyncQueue``)."""
        from .aio import AsyncQueue

        return AsyncQueue(self)

    @property
    def unbounditems(self) -> object:
        """The default for ``put(unbounditems=...)`` set at creation."""
        return _OP_MARKERS[_core.queue_info(self)[5]]

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return _core.queue_info(self)[4]

    def qsize(self) -> int:
        """The number of items in the queue now."""
        return _core.queue_info(self)[2]

    def empty(self) -> bool:
        """Whether the queue is empty now."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Whether a put would have to wait now."""
        return _core.queue_info(self)[3]

    def put(
        self,
        obj: object,
        block: bool = True,
        timeout: float | None = None,
        *,
        unbounditems: object = None,
    ) -> None:
        """Add ``obj`` to the queue, waiting while it is full.

        ``timeout`` (seconds, float) bounds the wait. ``unbounditems`` says
        what ``get()`` does with the item if this interpreter is closed
        before it is taken (default: the queue's ``unbounditems``).

        Raises:
            QueueFull: ``block`` is false and the queue is full, or the timeout passed.
            QueueClosed: the queue was closed.
            NotShareableError: ``obj`` cannot be sent (strict queue, or unpicklable).
            ValueError: negative timeout or unknown ``unbounditems``.
            KeyboardInterrupt: Ctrl-C while waiting (nothing was added).
        """
        op = 0 if unbounditems is None else _unbound_op(unbounditems)
        # A handover, not a call: see _core's `handover` (Ctrl-C as the
        # item goes in must not look like "nothing was added").
        _core.handover_queue_put[self, obj, block, _timeout(timeout), op]

    def put_nowait(self, obj: object, *, unbounditems: object = None) -> None:
        """``put(obj, block=False)``: raises :class:`QueueFull` instead of waiting.

        In a loop that spins on it, after about 50 µs of back-to-back failing
        calls, each further one yields the CPU (with the GIL released), so the
        thread that will make room can run.
        """
        op = 0 if unbounditems is None else _unbound_op(unbounditems)
        _core.handover_queue_put[self, obj, False, -1.0, op]

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item, waiting while the queue is empty.

        Raises:
            QueueEmpty: ``block`` is false and the queue is empty, or the timeout passed.
            QueueClosed: the queue was closed and is drained.
            ItemInterpreterDestroyed: the item was put with ``UNBOUND_ERROR``
                and its interpreter was closed.
            ValueError: negative timeout.
            KeyboardInterrupt: Ctrl-C while waiting (nothing was taken).
        """
        # A handover, not a call: a call's return is checked for Ctrl-C
        # before its result is stored, which would lose the item taken. No
        # check happens from here to the caller's store of the result.
        obj, op = _core.handover_queue_get[self, block, _timeout(timeout)]
        return obj if op is None else _resolve(obj, op)

    def get_nowait(self) -> Any:
        """``get(block=False)``: raises :class:`QueueEmpty` instead of waiting.

        In a loop that spins on it, after about 50 µs of back-to-back empty
        calls, each further one yields the CPU (with the GIL released), so the
        thread that will put an item can run.
        """
        obj, op = _core.handover_queue_get[self, False, -1.0]
        return obj if op is None else _resolve(obj, op)

    def close(self) -> None:
        """Close the queue in all interpreters: puts fail, gets drain what is left.

        Waiters are woken. Closing twice does nothing.
        """
        _core.queue_close(self)

    def fileno(self) -> int:
        """A descriptor that is readable exactly when ``get()`` would not block.

        For ``select``, ``selectors`` and ``loop.add_reader``. Owned by the
        queue: do not close it.
        """
        return _core.queue_fds(self)[0]

    def put_fileno(self) -> int:
        """A descriptor that is readable exactly when ``put()`` would not block."""
        return _core.queue_fds(self)[1]


_handles.register(_handles.KIND_QUEUE, Queue)
# The core raises these classes; registering them here (not in __init__)
# keeps it raising the current ones after importlib.reload() of this module.
_core._register_error_classes({cls.__name__: cls for cls in (QueueEmpty, QueueFull, QueueClosed)})


def create_queue(
    maxsize: int = 0, *, unbounditems: object = UNBOUND, strict: bool = False
) -> Queue:
    """Create a queue shared by all interpreters.

    ``maxsize`` bounds it (0 or negative: unbounded, as in 3.14). ``unbounditems`` is the default of
    ``put(unbounditems=...)``. With ``strict``, objects that are not natively
    shareable are refused instead of pickled.

    Raises:
        ValueError: unknown ``unbounditems``.
    """
    if not isinstance(maxsize, int) or isinstance(maxsize, bool):
        raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
    made = _core.queue_create(Queue, maxsize, _unbound_op(unbounditems), strict)
    return _handles.adopt(_handles.KIND_QUEUE, made)


def list_all_queues() -> list[Queue]:
    """Every queue that is alive in the process."""
    found = []
    for id in _core.queue_ids():
        try:
            found.append(Queue(id))
        except QueueNotFoundError:
            pass  # went away meanwhile
    return found


# 3.14's names in concurrent.interpreters._queues (see _crossinterp.py).
create = create_queue
list_all = list_all_queues
