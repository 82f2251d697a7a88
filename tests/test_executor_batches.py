"""Batched tasks: ``_core.call_many`` and the executor's workers taking their
share of the queue in one trip (concurrent.futures semantics kept)."""

from __future__ import annotations

import concurrent.futures
import gc
import threading
import types
import weakref

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import InterpreterPoolExecutor, _core

RAISED, NOT_SENT = 1, 2


def task(fn, *args, **kwargs):
    return types.SimpleNamespace(fn=fn, args=args, kwargs=kwargs or None)


@pytest.fixture
def interp():
    interp = interpreters.create()
    yield interp
    interp.close()


def test_call_many_reports_each_task(interp):
    tasks = [
        task(workloads.add, 1, 2),
        task(workloads.raise_value_error, "bad"),
        task(workloads.identity, threading.Lock()),  # cannot cross
        task(workloads.return_lock),  # its result cannot come back
        task(workloads.add, 1, b=2, scale=3),
    ]
    results, failures, seconds = _core.call_many(interp.id, tasks, 1.0)
    assert len(results) == 5 and seconds >= 0
    assert results[0] == 3 and results[4] == 9
    by_index = {index: (kind, payload) for index, kind, payload in failures}
    assert sorted(by_index) == [1, 2, 3]
    kind, excinfo = by_index[1]
    failed = interpreters.ExecutionFailed._from_raw(excinfo)
    assert kind == RAISED and isinstance(failed.excinfo.rebuild(), ValueError)
    assert "raise_value_error" in str(failed)  # the remote traceback
    for index in (2, 3):
        kind, exc = by_index[index]
        assert kind == NOT_SENT and isinstance(exc, interpreters.NotShareableError)
    assert "result" in str(by_index[3][1])


def test_call_many_runs_calls_at_main_top_level(interp):
    # The stub pops each call's arguments: consecutive calls of one callable
    # in a batch see their own, and run in __main__'s namespace.
    tasks = [task(exec, "x = 5"), task(eval, "x + 1"), task(eval, "x * 2"), task(dir)]
    results, failures, _ = _core.call_many(interp.id, tasks, 1.0)
    assert failures == []
    assert results[:3] == [None, 6, 10] and "x" in results[3]


def test_call_many_stops_at_the_budget_after_one_call(interp):
    tasks = [task(workloads.add, i, 0) for i in range(50)]
    results, failures, _ = _core.call_many(interp.id, tasks, 0.0)
    assert results == [0] and failures == []
    assert _core.call_many(interp.id, [], 0.0)[:2] == ([], [])


def test_call_many_rejects_malformed_input(interp):
    with pytest.raises(TypeError):
        _core.call_many(interp.id, (task(workloads.add, 1),), 1.0)
    with pytest.raises(AttributeError):
        _core.call_many(interp.id, [object()], 1.0)
    with pytest.raises(TypeError):
        _core.call_many(interp.id, [types.SimpleNamespace(fn=len, args=[1], kwargs=None)], 1.0)
    with pytest.raises(ValueError):
        _core.call_many(interp.id, [task(workloads.add, 1)], -1.0)
    closed = interpreters.create()
    closed.close()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        _core.call_many(closed.id, [task(workloads.add, 1)], 1.0)


def test_many_tiny_tasks_in_order():
    with InterpreterPoolExecutor(2, warm=True) as pool:
        assert list(pool.map(workloads.add, range(3000), range(3000))) == [
            2 * i for i in range(3000)
        ]
        future = pool.submit(workloads.add, 1, 2)
        assert future.result() == 3
        assert isinstance(future, concurrent.futures.Future)
        assert repr(future).startswith("<Future at ")


def test_failures_in_a_burst_stay_with_their_tasks():
    lock = threading.Lock()
    with InterpreterPoolExecutor(2, warm=True) as pool:
        futures = []
        for i in range(600):
            if i % 7 == 0:
                futures.append(pool.submit(workloads.raise_value_error, f"bad {i}"))
            elif i % 11 == 0:
                futures.append(pool.submit(workloads.identity, lock))
            else:
                futures.append(pool.submit(workloads.add, i, 1))
        for i, future in enumerate(futures):
            if i % 7 == 0:
                with pytest.raises(ValueError, match=f"^bad {i}$") as info:
                    future.result(timeout=60)
                assert isinstance(info.value.__cause__, interpreters.ExecutionFailed)
            elif i % 11 == 0:
                with pytest.raises(interpreters.NotShareableError):
                    future.result(timeout=60)
            else:
                assert future.result(timeout=60) == i + 1


def test_cancel_storm_cancelled_tasks_never_run():
    ran = interpreters.create_queue()
    with InterpreterPoolExecutor(2, warm=True) as pool:
        futures = [pool.submit(workloads.put_value, ran, i) for i in range(3000)]
        cancelled = set()

        def cancel_odd() -> None:
            for i in range(1, len(futures), 2):
                if futures[i].cancel():
                    cancelled.add(i)

        canceller = threading.Thread(target=cancel_odd)
        canceller.start()
        canceller.join(60)
        _, pending = concurrent.futures.wait(futures, timeout=60)
        assert not pending
        ran_values = set()  # drained before the pool closes the interpreters that put them
        while not ran.empty():
            ran_values.add(ran.get_nowait())
    assert ran_values == set(range(3000)) - cancelled
    assert {i for i, f in enumerate(futures) if f.cancelled()} == cancelled
    assert all(futures[i].result() == i for i in ran_values)


def test_shutdown_cancel_futures_with_a_long_queue():
    pool = InterpreterPoolExecutor(2, warm=True)
    futures = [pool.submit(workloads.add, i, 0) for i in range(5000)]
    pool.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in futures)
    for i, future in enumerate(futures):
        assert future.cancelled() or future.result() == i
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(workloads.add, 1, 2)


def test_slow_tasks_are_not_held_by_one_worker():
    with InterpreterPoolExecutor(2, warm=True) as pool:
        futures = [pool.submit(workloads.spin_then_id, 0.1) for _ in range(6)]
        ids = [f.result(timeout=60) for f in futures]
    assert len(set(ids)) == 2


def test_done_futures_do_not_keep_their_inputs():
    point = workloads.Point(1, 2)
    seen = weakref.ref(point)
    with InterpreterPoolExecutor(1) as pool:
        future = pool.submit(workloads.identity, point)
        assert future.result(timeout=60) == point
        del point
        gc.collect()
        assert seen() is None, "the done future still holds its argument"


def test_warm_pool_with_failing_initializer_raises_and_cleans_up():
    before = {i.id for i in interpreters.list_all()}
    with pytest.raises(interpreters.BrokenInterpreterPool):
        InterpreterPoolExecutor(2, initializer=workloads.fail_init, warm=True)
    assert {i.id for i in interpreters.list_all()} == before
