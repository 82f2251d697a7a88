"""The backport switch: make the standard library's names resolve to this package.

After :func:`install`, ``from concurrent import interpreters``,
``concurrent.interpreters._queues`` / ``._crossinterp`` and
``concurrent.futures.InterpreterPoolExecutor`` are ours, in this interpreter
and in every interpreter :func:`~interpreters_aio.create` makes afterwards.
"""

from __future__ import annotations

import os
import sys

from . import _interpreter

__all__ = ["ENV_VAR", "install"]

ENV_VAR = "INTERPRETERS_AIO_INSTALL"
"""Set to ``1``, importing ``interpreters_aio`` calls :func:`install`."""

# Run in each new interpreter while the switch is on. Nothing is bound in its
# __main__: the interpreter must look untouched to the code run in it next.
_STARTUP = "__import__('interpreters_aio').install()"


# 3.14+ has these names (imported yet or not), so we replace them; 3.12/3.13 get them added.
_VERB = "replaced" if sys.version_info >= (3, 14) else "added"


def _replace(name: str, module: object, done: dict[str, list[str]]) -> None:
    if sys.modules.get(name) is not module:
        sys.modules[name] = module  # type: ignore[assignment]
        done[_VERB].append(name)


def install() -> str:
    """Make the standard library's ``concurrent.interpreters`` names this package's.

    Puts this package, :mod:`interpreters_aio._queues` and
    :mod:`interpreters_aio._crossinterp` in :data:`sys.modules` as
    ``concurrent.interpreters``, ``concurrent.interpreters._queues`` and
    ``concurrent.interpreters._crossinterp`` (on 3.14+ they replace the
    standard library's, on 3.12/3.13 they are added), and our
    ``InterpreterPoolExecutor`` as ``concurrent.futures.InterpreterPoolExecutor``.
    Every interpreter :func:`interpreters_aio.create` makes from then on
    installs it too before running anything, and ``INTERPRETERS_AIO_INSTALL=1``
    is set in :data:`os.environ` so child processes that import
    ``interpreters_aio`` do the same. Objects already made by the standard
    library's modules keep working, with the standard library's classes.
    Calling it again changes nothing.

    Returns:
        What it did: ``"replaced concurrent.interpreters, ..."`` on 3.14+,
        ``"added concurrent.interpreters, ..."`` on 3.12/3.13, or
        ``"already installed"``.

    Raises:
        ImportError: ``concurrent.futures`` cannot be imported (a broken
            Python installation).
    """
    import concurrent
    import concurrent.futures

    from . import _crossinterp, _queues, executor

    package = sys.modules[__name__.rpartition(".")[0]]
    done: dict[str, list[str]] = {"replaced": [], "added": []}
    _replace("concurrent.interpreters", package, done)
    _replace("concurrent.interpreters._queues", _queues, done)
    _replace("concurrent.interpreters._crossinterp", _crossinterp, done)
    # `from concurrent import interpreters` reads the attribute before sys.modules.
    concurrent.interpreters = package  # type: ignore[attr-defined]

    futures = concurrent.futures
    # A plain attribute wins over 3.14's lazy module __getattr__.
    current = futures.__dict__.get("InterpreterPoolExecutor")
    if current is not executor.InterpreterPoolExecutor:
        futures.InterpreterPoolExecutor = executor.InterpreterPoolExecutor  # type: ignore[attr-defined]
        done[_VERB].append("concurrent.futures.InterpreterPoolExecutor")
    if "InterpreterPoolExecutor" not in futures.__all__:  # 3.12/3.13: a tuple
        futures.__all__ = (*futures.__all__, "InterpreterPoolExecutor")

    _name_errors_as_the_stdlib()
    _interpreter._startup_source = _STARTUP
    os.environ[ENV_VAR] = "1"
    parts = [f"{verb} {', '.join(names)}" for verb, names in done.items() if names]
    return "; ".join(parts) or "already installed"


def _name_errors_as_the_stdlib() -> None:
    """Tracebacks name our exception classes as 3.14 names its own
    (``concurrent.interpreters.ExecutionFailed: ...``): with the switch on,
    those names are ours, so pickles by name resolve to them too."""
    from . import _errors, _queues

    named = (
        (_errors, "concurrent.interpreters", ("InterpreterError", "InterpreterNotFoundError",
                                              "ExecutionFailed", "NotShareableError")),
        (_queues, "concurrent.interpreters._queues", ("QueueError", "QueueNotFoundError",
                                                      "QueueEmpty", "QueueFull",
                                                      "ItemInterpreterDestroyed")),
    )
    for source, module, names in named:
        for name in names:
            getattr(source, name).__module__ = module


def _install_if_asked() -> None:
    """Install on import when ``INTERPRETERS_AIO_INSTALL=1`` (the switch without code)."""
    if os.environ.get(ENV_VAR) == "1":
        install()
