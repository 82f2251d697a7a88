"""Warn before ``os.fork()`` in a process that has subinterpreters.

CPython cannot fork such a process safely: the child deletes every interpreter
but the main one while no thread state is current (python/cpython#101437), and
that crashes the child (3.13, 3.14) or hangs it (3.12, and any version when
another thread is running code in a subinterpreter at the time). It happens
inside ``os.fork()``, before any Python code runs in the child, with the
standard library's interpreters as with ours, so the parent is the only place
left to say why: a ``RuntimeWarning`` naming the safe alternatives. Forking
before the first interpreter is created, or after the last one is closed, is
fine; ``multiprocessing`` with the ``spawn`` or ``forkserver`` start method
never forks this process.
"""

from __future__ import annotations

import os
import warnings

from . import _core

__all__ = ["ForkWithInterpretersWarning", "install"]


class ForkWithInterpretersWarning(RuntimeWarning):
    """``os.fork()`` was called while subinterpreters exist; the child will not survive it."""


def _warn_before_fork() -> None:
    main = _core.main_id()
    others = sum(1 for id in _core.all_ids() if id != main)
    if others:
        warnings.warn(
            f"os.fork() with {others} subinterpreter(s) alive: CPython crashes or hangs "
            "the child process while it deletes them (python/cpython#101437). Close "
            "the interpreters first, or start processes with multiprocessing's "
            "'spawn' or 'forkserver' start method.",
            ForkWithInterpretersWarning,
            stacklevel=2,
        )


def install() -> None:
    """Register the warning, once, in the main interpreter (the only one that may fork)."""
    if hasattr(os, "register_at_fork") and _core.current_id() == _core.main_id():
        os.register_at_fork(before=_warn_before_fork)
