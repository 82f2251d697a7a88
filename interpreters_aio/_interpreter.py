"""The :class:`Interpreter` object and the functions that find or make one.

A thin layer over the Rust core (``interpreters_aio._core``): the core owns
the interpreters, their thread states and the data conversion; this module
gives them CPython 3.14's ``concurrent.interpreters`` interface and PEP 554's
older names.
"""

from __future__ import annotations

import operator
import sys
import threading
import types
import weakref
from collections.abc import Callable, Mapping

from . import _core, _foreign
from ._errors import (
    ExceptionSnapshot,
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
)

TYPE_CHECKING = False  # typing itself costs an import in every interpreter
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Interpreter",
    "create",
    "enumerate",
    "get_current",
    "get_main",
    "is_shareable",
    "list_all",
]

# 3.14's strings: what its create() makes says "_interpreters module".
_WHENCE_OURS = "_interpreters module"
_WHENCE_MAIN = "runtime init"

_CO_VARARGS = 0x04 | 0x08  # CO_VARARGS | CO_VARKEYWORDS

# Source run in each interpreter create() makes, before it is handed out; set
# by install() (_backport.py) so new interpreters get the backport switch too.
_startup_source: str | None = None

_instances: weakref.WeakValueDictionary[int, Interpreter] = weakref.WeakValueDictionary()
_instances_lock = threading.Lock()


def _check_id(id: object) -> int:
    # Anything with __index__ will do (3.12's stdlib hands out InterpreterID objects).
    if isinstance(id, bool):
        raise TypeError("interpreter id must be an int, not bool")
    try:
        id = operator.index(id)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"interpreter id must be an int, not {type(id).__name__}") from None
    if id < 0:
        raise ValueError(f"interpreter id must be >= 0, not {id}")
    return id


def _from_known_id(id: int, ownsref: bool = True) -> Interpreter:
    """The one Interpreter object for an id the core just reported."""
    with _instances_lock:
        interp = _instances.get(id)
        if interp is None:
            interp = object.__new__(Interpreter)
            interp._id = id
            # Like 3.14, each interpreter's one object for an interpreter we
            # created holds a reference to it; the last one to go closes it.
            interp._ownsref = ownsref and _core.incref(id)
            _instances[id] = interp
        return interp


def _is_foreign(id: int) -> bool:
    """Whether ``id`` exists but was made by someone else (see ``_foreign``).

    Asked only after the core refused, so the common path pays nothing.
    """
    return _core.exists(id) and not _core.is_ours(id) and id != _core.main_id()


