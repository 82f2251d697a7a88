"""Installing :class:`InterpreterTaskExecutor` on running workers: a
``WorkerPlugin`` (``client.register_plugin``) and the preload hook
(``dask worker --preload interpreters_aio.dask``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

from ._executor import InterpreterTaskExecutor

__all__ = ["DEFAULT_EXECUTOR_NAME", "InterpretersPlugin", "dask_setup"]

logger = logging.getLogger("interpreters_aio.dask")

DEFAULT_EXECUTOR_NAME = "interpreters"
"""The executor name tasks are routed to: ``dask.annotate(executor="interpreters")``."""


class InterpretersPlugin(WorkerPlugin):
    """Adds an :class:`InterpreterTaskExecutor` to each worker, under ``executor_name``.

    ``client.register_plugin(InterpretersPlugin())`` installs it on every
    current and future worker; tasks annotated with
    ``dask.annotate(executor="interpreters")`` then run in subinterpreters,
    the others on the worker's threads. Removing the plugin (or closing the
    worker) shuts the executor down and closes its interpreters.

    Args:
        max_workers: interpreters per worker (default: the worker's ``nthreads``).
        executor_name: the name to annotate tasks with; it must not be one
            the worker already has (such as ``"default"``).
        preload: modules to import in the main interpreter first, then in
            each worker interpreter.

    Setting it up on a worker raises :class:`ProfilerEnabledError` while
    that worker's profiler is on, and ``ValueError`` if the name is taken.
    """

    name = "interpreters-aio"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        executor_name: str = DEFAULT_EXECUTOR_NAME,
        preload: Iterable[str] = (),
    ) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.executor_name = executor_name
        self.preload = tuple(preload)

    def setup(self, worker: Any) -> None:
        """Create the executor and add it to ``worker.executors``."""
        existing = worker.executors.get(self.executor_name)
        if existing is not None:
            raise ValueError(
                f"worker {worker.address} already has an executor named "
                f"{self.executor_name!r} ({existing!r}); choose another executor_name"
            )
        executor = InterpreterTaskExecutor(
            self.max_workers or worker.state.nthreads,
            preload=self.preload,
            thread_name_prefix=f"{worker.name}-Dask-Interpreters",
        )
        worker.executors[self.executor_name] = executor

    async def teardown(self, worker: Any) -> None:
        """Remove the executor from the worker, finish its tasks, close its interpreters."""
        executor = worker.executors.get(self.executor_name)
        if isinstance(executor, InterpreterTaskExecutor):
            del worker.executors[self.executor_name]
            await asyncio.to_thread(executor.shutdown, wait=True)


async def dask_setup(worker: Any) -> None:
    """The preload hook: ``dask worker --preload interpreters_aio.dask`` (or the
    ``distributed.worker.preload`` setting) installs :class:`InterpretersPlugin`
    with its defaults on the worker.

    A setup that fails (the profiler is on, an unsupported ``distributed``)
    logs why and stops the worker, and its nanny with it: distributed itself
    would log a failed preload and keep the worker running without the
    executor, so every annotated task would fail later with "Invalid
    executor". The exception is raised too."""
    from distributed import Worker

    if not isinstance(worker, Worker):
        raise TypeError(
            "interpreters_aio.dask is a worker preload (dask worker --preload "
            f"interpreters_aio.dask), not one for a {type(worker).__name__}"
        )
    try:
        await worker.plugin_add(InterpretersPlugin(), catch_errors=False)
    except Exception as exc:
        reason = f"interpreters_aio.dask preload failed: {type(exc).__name__}: {exc}"
        logger.error("%s; stopping worker %s", reason, worker.address)
        # After the worker's start returns: closing from inside it would wait for itself.
        _STOPPING.add(asyncio.get_running_loop().create_task(_stop(worker, reason)))
        raise


_STOPPING: set[asyncio.Task[None]] = set()  # strong references until they finish


async def _stop(worker: Any, reason: str) -> None:
    try:
        # A worker still starting ignores close(). Server.start() is
        # idempotent: it waits on the start in progress (its startup lock)
        # and returns once the worker runs; a failed start raises, and then
        # close() has nothing left to stop but is harmless.
        with contextlib.suppress(Exception):
            await worker.start()
        await worker.close(nanny=True, reason=reason)
    finally:
        _STOPPING.discard(asyncio.current_task())  # type: ignore[arg-type]
