"""CPython 3.14's ``concurrent.interpreters._crossinterp``: what queues and channels share.

The "unbound item" markers, and the code turning them into the flags the core
takes (the same numbers 3.14's C modules use), with 3.14's names, so code
(and CPython's tests) written against 3.14's layout work unchanged. As in
3.14, :mod:`interpreters_aio._queues` has a queue-specific ``UNBOUND`` of its
own, made by :meth:`UnboundItem.singleton`; both mean the same to a queue.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

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


class ItemInterpreterDestroyed(Exception):
    """An item's interpreter was closed, and it was put with ``UNBOUND_ERROR``."""


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


class UnboundItem:
    """Stands for an item whose interpreter was closed (PEP 734's ``UNBOUND``).

    There is one instance per kind of container: :data:`UNBOUND` here, and
    one per module made by :meth:`singleton` (``interpreters_aio._queues.UNBOUND``).
    Each pickles by name, so it is the same object again in every interpreter.
    """

    __slots__ = ()
    _MODULE = __name__
    _NAME = "UNBOUND"

    @classonly
    def singleton(cls, kind: str, module: str, name: str = "UNBOUND") -> UnboundItem:
        """Make the marker ``module.name`` for containers of ``kind`` (as 3.14)."""
        doc = (cls.__doc__ or "").replace("an item", f"a {kind} item")
        namespace = {"_MODULE": module, "_NAME": name, "__doc__": doc, "__module__": module,
                     "__slots__": ()}
        subclass = type(f"Unbound{kind.capitalize()}Item", (cls,), namespace)
        return object.__new__(subclass)

    def __new__(cls) -> UnboundItem:
        raise TypeError(f"use {cls._MODULE}.{cls._NAME}")

    def __repr__(self) -> str:
        return f"{self._MODULE}.{self._NAME}"

    def __reduce__(self) -> str:
        return self._NAME  # the module global of that name (the class's __module__)


class _Marker:
    """``UNBOUND_ERROR`` and ``UNBOUND_REMOVE``: plain markers that pickle by name."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"{__name__}.{self._name}"

    def __reduce__(self) -> str:
        return self._name


UNBOUND: UnboundItem = object.__new__(UnboundItem)
"""Returned by ``get()`` in place of an item whose interpreter was closed."""
UNBOUND_ERROR = _Marker("UNBOUND_ERROR")
"""``get()`` raises ``ItemInterpreterDestroyed`` for such an item."""
UNBOUND_REMOVE = _Marker("UNBOUND_REMOVE")
"""Such items are removed from their container when their interpreter is closed."""

# The flags are the numbers 3.14's C modules use, which our core uses too;
# CPython's tests read the first table.
_UNBOUND_CONSTANT_TO_FLAG: dict[object, int] = {UNBOUND_REMOVE: 1, UNBOUND_ERROR: 2, UNBOUND: 3}
_UNBOUND_FLAG_TO_CONSTANT: dict[int, object] = {
    flag: marker for marker, flag in _UNBOUND_CONSTANT_TO_FLAG.items()
}


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
