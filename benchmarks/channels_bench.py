"""Section "channels": moving objects between interpreters, against the alternatives.

The contenders send objects between this (the main) interpreter and a worker
thread running on the other side:

- interpreters_aio: a queue (``create_queue``) or a channel (``create_channel``),
  the worker a thread running in an interpreters_aio subinterpreter;
- the standard library's interpreter queues: CPython 3.14's
  ``concurrent.interpreters.create_queue()``, or 3.13's
  ``test.support.interpreters.queues`` (``syncobj=True``, so ints and bytes
  are not pickled), the worker in one of that module's interpreters. Their
  ``get()`` has no way to wait and polls, sleeping 10 ms whenever the queue is
  empty. CPython 3.12 has no such queue;
- ``queue.Queue`` between two threads of this interpreter;
- a worker process (``multiprocessing``, ``forkserver`` start method where
  available, else ``spawn``) over a ``Pipe`` or a ``multiprocessing.Queue``.

The "busy-poll" rows spin on ``get_nowait()`` on both sides instead of
blocking: for the stdlib, what its transport costs without the 10 ms sleeps;
for interpreters_aio, what a round trip costs without waking a blocked thread.
The 1 MiB case also runs them with both sides on one CPU ("one CPU" rows), as
happens on a busy machine: there a spinner that never lets go of the CPU
keeps the side it waits for off it for a whole time slice.

Latency is a ping-pong (send a small int, the worker sends it back).
Throughput cases time one operation as a batch: the producer here puts N
items, the consumer counts them and sends back one total per batch, and the
operation ends when the total arrives, so the consumer's lag is included.
The report divides by N: times are per item, and the note gives the rate.

The worker loops are in :mod:`benchmarks.channel_workers`; every worker is
stopped (queues closed, or a ``None`` sentinel sent) and joined, and every
interpreter and process is closed, also when a contender fails. A worker that
fails wakes the main side's wait (see :class:`_Ending`), so it cannot hang
the run.
"""

from __future__ import annotations

import importlib
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import wait as wait_for_objects
from typing import Any

import interpreters_aio as aio

from . import processes
from .channel_workers import busy_get, consume, echo
from .registry import BASELINE, Case, Contender, Setup, register_section
from .timing import Op

JOIN_TIMEOUT = processes.JOIN_TIMEOUT
"""Seconds to wait for a worker thread or process to stop."""

PING = 1
"""What a ping-pong round trip sends, and expects back."""

SMALL_BATCH = 1000
"""Items per operation in the small-item throughput cases."""

LARGE_BATCH = 16
"""Items per operation in the 1 MiB throughput case."""

MIB = 1 << 20

ROUND_TRIP_TARGET = 10e-6
"""interpreters_aio's round trip should take at most this many seconds..."""
PIPE_TARGET_SPEEDUP = 5.0
"""...and be this many times faster than a round trip over a multiprocessing.Pipe..."""
THREADS_TARGET_SPEEDUP = 1.0
"""...and faster than one between two threads over queue.Queue."""
THROUGHPUT_TARGET = 1e-6
"""interpreters_aio should move at least 1 M small items per second (1 µs per item)."""


# --- running the other side ---------------------------------------------------------


@dataclass(frozen=True)
class _Ending:
    """How a worker ends: ``stop`` tells it to finish; ``unblock`` wakes the main
    side's wait for a reply (so that it raises) if the worker ended without being
    told to, so a failing worker cannot hang the benchmark."""

    stop: Callable[[], object]
    unblock: Callable[[], object]


def _closing(*ends: Any) -> _Ending:
    """For interpreters_aio queues and channels: close them, which ends the worker's
    loop and makes the main side's get/recv raise."""

    def close() -> None:
        for end in ends:
            if isinstance(end, aio.RecvChannel):
                end.close(force=True)
            else:
                end.close()

    return _Ending(stop=close, unblock=close)


def _sentinel(inbox: Any, replies: Any) -> _Ending:
    """For the other queues: ``None`` on ``inbox`` stops the worker; ``None`` on
    ``replies`` makes the main side raise (see :func:`_reply`)."""
    return _Ending(stop=lambda: inbox.put(None), unblock=lambda: replies.put(None))


