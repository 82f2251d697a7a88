"""The part of a Dask task that runs inside a worker's subinterpreter.

This module is imported in subinterpreters, so it imports nothing at module
level beyond the standard library: not ``distributed`` (its dependency
``psutil`` refuses subinterpreters), not even ``cloudpickle`` until a task
arrives. It talks to the main interpreter in ``bytes`` only (which cross
natively, in one copy): the task and its data come in cloudpickled, the
result or the error goes back cloudpickled, and the main interpreter builds
distributed's messages from them (see ``_executor``).
"""

from __future__ import annotations

import importlib
import traceback

_HINT_REFUSED = (
    "interpreters_aio.dask: this task needs a module that cannot be imported in a "
    "subinterpreter; run it on the worker's default (thread) executor: leave it out "
    "of dask.annotate(executor=...)"
)


def prepare(modules: tuple[str, ...]) -> None:
    """Initialize a worker interpreter: import cloudpickle and ``modules`` once, up front."""
    import cloudpickle  # noqa: F401

    for name in modules:
        importlib.import_module(name)


def run_task(payload: bytes) -> tuple[bool, bytes]:
    """Run the cloudpickled ``(task, data)`` in ``payload`` as distributed does: ``task(data)``.

    Returns ``(True, cloudpickled result)`` or ``(False, cloudpickled error)``
    where the error is ``(exception or None, type name, message, formatted
    traceback, traceback as a tblib dict or None)``.
    """
    import cloudpickle

    try:
        task, data = cloudpickle.loads(payload)
        del payload
        result = task(data)
    except BaseException as exc:  # the task's own errors, SystemExit included: reported
        return False, _dump_error(exc, skip_frames=1)
    try:
        return True, cloudpickle.dumps(result, protocol=5)
    except BaseException as exc:
        failure = TypeError(
            f"interpreters_aio.dask: the result of the task, of type "
            f"{type(result).__qualname__}, cannot be pickled to leave the subinterpreter: {exc}"
        )
        failure.__cause__ = exc
        return False, _dump_error(failure, skip_frames=0)


def _dump_error(exc: BaseException, skip_frames: int) -> bytes:
    import cloudpickle

    if isinstance(exc, ImportError) and "subinterpreter" in str(exc):
        exc.add_note(_HINT_REFUSED)
    tb = exc.__traceback__
    for _ in range(skip_frames):  # this module's own frame is not the task's
        if tb is not None:
            tb = tb.tb_next
    formatted = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        from tblib import Traceback  # distributed's dependency; pure Python

        tb_dict = Traceback(tb).as_dict() if tb is not None else None
    except Exception:
        tb_dict = None
    exc.__traceback__ = None  # frames hold the task's locals: do not pickle them
    try:
        blob = cloudpickle.dumps((exc, type(exc).__qualname__, str(exc), formatted, tb_dict))
        cloudpickle.loads(blob)  # the class must also be importable where it is rebuilt
    except BaseException:
        blob = cloudpickle.dumps((None, type(exc).__qualname__, _safe_str(exc), formatted, tb_dict))
    return blob


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:
        return f"<str() of the {type(exc).__qualname__} failed>"
