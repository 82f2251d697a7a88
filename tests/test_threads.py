"""Threads as peers, under real parallelism: many threads of one interpreter on
one queue or channel, event loops on several threads passing work through the
async ends, containers converted while other threads change them.

On a free-threaded build (3.14t) these threads really run at once, with no
GIL to serialize them; on the other builds they interleave at every GIL
switch. Either way nothing may crash, hang, be lost or be duplicated.
"""

from __future__ import annotations

import asyncio
import collections
import random
import sys
import threading
import time

import pytest

import interpreters_aio as interpreters

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
THREADS = 8
PER_THREAD = 5_000
DEADLINE = 60.0


def _run_threads(target, count: int) -> None:
    """Runs ``target(i)`` on ``count`` threads started together; re-raises the first error."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors


def _assert_exactly_once(got: list[tuple[int, int]], producers: int, each: int) -> None:
    seen = collections.Counter(got)
    assert len(seen) == producers * each, f"{producers * each - len(seen)} items lost"
    assert max(seen.values()) == 1, "an item was duplicated"


@pytest.mark.parametrize("maxsize", [0, 16])
def test_threads_of_one_interpreter_hammer_one_queue_from_both_ends(maxsize):
    q = interpreters.create_queue(maxsize)
    got: list[list[tuple[int, int]]] = [[] for _ in range(THREADS // 2)]
    producers = THREADS // 2

    def work(i: int) -> None:
        if i < producers:
            for n in range(PER_THREAD):
                q.put((i, n), timeout=DEADLINE)
        else:
            mine = got[i - producers]
            for _ in range(PER_THREAD):
                mine.append(q.get(timeout=DEADLINE))

    _run_threads(work, THREADS)
    assert q.empty()
    _assert_exactly_once([item for part in got for item in part], producers, PER_THREAD)
    for part in got:  # each producer's items stay in order for any one consumer
        last: dict[int, int] = {}
        for producer, n in part:
            assert n > last.get(producer, -1)
            last[producer] = n


def test_threads_of_one_interpreter_hammer_one_channel_from_both_ends():
    r, s = interpreters.create_channel()
    producers = THREADS // 2
    got: list[list[tuple[int, int]]] = [[] for _ in range(producers)]
    each = PER_THREAD // 5  # a rendezvous send waits for its receiver: slower per item

    def work(i: int) -> None:
        if i < producers:
            for n in range(each):
                s.send((i, n), timeout=DEADLINE)
        else:
            for _ in range(each):
                got[i - producers].append(r.recv(timeout=DEADLINE))

    _run_threads(work, THREADS)
    _assert_exactly_once([item for part in got for item in part], producers, each)


def test_nowait_ends_spun_by_many_threads_lose_nothing():
    """put_nowait/get_nowait racing on a small queue: every item taken once."""
    q = interpreters.create_queue(4)
    producers = THREADS // 2
    got: list[list[tuple[int, int]]] = [[] for _ in range(producers)]
    deadline = time.monotonic() + DEADLINE

    def work(i: int) -> None:
        if i < producers:
            n = 0
            while n < PER_THREAD and time.monotonic() < deadline:
                try:
                    q.put_nowait((i, n))
                    n += 1
                except interpreters.QueueFull:
                    pass
        else:
            mine = got[i - producers]
            while len(mine) < PER_THREAD and time.monotonic() < deadline:
                try:
                    mine.append(q.get_nowait())
                except interpreters.QueueEmpty:
                    pass

    _run_threads(work, THREADS)
    _assert_exactly_once([item for part in got for item in part], producers, PER_THREAD)


@pytest.mark.parametrize("kind", ["list", "dict", "set"])
def test_converting_a_container_other_threads_change(kind):
    """Sending a container that other threads mutate gives a copy of it at some
    moment (or a clear error from Python itself), never a crash or garbage."""
    universe = [f"item-{n}" for n in range(64)]
    if kind == "list":
        shared: list | dict | set = list(universe[:32])
    elif kind == "dict":
        shared = {k: n for n, k in enumerate(universe[:32])}
    else:
        shared = set(universe[:32])
    q = interpreters.create_queue()
    stop = threading.Event()
    sends = 0

    def mutate(i: int) -> None:
        rng = random.Random(i)
        while not stop.is_set():
            key = rng.choice(universe)
            if kind == "list":
                size = len(shared)
                if rng.random() < 0.5 and size:
                    try:
                        shared.pop(rng.randrange(size))
                    except IndexError:
                        pass  # another thread shrank it first
                else:
                    shared.append(key)
                    if len(shared) > 256:
                        shared.clear()
            elif kind == "dict":
                if rng.random() < 0.5:
                    shared.pop(key, None)
                else:
                    shared[key] = universe.index(key)
            else:
                if rng.random() < 0.5:
                    shared.discard(key)
                else:
                    shared.add(key)

    def send(i: int) -> None:
        nonlocal sends
        if i > 0:
            return mutate(i)
        try:
            end = time.monotonic() + 2.0
            while time.monotonic() < end:
                q.put(shared)
                copy = q.get()
                assert type(copy) is type(shared)
                if kind == "dict":
                    assert all(universe[v] == k for k, v in copy.items())
                else:
                    assert all(item in universe for item in copy)
                sends += 1
        finally:
            stop.set()

    _run_threads(send, 4)
    assert sends > 10


def test_interpreters_created_and_closed_by_threads_while_items_flow():
    # One queue per thread: an item outlives neither its queue nor (PEP 734:
    # it becomes unbound) the interpreter that put it.
    queues = [interpreters.create_queue() for _ in range(6)]
    got: list[list] = [[] for _ in range(6)]

    def work(i: int) -> None:
        for n in range(4):
            it = interpreters.create()
            try:
                it.prepare_main(q=queues[i])
                it.exec(f"q.put(({i}, {n}, [1, 2.0, 'three', b'4', {{'k': (None, True)}}]))")
                got[i].append(queues[i].get(timeout=DEADLINE))
            finally:
                it.close()

    _run_threads(work, 6)
    for i, part in enumerate(got):
        assert part == [(i, n, [1, 2.0, "three", b"4", {"k": (None, True)}]) for n in range(4)]


# Event loops on several threads of one interpreter: the async ends are the
# hand-off between them, with no interpreter involved.


def _loops_on_threads(coroutines) -> list:
    """Runs each coroutine function on its own thread's event loop; returns the results."""
    results: list = [None] * len(coroutines)

    def run(i: int) -> None:
        results[i] = asyncio.run(coroutines[i]())

    _run_threads(run, len(coroutines))
    return results


