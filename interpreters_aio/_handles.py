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
