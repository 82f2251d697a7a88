"""``python -m interpreters_aio``: see multi-core Python with your own eyes.

Runs the same CPU-bound pure-Python workload (counting primes in chunks)
sequentially, on a thread pool (one GIL: no speedup), on N subinterpreters
(one GIL each: parallel), and on a process pool for comparison, then prints
wall times and speedups. Setup (making interpreters or processes) is included
in the wall time and also shown on its own.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import interpreters_aio as interpreters
from interpreters_aio._demo import count_primes

Chunk = tuple[int, int]


def _chunks(tasks: int, size: int) -> list[Chunk]:
    # Higher ranges cost more (bigger numbers to test): hand out the biggest
    # first, so the last chunk a worker picks up is a small one.
    return [(i * size, (i + 1) * size) for i in reversed(range(tasks))]


def run_sequential(chunks: list[Chunk], workers: int) -> tuple[int, float]:
    return sum(count_primes(a, b) for a, b in chunks), 0.0


def run_threads(chunks: list[Chunk], workers: int) -> tuple[int, float]:
    with ThreadPoolExecutor(workers) as pool:
        return sum(pool.map(count_primes, *zip(*chunks, strict=True))), 0.0


def run_interpreters(chunks: list[Chunk], workers: int) -> tuple[int, float]:
    started = time.perf_counter()
    interps = [interpreters.create() for _ in range(workers)]
    setup = time.perf_counter() - started
    todo: queue.SimpleQueue[Chunk] = queue.SimpleQueue()
    for chunk in chunks:
        todo.put(chunk)
    totals = [0] * workers
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        interp = interps[index]
        try:
            while True:
                try:
                    a, b = todo.get_nowait()
                except queue.Empty:
                    return
                totals[index] += interp.call(count_primes, a, b)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for interp in interps:
            interp.close()
    if errors:
        raise errors[0]
    return sum(totals), setup


def run_processes(chunks: list[Chunk], workers: int) -> tuple[int, float]:
    started = time.perf_counter()
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        # Wait for every worker to be up, so setup is measured on its own.
        list(pool.map(abs, range(workers)))
        setup = time.perf_counter() - started
        return sum(pool.map(count_primes, *zip(*chunks, strict=True))), setup


MODES: list[tuple[str, Callable[[list[Chunk], int], tuple[int, float]]]] = [
    ("sequential", run_sequential),
    ("threads", run_threads),
    ("interpreters", run_interpreters),
    ("processes (forkserver)", run_processes),
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from interpreters_aio.serve.cli import main as serve_main

        return serve_main(argv[1:])
    if argv[:1] == ["check"]:
        from interpreters_aio.serve.check import main as check_main

        return check_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m interpreters_aio", description=__doc__,
                                     epilog="python -m interpreters_aio serve --help: run an "
                                     "ASGI or asyncio app in N subinterpreters; "
                                     "python -m interpreters_aio check MODULE:APP: can it?",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="threads / interpreters / processes (default: CPU count)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="chunks of work (default: 8 x workers)")
    parser.add_argument("--size", type=int, default=30_000,
                        help="numbers per chunk (default: 30000)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.size < 1 or (args.tasks is not None and args.tasks < 1):
        parser.error("--workers, --tasks and --size must be positive")
    tasks = args.tasks or 8 * args.workers
    chunks = _chunks(tasks, args.size)

    print(f"interpreters_aio {interpreters.__version__} on Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs: counting primes below {tasks * args.size:,} "
          f"in {tasks} chunks, {args.workers} workers\n")
    header = f"{'mode':<24}{'wall (s)':>10}{'setup (s)':>11}{'speedup':>10}  result"
    print(header)
    print("-" * len(header))
    baseline = None
    expected = None
    for name, run in MODES:
        started = time.perf_counter()
        result, setup = run(chunks, args.workers)
        wall = time.perf_counter() - started
        baseline = baseline or wall
        expected = expected if expected is not None else result
        check = "" if result == expected else "  MISMATCH"
        print(f"{name:<24}{wall:>10.2f}{setup:>11.3f}{baseline / wall:>9.2f}x  {result}{check}",
              flush=True)
        if check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