class Interpreter:
    """A single interpreter in the current process.

    There is one ``Interpreter`` object per interpreter id in each
    interpreter; equality and hashing go by id, and pickling sends the id, so
    an ``Interpreter`` passed to another interpreter names the same one.

    Prefer :func:`create`, :func:`get_current`, :func:`get_main` and
    :func:`list_all` to calling the class. ``Interpreter(id)`` raises
    :class:`InterpreterNotFoundError` if no interpreter has that id.

    An interpreter is also a context manager that closes it on exit.
    """

    __slots__ = ("__weakref__", "_id", "_ownsref")
    _id: int
    _ownsref: bool

    def __new__(
        cls, id: int, /, _whence: object = None, _ownsref: bool | None = None
    ) -> Interpreter:
        # _whence and _ownsref: 3.14's private keywords, accepted so code (and
        # CPython's tests) passing them work; whence is always asked of CPython.
        id = _check_id(id)
        if not _core.exists(id):
            raise InterpreterNotFoundError(f"interpreter {id} not found")
        return _from_known_id(id, _ownsref is not False)

    def __del__(self) -> None:
        self._decref()

    # Module globals may be gone when this runs at teardown (gh-135729): keep our own.
    def _decref(
        self,
        *,
        _decref: Callable[[int], bool] = _core.decref,
        _is_running: Callable[[int], bool] = _core.is_running,
        _close: Callable[[int], None] = _core.close,
    ) -> None:
        if not getattr(self, "_ownsref", False):
            return
        self._ownsref = False
        try:
            if _decref(self._id) and not _is_running(self._id):
                _close(self._id)
        except Exception:
            pass  # running, closed meanwhile, or closed at exit instead

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (Interpreter, (self._id,))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._id})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Interpreter):
            return NotImplemented
        return self._id == other._id

    def __hash__(self) -> int:
        return hash(self._id)

    def __enter__(self) -> Interpreter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if _core.exists(self._id):
            self.close()

    @property
    def id(self) -> int:
        """The interpreter's id (read-only)."""
        return self._id

    @property
    def aio(self) -> Any:
        """This interpreter driven from async code (``aio.AsyncInterpreter``)."""
        from .aio import view_of_interpreter

        return view_of_interpreter(self)

    @property
    def whence(self) -> str:
        """Where the interpreter came from.

        As in 3.14: ``"runtime init"`` for the main interpreter,
        ``"_interpreters module"`` for those made by :func:`create`, and for
        others what the standard library says (``"unknown"`` if it cannot
        tell, as on 3.12).
        """
        if self._id == _core.main_id():
            return _WHENCE_MAIN
        if _core.is_ours(self._id):
            return _WHENCE_OURS
        return _stdlib_whence(self._id)

    def is_running(self) -> bool:
        """Whether the interpreter is currently executing code in its ``__main__``.

        The main interpreter always is; so is the interpreter asking, if this
        package created it. For an interpreter made by someone else, CPython
        is asked (3.13+), as 3.14 does.

        Raises:
            InterpreterNotFoundError: the interpreter was closed.
        """
        if _foreign.AVAILABLE and _is_foreign(self._id):
            # Only CPython knows whether someone else's interpreter runs __main__.
            return _foreign.is_running(self._id)
        return _core.is_running(self._id)

    def close(self) -> None:
        """Finalize and destroy the interpreter.

        Callbacks registered with ``threading._register_atexit`` inside it
        run first (so a ``ThreadPoolExecutor`` never shut down stops its
        workers), then threads started with ``threading`` are joined, as
        CPython does at exit.

        Raises:
            InterpreterNotFoundError: it was already closed.
            InterpreterError: it is running code, it is the main or the
                current interpreter, a thread is still inside it, or it was
                made neither by this package nor by the standard library's
                ``_interpreters`` module (see below).

        An interpreter made by the standard library's ``_interpreters`` module
        (3.13+) is closed through it, as 3.14's ``concurrent.interpreters``
        does; so are ``exec``, ``call`` and ``prepare_main`` on it.
        """
        if not _core.exists(self._id):
            _core.close(self._id)  # forgets one destroyed behind our back; else does nothing
            raise InterpreterNotFoundError(f"interpreter {self._id} not found (it was closed)")
        try:
            _core.close(self._id)
        except InterpreterNotFoundError:
            raise
        except InterpreterError:
            if _is_foreign(self._id):
                _foreign.close(self._id)
                return
            raise

    destroy = close  # PEP 554's name.

    def prepare_main(self, ns: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
        """Bind objects as globals in the interpreter's ``__main__`` module.

        Values are copied: natively where :func:`is_shareable` says so,
        otherwise by pickle.

        Raises:
            ValueError: nothing to bind (as in 3.14).
            TypeError: a name is not a str.
            NotShareableError: a value cannot be sent (the message says why).
            InterpreterError: the interpreter is running code elsewhere.
            InterpreterNotFoundError: the interpreter was closed.
        """
        values: dict[str, Any] = {}
        if ns is not None:
            values.update(ns)
        values.update(kwargs)
        if not values:
            raise ValueError("prepare_main() needs a non-empty dict or keyword arguments")
        for name in values:
            if not isinstance(name, str):
                raise TypeError(f"names in __main__ must be str, not {type(name).__name__}")
        try:
            excinfo = _core.set_main_attrs(self._id, values)
        except InterpreterNotFoundError:
            raise
        except InterpreterError:
            if _is_foreign(self._id):
                _foreign.set_main_attrs(self._id, values)
                return
            raise
        if excinfo is not None:
            raise ExecutionFailed._from_raw(excinfo)

    def exec(self, code: str | bytes | types.CodeType | Callable[[], object], /) -> None:
        """Run code in the interpreter's ``__main__``, in the current thread.

        ``code`` is source (a str, or UTF-8 bytes), a code object, or a
        function that takes no arguments and uses no enclosing variables,
        whose body runs with ``__main__`` as its globals (its own variables
        stay local), as in 3.14. The interpreter's state persists between
        calls, as in a REPL. Source that is indented as a whole (e.g. a
        triple-quoted block) is dedented.

        Raises:
            TypeError: ``code`` is none of those.
            ValueError: the function or code object takes arguments or uses
                variables of an enclosing function.
            ExecutionFailed: the code raised; ``excinfo`` describes the error.
            InterpreterError: the interpreter is already running code.
            InterpreterNotFoundError: the interpreter was closed.
        """
        if isinstance(code, types.FunctionType):
            code = code.__code__
        if isinstance(code, types.CodeType):
            if code.co_argcount or code.co_kwonlyargcount or code.co_flags & _CO_VARARGS:
                raise ValueError("exec() cannot run code that takes arguments")
            if code.co_freevars:
                raise ValueError(
                    "exec() cannot run code that uses variables of an enclosing function"
                )
        else:
            if isinstance(code, bytes):
                code = code.decode("utf-8")
            if not isinstance(code, str):
                raise TypeError(
                    f"exec() expects source code (str), a code object or a function, "
                    f"not {type(code).__name__}"
                )
            if code[:1].isspace():
                import textwrap  # with re, a third of our import time: only when needed

                code = textwrap.dedent(code)
        excinfo = self._exec(code)
        if excinfo is not None:
            # Raised here, as 3.14 does: its traceback shows this frame and line.
            raise ExecutionFailed(excinfo)

    def _exec(self, code: str | types.CodeType) -> ExceptionSnapshot | None:
        """Runs ``code``; the snapshot of what it raised, if it did."""
        try:
            raw = _core.exec(self._id, code)
        except InterpreterNotFoundError:
            raise
        except InterpreterError:
            if _is_foreign(self._id):
                _foreign.exec(self._id, code)
                return None
            raise
        return None if raw is None else ExceptionSnapshot(*raw)

    def call(self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``callable(*args, **kwargs)`` in the interpreter, in the current thread.

        Returns the result, copied back. The function, its arguments and its
        result cross natively where possible and by pickle otherwise; a
        lambda, a nested function, or a function defined in ``__main__`` is
        sent by its code and runs with the interpreter's ``__main__`` as
        globals, except that a function of the main script that uses the
        script's globals runs with those of the script re-run there as a
        hidden module, as in 3.14. With cloudpickle installed, closures,
        interactive or nested functions that use their module's globals, and
        classes defined in ``__main__`` or in functions go by value (see
        "Pickling" in the guide); without it, closures are refused. The call
        runs as if from the top level of ``__main__``, so ``call(eval, "x")``,
        ``call(exec, ...)`` and ``call(dir)`` work there.

        Raises:
            NotShareableError: the function, an argument or the result cannot
                be sent (the message says which and why).
            ExecutionFailed: the call raised; ``excinfo`` describes the error.
            InterpreterError: the interpreter is already running code.
            InterpreterNotFoundError: the interpreter was closed.
        """
        try:
            ok, payload = _core.call(self._id, callable, args, kwargs or None)
        except InterpreterNotFoundError:
            raise
        except InterpreterError:
            if _is_foreign(self._id):
                return _foreign.call(self._id, callable, args, kwargs)
            raise
        if ok:
            return payload
        raise ExecutionFailed._from_raw(payload)

    def call_in_thread(
        self, callable: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> threading.Thread:
        """Start a thread that calls ``callable(*args, **kwargs)`` in the interpreter.

        Returns the started :class:`threading.Thread`. The result is
        discarded; an exception is reported by :func:`threading.excepthook`.
        """
        thread = threading.Thread(target=self.call, args=(callable, *args), kwargs=kwargs)
        thread.start()
        return thread

    def run(self, src: str, /, *, channels: Mapping[str, Any] | None = None) -> None:
        """PEP 554's ``run``: bind ``channels`` in ``__main__``, then :meth:`exec` ``src``."""
        if channels:
            self.prepare_main(channels)
        self.exec(src)


def _stdlib_whence(id: int) -> str:
    try:
        import _interpreters as stdlib  # 3.13+
    except ImportError:
        return "unknown"
    try:
        return {
            stdlib.WHENCE_UNKNOWN: "unknown",
            stdlib.WHENCE_RUNTIME: "runtime init",
            stdlib.WHENCE_LEGACY_CAPI: "legacy C-API",
            stdlib.WHENCE_CAPI: "C-API",
            stdlib.WHENCE_XI: "cross-interpreter C-API",
            stdlib.WHENCE_STDLIB: "_interpreters module",
        }.get(stdlib.whence(id), "unknown")
    except Exception:
        return "unknown"


def create(*, daemon_threads: bool = False) -> Interpreter:
    """Create a new, idle, isolated interpreter with its own GIL.

    Code in it runs in parallel with other interpreters. Its ``sys.path`` is
    a copy of the caller's, so it can import what the caller can. It stays
    alive until :meth:`Interpreter.close` or the end of the process.

    Like CPython's isolated interpreters, it refuses daemon threads
    (``RuntimeError`` from ``Thread.start``) unless ``daemon_threads=True``
    (an extension of this package; some libraries start them, e.g. asgiref
    under Django). Closing the interpreter then also waits for its daemon
    threads to end, as for any other thread: unlike the main interpreter at
    exit, it cannot leave them behind.

    After :func:`interpreters_aio.install`, the new interpreter has the
    backport switch installed too.

    Raises:
        InterpreterError: CPython refused to create it, or installing the
            backport switch in it failed.
    """
    path = [entry for entry in sys.path if isinstance(entry, str)]
    interp = _from_known_id(_core.create(path, daemon_threads))
    if _startup_source is not None:
        excinfo = _core.exec(interp.id, _startup_source)
        if excinfo is not None:
            interp.close()
            failed = ExecutionFailed._from_raw(excinfo)
            raise InterpreterError(
                "interpreters_aio.install() failed in the new interpreter"
            ) from failed
    return interp


def list_all() -> list[Interpreter]:
    """Return an :class:`Interpreter` for each existing interpreter."""
    return [_from_known_id(id) for id in _core.all_ids()]


enumerate = list_all  # PEP 554's name.


def get_current() -> Interpreter:
    """Return the :class:`Interpreter` that is running the caller."""
    return _from_known_id(_core.current_id())


def get_main() -> Interpreter:
    """Return the :class:`Interpreter` for the main interpreter."""
    return _from_known_id(_core.main_id())


def is_shareable(obj: object) -> bool:
    """Whether ``obj`` crosses between interpreters natively, without pickle.

    True for ``None``, ``bool``, ``int``, ``float``, ``complex``, ``str``,
    ``bytes`` and tuples, lists, dicts, sets and frozensets of these (exact
    types, nested up to ``interpreters_aio._core.MAX_DEPTH`` levels, no
    cycles). Other objects may still be sent by pickle where the API allows.
    """
    return _core.is_shareable(obj)

