"""Section "async": asyncio across interpreters, and executors of interpreters.

- ``async round trip``: the main interpreter and a subinterpreter each run
  their own event loop; the main one awaits a put on queue A, a coroutine in
  the subinterpreter's loop awaits the get on A and puts the item on queue B,
  and the main one awaits the get on B. One operation is a batch of round
  trips inside one ``run_until_complete`` of a loop created at setup; times
  are per round trip. Contenders: interpreters_aio's queues (``.aio``: the loop
  watches the queue's file descriptor), the standard library's interpreter
  queues (no async API: polled, or waited for in a thread), and two
  ``asyncio.Queue`` between two coroutines of one loop in this interpreter.
- ``loops on two threads``: the same round trip between the main thread's
  event loop and one on another thread of this interpreter (no subinterpreter):
  interpreters_aio's queues against ``asyncio.Queue`` fed with
  ``call_soon_threadsafe``, and ``janus`` queues (a sync/async bridge). On a
  free-threaded build the two loops really run at once.
- ``executor: 2000 tiny tasks``: submit 2000 ``add(1, 2)`` to a 2-worker
  executor and wait for all results; times are per task.
- ``executor: first result``: construct a 2-worker executor and get the
  result of one ``add(1, 2)``; shutting it down afterwards is not timed.
- ``executor: CPU-bound``: 4 pure-Python loops on 2 workers, against running
  them one after the other in this thread.

Every executor, interpreter, thread and process is shut down or closed, also
when a contender fails. The functions run on the other side are in
:mod:`benchmarks.async_workers`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import interpreters_aio as aio

from . import processes
from .async_workers import (
    CPU_TASK_SIZE,
    add,
    aio_echo,
    count_up,
    eventfd_echo,
    polling_echo,
    polling_get,
    to_thread_echo,
    to_thread_get,
)
from .channels_bench import (
    _aio_worker,
    _closing,
    _detect_stdlib_queues,
    _Ending,
    _reply,
    _sentinel,
    _stdlib_worker,
    _StdlibQueues,
    _thread_running,
)
from .registry import BASELINE, Case, Contender, register_section
from .timing import Op, SplitOp

PING = 1
"""What a round trip sends, and expects back."""

ROUND_TRIPS = 200
"""Round trips per operation in the async round-trip case..."""
POLL_ROUND_TRIPS = 20
"""...for the stdlib polling row (milliseconds per round trip when no CPU is idle)..."""
SLOW_ROUND_TRIPS = 5
"""...and for the row whose get() sleeps 10 ms whenever its queue is empty."""

ROUND_TRIP_TARGET = 50e-6
"""interpreters_aio's async round trip should take at most this many seconds."""

WORKERS = 2
"""Workers of every executor."""
TINY_TASKS = 2000
"""Tasks per operation in the tiny-tasks case."""
TINY_TASKS_TARGET = 1 / 40_000
"""interpreters_aio should run at least 40,000 tiny tasks per second."""
FIRST_RESULT_TARGET = 20e-3
"""From constructing the pool to the first result, at most this many seconds."""
CPU_TASKS = 4
"""Tasks in the CPU-bound case."""
CPU_TARGET_SPEEDUP = 1.8
"""interpreters_aio on 2 workers should be this many times faster than sequential."""


# --- async round trip -----------------------------------------------------------------


@contextmanager
def _event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A new event loop for this thread's operations; closed (with its default
    executor, which ``asyncio.to_thread`` uses) on exit."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        try:
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _batch_op(
    loop: asyncio.AbstractEventLoop,
    put: Callable[[Any], Any],
    get: Callable[[], Awaitable[Any]],
    n: int,
) -> Op:
    """``n`` round trips: ``put`` (awaited if it returns an awaitable), then await ``get``."""

    async def batch() -> Any:
        reply = None
        for _ in range(n):
            sent = put(PING)
            if sent is not None:
                await sent
            reply = _reply(await get())
        return reply

    return lambda: loop.run_until_complete(batch())


