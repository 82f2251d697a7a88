"""One Python object per queue or channel end in each interpreter.

Queues and channels live in the Rust core and are shared by every
interpreter; a Python object (a subclass of ``_core.Handle``) holds a
reference to one. This module keeps a single object per (kind, id) in this
interpreter, and rebuilds the object when a queue or channel end arrives from
another interpreter (the Rust core calls :func:`rebuild`).
"""

from __future__ import annotations

import threading
import weakref

from . import _core

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

KIND_QUEUE = 0
KIND_RECV = 1
KIND_SEND = 2

_classes: dict[int, Any] = {}
_known: weakref.WeakValueDictionary[tuple[int, int], Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def register(kind: int, cls: type) -> None:
    """Declare the class whose instances stand for handles of ``kind``."""
    _classes[kind] = cls


def adopt(kind: int, obj: Any) -> Any:
    """Record a handle object made by the core (``create_queue``, ...)."""
    with _lock:
        _known[(kind, obj.id)] = obj
    return obj


def get_or_make(kind: int, id: int) -> Any:
    """The object for ``(kind, id)``; raises LookupError if it does not exist."""
    with _lock:
        obj = _known.get((kind, id))
        if obj is None:
            cls = _classes[kind]
            obj = cls._attach(id)
            _known[(kind, id)] = obj
        return obj


def rebuild(kind: int, id: int) -> Any:
    """Called by the core when a queue or channel end arrives here."""
    if kind not in _classes:
        import interpreters_aio  # noqa: F401  (registers the classes)
    return get_or_make(kind, id)


class HandleObject(_core.Handle):
    """Base of the Python classes that stand for a queue or a channel end.

    Subclasses set ``_KIND``, ``_NOT_FOUND`` (the error for an unknown id)
    and ``_WHAT`` (the noun in messages). ``Cls(id)`` returns this
    interpreter's one object for that id; pickling sends the id.
    """

    __slots__ = ("__weakref__",)
    _KIND = -1
    _NOT_FOUND: type[Exception] = LookupError
    _WHAT = "object"

    def __new__(cls, id: int, /) -> Any:
        if not isinstance(id, int) or isinstance(id, bool):
            raise TypeError(f"{cls._WHAT} id must be an int, not {type(id).__name__}")
        try:
            return get_or_make(cls._KIND, id)
        except LookupError:
            raise cls._NOT_FOUND(f"{cls._WHAT} {id} not found") from None

    @classmethod
    def _attach(cls, id: int) -> Any:
        return _core.Handle.__new__(cls, cls._KIND, id)

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (type(self), (self.id,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"
