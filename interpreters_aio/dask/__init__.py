"""Dask on subinterpreters: tasks of a ``distributed`` worker run in parallel
in subinterpreters of the worker's process (``pip install interpreters-aio[dask]``).

Three ways in (see docs/dask.md), all with distributed's profiler off
(``distributed.worker.profile.enabled: False``; it crashes CPython while
threads run in subinterpreters)::

    LocalCluster(processes=False, threads_per_worker=2,
                 executor={"interpreters": InterpreterTaskExecutor(2)})
    client.register_plugin(InterpretersPlugin())
    dask worker SCHEDULER --preload interpreters_aio.dask

and then route pure-Python tasks to it; the rest (numpy, pandas) stay on the
worker's threads::

    with dask.annotate(executor="interpreters"):
        total = dask.delayed(work)(10)

This package's ``__init__`` imports nothing of distributed: subinterpreters
import ``interpreters_aio.dask._remote`` and must not import distributed
(psutil refuses them). The names below are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._lazy import attributes

if TYPE_CHECKING:
    from ._executor import InterpreterTaskExecutor, TaskFailed
    from ._guards import ProfilerEnabledError, UnsupportedDistributedVersion
    from ._plugin import DEFAULT_EXECUTOR_NAME, InterpretersPlugin

__all__ = [
    "DEFAULT_EXECUTOR_NAME",
    "InterpreterTaskExecutor",
    "InterpretersPlugin",
    "ProfilerEnabledError",
    "TaskFailed",
    "UnsupportedDistributedVersion",
    "dask_setup",
]

_LAZY = {
    "InterpreterTaskExecutor": "._executor",
    "TaskFailed": "._executor",
    "ProfilerEnabledError": "._guards",
    "UnsupportedDistributedVersion": "._guards",
    "InterpretersPlugin": "._plugin",
    "DEFAULT_EXECUTOR_NAME": "._plugin",
}


__getattr__ = attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


async def dask_setup(worker: Any) -> None:
    """The preload hook of ``dask worker --preload interpreters_aio.dask``: installs
    :class:`InterpretersPlugin` with its defaults (as many interpreters as the
    worker has threads, executor name ``"interpreters"``) on the worker."""
    from ._plugin import dask_setup as setup

    await setup(worker)