class WorkerStopped(RuntimeError):
    """The worker ended while the main side waited for its reply."""


def _reply(reply: Any) -> Any:
    """A reply the main side received: ``None`` means the worker stopped."""
    if reply is None:
        raise WorkerStopped("the worker ended before replying")
    return reply


class _WorkerThread(threading.Thread):
    """A daemon thread running ``target()``: keeps its exception for :meth:`finish`,
    and calls ``ending.unblock()`` if it ends before :meth:`finish` is called."""

    def __init__(self, target: Callable[[], object], ending: _Ending, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._target_fn, self._ending = target, ending
        self._stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._target_fn()
        except BaseException as exc:
            self.error = exc
        finally:
            if not self._stopping.is_set():
                _quietly(self._ending.unblock)

    def finish(self) -> None:
        """Stop the worker and wait for it; raise if it does not end, or if it failed."""
        self._stopping.set()
        _quietly(self._ending.stop)
        self.join(JOIN_TIMEOUT)
        if self.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {JOIN_TIMEOUT:g} s")
        if self.error is not None:
            raise RuntimeError(f"{self.name} failed") from self.error


def _quietly(call: Callable[[], object]) -> None:
    """``call()``, ignoring errors: stopping or unblocking what may be gone already."""
    try:
        call()
    except Exception:
        pass


@contextmanager
def _thread_running(target: Callable[[], object], ending: _Ending, name: str) -> Iterator[None]:
    """Run ``target()`` in a worker thread; on exit, stop it and join it."""
    thread = _WorkerThread(target, ending, name)
    thread.start()
    try:
        yield
    finally:
        thread.finish()


@contextmanager
def _aio_worker(
    func: Callable[..., object], args: tuple[Any, ...], ending: _Ending
) -> Iterator[None]:
    """Run ``func(*args)`` in a new interpreters_aio interpreter, in a new thread
    (what ``Interpreter.call_in_thread`` does, keeping the exception)."""
    interp = aio.create()
    try:
        with _thread_running(lambda: interp.call(func, *args), ending, "interpreters_aio worker"):
            yield
    finally:
        interp.close()


@dataclass(frozen=True)
class _StdlibQueues:
    """The standard library's interpreters and queues, on CPython 3.13 or 3.14."""

    module: str
    """The module whose interpreters run the workers."""
    queues_module: str
    """Imported in the worker's interpreter before a queue is sent there (3.13 needs it)."""
    create_interpreter: Callable[[], Any]
    create_queue: Callable[[], Any]


def _detect_stdlib_queues() -> _StdlibQueues | str:
    """The running Python's interpreter queues, or why it has none."""
    try:
        public = importlib.import_module("concurrent.interpreters")  # 3.14
    except ImportError:
        pass
    else:
        return _StdlibQueues(
            "concurrent.interpreters",
            "concurrent.interpreters._queues",
            public.create,
            public.create_queue,
        )
    try:  # 3.13 (3.12's test.support.interpreters is a module with no queues)
        interpreters = importlib.import_module("test.support.interpreters")
        queues = importlib.import_module("test.support.interpreters.queues")
    except ImportError:
        return "no cross-interpreter queue in this Python's stdlib (CPython 3.13+)"
    return _StdlibQueues(
        "test.support.interpreters",
        queues.__name__,
        interpreters.create,
        lambda: queues.create(syncobj=True),
    )


@contextmanager
def _stdlib_worker(
    stdlib: _StdlibQueues, func: Callable[..., object], args: tuple[Any, ...], ending: _Ending
) -> Iterator[None]:
    """Run ``func(*args)`` in a new stdlib interpreter, in a new thread.

    The arguments are bound in its ``__main__`` (3.13's ``call`` takes none).
    """
    interp = stdlib.create_interpreter()
    try:
        interp.exec(f"import {stdlib.queues_module}")
        names = {f"arg{index}": arg for index, arg in enumerate(args)}
        interp.prepare_main(names)
        code = f"from {func.__module__} import {func.__name__}\n{func.__name__}({', '.join(names)})"
        with _thread_running(lambda: interp.exec(code), ending, f"{stdlib.module} worker"):
            yield
    finally:
        interp.close()


@contextmanager
def _process_worker(
    method: str, func: Callable[..., object], args: tuple[Any, ...], ending: _Ending
) -> Iterator[None]:
    """Run ``func(*args)`` in a new process; on exit, stop it and join it.

    A watcher thread (waiting on the process's sentinel, not joining it) calls
    ``ending.unblock()`` if the process ends before it is told to stop.
    """
    process = processes.context(method).Process(  # type: ignore[attr-defined]
        target=func, args=args, name=f"channels-{method}", daemon=True
    )
    process.start()
    watcher = _WorkerThread(
        lambda: wait_for_objects([process.sentinel]), ending, f"{process.name} watcher"
    )
    watcher.start()
    try:
        yield
    finally:
        try:
            watcher.finish()  # Stops the worker, then waits for it to end.
        finally:
            process.join(JOIN_TIMEOUT)
            if process.is_alive():
                process.terminate()
                process.join()
            exitcode = process.exitcode
            process.close()
        if exitcode != 0:
            raise RuntimeError(f"the worker process exited with status {exitcode}")


# --- the operations -----------------------------------------------------------------


def _on_one_cpu(setup: Setup) -> Setup:
    """``setup`` with this thread, and the worker thread it starts (which
    inherits the affinity), on one CPU; this thread's CPUs are restored after."""

    @contextmanager
    def pinned() -> Iterator[Op]:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(before)})
        try:
            with setup() as op:
                yield op
        finally:
            os.sched_setaffinity(0, before)

    return pinned


