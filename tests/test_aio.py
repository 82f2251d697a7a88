"""The async layer: awaitable queues and channel ends, select, async interpreters."""

from __future__ import annotations

import asyncio
import random
import sys

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import aio

LOOP_IN_SUBINTERPRETER_BROKEN = pytest.mark.skipif(
    sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4),
    reason="CPython 3.12.0-3.12.3 abort at exit once a subinterpreter imported _asyncio "
    "before the main interpreter did (cross-interpreter state, fixed by gh-119213 in 3.12.4)",
)


async def test_queue_get_and_put_await_without_blocking_the_loop():
    q = interpreters.create_queue(1).aio
    assert isinstance(q, aio.AsyncQueue) and q.blocking.aio == q
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    await q.put("a")
    assert await asyncio.wait_for(getter, 10) == "a"
    await q.put("b")
    putter = asyncio.create_task(q.put("c"))  # full: waits
    await asyncio.sleep(0.01)
    assert not putter.done()
    assert await q.get() == "b"
    await asyncio.wait_for(putter, 10)
    assert q.get_nowait() == "c"


async def test_async_iteration_until_closed():
    q = interpreters.create_queue().aio
    for i in range(3):
        q.put_nowait(i)
    await q.aclose()
    assert [item async for item in q] == [0, 1, 2]


async def test_a_thousand_concurrent_awaits_on_one_queue():
    q = interpreters.create_queue().aio
    getters = [asyncio.create_task(q.get()) for _ in range(1000)]
    await asyncio.sleep(0.01)
    for i in range(1000):
        q.put_nowait(i)
    got = await asyncio.wait_for(asyncio.gather(*getters), 60)
    assert sorted(got) == list(range(1000))


async def test_cancellation_storm_loses_and_duplicates_nothing():
    q = interpreters.create_queue(16).aio
    total = 100_000
    received: list[int] = []
    rng = random.Random(7)

    async def producer():
        n = 0
        while n < total:
            try:
                async with asyncio.timeout(rng.choice([None, 0.0001, 0.001])):
                    await q.put(n)
                n += 1
            except TimeoutError:
                pass  # not added: retry the same item

    async def consumer():
        while True:
            task = asyncio.create_task(q.get())
            if rng.random() < 0.3:
                await asyncio.sleep(0)
                task.cancel()
            try:
                received.append(await task)
            except asyncio.CancelledError:
                pass  # nothing taken
            except interpreters.QueueClosed:
                return

    async def run():
        consumers = [asyncio.create_task(consumer()) for _ in range(2)]
        await producer()
        await q.aclose()  # consumers drain what is left, then stop
        await asyncio.gather(*consumers)

    await asyncio.wait_for(run(), 120)
    assert sorted(received) == list(range(total))


async def test_channel_rendezvous_between_coroutines():
    r, s = interpreters.create_channel()
    receiver = asyncio.create_task(r.aio.recv())
    await asyncio.wait_for(s.aio.send("hi"), 10)  # waits for the awaiting receiver
    assert await asyncio.wait_for(receiver, 10) == "hi"


async def test_cancelled_rendezvous_send_sends_nothing():
    r, s = interpreters.create_channel()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await s.aio.send("nobody")
    assert r.recv_nowait(None) is None


async def test_async_channel_iteration_and_context_managers():
    r, s = interpreters.create_channel(8)
    async with s.aio as sender:
        for i in range(3):
            await sender.send(i)
    assert [x async for x in r.aio] == [0, 1, 2]


@LOOP_IN_SUBINTERPRETER_BROKEN
async def test_ping_pong_with_an_event_loop_in_another_interpreter(interp):
    req_r, req_s = interpreters.create_channel()
    rep_r, rep_s = interpreters.create_channel()
    interp.prepare_main(req=req_r, rep=rep_s)
    n = 200
    thread = interp.call_in_thread(workloads.async_echo_service, req_r, rep_s, n)
    for i in range(n):
        await asyncio.wait_for(req_s.aio.send(i), 10)
        assert await asyncio.wait_for(rep_r.aio.recv(), 10) == ("echo", i)
    await asyncio.to_thread(thread.join, 10)


async def test_select_takes_the_first_ready_end():
    q1, q2 = interpreters.create_queue().aio, interpreters.create_queue().aio
    r, s = interpreters.create_channel(4)
    waiter = asyncio.create_task(aio.select(q1, q2, r.aio))
    await asyncio.sleep(0.01)
    q2.put_nowait("two")
    end, item = await asyncio.wait_for(waiter, 10)
    assert end == q2 and item == "two"
    s.send("chan")
    end, item = await aio.select(q1, r.aio)
    assert end == r.aio and item == "chan"
    with pytest.raises(ValueError):
        await aio.select()