def _round_trip_case(stdlib: _StdlibQueues | str) -> Case:
    @contextmanager
    def aio_queues() -> Iterator[Op]:
        there, back = aio.create_queue(), aio.create_queue()
        with _event_loop() as loop, _aio_worker(aio_echo, (there, back), _closing(there, back)):
            yield _batch_op(loop, there.aio.put, back.aio.get, ROUND_TRIPS)

    def stdlib_setup(stdlib: _StdlibQueues, echo: Callable[..., None], make_get: Any, n: int):
        @contextmanager
        def setup() -> Iterator[Op]:
            there, back = stdlib.create_queue(), stdlib.create_queue()
            ending = _sentinel(there, back)
            with _event_loop() as loop, _stdlib_worker(stdlib, echo, (there, back), ending):
                yield _batch_op(loop, there.put, make_get(back), n)

        return setup

    @contextmanager
    def asyncio_queues() -> Iterator[Op]:
        with _event_loop() as loop:
            there: asyncio.Queue[Any] = asyncio.Queue()
            back: asyncio.Queue[Any] = asyncio.Queue()

            async def echo() -> None:
                while (item := await there.get()) is not None:
                    back.put_nowait(item)

            task = loop.create_task(echo())
            task.add_done_callback(lambda _: back.put_nowait(None))  # never hang on a failure
            try:
                yield _batch_op(loop, there.put, back.get, ROUND_TRIPS)
            finally:
                there.put_nowait(None)
                loop.run_until_complete(task)

    @contextmanager
    def eventfd_threads() -> Iterator[Op]:
        there, back = os.eventfd(0), os.eventfd(0)
        stop = PING + 1

        def op() -> int:
            reply = 0
            for _ in range(ROUND_TRIPS):
                os.eventfd_write(there, PING)
                reply = os.eventfd_read(back)
            return reply

        ending = _Ending(
            stop=lambda: os.eventfd_write(there, stop),
            unblock=lambda: os.eventfd_write(back, stop),  # a failed echo fails the check
        )
        try:
            # The echo runs in a subinterpreter so that the two threads share no GIL.
            with _aio_worker(eventfd_echo, (there, back, stop), ending):
                yield op
        finally:
            os.close(there)
            os.close(back)

    stdlib_variants = [
        (
            "stdlib queue, poll",
            polling_echo,
            polling_get,
            POLL_ROUND_TRIPS,
            "both loops poll get_nowait(), await asyncio.sleep(0) while empty (busy)",
        ),
        (
            "stdlib queue, to_thread",
            to_thread_echo,
            to_thread_get,
            SLOW_ROUND_TRIPS,
            "both loops await asyncio.to_thread(q.get); get() sleeps 10 ms while empty",
        ),
    ]
    if isinstance(stdlib, str):
        stdlib_rows = [Contender.unavailable(name, stdlib) for name, *_ in stdlib_variants]
    else:
        stdlib_rows = [
            Contender(
                name,
                stdlib_setup(stdlib, echo, make_get, n),
                expected=PING,
                note=f"{stdlib.module}: {how}",
                items_per_op=n,
            )
            for name, echo, make_get, n, how in stdlib_variants
        ]
    return Case(
        name="async round trip",
        description="main's event loop awaits put on queue A; a coroutine in a "
        "subinterpreter's own event loop awaits get on A and puts on B; main awaits get on B",
        contenders=[
            Contender(
                BASELINE,
                aio_queues,
                expected=PING,
                note="two queues, awaited via .aio (fd-driven) on both loops",
                target_time=ROUND_TRIP_TARGET,
                items_per_op=ROUND_TRIPS,
            ),
            *stdlib_rows,
            Contender(
                "asyncio.Queue (one loop)",
                asyncio_queues,
                expected=PING,
                note="two asyncio.Queue, two coroutines in one loop of this interpreter",
                items_per_op=ROUND_TRIPS,
            ),
            Contender(
                "floor: eventfd, two threads",
                eventfd_threads,
                expected=PING,
                note="no loop, no queue: this thread and one in a subinterpreter block "
                "in read() on two eventfds; what waking a sleeping thread costs here",
                items_per_op=ROUND_TRIPS,
            )
            if hasattr(os, "eventfd")
            else Contender.unavailable("floor: eventfd, two threads", "no os.eventfd"),
        ],
    )


# --- loops on two threads ---------------------------------------------------------------


