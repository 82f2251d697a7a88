"""An asyncio service whose CPU-bound work runs on worker subinterpreters.

Run it from the repository root, with the package installed::

    python examples/async_service.py                  # one worker per CPU (at least 2)
    python examples/async_service.py --workers 4 --jobs 128

Architecture (see docs/example-service.md)::

    main interpreter (asyncio loop)                worker interpreters (own GIL, own loop)
    ┌───────────────────────────┐   requests   ┌──────────────────────────────────┐
    │ distribute() ── send ─────┼──(channel)──▶│ async for job in requests.aio:   │ x N
    │                           │              │     result = count_primes(...)   │
    │ collect()  ◀── recv ──────┼──(channel)◀──│     await results.aio.send(...)  │
    └───────────────────────────┘   results    └──────────────────────────────────┘

Each worker interpreter runs ``service_worker.worker_main`` on a thread of its
own (``interp.call_in_thread``); that function runs ``asyncio.run(...)``, so
every worker has its own event loop. The main loop sends jobs with one task
and receives results with another, checks them against a sequential run and
prints the speedup. Closing the ``requests`` channel ends the workers'
``async for`` loops; their threads are joined and the interpreters closed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import threading
import time
from dataclasses import dataclass, field

# `python examples/async_service.py` puts examples/ first on sys.path already;
# make sure of it in other cases too (python -m, an IDE runner). It has to be
# there *before* the interpreters are created: each copies sys.path then, and
# imports service_worker from it.
HERE = os.path.dirname(os.path.abspath(__file__))
if not any(os.path.abspath(p or os.curdir) == HERE for p in sys.path):
    sys.path.insert(0, HERE)

import service_worker  # noqa: E402

import interpreters_aio as interpreters  # noqa: E402
from interpreters_aio import ChannelClosedError, QueueEmpty, aio  # noqa: E402

Job = tuple[int, int, int]  # (job_id, start, stop): count the primes in [start, stop)

POLL_SECONDS = 1.0  # how often the collector checks that workers are alive while it waits
SHUTDOWN_SECONDS = 10.0  # how long to wait for the worker threads to end


class ServiceError(Exception):
    """The service could not finish its jobs (workers died, timeout)."""


@dataclass
class Outcome:
    results: dict[int, int | str]
    startup: float  # creating the interpreters and starting their threads
    processing: float  # first job sent -> last result received
    cpu: float  # CPU time of the whole process (all interpreters) while processing
    max_lag: float  # the longest the main loop was late for a 10 ms tick
    wall: float = 0.0  # everything, shutdown included
    reports: list[tuple[int, int, float]] = field(default_factory=list)


def make_jobs(count: int, span: int) -> list[Job]:
    """``count`` jobs covering [0, count * span), ``span`` numbers each.

    Later jobs cost more (bigger numbers need more trial divisions), so the
    work is deliberately uneven.
    """
    return [(i, i * span, (i + 1) * span) for i in range(count)]


def run_sequential(jobs: list[Job]) -> tuple[dict[int, int], float]:
    """The reference: every job, one after another, in this interpreter."""
    began = time.perf_counter()
    results = {job_id: service_worker.count_primes(start, stop) for job_id, start, stop in jobs}
    return results, time.perf_counter() - began


def new_worker_interpreter() -> interpreters.Interpreter:
    """Create a worker interpreter and import the worker module there, from this thread.

    Importing up front turns a worker module that cannot be imported into an
    immediate, clear error. It is also a workaround for CPython 3.12, where
    ``threading`` in a subinterpreter takes the first thread that imports it
    for the main thread: were that the worker thread, ``asyncio.run()`` there
    would call ``signal.getsignal(SIGINT)``, which returns the *main*
    interpreter's handler (the main loop's ``functools.partial``), and
    touching it from another interpreter crashes the process at exit or
    soon after (see docs/example-service.md).
    """
    interp = interpreters.create()
    try:
        interp.exec("import threading, service_worker")
    except BaseException:
        interp.close()
        raise
    return interp


async def distribute(requests: aio.AsyncSendChannel, jobs: list[Job]) -> None:
    """Send every job, then close the channel so the workers' loops end.

    ``requests`` is a rendezvous channel (``maxsize=0``): each ``send``
    completes only when a worker waiting in ``recv`` takes the job, so a job
    always goes to an idle worker. Biggest jobs first keeps the tail short.
    """
    async with requests:  # on exit: aclose() closes the sending end, in every interpreter
        for job in sorted(jobs, key=lambda job: job[2], reverse=True):
            await requests.send(job)


async def collect(
    results: aio.AsyncRecvChannel, count: int, threads: list[threading.Thread]
) -> dict[int, int | str]:
    """Receive ``count`` ``(job_id, result)`` pairs, whichever worker sends them.

    Waits at most ``POLL_SECONDS`` at a time, to notice if every worker
    thread has died (then no more results can come).
    """
    got: dict[int, int | str] = {}
    while len(got) < count:
        try:
            async with asyncio.timeout(POLL_SECONDS):  # cancelling a recv loses nothing
                job_id, result = await results.recv()
        except TimeoutError:
            if any(thread.is_alive() for thread in threads):
                continue
            item = results.recv_nowait(None)  # one may have arrived just before they ended
            if item is None:
                raise ServiceError(
                    f"all workers have exited with {count - len(got)} of {count} results "
                    "missing (see their tracebacks above)"
                ) from None
            job_id, result = item
        if job_id in got:
            raise ServiceError(f"job {job_id} came back twice")
        got[job_id] = result
    return got


async def watch_loop_lag(tick: float = 0.01) -> float:
    """Sleep ``tick`` seconds again and again; return the worst lateness seen.

    It shows that the main loop stays free while the workers compute: the
    CPU-bound work never runs on it. Runs until cancelled.
    """
    worst = 0.0
    try:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(tick)
            worst = max(worst, time.perf_counter() - began - tick)
    except asyncio.CancelledError:
        return worst


async def join_threads(threads: list[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join the threads within ``timeout`` seconds in all; return those still alive."""
    deadline = time.monotonic() + timeout
    for thread in threads:
        await asyncio.to_thread(thread.join, max(0.0, deadline - time.monotonic()))
    return [thread for thread in threads if thread.is_alive()]


