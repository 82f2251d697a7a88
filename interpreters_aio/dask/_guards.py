"""Checks made in the main interpreter before a worker runs tasks in subinterpreters.

Two CPython bugs crash the whole worker process, so they are guarded here
rather than documented only:

* ``sys._current_frames()`` crashes the process (``free(): invalid pointer``
  or a segfault) while threads run inside subinterpreters, on 3.12 to 3.14,
  with the standard library's interpreters too. distributed's statistical
  profiler calls it every 10 ms in every worker (and a watcher thread of each
  server's event loop every 20 ms), from the moment the worker is created, and
  offers no way to stop it afterwards. So we cannot turn it off for a running
  worker: we refuse to start, with a message that names the setting, and the
  user turns it off before the worker starts.
* CPython 3.13.0 crashes when a subinterpreter imports an extension module
  with static types (``_datetime``, and msgpack's or yaml's accelerators)
  before the main interpreter has. Importing them here first avoids it.

And one fact of distributed: a worker hands a task to an executor that is not
a thread pool as ``distributed.worker._run_task_simple(task, data,
time_delay)``, a private function; we recognise it and run the task in a
subinterpreter instead. That is checked against the versions we know.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable

PROFILE_SETTING = "distributed.worker.profile.enabled"

# distributed versions whose worker calls a non-thread executor with
# _run_task_simple(task: GraphNode, data, time_delay) and runs `task(data)`.
KNOWN_DISTRIBUTED = ("2024.12.0", "2027.1.0")  # [first, first unknown)

# Standard library modules with C accelerators that tasks commonly import.
ACCELERATED_STDLIB = (
    "datetime",
    "decimal",
    "zoneinfo",
    "json",
    "pickle",
    "csv",
    "array",
    "struct",
    "math",
    "cmath",
    "random",
    "bisect",
    "heapq",
    "statistics",
    "hashlib",
    "binascii",
    "zlib",
    "unicodedata",
    "select",
    "socket",
    "contextvars",
    "queue",
    "asyncio",
)
# Third-party modules with optional accelerators (imported only if installed).
ACCELERATED_OPTIONAL = ("msgpack", "yaml")


class ProfilerEnabledError(RuntimeError):
    """distributed's profiler is on: it would crash the worker (see the message)."""


class UnsupportedDistributedVersion(RuntimeError):
    """This distributed hands tasks to executors in a way we do not know."""


def require_profiler_off() -> None:
    """Raise :class:`ProfilerEnabledError` unless distributed's profiler is off.

    Call it where the worker runs (its process reads its own dask config).
    """
    import dask

    if dask.config.get(PROFILE_SETTING, True):
        raise ProfilerEnabledError(
            f"interpreters_aio.dask: distributed's profiler is on ({PROFILE_SETTING} is True). "
            "It calls sys._current_frames(), which crashes the process while threads run "
            "in subinterpreters (a CPython bug). Turn it off before the worker starts: "
            f"dask.config.set({{{PROFILE_SETTING!r}: False}}) in the process that creates "
            "the cluster, or DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False in the "
            "environment of `dask worker`."
        )


def preimport(modules: Iterable[str] = ()) -> None:
    """Import the accelerated standard modules, msgpack/yaml if installed, and
    ``modules`` in this (the main) interpreter, before any subinterpreter does.

    Raises:
        ImportError: one of ``modules`` cannot be imported.
    """
    for name in ACCELERATED_STDLIB:
        try:
            importlib.import_module(name)
        except ImportError:  # a Python built without it: nothing to protect
            pass
    for name in ACCELERATED_OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    import cloudpickle  # noqa: F401  (the subinterpreters import it for every task)

    for name in modules:
        importlib.import_module(name)


def task_runner() -> object:
    """distributed's function that a worker submits to a non-thread executor.

    Raises:
        UnsupportedDistributedVersion: distributed is older or newer than the
            versions known to call it as ``_run_task_simple(task, data, time_delay)``.
    """
    import distributed
    import distributed.worker
    from packaging.version import Version

    first, unknown = KNOWN_DISTRIBUTED
    version = distributed.__version__
    runner = getattr(distributed.worker, "_run_task_simple", None)
    try:
        params = list(inspect.signature(runner).parameters) if runner is not None else None
    except (TypeError, ValueError):
        params = None
    try:
        known = Version(first) <= Version(version) < Version(unknown)
    except Exception:
        known = False
    if not known or params != ["task", "data", "time_delay"]:
        raise UnsupportedDistributedVersion(
            f"interpreters_aio.dask works with distributed >= {first}, < {unknown}; this is "
            f"distributed {version}, whose worker hands tasks to executors in a way this "
            "version of interpreters-aio does not know (distributed.worker._run_task_simple"
            f"{'' if params is None else '(' + ', '.join(params) + ')'}). Install a "
            f"distributed in that range, or a newer interpreters-aio."
        )
    return runner
