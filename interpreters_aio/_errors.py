"""Exceptions of interpreters_aio, and the snapshot of a remote exception.

Names and bases follow CPython 3.14's ``concurrent.interpreters``
(``InterpreterError``, ``InterpreterNotFoundError``, ``ExecutionFailed``,
``NotShareableError``) and PEP 554 (``RunFailedError``, kept as an alias).

An exception raised in another interpreter never crosses as an object
(DESIGN rule 7). It comes back as an :class:`ExceptionSnapshot`; if it could
be pickled there and unpickled here, ``excinfo.rebuild()`` gives the
exception rebuilt, with the remote traceback attached to it as text, so
``except``-by-type still works after ``raise exc.excinfo.rebuild() from exc``.
"""

from __future__ import annotations

import types

try:  # 3.13+: our errors are also the standard library's, so either `except` catches them
    import _interpreters as _stdlib
except ImportError:  # 3.12
    _stdlib = None

__all__ = [
    "ExceptionSnapshot",
    "ExecutionFailed",
    "InterpreterError",
    "InterpreterNotFoundError",
    "NotShareableError",
    "RemoteTraceback",
    "RunFailedError",
]


_StdlibInterpreterError: type[Exception] = _stdlib.InterpreterError if _stdlib else Exception
_StdlibNotFound: type[Exception] = _stdlib.InterpreterNotFoundError if _stdlib else Exception
_StdlibNotShareable: type[Exception] = _stdlib.NotShareableError if _stdlib else TypeError
# 3.14's is a TypeError already; 3.13's is a ValueError, so ours is both there.
_NotShareableBases: tuple[type[Exception], ...] = (
    (_StdlibNotShareable,) if issubclass(_StdlibNotShareable, TypeError)
    else (TypeError, _StdlibNotShareable)
)


class InterpreterError(_StdlibInterpreterError):
    """An interpreter-related error happened (base of this package's errors).

    On 3.13+ it subclasses the standard library's ``InterpreterError``.
    """


class InterpreterNotFoundError(InterpreterError, _StdlibNotFound):  # type: ignore[misc]
    """The targeted interpreter no longer exists (it was closed) or never did."""


class NotShareableError(*_NotShareableBases):  # type: ignore[misc]
    """An object cannot be sent to another interpreter; the message says why.

    A ``TypeError`` (as in 3.14), and on 3.13+ also the standard library's
    ``NotShareableError`` (on 3.13 that one is a ``ValueError``).
    """


class RemoteTraceback(Exception):
    """The formatted traceback of an exception raised in another interpreter.

    It is chained below :class:`ExecutionFailed` so that the remote traceback
    is printed with the local one.
    """

    def __init__(self, formatted: str) -> None:
        super().__init__(formatted)
        self.formatted = formatted

    def __str__(self) -> str:
        return f'\n"""\n{self.formatted.rstrip()}\n"""'


class ExceptionSnapshot:
    """A basic snapshot of an exception raised in another interpreter.

    Attributes:
        type: a namespace with the exception type's ``__name__``,
            ``__qualname__`` and ``__module__``.
        msg: ``str()`` of the exception (a placeholder if that raised).
        formatted: the full formatted traceback, as the remote side printed it.
        errdisplay: the last line(s) of ``formatted``: ``"KeyError: 'x'"``.
    """

    __slots__ = ("_pickled", "errdisplay", "formatted", "msg", "type")

    def __init__(
        self,
        type_name: str,
        type_qualname: str,
        type_module: str,
        msg: str,
        formatted: str,
        errdisplay: str,
        pickled: bytes | None = None,
    ) -> None:
        self.type = types.SimpleNamespace(
            __name__=type_name, __qualname__=type_qualname, __module__=type_module
        )
        self.msg = msg
        self.formatted = formatted
        self.errdisplay = errdisplay
        self._pickled = pickled

    def __repr__(self) -> str:
        return f"ExceptionSnapshot(type={self.type.__qualname__!r}, msg={self.msg!r})"

    def rebuild(self) -> BaseException | None:
        """The original exception rebuilt in this interpreter, if possible,
        with a :class:`RemoteTraceback` of where it was raised as its
        ``__cause__``. A new object on each call.

        Returns ``None`` when the exception could not be pickled remotely or
        its class cannot be imported here.
        """
        if self._pickled is None:
            return None
        try:
            import pickle  # not at import: most interpreters never rebuild an exception

            exc = pickle.loads(self._pickled)
        except Exception:
            return None
        if not isinstance(exc, BaseException):
            return None
        exc.__cause__ = RemoteTraceback(self.formatted)
        return exc


class ExecutionFailed(InterpreterError):
    """Code run in another interpreter raised an uncaught exception.

    Attributes:
        excinfo: an :class:`ExceptionSnapshot` of the remote exception.

    Printed as 3.14 prints it: ``ExecutionFailed: KeyError: 'x'``, then
    "Uncaught in the interpreter:" and the remote traceback. The original
    exception, rebuilt here when possible, is ``excinfo.rebuild()``
    (``raise exc.excinfo.rebuild() from exc`` re-raises it by type).
    """

    def __init__(self, excinfo: ExceptionSnapshot) -> None:
        super().__init__(excinfo.errdisplay.strip() or excinfo.type.__name__)
        self.excinfo = excinfo

    def __str__(self) -> str:
        # As 3.14 prints it: the one-line summary, then the remote traceback.
        shown = self.excinfo.errdisplay.strip()
        summary = shown or f"{self.excinfo.type.__name__}: {self.excinfo.msg}"
        formatted = self.excinfo.formatted.strip()
        if not formatted:
            return summary
        return f"{summary}\n\nUncaught in the interpreter:\n\n{formatted}"

    def __reduce__(self) -> tuple:
        return (type(self), (self.excinfo,), self.__dict__ or None)

    @classmethod
    def _from_raw(cls, raw: tuple) -> ExecutionFailed:
        """Builds the exception from the core's excinfo tuple."""
        return cls(ExceptionSnapshot(*raw))


RunFailedError = ExecutionFailed
"""PEP 554's name for :class:`ExecutionFailed`."""
