"""PEP 734 queues (CPython 3.14 semantics) plus closing, iteration and fds."""

from __future__ import annotations

import pickle
import queue as stdlib_queue
import select
import threading
import time

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    NotShareableError,
    Queue,
    QueueClosed,
    QueueEmpty,
    QueueFull,
    QueueNotFoundError,
)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_fifo_basics():
    q = interpreters.create_queue()
    assert q.empty() and q.qsize() == 0 and not q.full() and q.maxsize == 0
    for item in [1, "two", (3,), {"four": [4]}, None]:
        q.put(item)
    assert q.qsize() == 5
    assert [q.get() for _ in range(5)] == [1, "two", (3,), {"four": [4]}, None]
    with pytest.raises(QueueEmpty, match=f"queue {q.id} is empty"):
        q.get_nowait()


def test_errors_subclass_stdlib_queue_errors():
    assert issubclass(QueueEmpty, stdlib_queue.Empty)
    assert issubclass(QueueFull, stdlib_queue.Full)
    assert issubclass(QueueEmpty, interpreters.QueueError)


def test_bounded_queue():
    q = interpreters.create_queue(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(QueueFull):
        q.put_nowait(3)
    with pytest.raises(QueueFull):
        q.put(3, block=False)
    start = time.monotonic()
    with pytest.raises(QueueFull):
        q.put(3, timeout=0.05)
    assert time.monotonic() - start >= 0.05
    assert q.get() == 1
    q.put(3)
    assert [q.get(), q.get()] == [2, 3]


def test_float_timeouts_are_exact():
    q = interpreters.create_queue()
    for timeout in (0.0, 0.01, 0.123):
        start = time.monotonic()
        with pytest.raises(QueueEmpty):
            q.get(timeout=timeout)
        took = time.monotonic() - start
        assert timeout <= took < timeout + 0.5, (timeout, took)


@pytest.mark.parametrize("bad", [-1, -0.5])
def test_negative_timeout_is_rejected(bad):
    q = interpreters.create_queue()
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=bad)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(1, timeout=bad)


def test_bad_arguments():
    with pytest.raises(TypeError):
        interpreters.create_queue("3")
    with pytest.raises(ValueError, match="unbounditems"):
        interpreters.create_queue(unbounditems="nope")
    with pytest.raises(TypeError):
        interpreters.create_queue().get(timeout="1")


def test_one_object_per_id_and_lookup():
    q = interpreters.create_queue()
    assert Queue(q.id) is q
    assert q in interpreters.list_all_queues()
    assert pickle.loads(pickle.dumps(q)) is q
    with pytest.raises(QueueNotFoundError):
        Queue(10**9)
    with pytest.raises(TypeError):
        Queue("1")


def test_queue_is_freed_when_unreferenced():
    q = interpreters.create_queue()
    qid = q.id
    del q
    import gc

    gc.collect()
    with pytest.raises(QueueNotFoundError):
        Queue(qid)


def test_pickled_and_strict_objects():
    q = interpreters.create_queue()
    q.put(workloads.Point(1, 2))
    assert q.get() == workloads.Point(1, 2)
    strict = interpreters.create_queue(strict=True)
    with pytest.raises(NotShareableError):
        strict.put(workloads.Point(1, 2))
    strict.put((1, "native"))
    assert strict.get() == (1, "native")
    with pytest.raises(NotShareableError, match="lock"):
        q.put(threading.Lock())
    assert q.empty()


def test_queue_crosses_interpreters_by_reference(interp):
    q = interpreters.create_queue()
    interp.prepare_main(q=q)
    interp.exec("q.put(('hello', __import__('interpreters_aio').get_current().id))")
    assert q.get() == ("hello", interp.id)
    q.put([1, 2, 3])
    assert interp.call(workloads.get_one, q) == [1, 2, 3]
    assert interp.call(workloads.main_eval, "q.id") == q.id


def test_blocking_get_is_woken_by_put_from_another_interpreter(interp):
    q = interpreters.create_queue()
    t = interp.call_in_thread(workloads.get_one, q)  # blocks in the subinterpreter
    time.sleep(0.05)
    q.put("wake up")
    t.join(10)
    assert not t.is_alive()


def test_fds_track_readiness():
    q = interpreters.create_queue(1)
    r, w = q.fileno(), q.put_fileno()
    assert not readable(r) and readable(w)
    q.put(1)
    assert readable(r) and not readable(w)
    q.get()
    assert not readable(r) and readable(w)
    with selectors_default() as sel:
        import selectors

        sel.register(r, selectors.EVENT_READ)
        threading.Timer(0.05, q.put, args=(2,)).start()
        assert sel.select(timeout=10)


def selectors_default():
    import selectors

    return selectors.DefaultSelector()


def test_close_drains_then_raises():
    q = interpreters.create_queue()
    q.put(1)
    q.put(2)
    q.close()
    assert q.closed
    with pytest.raises(QueueClosed):
        q.put(3)
    assert list(q) == [1, 2]
    with pytest.raises(QueueClosed):
        q.get()
    assert readable(q.fileno()), "closed: get fails at once, so the fd is readable"
    q.close()  # twice is fine


def test_close_wakes_blocked_getters():
    q = interpreters.create_queue()
    errors = []

    def getter():
        try:
            q.get(timeout=30)
        except QueueClosed as exc:
            errors.append(exc)

    threads = [threading.Thread(target=getter) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    q.close()
    for t in threads:
        t.join(10)
    assert len(errors) == 4


def test_context_manager_closes():
    with interpreters.create_queue() as q:
        q.put(1)
    assert q.closed


def test_unbound_items_when_the_sender_closes():
    q = interpreters.create_queue(unbounditems=UNBOUND)
    assert q.unbounditems is UNBOUND
    it = interpreters.create()
    it.prepare_main(q=q)
    it.exec(
        "import interpreters_aio as ia\n"
        "q.put('default')\n"
        "q.put('error', unbounditems=ia.UNBOUND_ERROR)\n"
        "q.put('remove', unbounditems=ia.UNBOUND_REMOVE)\n"
    )
    q.put("mine")
    it.close()
    assert q.qsize() == 3
    assert q.get() is UNBOUND
    with pytest.raises(ItemInterpreterDestroyed):
        q.get()
    assert q.get() == "mine"
    assert repr(UNBOUND) == "interpreters_aio._queues.UNBOUND"
    for marker in (UNBOUND, UNBOUND_ERROR, UNBOUND_REMOVE):
        assert pickle.loads(pickle.dumps(marker)) is marker
    assert UNBOUND_REMOVE is not UNBOUND


def test_huge_object():
    q = interpreters.create_queue()
    blob = b"y" * (32 * 1024 * 1024)
    q.put(blob)
    assert q.get() == blob


async def test_fd_works_with_loop_add_reader(interp):
    import asyncio

    q = interpreters.create_queue()
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(q.fileno(), ready.set)
    try:
        interp.prepare_main(q=q)
        thread = interp.call_in_thread(workloads.main_exec, "q.put('from another interpreter')")
        await asyncio.wait_for(ready.wait(), 10)
        assert q.get_nowait() == "from another interpreter"
        await asyncio.to_thread(thread.join, 10)
    finally:
        loop.remove_reader(q.fileno())
