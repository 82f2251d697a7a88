"""InterpreterPoolExecutor (3.14 semantics plus warm pools) and aio.InterpreterPool."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import BrokenInterpreterPool, InterpreterPoolExecutor, aio


def test_runs_tasks_in_subinterpreters_reused_per_worker():
    with InterpreterPoolExecutor(2) as pool:
        ids = {pool.submit(workloads.interpreter_id).result() for _ in range(20)}
        assert 0 not in ids and 1 <= len(ids) <= 2
        assert list(pool.map(workloads.add, [1, 2, 3], [10, 20, 30])) == [11, 22, 33]
    assert not set(ids) & {i.id for i in interpreters.list_all()}, "closed at shutdown"


def test_original_exception_with_execution_failed_as_cause():
    with InterpreterPoolExecutor(1) as pool:
        future = pool.submit(workloads.raise_value_error, "bad")
        with pytest.raises(ValueError, match="bad") as info:
            future.result()
        assert isinstance(info.value.__cause__, interpreters.ExecutionFailed)
        # An exception whose class exists only there crosses by value with
        # cloudpickle (tests/test_pickling.py checks ExecutionFailed without it).
        pytest.importorskip("cloudpickle")
        source = "class OnlyThere(Exception): pass\nraise OnlyThere('x')"
        with pytest.raises(Exception, match="x") as info:
            pool.submit(workloads.main_exec, source).result()
        assert type(info.value).__name__ == "OnlyThere"
        assert "OnlyThere" in str(info.value.__cause__)  # the remote traceback


def test_initializer_runs_in_each_worker_interpreter():
    with InterpreterPoolExecutor(2, initializer=workloads.set_marker, initargs=("ready",)) as pool:
        marker, id = pool.submit(workloads.read_marker).result()
        assert marker == "ready" and id != 0


def test_failing_initializer_breaks_the_pool():
    pool = InterpreterPoolExecutor(1, initializer=workloads.fail_init)
    try:
        with pytest.raises(BrokenInterpreterPool):
            pool.submit(workloads.add, 1).result(timeout=30)
        with pytest.raises(BrokenInterpreterPool):
            pool.submit(workloads.add, 1)
    finally:
        pool.shutdown()
    assert issubclass(BrokenInterpreterPool, concurrent.futures.thread.BrokenThreadPool)


def test_warm_pool_creates_workers_up_front():
    pool = InterpreterPoolExecutor(2, warm=True)
    try:
        assert len(pool._interps) == 2
        start = time.perf_counter()
        assert pool.submit(workloads.add, 1, 2).result() == 3
        assert time.perf_counter() - start < 5
    finally:
        pool.shutdown()


def test_shutdown_cancel_futures():
    pool = InterpreterPoolExecutor(1, warm=True)
    first = pool.submit(workloads.spin, 0.3)
    deadline = time.monotonic() + 10
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.001)
    queued = [pool.submit(workloads.add, i) for i in range(5)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert first.result() > 0
    assert all(f.cancelled() for f in queued)


def test_workers_run_at_the_same_time():
    # Each task waits for the other's token: they finish only if they run
    # concurrently, in two interpreters. (Speed-ups are in the benchmarks.)
    a, b = interpreters.create_queue(), interpreters.create_queue()
    with InterpreterPoolExecutor(2, warm=True) as pool:
        first = pool.submit(workloads.handshake, a, b, "from first")
        second = pool.submit(workloads.handshake, b, a, "from second")
        assert first.result(timeout=60) == "from second"
        assert second.result(timeout=60) == "from first"


async def test_usable_from_run_in_executor_and_as_default_executor():
    loop = asyncio.get_running_loop()
    pool = InterpreterPoolExecutor(2)
    try:
        assert await loop.run_in_executor(pool, workloads.add, 1, 2) == 3
        loop.set_default_executor(pool)
        assert await loop.run_in_executor(None, workloads.add, 2, 2) == 4
    finally:
        pool.shutdown()


async def test_aio_interpreter_pool():
    async with aio.InterpreterPool(2) as pool:
        assert await pool.call(workloads.add, 1, 2) == 3
        results = [r async for r in pool.map(workloads.add, range(10), range(10))]
        assert results == [2 * i for i in range(10)]
        with pytest.raises(ValueError):
            await pool.call(workloads.raise_value_error, "x")