async def test_async_interpreter_runs_off_the_loop_and_queues_awaits():
    it = await aio.create()
    try:
        await it.exec("total = 0")
        # Concurrent awaits on one interpreter run one after another, in order.
        await asyncio.gather(*(it.exec(f"total = total * 10 + {i}") for i in range(1, 6)))
        assert await it.call(workloads.main_eval, "total") == 12345
        assert await it.call(workloads.add, 1, 2) == 3
        await it.prepare_main(x=5)
        assert await it.call(workloads.main_eval, "x") == 5
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        await it.call(workloads.spin, 0.2)  # the loop keeps serving meanwhile
        t.cancel()
        assert ticks > 10
        with pytest.raises(interpreters.ExecutionFailed):
            await it.exec("raise KeyError('x')")
        assert it.blocking.aio is it
    finally:
        await it.close()
    assert it.blocking not in interpreters.list_all()


def test_works_with_uvloop():
    uvloop = pytest.importorskip("uvloop")

    async def scenario():
        q = interpreters.create_queue().aio
        getters = [asyncio.create_task(q.get()) for _ in range(100)]
        await asyncio.sleep(0.01)
        for i in range(100):
            await q.put(i)
        assert sorted(await asyncio.wait_for(asyncio.gather(*getters), 30)) == list(range(100))
        r, s = interpreters.create_channel()
        receiver = asyncio.create_task(r.aio.recv())
        await asyncio.wait_for(s.aio.send("via uvloop"), 10)
        assert await receiver == "via uvloop"
        it = await aio.create()
        try:
            assert await it.call(workloads.add, 2, 3) == 5
        finally:
            await it.close()
        return type(asyncio.get_running_loop()).__module__

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(scenario()).startswith("uvloop")


async def test_close_while_awaited_wakes_the_awaiters():
    q = interpreters.create_queue().aio
    r, s = interpreters.create_channel()
    getter = asyncio.create_task(q.get())
    receiver = asyncio.create_task(r.aio.recv())
    await asyncio.sleep(0.01)
    await q.aclose()
    await s.aio.aclose()
    with pytest.raises(interpreters.QueueClosed):
        await asyncio.wait_for(getter, 10)
    with pytest.raises(interpreters.ChannelClosedError):
        await asyncio.wait_for(receiver, 10)


def test_views_cross_interpreters_as_views(interp):
    q = interpreters.create_queue()
    interp.prepare_main(view=q.aio)
    assert interp.call(workloads.main_eval, "type(view).__name__") == "AsyncQueue"
    assert interp.call(workloads.main_eval, "view.blocking.id") == q.id


CTRL_C_ASYNC = """
import asyncio, os, signal, threading, time
import interpreters_aio as interpreters

q = interpreters.create_queue()

async def main():
    threading.Timer(0.3, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    await q.aio.get()

try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted")
q.put(1)
print("then", q.get(timeout=5), "left", q.qsize())
"""


def test_ctrl_c_during_asyncio_run(run_python):
    proc = run_python(CTRL_C_ASYNC, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:5] == ["interrupted", "then", "1", "left", "0"]


ASYNC_SERVICES = """
import asyncio, sys
import interpreters_aio as interpreters
from interpreters_aio import aio
import workloads

async def main():
    for _ in range(3):
        it = await aio.create()
        r1, s1 = interpreters.create_channel()
        r2, s2 = interpreters.create_channel()
        service = asyncio.create_task(it.call(workloads.async_echo_service, r1, s2, 3))
        for i in range(3):
            await s1.aio.send(i)
            assert await r2.aio.recv() == ("echo", i)
        assert await service == 3
        await it.close()
    print("ok")

asyncio.run(main())
"""


