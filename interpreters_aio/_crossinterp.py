"""CPython 3.14's ``concurrent.interpreters._crossinterp``, on our queue objects.

3.14 keeps the "unbound item" markers, and the code turning them into the
flags its C modules take, here, shared by queues and channels. Ours live in
:mod:`interpreters_aio._queues`; this module gives them 3.14's names so code
(and CPython's tests) written against 3.14's layout work unchanged. One
difference: 3.14's ``_queues.UNBOUND`` is a queue-specific copy of this
module's ``UNBOUND``; here both are the same object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._queues import (
    _UNBOUND_OPS,
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    _UnboundMarker,
)

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "ItemInterpreterDestroyed",
    "UnboundItem",
    "classonly",
    "resolve_unbound",
    "serialize_unbound",
]

UnboundItem = _UnboundMarker
"""The class of the ``UNBOUND`` markers (3.14's name)."""

# 3.14's names for the tables; CPython's tests read the first one. The flags
# are the same numbers 3.14's C modules use, which our core uses too.
_UNBOUND_CONSTANT_TO_FLAG: dict[object, int] = _UNBOUND_OPS
_UNBOUND_FLAG_TO_CONSTANT: dict[int, object] = {
    flag: marker for marker, flag in _UNBOUND_OPS.items()
}


class classonly:
    """A non-data descriptor whose value is visible on the class only (as in 3.14).

    Like ``classmethod``, but reading it from an instance raises
    ``AttributeError``. Usable as a decorator.
    """

    def __init__(self, value: Callable[..., Any]) -> None:
        self.value = value
        self.getter = classmethod(value).__get__
        self.name: str | None = None

    def __set_name__(self, cls: type, name: str) -> None:
        if self.name is not None:
            raise TypeError("already used")
        self.name = name

    def __get__(self, obj: object, cls: type | None = None) -> Any:
        if obj is not None:
            raise AttributeError(self.name)
        return self.getter(None, cls)


def serialize_unbound(unbound: object) -> tuple[int]:
    """The one-tuple of the flag for an ``UNBOUND*`` marker.

    Raises:
        NotImplementedError: ``unbound`` is not one of the markers (as in 3.14).
    """
    try:
        return (_UNBOUND_CONSTANT_TO_FLAG[unbound],)
    except (KeyError, TypeError):
        raise NotImplementedError(f"unsupported unbound replacement op {unbound!r}") from None


def resolve_unbound(flag: int, exctype_destroyed: type[BaseException]) -> object:
    """What ``get()`` gives for an unbound item with ``flag``: ``UNBOUND``, or raises.

    Raises:
        exctype_destroyed: ``flag`` is ``UNBOUND_ERROR``'s.
        NotImplementedError: ``flag`` is ``UNBOUND_REMOVE``'s (such items are
            never returned) or unknown.
    """
    try:
        op = _UNBOUND_FLAG_TO_CONSTANT[flag]
    except (KeyError, TypeError):
        raise NotImplementedError(f"unsupported unbound replacement op {flag!r}") from None
    if op is UNBOUND_ERROR:
        raise exctype_destroyed("item's original interpreter destroyed")
    if op is UNBOUND:
        return UNBOUND
    raise NotImplementedError("UNBOUND_REMOVE items are removed, never resolved")