ONE_CPU_UNAVAILABLE = "this OS cannot pin threads to a CPU (os.sched_setaffinity)"


def _round_trip(send: Callable[[Any], object], receive: Callable[[], Any]) -> Op:
    def op() -> Any:
        send(PING)
        return _reply(receive())

    return op


def _batch(send: Callable[[Any], object], wait_total: Callable[[], Any], item: Any, n: int) -> Op:
    """Send ``item`` ``n`` times, then wait for the consumer's total."""
    items = range(n)

    def op() -> Any:
        for _ in items:
            send(item)
        return _reply(wait_total())

    return op


def _stdlib_rows(
    stdlib: _StdlibQueues | str,
    make_setup: Callable[[_StdlibQueues, bool], Setup],
    *,
    expected: object,
    note: str,
    items_per_op: int = 1,
    item_bytes: int = 0,
) -> list[Contender]:
    """The stdlib queue rows: as shipped (10 ms polls), and busy-polling."""
    variants = [
        ("stdlib queue", False, "get() polls every 10 ms"),
        ("stdlib queue, busy-poll", True, "get_nowait() spin on both sides"),
    ]
    if isinstance(stdlib, str):
        return [Contender.unavailable(name, stdlib) for name, _, _ in variants]
    return [
        Contender(
            name,
            make_setup(stdlib, busy_poll),
            expected=expected,
            note=f"{stdlib.module}: {note}; {how}",
            items_per_op=items_per_op,
            item_bytes=item_bytes,
        )
        for name, busy_poll, how in variants
    ]


# --- ping-pong ----------------------------------------------------------------------


