"""Worker processes for the comparison rows, always cleaned up.

Each helper is a context manager over one :mod:`multiprocessing` start method
(``spawn``, ``forkserver``, ``fork``), so a benchmark can compare them; the
targets live in :mod:`benchmarks.workers` so every start method can import
them.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.pool import Pool

from . import workers

START_METHODS: tuple[str, ...] = ("spawn", "forkserver", "fork")
"""The start methods compared, in the order they are reported."""

JOIN_TIMEOUT = 10.0
"""Seconds to wait for a worker to stop before terminating it."""


def unavailable_reason(method: str) -> str | None:
    """Why ``method`` cannot be used on this platform, or ``None`` if it can."""
    if method not in multiprocessing.get_all_start_methods():
        return f"start method {method!r} not available on this platform"
    return None


def context(method: str) -> BaseContext:
    """The multiprocessing context of ``method``."""
    return multiprocessing.get_context(method)


def start_and_join_noop(ctx: BaseContext) -> None:
    """Start a process running :func:`workers.noop` and wait for it to end."""
    process = ctx.Process(target=workers.noop)  # type: ignore[attr-defined]
    process.start()
    try:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"no-op process exited with status {process.exitcode}")
    finally:
        if process.is_alive():
            process.terminate()
            process.join()
        process.close()


@contextmanager
def echo_worker(method: str) -> Iterator[Connection]:
    """A process that echoes whatever is sent on the yielded connection."""
    ctx = context(method)
    ours, theirs = ctx.Pipe()
    process = ctx.Process(  # type: ignore[attr-defined]
        target=workers.echo_loop, args=(theirs,), name=f"echo-{method}", daemon=True
    )
    try:
        process.start()
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()  # The child has its own copy; the parent must not keep one.
    try:
        yield ours
    finally:
        try:
            ours.send(None)
        except (OSError, ValueError):
            pass  # The worker is already gone.
        process.join(JOIN_TIMEOUT)
        if process.is_alive():
            process.terminate()
            process.join()
        ours.close()


@contextmanager
def worker_pool(method: str, processes: int = 1) -> Iterator[Pool]:
    """A started :class:`multiprocessing.pool.Pool`; closed and joined on exit."""
    pool = context(method).Pool(processes)
    try:
        yield pool
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()