def _thread_loop_case() -> Case:
    """A round trip between this thread's loop and a loop on another thread."""

    @contextmanager
    def aio_queues() -> Iterator[Op]:
        there, back = aio.create_queue(), aio.create_queue()
        with _event_loop() as loop, _thread_running(
            lambda: aio_echo(there, back), _closing(there, back), "loop thread"
        ):
            yield _batch_op(loop, there.aio.put, back.aio.get, ROUND_TRIPS)

    @contextmanager
    def call_soon_threadsafe() -> Iterator[Op]:
        with _event_loop() as loop:
            back: asyncio.Queue[Any] = asyncio.Queue()
            started = concurrent.futures.Future()

            async def echo() -> None:
                there: asyncio.Queue[Any] = asyncio.Queue()
                started.set_result((asyncio.get_running_loop(), there))
                while (item := await there.get()) is not None:
                    loop.call_soon_threadsafe(back.put_nowait, item)

            def stop() -> None:
                worker_loop, there = started.result()
                worker_loop.call_soon_threadsafe(there.put_nowait, None)

            def unblock() -> None:
                loop.call_soon_threadsafe(back.put_nowait, None)

            ending = _Ending(stop=stop, unblock=unblock)
            with _thread_running(lambda: asyncio.run(echo()), ending, "loop thread"):
                worker_loop, there = started.result(timeout=10)

                def put(item: Any) -> None:
                    worker_loop.call_soon_threadsafe(there.put_nowait, item)

                yield _batch_op(loop, put, back.get, ROUND_TRIPS)

    def janus_setup(janus: Any) -> Callable[[], AbstractContextManager[Op]]:
        @contextmanager
        def setup() -> Iterator[Op]:
            with _event_loop() as loop:
                back = loop.run_until_complete(_make_janus(janus))
                started = concurrent.futures.Future()

                async def echo() -> None:
                    there = janus.Queue()
                    started.set_result(there)
                    while (item := await there.async_q.get()) is not None:
                        back.sync_q.put(item)

                ending = _Ending(
                    stop=lambda: started.result().sync_q.put(None),
                    unblock=lambda: back.sync_q.put(None),
                )
                with _thread_running(lambda: asyncio.run(echo()), ending, "loop thread"):
                    there = started.result(timeout=10)
                    yield _batch_op(loop, there.sync_q.put, back.async_q.get, ROUND_TRIPS)

        return setup

    try:
        import janus
    except ImportError as exc:
        janus_row = Contender.unavailable("janus", f"not installed ({exc})")
    else:
        janus_row = Contender(
            "janus",
            janus_setup(janus),
            expected=PING,
            note="a janus.Queue per direction: put on its sync side, awaited on its async side",
            items_per_op=ROUND_TRIPS,
        )
    return Case(
        name="loops on two threads",
        description="this thread's event loop awaits put on queue A; a coroutine in an "
        "event loop on another thread of this interpreter awaits get on A and puts on B; "
        "we await get on B",
        contenders=[
            Contender(
                BASELINE,
                aio_queues,
                expected=PING,
                note="two queues, awaited via .aio (fd-driven) on both loops",
                items_per_op=ROUND_TRIPS,
            ),
            Contender(
                "asyncio.Queue + call_soon_threadsafe",
                call_soon_threadsafe,
                expected=PING,
                note="an asyncio.Queue on each loop, fed from the other thread by "
                "loop.call_soon_threadsafe(q.put_nowait, item)",
                items_per_op=ROUND_TRIPS,
            ),
            janus_row,
        ],
    )


async def _make_janus(janus: Any) -> Any:
    """A janus queue bound to the running loop (janus needs one at construction)."""
    return janus.Queue()


# --- executors ------------------------------------------------------------------------

PoolFactory = Callable[[], concurrent.futures.Executor]