@LOOP_IN_SUBINTERPRETER_BROKEN
def test_event_loops_in_interpreters_while_main_runs_one(run_python):
    # Event loops in interpreters driven from the main loop, several times.
    for _ in range(3):
        proc = run_python(ASYNC_SERVICES, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.strip() == "ok"


def _still_watched(loop: asyncio.AbstractEventLoop, *fds: int) -> list[int]:
    """The descriptors among ``fds`` that ``loop`` still has a reader for
    (``remove_reader`` answers whether it removed one: call only when nothing waits)."""
    return [fd for fd in fds if loop.remove_reader(fd)]


async def test_reader_registrations_are_cleaned_up():
    loop = asyncio.get_running_loop()
    q = interpreters.create_queue(1)
    r, s = interpreters.create_channel()
    fds = (q.fileno(), q.put_fileno(), r.fileno(), s.fileno())

    # Items taken after a wait, as a consumer loop does.
    getter = asyncio.create_task(q.aio.get())
    await asyncio.sleep(0.01)
    await q.aio.put(1)
    assert await getter == 1
    # Timeouts, cancellations and a rendezvous send nobody takes.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await q.aio.get()
    q.put_nowait(2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await q.aio.put(3)
    assert q.get_nowait() == 2
    task = asyncio.create_task(r.aio.recv())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            await s.aio.send("nobody")
    # select over all of them, one answering.
    waiter = asyncio.create_task(aio.select(q.aio, r.aio))
    await asyncio.sleep(0.01)
    q.put_nowait(4)
    assert await waiter == (q.aio, 4)
    # A woken waiter cancelled before it runs leaves the item to the next one:
    # two loop iterations after the put, the first waiter has been woken but
    # has not run yet (the event is processed after this task's step).
    first, second = asyncio.create_task(q.aio.get()), asyncio.create_task(q.aio.get())
    await asyncio.sleep(0.01)
    q.put_nowait(5)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    first.cancel()
    (outcome,) = await asyncio.gather(first, return_exceptions=True)
    if isinstance(outcome, asyncio.CancelledError):
        assert await asyncio.wait_for(second, 10) == 5
    else:
        assert outcome == 5
        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
    assert q.empty()

    # The loop stops watching at most one iteration after the last waiter left.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert _still_watched(loop, *fds) == []


async def test_a_consumer_loop_keeps_one_registration(monkeypatch):
    # Taking an item and awaiting the next in the same step keeps the reader
    # registered in between (no add/remove per item); it goes once nobody waits.
    loop = asyncio.get_running_loop()
    q = interpreters.create_queue()
    n = 50
    added: list[int] = []
    add_reader = loop.add_reader

    def counting_add_reader(fd, callback, *args):
        added.append(fd)
        return add_reader(fd, callback, *args)

    monkeypatch.setattr(loop, "add_reader", counting_add_reader)

    async def consume() -> list[int]:
        return [await q.aio.get() for _ in range(n)]

    consumer = asyncio.create_task(consume())
    for i in range(n):
        await asyncio.sleep(0.001)  # the consumer is waiting again by now
        q.put_nowait(i)
    assert await asyncio.wait_for(consumer, 10) == list(range(n))
    assert added.count(q.fileno()) == 1, added
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert _still_watched(loop, q.fileno()) == []


async def test_cross_interpreter_storm_with_select_loses_and_duplicates_nothing(interp):
    # Another interpreter's threads put on a bounded queue and send on a
    # rendezvous channel (blocking) while coroutines here take with get(),
    # recv() and select(), cancelled and timed out at random.
    total = 20_000
    q = interpreters.create_queue(8)
    r, s = interpreters.create_channel()
    from_queue: list[int] = []
    from_channel: list[int] = []
    rng = random.Random(11)
    producer = interp.call_in_thread(workloads.produce_numbers, q, s, total)

    def record(end, item):
        (from_queue if end == q.aio else from_channel).append(item)

    async def take_one(kind: int):
        if kind == 0:
            record(q.aio, await q.aio.get())
        elif kind == 1:
            record(r.aio, await r.aio.recv())
        else:
            record(*await aio.select(q.aio, r.aio))

    async def consumer():
        while True:
            kind = rng.randrange(3)
            task = asyncio.create_task(take_one(kind))
            if rng.random() < 0.3:
                for _ in range(rng.randrange(3)):
                    await asyncio.sleep(0)
                task.cancel()
            try:
                async with asyncio.timeout(rng.choice([None, 0.0005, 0.005])):
                    await task
            except (asyncio.CancelledError, TimeoutError):
                if asyncio.current_task().cancelling():
                    raise  # this consumer itself is cancelled (the test timed out)
                # Otherwise nothing was taken.
            except (interpreters.QueueClosed, interpreters.ChannelClosedError):
                if len(from_queue) == total and len(from_channel) == total:
                    return
                await asyncio.sleep(0)  # the other end may still have items

    await asyncio.wait_for(asyncio.gather(*(consumer() for _ in range(3))), 240)
    await asyncio.to_thread(producer.join, 30)
    assert sorted(from_queue) == list(range(total))
    assert sorted(from_channel) == list(range(total))


def test_a_wait_abandoned_with_its_closed_loop_is_quiet(run_python):
    # A coroutine closed after its loop (a task destroyed while pending) must
    # not fail in its clean-up: the loop watches nothing anymore.
    result = run_python(
        """
import asyncio, gc
import interpreters_aio as interpreters
q = interpreters.create_queue()
loop = asyncio.new_event_loop()
task = loop.create_task(q.aio.get())
loop.run_until_complete(asyncio.sleep(0.01))
loop.close()
del task
gc.collect()
q.put(1)
print("left", q.get_nowait())
"""
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "left 1"
    assert "Exception ignored" not in result.stderr, result.stderr