def test_loops_on_threads_pass_work_through_a_queue():
    requests = interpreters.create_queue(64)
    replies = interpreters.create_queue()
    per_client = 2_000

    async def server() -> int:
        served = 0
        while served < 2 * per_client:
            item = await requests.aio.get()
            await replies.aio.put(item * 2)
            served += 1
        return served

    async def client(base: int) -> list[int]:
        got = []
        for n in range(per_client):
            await requests.aio.put(base + n)
        for _ in range(per_client):
            got.append(await replies.aio.get())
        return got

    served, got_a, got_b = _loops_on_threads([server, lambda: client(0), lambda: client(1_000_000)])
    assert served == 2 * per_client
    sent = [*range(per_client), *range(1_000_000, 1_000_000 + per_client)]
    expected = sorted(2 * n for n in sent)
    assert sorted(got_a + got_b) == expected


def test_loops_on_threads_rendezvous_over_a_channel():
    r, s = interpreters.create_channel()
    count = 1_000

    async def sender() -> None:
        for n in range(count):
            await s.aio.send(n)
        s.close()

    async def receiver() -> list[int]:
        return [item async for item in r.aio]

    _, got = _loops_on_threads([sender, receiver])
    assert got == list(range(count))


def test_cancelling_awaits_on_many_loops_loses_and_duplicates_nothing():
    """A cancellation storm on 4 loops at once, all awaiting one queue."""
    q = interpreters.create_queue()
    total = 4_000
    loops = 4

    async def consumer(seed: int) -> list[int]:
        rng = random.Random(seed)
        got: list[int] = []
        end = time.monotonic() + 20
        while time.monotonic() < end:
            task = asyncio.ensure_future(q.aio.get())
            await asyncio.sleep(rng.random() * 0.0005)
            if not task.done():
                task.cancel()
            try:
                got.append(await task)
            except asyncio.CancelledError:
                pass
            if len(got) and got[-1] == -1:
                got.pop()
                break
        return got

    def produce() -> None:
        for n in range(total):
            q.put(n)
            if n % 64 == 0:
                time.sleep(0.0005)
        for _ in range(loops):
            q.put(-1)  # one stop marker per consumer

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        results = _loops_on_threads([lambda s=s: consumer(s) for s in range(loops)])
    finally:
        producer.join(DEADLINE)
    leftover = [q.get_nowait() for _ in range(q.qsize())]
    got = [n for part in results for n in part] + [n for n in leftover if n != -1]
    assert sorted(got) == list(range(total)), "an item was lost or duplicated"