async def run_service(jobs: list[Job], workers: int, timeout: float) -> Outcome:
    """Start the workers, push the jobs through them, shut everything down."""
    began = time.perf_counter()
    requests_recv, requests_send = interpreters.create_channel()  # rendezvous: load balancing
    results_recv, results_send = interpreters.create_channel(workers)  # a little slack
    reports = interpreters.create_queue()  # each worker's summary, when it stops
    interps: list[interpreters.Interpreter] = []
    threads: list[threading.Thread] = []
    try:
        for _ in range(workers):
            # Off the loop (tens of ms each), so the loop keeps serving meanwhile.
            try:
                interp = await asyncio.to_thread(new_worker_interpreter)
            except interpreters.ExecutionFailed as exc:  # raised in the new interpreter
                raise ServiceError(f"cannot start a worker interpreter: {exc}") from exc
            interps.append(interp)
            # Channel ends and queues are passed by reference: all workers share them.
            threads.append(
                interp.call_in_thread(
                    service_worker.worker_main, requests_recv, results_send, reports
                )
            )
        started, cpu_started = time.perf_counter(), time.process_time()

        lag_watcher = asyncio.create_task(watch_loop_lag())
        try:
            async with asyncio.timeout(timeout), asyncio.TaskGroup() as group:
                group.create_task(distribute(requests_send.aio, jobs))
                collecting = group.create_task(collect(results_recv.aio, len(jobs), threads))
        except TimeoutError:
            raise ServiceError(f"the jobs did not finish within {timeout:g} s") from None
        except ExceptionGroup as group:  # one task failed; the group cancelled the other
            raise group.exceptions[0] from None
        finally:
            lag_watcher.cancel()
        processed, cpu_processed = time.perf_counter(), time.process_time()
        outcome = Outcome(
            results=collecting.result(),
            startup=started - began,
            processing=processed - started,
            cpu=cpu_processed - cpu_started,
            max_lag=await lag_watcher,
        )

        # distribute() has closed `requests`: each worker's `async for` ends,
        # it reports and returns, and its thread ends.
        if await join_threads(threads, SHUTDOWN_SECONDS):
            raise ServiceError("worker threads did not stop after the requests channel closed")
        while True:
            try:
                outcome.reports.append(reports.get_nowait())
            except QueueEmpty:
                break
    finally:
        await shut_down(interps, threads, (requests_send, results_recv), reports)
    outcome.wall = time.perf_counter() - began
    return outcome


