"""Channels between interpreters (PEP 554), on the Rust core.

A channel has a receiving end (:class:`RecvChannel`) and a sending end
(:class:`SendChannel`). With ``maxsize=0`` (the PEP's channel) ``send()``
waits until a receiver has taken the object; with ``maxsize > 0`` it waits
only while the buffer is full. What the PEP deferred is here too: timeouts,
a buffer size, iteration, context managers and pollable descriptors.

Only natively shareable objects cross, unless the channel is created with
``pickle=True``; channel ends, queues and shared buffers cross by reference.

``send_nowait()`` never waits and never loses the object: it returns True if
the object was sent (handed to a receiver already waiting, or put in the
buffer) and False if sending it would have had to wait, in which case
nothing was sent.
"""

from __future__ import annotations

from collections.abc import Iterator

from . import _core, _handles
from ._interpreter import Interpreter, _from_known_id
from ._queues import _timeout

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelError",
    "ChannelNotEmptyError",
    "ChannelNotFoundError",
    "ChannelReleasedError",
    "NotReceivedError",
    "RecvChannel",
    "SendChannel",
    "create_channel",
    "list_all_channels",
]


class ChannelError(Exception):
    """Base class of channel errors."""


class ChannelNotFoundError(ChannelError):
    """No channel with that id exists (any more)."""


class ChannelEmptyError(ChannelError):
    """The channel was unexpectedly empty (``recv()`` timed out)."""


class ChannelNotEmptyError(ChannelError):
    """The channel was unexpectedly not empty (``close()`` without ``force``)."""


class NotReceivedError(ChannelError):
    """Nothing received a sent object in time; it was not sent."""


class ChannelClosedError(ChannelError):
    """The channel is closed."""


class ChannelReleasedError(ChannelClosedError):
    """This interpreter released this end of the channel (it is not closed)."""


_MISSING = object()


class _ChannelEnd(_handles.HandleObject):
    __slots__ = ()
    _NOT_FOUND = ChannelNotFoundError
    _WHAT = "channel"

    def __hash__(self) -> int:
        return hash((self._KIND, self.id))

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    @property
    def id(self) -> int:
        """The channel's id, shared by both ends and every interpreter."""
        return _core.channel_info(self)[0]

    @property
    def maxsize(self) -> int:
        """The buffer size (0: a send waits for its receive)."""
        return _core.channel_info(self)[1]

    @property
    def closed(self) -> bool:
        """Whether this end can no longer be used."""
        return _core.channel_info(self)[3]

    @property
    def interpreters(self) -> list[Interpreter]:
        """The interpreters associated with this end (that used it and did not release it).

        Raises:
            ChannelClosedError: the channel is closed.
        """
        return [_from_known_id(id) for id in _core.channel_interpreters(self)]

    def release(self) -> bool:
        """This interpreter stops using this end, for good.

        Further use of this end from this interpreter raises
        :class:`ChannelReleasedError`. When no interpreter is associated with
        either end any more, the channel closes (receivers still get what was
        sent). Returns whether this end had not been released here before.
        """
        return _core.channel_release(self)

    def close(self, force: bool = False) -> None:
        """Close the channel in every interpreter (see the subclass for details)."""
        _core.channel_close(self, force)


class RecvChannel(_ChannelEnd):
    """The receiving end of a channel (PEP 554)."""

    __slots__ = ()
    _KIND = _handles.KIND_RECV

    @property
    def aio(self) -> Any:
        """An async view of this end (:class:`interpreters_aio.aio.AsyncRecvChannel`)."""
        from .aio import AsyncRecvChannel

        return AsyncRecvChannel(self)

    def recv(self, timeout: float | None = None) -> Any:
        """Return the next object, waiting until one is sent.

        Raises:
            ChannelEmptyError: the timeout passed.
            ChannelClosedError: the channel is closed (and empty).
            ChannelReleasedError: this interpreter released this end.
            ValueError: negative timeout.
            KeyboardInterrupt: Ctrl-C while waiting (nothing was taken).
        """
        # A handover, not a call: see Queue.get (Ctrl-C must not lose the object).
        received, obj = _core.handover_channel_recv[self, True, _timeout(timeout)]
        if not received:
            raise ChannelEmptyError(f"nothing arrived on channel {self.id} in time")
        return obj

    def recv_nowait(self, default: Any = _MISSING) -> Any:
        """Return the next object if there is one, else ``default``.

        In a loop that spins on it, after about 50 µs of back-to-back empty
        calls, each further one yields the CPU (with the GIL released), so the
        thread that will send can run.

        Raises:
            ChannelEmptyError: nothing is there and no default was given.
            ChannelClosedError, ChannelReleasedError: as for :meth:`recv`.
        """
        received, obj = _core.handover_channel_recv[self, False, -1.0]
        if received:
            return obj
        if default is _MISSING:
            raise ChannelEmptyError(f"channel {self.id} is empty")
        return default

    def __iter__(self) -> Iterator[Any]:
        """Receive objects until the channel is closed."""
        while True:
            try:
                yield self.recv()
            except ChannelClosedError:
                return

    def close(self, force: bool = False) -> None:
        """Close both ends now, in all interpreters.

        Raises:
            ChannelNotEmptyError: objects are left and ``force`` is false
                (``force=True`` discards them).
        """
        _core.channel_close(self, force)

    def fileno(self) -> int:
        """A descriptor readable exactly when ``recv()`` would not block
        (an object is waiting, or the channel is closed). Do not close it."""
        return _core.channel_fds(self)[0]


