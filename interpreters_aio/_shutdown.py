"""Process exit with interpreters still open, safely.

What CPython does at exit with live subinterpreters (DESIGN section 9): a
live subinterpreter aborts 3.12; a thread still inside one aborts 3.12 and
3.13; a thread blocked inside one hangs exit everywhere. What works on all
versions, in this order:

1. before ``threading`` joins non-daemon threads (``threading._register_atexit``,
   the hook ``concurrent.futures`` uses too): interrupt any thread running
   code in one of our interpreters (``KeyboardInterrupt``) and say so on
   stderr, then wait for it to leave, within a bound;
2. after the joins (``atexit``): close every interpreter this package made,
   with the ``RuntimeWarning`` CPython 3.14 gives for remaining subinterpreters.

A thread that ignores the interrupt (a C call that never returns, code that
swallows ``KeyboardInterrupt``) would otherwise abort or hang the process; we
report it and end the process with ``os._exit(1)`` after flushing stdio.

Only the main interpreter registers these hooks: it is the one whose exit
ends the process.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
import warnings

from . import _core

# CPython 3.13+'s words when finalization finds subinterpreters left open.
REMAINING_WARNING = "remaining subinterpreters; close them with Interpreter.close()"

# Interpreters a pool owns: like the stdlib's InterpreterPoolExecutor, a pool
# that was never shut down is cleaned up at exit without a warning.
_pooled: set[int] = set()


def pooled(id: int) -> None:
    """Close interpreter ``id`` at exit without the remaining-interpreters warning."""
    _pooled.add(id)


def unpooled(id: int) -> None:
    """Forget interpreter ``id`` (its pool closed it): keeps ``_pooled`` bounded."""
    _pooled.discard(id)


EXIT_TIMEOUT_ENV = "INTERPRETERS_AIO_EXIT_TIMEOUT"
_DEFAULT_EXIT_TIMEOUT = 5.0


def _exit_timeout() -> float:
    try:
        return max(0.0, float(os.environ.get(EXIT_TIMEOUT_ENV, _DEFAULT_EXIT_TIMEOUT)))
    except ValueError:
        return _DEFAULT_EXIT_TIMEOUT


def _say(message: str) -> None:
    try:
        print(f"interpreters_aio: {message}", file=sys.stderr, flush=True)
    except Exception:
        pass


def _stop_running_code() -> None:
    """Wake every thread blocked on a queue or channel (by closing them all),
    interrupt code still running in our interpreters, and wait for it to leave."""
    _core.close_all_for_exit()
    running = [id for id in _core.our_ids() if _safe_is_running(id)]
    if not running:
        return
    for id in running:
        _say(f"interpreter {id} is still running code at exit; interrupting it")
        _core.interrupt(id)
    deadline = time.monotonic() + _exit_timeout()
    stuck = [id for id in running if not _core.wait_idle(id, max(0.0, deadline - time.monotonic()))]
    if stuck:
        _abandon(stuck)


def _abandon(stuck: list[int]) -> None:
    ids = ", ".join(map(str, stuck))
    _say(
        f"interpreter(s) {ids} did not stop within {_exit_timeout():g}s after the interrupt; "
        "CPython would abort or hang finalizing them, so the process exits now with status 1"
    )
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(1)


def _safe_is_running(id: int) -> bool:
    try:
        return _core.is_running(id)
    except Exception:
        return False


def _close_all() -> None:
    """Close every interpreter this package created, newest first."""
    _stop_running_code()
    remaining = _core.our_ids()
    if any(id not in _pooled for id in remaining):
        warnings.warn_explicit(REMAINING_WARNING, RuntimeWarning, "<sys>", 0)
    for id in reversed(remaining):
        try:
            _core.close(id)
        except Exception as exc:
            _say(f"could not close interpreter {id} at exit: {exc}")
            _abandon([id])


def install() -> None:
    """Register the exit hooks, once, in the main interpreter only."""
    if _core.current_id() != _core.main_id():
        return
    threading._register_atexit(_stop_running_code)  # type: ignore[attr-defined]
    atexit.register(_close_all)
