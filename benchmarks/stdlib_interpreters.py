"""A uniform view of the standard library's subinterpreter modules.

The private module: CPython 3.12 has ``_xxsubinterpreters`` (``run_string``
raises; there is no ``call``); CPython 3.13 and 3.14 have ``_interpreters``,
whose ``exec`` returns an exception snapshot instead of raising, and whose
``call(id, callable, args=None, kwargs=None)`` differs between them: 3.13
accepts only a no-argument function (any ``args`` raise ``ValueError: got
unexpected args``) and returns the snapshot alone, discarding the result;
3.14 passes ``args`` and returns ``(result, snapshot)``. :func:`detect` finds
whichever the running Python has and wraps it so the benchmarks need not care.

The public module: CPython 3.14's ``concurrent.interpreters`` (PEP 734), which
:func:`detect_public` returns as is.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

Exec = Callable[[Any, str], None]
Call = Callable[..., object]
"""``call(id, func, *args)``: call ``func(*args)`` in interpreter ``id``."""

PUBLIC_MODULE = "concurrent.interpreters"

CALL_PASSES_ARGS_AND_RESULT = sys.version_info >= (3, 14)
"""Whether ``_interpreters.call`` passes arguments and returns the result (3.14+)."""


class StdlibRunFailed(RuntimeError):
    """Code run through the standard library module raised; the message is its snapshot."""


@dataclass(frozen=True)
class StdlibInterpreters:
    """The operations the benchmarks use, over whichever module exists."""

    name: str
    """The module's name: ``_interpreters`` or ``_xxsubinterpreters``."""
    create: Callable[[], Any]
    destroy: Callable[[Any], None]
    exec: Exec
    """Run source in the interpreter's ``__main__``; raise on failure."""
    call: Call | None
    """``call(id, func, *args)``: call ``func`` there; ``None`` if the module cannot."""
    call_passes_args: bool = False
    """Whether :attr:`call` may be given arguments (otherwise ``func`` takes none)."""
    call_returns_result: bool = False
    """Whether :attr:`call` returns ``func``'s result (otherwise ``None``)."""


def _raise_on_excinfo(excinfo: object) -> None:
    if excinfo is not None:
        raise StdlibRunFailed(str(getattr(excinfo, "errdisplay", excinfo)))


def _wrap_interpreters(module: ModuleType) -> StdlibInterpreters:
    """``_interpreters`` (3.13+)."""
    stdlib_exec = module.exec
    stdlib_call = getattr(module, "call", None)
    full_call = CALL_PASSES_ARGS_AND_RESULT

    def exec_(id: Any, code: str) -> None:
        _raise_on_excinfo(stdlib_exec(id, code))

    call: Call | None = None
    if stdlib_call is not None:

        def call(id: Any, func: Callable[..., object], *args: object) -> object:
            outcome = stdlib_call(id, func, args) if args else stdlib_call(id, func)
            if not full_call:
                _raise_on_excinfo(outcome)  # 3.13: None or a snapshot, never the result
                return None
            result, excinfo = outcome  # 3.14
            _raise_on_excinfo(excinfo)
            return result

    return StdlibInterpreters(
        name=module.__name__,
        create=module.create,
        destroy=module.destroy,
        exec=exec_,
        call=call,
        call_passes_args=full_call,
        call_returns_result=full_call,
    )


def _wrap_xxsubinterpreters(module: ModuleType) -> StdlibInterpreters:
    """``_xxsubinterpreters`` (3.12): ``run_string`` raises on failure by itself."""
    return StdlibInterpreters(
        name=module.__name__,
        create=module.create,
        destroy=module.destroy,
        exec=module.run_string,
        call=None,
    )


def detect_public() -> ModuleType | None:
    """CPython 3.14's ``concurrent.interpreters``, or ``None`` if the running Python has none."""
    try:
        return importlib.import_module(PUBLIC_MODULE)
    except ImportError:
        return None


def detect() -> StdlibInterpreters | None:
    """The running Python's private interpreters module, or ``None`` if it has none."""
    for name, wrap in (
        ("_interpreters", _wrap_interpreters),
        ("_xxsubinterpreters", _wrap_xxsubinterpreters),
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        return wrap(module)
    return None