class SendChannel(_ChannelEnd):
    """The sending end of a channel (PEP 554)."""

    __slots__ = ()
    _KIND = _handles.KIND_SEND

    @property
    def aio(self) -> Any:
        """An async view of this end (:class:`interpreters_aio.aio.AsyncSendChannel`)."""
        from .aio import AsyncSendChannel

        return AsyncSendChannel(self)

    def send(self, obj: object, timeout: float | None = None) -> None:
        """Send ``obj``; with ``maxsize=0``, wait until a receiver has taken it.

        With a buffer, wait only while it is full.

        Raises:
            NotReceivedError: the timeout passed; the object was not sent.
            NotShareableError: ``obj`` cannot be sent.
            ChannelClosedError: the channel is closed.
            ChannelReleasedError: this interpreter released this end.
            KeyboardInterrupt: Ctrl-C while waiting; the object was sent
                only if a receiver had already taken it.
        """
        # A handover, not a call: Ctrl-C once it is sent must not look like "not sent".
        _core.handover_channel_send[self, obj, True, _timeout(timeout), False]

    def send_nowait(self, obj: object) -> bool:
        """Send without waiting: True if sent, False if it would have had to wait.

        With ``maxsize=0`` the object is sent only to a receiver already
        waiting in ``recv()``; on False nothing was sent.

        In a loop that spins on it, after about 50 µs of back-to-back failing
        calls, each further one yields the CPU (with the GIL released), so the
        thread that will receive can run.
        """
        return _core.handover_channel_send[self, obj, False, -1.0, False]

    def send_buffer(self, obj: object, timeout: float | None = None) -> None:
        """Send the bytes of any buffer (copied once into shared memory; a
        :class:`SharedBuffer` is sent by reference). The receiver gets a
        ``SharedBuffer``. Otherwise like :meth:`send`."""
        _core.handover_channel_send[self, obj, True, _timeout(timeout), True]

    def send_buffer_nowait(self, obj: object) -> bool:
        """:meth:`send_buffer` without waiting, like :meth:`send_nowait`."""
        return _core.handover_channel_send[self, obj, False, -1.0, True]

    def close(self, force: bool = False) -> None:
        """Close the sending end now; the receiving end closes once the
        channel is empty (at once, discarding what is left, with ``force``)."""
        _core.channel_close(self, force)

    def fileno(self) -> int:
        """A descriptor readable exactly when ``send()`` would not block (a
        receiver is waiting, or the buffer has room, or the channel is
        closed). Do not close it."""
        return _core.channel_fds(self)[1]


_handles.register(_handles.KIND_RECV, RecvChannel)
_handles.register(_handles.KIND_SEND, SendChannel)
# The core raises these classes (re-registered if this module is reloaded).
_core._register_error_classes(
    {
        cls.__name__: cls
        for cls in (
            ChannelClosedError,
            ChannelReleasedError,
            ChannelNotEmptyError,
            NotReceivedError,
        )
    }
)


def create_channel(maxsize: int = 0, *, pickle: bool = False) -> tuple[RecvChannel, SendChannel]:
    """Create a channel; returns its ``(RecvChannel, SendChannel)`` ends.

    ``maxsize=0`` (PEP 554) makes ``send()`` wait for its receive; a positive
    ``maxsize`` buffers that many objects. With ``pickle=True`` objects that
    are not natively shareable are sent by pickle instead of refused.
    """
    if not isinstance(maxsize, int) or isinstance(maxsize, bool):
        raise TypeError(f"maxsize must be an int, not {type(maxsize).__name__}")
    if maxsize < 0:
        raise ValueError("maxsize must be >= 0")
    recv, send = _core.channel_create(RecvChannel, SendChannel, maxsize, pickle)
    return _handles.adopt(_handles.KIND_RECV, recv), _handles.adopt(_handles.KIND_SEND, send)


def list_all_channels() -> list[tuple[RecvChannel, SendChannel]]:
    """Every open channel, as ``(RecvChannel, SendChannel)`` pairs."""
    pairs = []
    for id in _core.channel_ids():
        try:
            pairs.append((RecvChannel(id), SendChannel(id)))
        except ChannelNotFoundError:
            pass  # went away meanwhile
    return pairs
