"""Interpreters this package did not create, run and closed through the standard library.

The core runs code only in interpreters it made (it owns their thread states,
DESIGN section 4). An interpreter made by the standard library's low-level
``_interpreters`` module (3.13+) is still listed by :func:`list_all`; for it,
:class:`~interpreters_aio.Interpreter`'s methods go through that module,
exactly as 3.14's own ``concurrent.interpreters`` does (``restrict=True``:
only interpreters whose ``whence`` is "_interpreters module" can be changed,
so one made through the C API is refused, as 3.14 refuses it). The standard
library's errors are raised as this package's, which subclass them.

On 3.12 the standard library has no such module (``_xxsubinterpreters`` is a
different API), so these interpreters are refused with an
:class:`InterpreterError` that says so.
"""

from __future__ import annotations

import sys

from ._errors import ExecutionFailed, InterpreterError, InterpreterNotFoundError, NotShareableError

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

try:
    import _interpreters as _stdlib
except ImportError:  # 3.12
    _stdlib = None

AVAILABLE = _stdlib is not None
"""Whether foreign interpreters can be used at all (3.13+)."""

# 3.13's _interpreters.call() gives no result back; 3.14's gives (result, excinfo).
_CALL_RETURNS_RESULT = sys.version_info >= (3, 14)


def _refuse(id: int, what: str) -> InterpreterError:
    return InterpreterError(
        f"cannot {what} interpreter {id}: it was not created by interpreters_aio, and "
        f"Python {sys.version_info[0]}.{sys.version_info[1]} has no standard module to do it with"
    )


def _translate(exc: Exception) -> Exception:
    """The standard library's exception as this package's (same message)."""
    assert _stdlib is not None
    if isinstance(exc, _stdlib.InterpreterNotFoundError):
        return InterpreterNotFoundError(*exc.args)
    if isinstance(exc, _stdlib.NotShareableError):
        return NotShareableError(*exc.args)
    if isinstance(exc, _stdlib.InterpreterError):
        return InterpreterError(*exc.args)
    return exc


def _failed(excinfo: Any) -> ExecutionFailed:
    """The standard library's excinfo (a namespace) as our :class:`ExecutionFailed`."""
    kind = excinfo.type
    raw = (
        getattr(kind, "__name__", "Exception"),
        getattr(kind, "__qualname__", getattr(kind, "__name__", "Exception")),
        getattr(kind, "__module__", None),
        excinfo.msg,
        # Theirs: `formatted` is the last line, `errdisplay` the traceback; ours the other way.
        excinfo.errdisplay or "",
        excinfo.formatted or "",
        None,  # the standard library does not pickle the exception
    )
    return ExecutionFailed._from_raw(raw)


def close(id: int) -> None:
    if _stdlib is None:
        raise _refuse(id, "close")
    try:
        _stdlib.destroy(id, restrict=True)
    except Exception as exc:
        raise _translate(exc) from None


def exec(id: int, code: object) -> None:
    if _stdlib is None:
        raise _refuse(id, "run code in")
    try:
        excinfo = _stdlib.exec(id, code, restrict=True)
    except Exception as exc:
        raise _translate(exc) from None
    if excinfo is not None:
        raise _failed(excinfo)


def call(id: int, callable: object, args: tuple, kwargs: dict | None) -> Any:
    if _stdlib is None or not _CALL_RETURNS_RESULT:
        raise _refuse(id, "call a function in")
    try:
        result, excinfo = _stdlib.call(id, callable, args, kwargs or {}, restrict=True)
    except Exception as exc:
        raise _translate(exc) from None
    if excinfo is not None:
        raise _failed(excinfo)
    return result


def set_main_attrs(id: int, values: dict[str, Any]) -> None:
    if _stdlib is None:
        raise _refuse(id, "change __main__ of")
    try:
        _stdlib.set___main___attrs(id, values, restrict=True)
    except Exception as exc:
        raise _translate(exc) from None


def is_running(id: int) -> bool:
    if _stdlib is None:
        raise _refuse(id, "inspect")
    try:
        return _stdlib.is_running(id)
    except Exception as exc:
        raise _translate(exc) from None
