"""A uniform view of the standard library's private subinterpreter module.

CPython 3.13 has ``_interpreters`` (``exec`` returns an exception snapshot
instead of raising; ``call`` takes a no-argument function and, on 3.13,
discards its result); CPython 3.12 has ``_xxsubinterpreters`` (``run_string``
raises; there is no ``call``). :func:`detect` finds whichever the running
Python has and wraps it so the benchmarks need not care.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

Exec = Callable[[Any, str], None]
Call = Callable[[Any, Callable[[], object]], object]


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
    """Call a no-argument function there; ``None`` if the module cannot."""


def _raise_on_excinfo(excinfo: object) -> None:
    if excinfo is not None:
        raise StdlibRunFailed(str(getattr(excinfo, "errdisplay", excinfo)))


def _wrap_interpreters(module: ModuleType) -> StdlibInterpreters:
    """``_interpreters`` (3.13+)."""
    stdlib_exec = module.exec
    stdlib_call = getattr(module, "call", None)

    def exec_(id: Any, code: str) -> None:
        _raise_on_excinfo(stdlib_exec(id, code))

    call: Call | None = None
    if stdlib_call is not None:

        def call(id: Any, func: Callable[[], object]) -> object:
            outcome = stdlib_call(id, func)
            if isinstance(outcome, tuple) and len(outcome) == 2:  # (result, excinfo)
                result, excinfo = outcome
                _raise_on_excinfo(excinfo)
                return result
            _raise_on_excinfo(outcome)  # 3.13: None or an excinfo, never the result
            return None

    return StdlibInterpreters(
        name=module.__name__,
        create=module.create,
        destroy=module.destroy,
        exec=exec_,
        call=call,
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
