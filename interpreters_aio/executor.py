"""``InterpreterPoolExecutor``: a ``concurrent.futures`` executor whose workers
run tasks in subinterpreters, in parallel (CPython 3.14 semantics).

Each worker thread owns one interpreter, created when the thread starts and
reused for every task it runs, and closed when the pool shuts down. A task
that raises re-raises the original exception (rebuilt here when it can be
pickled) with :class:`ExecutionFailed` as its ``__cause__``; if it cannot be
rebuilt, ``ExecutionFailed`` itself is raised. A failing ``initializer`` breaks
the pool with :class:`BrokenInterpreterPool`.

Beyond 3.14: ``warm=True`` creates every worker and its interpreter up front,
so the first result does not pay for interpreter creation;
``shutdown(cancel_futures=True)`` works as on ``ThreadPoolExecutor``.

It is a plain ``Executor``, so ``loop.run_in_executor(pool, f, *args)`` and
``loop.set_default_executor(pool)`` work.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.thread import BrokenThreadPool
from typing import Any

from . import _shutdown
from ._errors import ExecutionFailed, RemoteTraceback
from ._interpreter import Interpreter, create

__all__ = ["BrokenInterpreterPool", "InterpreterPoolExecutor"]


class BrokenInterpreterPool(BrokenThreadPool):
    """A worker's initializer failed: the pool accepts no more work."""


def _default_workers() -> int:
    count = getattr(os, "process_cpu_count", os.cpu_count)()
    return count or 1


class InterpreterPoolExecutor(ThreadPoolExecutor):
    """Runs each task in a subinterpreter owned by the worker thread that runs it.

    ``fn``, its arguments and its result cross between interpreters like
    ``Interpreter.call``'s (natively, or by pickle; functions from
    ``__main__`` and lambdas by their code; closures and classes defined in
    ``__main__`` by value when cloudpickle is installed).

    Args:
        max_workers: worker threads, each with its own interpreter (default:
            the number of CPUs this process may use).
        thread_name_prefix: names the worker threads.
        initializer: called as ``initializer(*initargs)`` in each worker's
            interpreter when it starts; if it raises, the pool is broken.
        warm: create every worker and its interpreter now, not on first use.
    """

    def __init__(
        self,
        max_workers: int | None = None,
        thread_name_prefix: str = "",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        warm: bool = False,
    ) -> None:
        if max_workers is None:
            max_workers = _default_workers()
        if initializer is not None and not callable(initializer):
            raise TypeError("initializer must be a callable")
        self._interp_local = threading.local()
        self._interps: list[Interpreter] = []
        self._interps_lock = threading.Lock()
        super().__init__(
            max_workers,
            thread_name_prefix or "InterpreterPoolExecutor",
            initializer=self._start_worker,
            initargs=(initializer, initargs),
        )
        if warm:
            self._warm_up()

    def _start_worker(self, initializer: Callable[..., object] | None, initargs: tuple) -> None:
        interp = create()
        _shutdown.pooled(interp.id)
        with self._interps_lock:
            self._interps.append(interp)
        self._interp_local.interp = interp
        if initializer is not None:
            interp.call(initializer, *initargs)

    def _initializer_failed(self) -> None:
        # Same as ThreadPoolExecutor's, with this pool's exception type.
        with self._shutdown_lock:
            self._broken = (
                "A worker's initializer failed: the interpreter pool is not usable anymore"
            )
            while True:
                try:
                    work_item = self._work_queue.get_nowait()
                except Exception:
                    break
                if work_item is not None:
                    work_item.future.set_exception(BrokenInterpreterPool(self._broken))

    def _warm_up(self) -> None:
        workers = self._max_workers
        ready = threading.Barrier(workers)
        started = [ThreadPoolExecutor.submit(self, ready.wait, 30) for _ in range(workers)]
        for future in started:
            future.result()

    def _run(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        interp: Interpreter = self._interp_local.interp
        try:
            return interp.call(fn, *args, **kwargs)
        except ExecutionFailed as failed:
            original = failed.__cause__
            if isinstance(original, BaseException) and not isinstance(original, RemoteTraceback):
                failed.__cause__ = original.__cause__  # the remote traceback
                raise original from failed
            raise

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """Schedule ``fn(*args, **kwargs)`` in a worker's interpreter.

        Raises:
            BrokenInterpreterPool: a worker's initializer failed.
            RuntimeError: the pool was shut down.
        """
        try:
            return super().submit(self._run, fn, args, kwargs)
        except BrokenThreadPool as broken:
            if isinstance(broken, BrokenInterpreterPool):
                raise
            raise BrokenInterpreterPool(*broken.args) from None

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; with ``wait``, finish the running tasks and
        close the workers' interpreters (otherwise they are closed at exit)."""
        super().shutdown(wait=wait, cancel_futures=cancel_futures)
        if wait:
            with self._interps_lock:
                interps, self._interps = self._interps, []
            for interp in interps:
                interp.close()
                _shutdown.unpooled(interp.id)
