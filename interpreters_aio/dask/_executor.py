"""``InterpreterTaskExecutor``: a distributed worker executor whose tasks run in
subinterpreters of the worker's process.

distributed's ``Worker.execute`` treats an executor whose type name lacks
"ThreadPoolExecutor" as a process pool: it submits
``distributed.worker._run_task_simple(task, data, time_delay)``, expecting the
executor to pickle it to another process. That function cannot run in a
subinterpreter (it needs ``distributed``, which needs ``psutil``, which
refuses subinterpreters), and need not: we recognise it, ship only the task
and its data (cloudpickled, as ``bytes``) into a worker interpreter, run
``task(data)`` there, and build the message ``_run_task_simple`` would have
returned (result, sizes, times, or the error with its traceback) here, in the
main interpreter. Anything else submitted to it (distributed's own helpers,
when it is the worker's default executor) runs here on the pool's threads,
as on a thread pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any

from ..executor import InterpreterPoolExecutor
from . import _guards, _remote

__all__ = ["InterpreterTaskExecutor"]


class InterpreterTaskExecutor(InterpreterPoolExecutor):
    """Runs distributed's tasks in subinterpreters, one per worker thread.

    Give it to a worker as an executor (``Worker(executor={"interpreters":
    InterpreterTaskExecutor(2)})``, or ``LocalCluster(..., executor=...)``)
    and route tasks to it with ``dask.annotate(executor="interpreters")``;
    or install it with :class:`~interpreters_aio.dask.InterpretersPlugin` or
    ``dask worker --preload interpreters_aio.dask``.

    A task's function, arguments and dependencies' data travel by cloudpickle
    (functions from ``__main__`` and lambdas by value) into the interpreter,
    and its result back. An exception comes back with its type, message and
    the task's traceback, as from a thread worker.

    It pickles as its settings (``max_workers``, ``preload``, the thread
    name prefix), so ``LocalCluster(processes=True)`` gives each worker
    process a fresh pool of its own. Its interpreters are created on first
    use and closed by ``shutdown()`` (the worker calls it when it closes).

    Args:
        max_workers: interpreters (and threads) in the pool; match the
            worker's ``nthreads``, which bounds how many tasks run at once.
        preload: modules to import in the main interpreter first and then in
            each worker interpreter when it starts (see the import-order rule
            in docs/dask.md).
        thread_name_prefix: names the pool's threads.

    Raises:
        ProfilerEnabledError: ``distributed.worker.profile.enabled`` is on
            (a copy unpickled in a worker process checks at its first task,
            after the worker has its configuration: the task fails with it).
        UnsupportedDistributedVersion: distributed hands tasks to executors
            in a way this version does not know.
        ImportError: a ``preload`` module cannot be imported.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        preload: Iterable[str] = (),
        thread_name_prefix: str = "",
        _check_profiler: bool = True,
    ) -> None:
        self._preload = tuple(preload)
        self._task_runner = _guards.task_runner()
        # A copy unpickled in a worker process is built before the nanny has
        # applied the cluster's dask config there: it checks at its first task.
        self._profiler_checked = False
        if _check_profiler:
            _guards.require_profiler_off()
            self._profiler_checked = True
        _guards.preimport(self._preload)
        from dask.sizeof import sizeof
        from distributed.core import error_message

        self._sizeof = sizeof
        self._error_message = error_message
        super().__init__(
            max_workers,
            thread_name_prefix or "Dask-Interpreters",
            initializer=_remote.prepare,
            initargs=(self._preload,),
        )

    def __reduce__(self) -> tuple[Callable[..., InterpreterTaskExecutor], tuple[Any, ...]]:
        return _rebuild, (self._max_workers, self._preload, self._thread_name_prefix)

    def __repr__(self) -> str:
        return f"<{type(self).__qualname__} max_workers={self._max_workers}>"

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Run distributed's task runner's task in an interpreter; anything else here.

        Raises:
            BrokenInterpreterPool: a worker interpreter failed to start.
            RuntimeError: the pool was shut down.
        """
        if not self._profiler_checked:
            _guards.require_profiler_off()
            self._profiler_checked = True
        target = self._run_task if fn is self._task_runner else fn
        return self._submit_here(target, *args, **kwargs)

    def _run_task(self, task: Any, data: dict, time_delay: float) -> dict[str, Any]:
        # What distributed.worker._run_task_simple returns, with task(data)
        # run in this thread's interpreter.
        import cloudpickle

        start = time.time()
        try:
            payload = cloudpickle.dumps((task, data), protocol=5)
        except BaseException as exc:
            msg = self._failure(exc, exc.__traceback__)
        else:
            ok, blob = self._interp_local.interp.call(_remote.run_task, payload)
            del payload
            msg = self._success(blob) if ok else self._remote_failure(blob)
        stop = time.time()
        msg["start"] = start + time_delay
        msg["stop"] = stop + time_delay
        msg["thread"] = threading.get_ident()
        return msg

    def _success(self, blob: bytes) -> dict[str, Any]:
        import cloudpickle

        try:
            result = cloudpickle.loads(blob)
        except BaseException as exc:
            return self._failure(exc, exc.__traceback__)
        return {
            "op": "task-finished",
            "status": "OK",
            "result": result,
            "nbytes": self._sizeof(result),
            "type": type(result) if result is not None else None,
        }

    def _remote_failure(self, blob: bytes) -> dict[str, Any]:
        import cloudpickle

        exc, type_name, message, formatted, tb_dict = cloudpickle.loads(blob)
        if exc is None:
            exc = TaskFailed(type_name, message, formatted)
        tb = None
        if tb_dict is not None:
            from tblib import Traceback

            tb = Traceback.from_dict(tb_dict).as_traceback()
        if tb is None and not isinstance(exc, TaskFailed):
            exc.add_note(formatted)
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise exc.with_traceback(tb)  # as _run_task_simple does: they stop the worker
        return self._failure(exc, tb)

    def _failure(self, exc: BaseException, tb: Any) -> dict[str, Any]:
        # error_message() reads the traceback of the exception being handled
        # (sys.exc_info()), so hand it the task's, without this frame on top.
        try:
            raise exc
        except BaseException:
            exc.__traceback__ = tb
            msg: dict[str, Any] = dict(self._error_message(exc))
        msg["op"] = "task-erred"
        msg["actual_exception"] = exc
        return msg


class TaskFailed(Exception):
    """A task raised an exception that could not be pickled back; its type,
    message and remote traceback are kept as text."""

    def __init__(self, type_name: str, message: str, formatted: str) -> None:
        super().__init__(f"{type_name}: {message}", formatted)
        self.type_name = type_name
        self.message = message
        self.formatted = formatted

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}\n\nRemote traceback:\n{self.formatted}"


def _rebuild(
    max_workers: int, preload: tuple[str, ...], thread_name_prefix: str
) -> InterpreterTaskExecutor:
    return InterpreterTaskExecutor(
        max_workers,
        preload=preload,
        thread_name_prefix=thread_name_prefix,
        _check_profiler=False,
    )