def _executor_factories() -> list[tuple[str, PoolFactory | None, str, str]]:
    """``(name, make_pool or None, note, reason if unavailable)`` for every executor
    contender but interpreters_aio's (which the cases build with ``warm`` as they need)."""
    method = "forkserver" if processes.unavailable_reason("forkserver") is None else "spawn"
    rows: list[tuple[str, PoolFactory | None, str, str]] = [
        ("ThreadPoolExecutor", lambda: concurrent.futures.ThreadPoolExecutor(WORKERS), "", ""),
        (
            "ProcessPoolExecutor",
            lambda: concurrent.futures.ProcessPoolExecutor(
                WORKERS, mp_context=processes.context(method)
            ),
            method,
            "",
        ),
    ]
    stdlib_pool = getattr(concurrent.futures, "InterpreterPoolExecutor", None)
    if stdlib_pool is None:
        rows.append(
            (
                "stdlib InterpreterPoolExecutor",
                None,
                "",
                "no concurrent.futures.InterpreterPoolExecutor (CPython 3.14+)",
            )
        )
    else:
        rows.append(
            (
                "stdlib InterpreterPoolExecutor",
                lambda: stdlib_pool(WORKERS),
                "concurrent.futures (pickles fn, args, result)",
                "",
            )
        )
    return rows


def _aio_pool(warm: bool) -> PoolFactory:
    # Resolved now, as the stdlib's class is: the package imports its executor
    # on first use, and the rows time the pool, not that import.
    pool_class = aio.InterpreterPoolExecutor
    return lambda: pool_class(max_workers=WORKERS, warm=warm)


@contextmanager
def _started(make_pool: PoolFactory) -> Iterator[concurrent.futures.Executor]:
    """A pool whose workers all exist (a task ran on each); shut down on exit."""
    pool = make_pool()
    try:
        # Concurrent tasks make the pools that start workers on demand start them all.
        for future in [pool.submit(add, 1, 2) for _ in range(4 * WORKERS)]:
            future.result()
        yield pool
    finally:
        pool.shutdown(wait=True)


def _pool_setup(make_pool: PoolFactory, op_on: Callable[[concurrent.futures.Executor], Op]):
    """A setup timing ``op_on(pool)`` on a started pool."""

    @contextmanager
    def setup() -> Iterator[Op]:
        with _started(make_pool) as pool:
            yield op_on(pool)

    return setup


def _fresh_pool_setup(make_pool: PoolFactory, op_on: Callable[[concurrent.futures.Executor], Op]):
    """A setup timing: construct a pool, ``op_on(pool)()``, shut it down."""

    def op() -> Any:
        pool = make_pool()
        try:
            return op_on(pool)()
        finally:
            pool.shutdown(wait=True)

    @contextmanager
    def setup() -> Iterator[Op]:
        yield op

    return setup


def _tiny_tasks(pool: concurrent.futures.Executor) -> Op:
    def op() -> int:
        futures = [pool.submit(add, 1, 2) for _ in range(TINY_TASKS)]
        return sum(future.result() for future in futures)

    return op


def _first_result_setup(make_pool: PoolFactory) -> Callable[[], AbstractContextManager[Op]]:
    """A setup timing: construct a pool, ``submit(add, 1, 2).result()``; the
    shutdown that follows is not timed."""

    def run() -> tuple[object, concurrent.futures.Executor]:
        pool = make_pool()
        try:
            return pool.submit(add, 1, 2).result(), pool
        except BaseException:
            pool.shutdown(wait=True)
            raise

    def cleanup(pool: Any) -> None:
        pool.shutdown(wait=True)

    return _ready(SplitOp(run, cleanup))


def _cpu_tasks(pool: concurrent.futures.Executor) -> Op:
    def op() -> int:
        futures = [pool.submit(count_up, CPU_TASK_SIZE) for _ in range(CPU_TASKS)]
        return sum(future.result() for future in futures)

    return op


def _ready(op: Op) -> Callable[[], AbstractContextManager[Op]]:
    @contextmanager
    def setup() -> Iterator[Op]:
        yield op

    return setup


def _tiny_tasks_case() -> Case:
    expected = 3 * TINY_TASKS
    others = [
        Contender(
            name,
            _pool_setup(make, _tiny_tasks),
            expected=expected,
            note=note,
            items_per_op=TINY_TASKS,
            # Issue 14: at least the thread pool's throughput on tiny tasks.
            target_speedup=1.0 if name == "ThreadPoolExecutor" else None,
        )
        if make is not None
        else Contender.unavailable(name, reason)
        for name, make, note, reason in _executor_factories()
    ]
    return Case(
        name="executor: 2000 tiny tasks",
        description=f"submit {TINY_TASKS} add(1, 2) to {WORKERS} workers, wait for all results",
        contenders=[
            Contender(
                BASELINE,
                _pool_setup(_aio_pool(warm=True), _tiny_tasks),
                expected=expected,
                note="InterpreterPoolExecutor(warm=True)",
                target_time=TINY_TASKS_TARGET,
                items_per_op=TINY_TASKS,
            ),
            Contender(
                "interpreters_aio, warm=False + startup",
                _fresh_pool_setup(_aio_pool(warm=False), _tiny_tasks),
                expected=expected,
                note="each op constructs the pool and shuts it down",
                items_per_op=TINY_TASKS,
            ),
            *others,
        ],
    )