async def shut_down(
    interps: list[interpreters.Interpreter],
    threads: list[threading.Thread],
    ends: tuple[interpreters.SendChannel, interpreters.RecvChannel],
    reports: interpreters.Queue,
) -> None:
    """Release everything, whether the service succeeded or not.

    After a success the workers are gone already and closing the channels
    changes nothing. After an error (timeout, a dead worker, Ctrl-C) closing
    them wakes every worker still waiting on one: its ``recv``/``send``
    raises ChannelClosedError and its loop ends, after the job in hand.
    """
    for end in ends:
        try:
            end.close(force=True)  # force: discard jobs or results nobody will take
        except ChannelClosedError:
            pass
    await join_threads(threads, SHUTDOWN_SECONDS)
    for index, interp in enumerate(interps):
        if index < len(threads) and threads[index].is_alive():
            # Still computing: close() would refuse. interpreters_aio
            # interrupts it at exit instead (and says so on stderr).
            print(f"warning: interpreter {interp.id} is still busy", file=sys.stderr)
            continue
        try:
            interp.close()
        except interpreters.InterpreterError as exc:
            print(f"warning: closing interpreter {interp.id}: {exc}", file=sys.stderr)
    reports.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="An asyncio service that runs CPU-bound jobs on worker subinterpreters."
    )
    default_workers = max(2, os.cpu_count() or 1)
    parser.add_argument(
        "--workers", type=int, default=default_workers,
        help=f"worker interpreters (default: CPU count, at least 2; here {default_workers})",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=64, help="number of jobs (default: 64)")
    parser.add_argument(
        "--span", type=int, default=16_000,
        help="numbers searched for primes per job (default: 16000)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=120.0,
        help="give up if the jobs take longer than this many seconds (default: 120)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    for name in ("workers", "jobs", "span"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    jobs = make_jobs(args.jobs, args.span)
    print(
        f"async_service: jobs={len(jobs)} (primes below {len(jobs) * args.span:,}), "
        f"workers={args.workers}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )

    expected, sequential = run_sequential(jobs)
    print(f"sequential, in the main interpreter: {sequential:.2f} s")

    try:
        outcome = asyncio.run(run_service(jobs, args.workers, args.timeout))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: asyncio.run() cancelled run_service(), which cleaned up
        print("interrupted", file=sys.stderr)
        return 130

    print(f"service: worker interpreters started in {outcome.startup * 1000:.0f} ms")
    for interp_id, jobs_done, busy in sorted(outcome.reports):
        print(f"  interpreter {interp_id}: {jobs_done:3d} jobs, busy {busy:.2f} s")

    wrong = sorted(job_id for job_id, value in expected.items() if outcome.results[job_id] != value)
    for job_id in wrong[:5]:
        print(
            f"  job {job_id}: got {outcome.results[job_id]!r}, expected {expected[job_id]!r}",
            file=sys.stderr,
        )
    print(
        f"results: {len(jobs) - len(wrong)}/{len(jobs)} match the sequential computation "
        f"({sum(expected.values()):,} primes in total)"
    )
    print(
        f"wall time {outcome.wall:.2f} s (processing {outcome.processing:.2f} s); "
        f"speedup vs sequential {sequential / outcome.processing:.2f}x "
        f"({sequential / outcome.wall:.2f}x including startup and shutdown)"
    )
    print(
        f"CPU time while processing: {outcome.cpu:.2f} s, "
        f"{outcome.cpu / outcome.processing:.2f} cores busy on average"
    )
    print(f"main event loop stayed free: at most {outcome.max_lag * 1000:.1f} ms late on a tick")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