def _ping_pong_case(stdlib: _StdlibQueues | str, method: str) -> Case:
    @contextmanager
    def aio_queues() -> Iterator[Op]:
        there, back = aio.create_queue(), aio.create_queue()
        with _aio_worker(echo, (there, back), _closing(there, back)):
            yield _round_trip(there.put, back.get)

    @contextmanager
    def aio_busy_poll() -> Iterator[Op]:
        there, back = aio.create_queue(), aio.create_queue()
        with _aio_worker(echo, (there, back, True), _sentinel(there, back)):
            yield _round_trip(there.put, busy_get(back))

    @contextmanager
    def aio_channels() -> Iterator[Op]:
        recv_there, send_there = aio.create_channel()
        recv_back, send_back = aio.create_channel()
        ending = _closing(send_there, recv_back)
        with _aio_worker(echo, (recv_there, send_back), ending):
            yield _round_trip(send_there.send, recv_back.recv)

    def stdlib_setup(stdlib: _StdlibQueues, busy_poll: bool) -> Setup:
        @contextmanager
        def setup() -> Iterator[Op]:
            there, back = stdlib.create_queue(), stdlib.create_queue()
            with _stdlib_worker(stdlib, echo, (there, back, busy_poll), _sentinel(there, back)):
                yield _round_trip(there.put, busy_get(back) if busy_poll else back.get)

        return setup

    @contextmanager
    def threads() -> Iterator[Op]:
        there: queue.Queue[Any] = queue.Queue()
        back: queue.Queue[Any] = queue.Queue()
        with _thread_running(lambda: echo(there, back), _sentinel(there, back), "queue.Queue echo"):
            yield _round_trip(there.put, back.get)

    @contextmanager
    def pipe() -> Iterator[Op]:
        with processes.echo_worker(method) as conn:
            yield _round_trip(conn.send, conn.recv)

    return Case(
        name="ping-pong",
        description="round trip: send a small int to a worker on the other side, "
        "which sends it back",
        contenders=[
            Contender(
                BASELINE,
                aio_queues,
                expected=PING,
                note="two queues; worker thread in a subinterpreter",
                target_time=ROUND_TRIP_TARGET,
            ),
            Contender(
                "interpreters_aio, busy-poll",
                aio_busy_poll,
                expected=PING,
                note="two queues; get_nowait() spin on both sides (no blocking wake-ups)",
            ),
            Contender(
                "interpreters_aio channel",
                aio_channels,
                expected=PING,
                note="two channels, maxsize=0 (send waits for its recv, as in PEP 554)",
            ),
            *_stdlib_rows(
                stdlib,
                stdlib_setup,
                expected=PING,
                note="two queues; worker thread in a subinterpreter",
            ),
            Contender(
                "queue.Queue (threads)",
                threads,
                expected=PING,
                note="two queue.Queue, worker thread in this interpreter",
                target_speedup=THREADS_TARGET_SPEEDUP,
            ),
            Contender(
                "multiprocessing.Pipe",
                pipe,
                expected=PING,
                note=f"echo process ({method})",
                target_speedup=PIPE_TARGET_SPEEDUP,
            ),
        ],
    )


# --- throughput -----------------------------------------------------------------------


def _throughput_case(
    name: str,
    description: str,
    stdlib: _StdlibQueues | str,
    method: str,
    item: Any,
    *,
    sized: bool,
    channel_row: bool,
) -> Case:
    """Small items (ints, 64-byte bytes) in batches of :data:`SMALL_BATCH`."""
    n = SMALL_BATCH
    expected = n * memoryview(item).nbytes if sized else n
    consumer_args = (n, sized)
    item_bytes = len(item) if sized else 0

    @contextmanager
    def aio_queue() -> Iterator[Op]:
        inbox, done = aio.create_queue(), aio.create_queue()
        with _aio_worker(consume, (inbox, done, *consumer_args), _closing(inbox, done)):
            yield _batch(inbox.put, done.get, item, n)

    @contextmanager
    def aio_channel() -> Iterator[Op]:
        recv_items, send_items = aio.create_channel(n)
        recv_done, send_done = aio.create_channel(1)
        ending = _closing(send_items, recv_done)
        with _aio_worker(consume, (recv_items, send_done, *consumer_args), ending):
            yield _batch(send_items.send, recv_done.recv, item, n)

    def stdlib_setup(stdlib: _StdlibQueues, busy_poll: bool) -> Setup:
        @contextmanager
        def setup() -> Iterator[Op]:
            inbox, done = stdlib.create_queue(), stdlib.create_queue()
            args = (inbox, done, *consumer_args, busy_poll)
            with _stdlib_worker(stdlib, consume, args, _sentinel(inbox, done)):
                yield _batch(inbox.put, busy_get(done) if busy_poll else done.get, item, n)

        return setup

    @contextmanager
    def threads() -> Iterator[Op]:
        inbox: queue.Queue[Any] = queue.Queue()
        done: queue.Queue[Any] = queue.Queue()
        consumer = lambda: consume(inbox, done, *consumer_args)  # noqa: E731
        with _thread_running(consumer, _sentinel(inbox, done), "queue.Queue consumer"):
            yield _batch(inbox.put, done.get, item, n)

    rows = [
        Contender(
            BASELINE,
            aio_queue,
            expected=expected,
            note="queue; consumer thread in a subinterpreter, stopped by close()",
            target_time=THROUGHPUT_TARGET,
            items_per_op=n,
            item_bytes=item_bytes,
        ),
    ]
    if channel_row:
        rows.append(
            Contender(
                "interpreters_aio channel",
                aio_channel,
                expected=expected,
                note=f"channel with maxsize={n} (a batch fits)",
                items_per_op=n,
                item_bytes=item_bytes,
            )
        )
    rows += [
        *_stdlib_rows(
            stdlib,
            stdlib_setup,
            expected=expected,
            note="consumer thread in a subinterpreter",
            items_per_op=n,
            item_bytes=item_bytes,
        ),
        Contender(
            "queue.Queue (threads)",
            threads,
            expected=expected,
            note="consumer thread in this interpreter (no copy)",
            items_per_op=n,
            item_bytes=item_bytes,
        ),
        _mp_queue_row(method, item, n, sized, expected, item_bytes),
    ]
    return Case(name=name, description=description, contenders=rows)