def _first_result_case() -> Case:
    others = []
    for name, make, note, reason in _executor_factories():
        if make is None:
            others.append(Contender.unavailable(name, reason))
            continue
        fresh = name.startswith("stdlib Interpreter")
        others.append(
            Contender(
                name,
                _first_result_setup(make),
                expected=3,
                note=note,
                fresh_process=fresh,
            )
        )
    return Case(
        name="executor: first result",
        description=f"construct a {WORKERS}-worker pool, submit(add, 1, 2).result() "
        "(the shutdown that follows is not timed)",
        contenders=[
            Contender(
                BASELINE,
                _first_result_setup(_aio_pool(warm=False)),
                expected=3,
                note="InterpreterPoolExecutor(warm=False)",
                target_time=FIRST_RESULT_TARGET,
                fresh_process=True,
            ),
            Contender(
                "interpreters_aio, warm=True",
                _first_result_setup(_aio_pool(warm=True)),
                expected=3,
                note="creates both interpreters before the first submit",
                fresh_process=True,
            ),
            *others,
        ],
    )


def _forked_children() -> int:
    """The CPU-bound tasks split over ``WORKERS`` children made by ``os.fork()``,
    with no pool and no messages: as close to the machine's parallel ceiling
    as Python gets. Run in a fresh process, which has no subinterpreters (a
    forked child of one that has them does not survive)."""
    task_result = CPU_TASK_SIZE * (CPU_TASK_SIZE - 1) // 2
    children = []
    for _ in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            ok = all(count_up(CPU_TASK_SIZE) == task_result for _ in range(CPU_TASKS // WORKERS))
            os._exit(0 if ok else 1)
        children.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    if any(statuses):
        raise RuntimeError(f"forked children exited with {statuses}")
    return CPU_TASKS * task_result


def _cpu_case() -> Case:
    expected = CPU_TASKS * (CPU_TASK_SIZE * (CPU_TASK_SIZE - 1) // 2)  # count_up's result

    def sequential() -> int:
        return sum(count_up(CPU_TASK_SIZE) for _ in range(CPU_TASKS))

    others = [
        Contender(name, _pool_setup(make, _cpu_tasks), expected=expected, note=note)
        if make is not None
        else Contender.unavailable(name, reason)
        for name, make, note, reason in _executor_factories()
    ]
    return Case(
        name="executor: CPU-bound",
        description=f"{CPU_TASKS} x count_up({CPU_TASK_SIZE:_}) (a pure-Python loop) "
        f"on {WORKERS} workers; the ratio to 'sequential' is the speedup",
        contenders=[
            Contender(
                BASELINE,
                _pool_setup(_aio_pool(warm=True), _cpu_tasks),
                expected=expected,
                note="InterpreterPoolExecutor(warm=True)",
            ),
            *others,
            Contender(
                "ceiling: forked children, no pool",
                _ready(_forked_children),
                expected=expected,
                note=f"os.fork() {WORKERS} children, {CPU_TASKS // WORKERS} tasks each: "
                "what this machine's cores allow",
                fresh_process=True,
            )
            if hasattr(os, "fork")
            else Contender.unavailable("ceiling: forked children, no pool", "no os.fork()"),
            Contender(
                "sequential",
                _ready(sequential),
                expected=expected,
                note="the same tasks one after the other in this thread",
                target_speedup=CPU_TARGET_SPEEDUP,
            ),
        ],
    )


@register_section(
    "async",
    "asyncio event loops in two interpreters, and executors whose workers are interpreters",
)
def build() -> list[Case]:
    """The cases of the ``async`` section."""
    return [
        _round_trip_case(_detect_stdlib_queues()),
        _thread_loop_case(),
        _tiny_tasks_case(),
        _first_result_case(),
        _cpu_case(),
    ]