@pytest.mark.skipif(not FREE_THREADED, reason="free-threaded builds only")
def test_gil_stays_disabled_through_every_feature(run_python):
    """Importing the package and using every part of it keeps the GIL off, in the
    main interpreter and in ours (a module without Py_mod_gil turns it on, with
    a RuntimeWarning, for the whole process)."""
    result = run_python(
        """
        import asyncio, socket, sys, warnings
        warnings.simplefilter("error", RuntimeWarning)
        import interpreters_aio as interpreters
        from interpreters_aio import aio
        from interpreters_aio.http import HttpProtocol
        import interpreters_aio.serve.worker, interpreters_aio.serve.supervisor
        import interpreters_aio.dask
        import interpreters_aio._backport
        assert not sys._is_gil_enabled(), "after import"

        it = interpreters.create()
        q = interpreters.create_queue()
        r, s = interpreters.create_channel(4)
        it.prepare_main(q=q, s=s)
        it.exec("import sys; q.put(sys._is_gil_enabled()); s.send_nowait([1, {'a': 2}])")
        assert q.get() is False, "in a subinterpreter"
        assert r.recv() == [1, {'a': 2}]
        assert it.call(pow, 2, 10) == 1024

        async def main():
            await q.aio.put(b"x" * 100_000)
            assert len(await q.aio.get()) == 100_000
            worker = await aio.create()
            assert await worker.call(sum, [1, 2, 3]) == 6
            await worker.close()
            async with aio.InterpreterPool(2) as pool:
                assert await pool.call(abs, -3) == 3
            loop = asyncio.get_running_loop()
            with interpreters.InterpreterPoolExecutor(2) as pool:
                assert await loop.run_in_executor(pool, divmod, 7, 2) == (3, 1)
        asyncio.run(main())

        # The HTTP protocol, parsing and framing in Rust, under uvicorn's server.
        import uvicorn
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        async def serve_once():
            sock = socket.socket(); sock.bind(("127.0.0.1", 0)); sock.listen()
            config = uvicorn.Config(app, http=HttpProtocol, lifespan="off", log_level="warning")
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection(*sock.getsockname())
            writer.write(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
            reply = await reader.read()
            writer.close()
            server.should_exit = True
            await task
            return reply
        reply = asyncio.run(serve_once())
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok\\r\\n0\\r\\n\\r\\n"), reply

        # Dask's local scheduler on our executor.
        import dask
        with interpreters.InterpreterPoolExecutor(2) as pool:
            total = dask.delayed(sum)([dask.delayed(abs)(-n) for n in range(5)])
            assert total.compute(scheduler="threads", pool=pool) == 10
        it.close()
        assert not sys._is_gil_enabled(), "at the end"
        print("gil disabled throughout")
        """,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gil disabled throughout" in result.stdout
    assert "global interpreter lock" not in result.stderr, result.stderr