def _mp_queue_row(
    method: str, item: Any, n: int, sized: bool, expected: int, item_bytes: int
) -> Contender:
    @contextmanager
    def setup() -> Iterator[Op]:
        ctx = processes.context(method)
        inbox, done = ctx.Queue(), ctx.Queue()  # type: ignore[attr-defined]
        try:
            with _process_worker(method, consume, (inbox, done, n, sized), _sentinel(inbox, done)):
                yield _batch(inbox.put, done.get, item, n)
        finally:
            for q in (inbox, done):
                q.close()
                q.join_thread()

    return Contender(
        "multiprocessing.Queue",
        setup,
        expected=expected,
        note=f"consumer process ({method})",
        items_per_op=n,
        item_bytes=item_bytes,
    )


def _large_case(stdlib: _StdlibQueues | str, method: str) -> Case:
    """1 MiB payloads: bytes copied through each transport, and interpreters_aio's
    SharedBuffer sent by reference."""
    n, size = LARGE_BATCH, MIB
    payload = b"x" * size
    expected = n * size

    def aio_setup(make_item: Callable[[], Any], batch: int) -> Setup:
        @contextmanager
        def setup() -> Iterator[Op]:
            item = make_item()
            inbox, done = aio.create_queue(), aio.create_queue()
            with _aio_worker(consume, (inbox, done, batch, True), _closing(inbox, done)):
                yield _batch(inbox.put, done.get, item, batch)

        return setup

    @contextmanager
    def aio_busy_poll() -> Iterator[Op]:
        # The stdlib's busy-poll row, with our queues: both sides spin on get_nowait().
        inbox, done = aio.create_queue(), aio.create_queue()
        with _aio_worker(consume, (inbox, done, n, True, True), _sentinel(inbox, done)):
            yield _batch(inbox.put, busy_get(done), payload, n)

    def shared_buffer_row(nbytes: int) -> Contender:
        # Batches as large as the small items', since nothing is copied: the reply
        # that ends each batch weighs no more per item than there.
        return Contender(
            f"interpreters_aio SharedBuffer {nbytes // MIB} MiB",
            aio_setup(lambda: aio.SharedBuffer(nbytes), SMALL_BATCH),
            expected=SMALL_BATCH * nbytes,
            note="the same SharedBuffer, sent by reference through the queue",
            items_per_op=SMALL_BATCH,
            item_bytes=nbytes,
        )

    def stdlib_setup(stdlib: _StdlibQueues, busy_poll: bool) -> Setup:
        @contextmanager
        def setup() -> Iterator[Op]:
            inbox, done = stdlib.create_queue(), stdlib.create_queue()
            args = (inbox, done, n, True, busy_poll)
            with _stdlib_worker(stdlib, consume, args, _sentinel(inbox, done)):
                yield _batch(inbox.put, busy_get(done) if busy_poll else done.get, payload, n)

        return setup

    def one_cpu_rows() -> list[Contender]:
        names = ["interpreters_aio, busy-poll, one CPU", "stdlib queue, busy-poll, one CPU"]
        if not hasattr(os, "sched_setaffinity"):
            return [Contender.unavailable(name, ONE_CPU_UNAVAILABLE) for name in names]
        setups: list[Setup | str] = [
            aio_busy_poll,
            stdlib if isinstance(stdlib, str) else stdlib_setup(stdlib, True),
        ]
        note = "1 MiB bytes, get_nowait() spin on both sides, both on one CPU (a busy machine)"
        return [
            Contender.unavailable(name, setup)
            if isinstance(setup, str)
            else Contender(
                name,
                _on_one_cpu(setup),
                expected=expected,
                note=note,
                items_per_op=n,
                item_bytes=size,
            )
            for name, setup in zip(names, setups, strict=True)
        ]

    @contextmanager
    def pipe() -> Iterator[Op]:
        ctx = processes.context(method)
        ours, theirs = ctx.Pipe()
        try:
            # If the worker dies, recv() raises EOFError: nothing to unblock.
            ending = _Ending(stop=lambda: ours.send(None), unblock=lambda: None)
            with _process_worker(method, consume, (theirs, theirs, n, True), ending):
                theirs.close()  # The child has its own copy.
                yield _batch(ours.send, ours.recv, payload, n)
        finally:
            ours.close()
            theirs.close()

    return Case(
        name="1 MiB payloads",
        description="one-way throughput of 1 MiB bytes (copied), and of a SharedBuffer "
        "(by reference)",
        contenders=[
            Contender(
                BASELINE,
                aio_setup(lambda: payload, n),
                expected=expected,
                note="1 MiB bytes through a queue (copied)",
                items_per_op=n,
                item_bytes=size,
            ),
            Contender(
                "interpreters_aio, busy-poll",
                aio_busy_poll,
                expected=expected,
                note="1 MiB bytes, get_nowait() spin on both sides",
                items_per_op=n,
                item_bytes=size,
            ),
            shared_buffer_row(size),
            shared_buffer_row(64 * size),
            *_stdlib_rows(
                stdlib,
                stdlib_setup,
                expected=expected,
                note="1 MiB bytes",
                items_per_op=n,
                item_bytes=size,
            ),
            *one_cpu_rows(),
            _mp_queue_row(method, payload, n, True, expected, size),
            Contender(
                "multiprocessing.Pipe",
                pipe,
                expected=expected,
                note=f"1 MiB bytes, Connection.send (pickled); consumer process ({method})",
                items_per_op=n,
                item_bytes=size,
            ),
        ],
    )


# --- the section --------------------------------------------------------------------


def _start_method() -> str:
    """forkserver where it exists (cheap starts, no fork of a threaded process), else spawn."""
    return "forkserver" if processes.unavailable_reason("forkserver") is None else "spawn"


@register_section(
    "channels",
    "queues and channels between interpreters: latency and throughput, "
    "vs the stdlib, threads and processes",
)
def build() -> list[Case]:
    """The cases of the section, for what the running Python offers."""
    stdlib, method = _detect_stdlib_queues(), _start_method()
    return [
        _ping_pong_case(stdlib, method),
        _throughput_case(
            "small ints",
            f"one-way throughput of small ints, {SMALL_BATCH} per batch",
            stdlib,
            method,
            7,
            sized=False,
            channel_row=True,
        ),
        _throughput_case(
            "64-byte bytes",
            f"one-way throughput of 64-byte bytes, {SMALL_BATCH} per batch",
            stdlib,
            method,
            b"x" * 64,
            sized=True,
            channel_row=False,
        ),
        _large_case(stdlib, method),
    ]
