"""``python -m interpreters_aio demo``: see multi-core Python with your own eyes.

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
import textwrap
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import interpreters_aio as interpreters
from interpreters_aio._cli import PROG, VERSION, ArgumentParser, did_you_mean
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


def demo_main(argv: list[str]) -> int:
    """``python -m interpreters_aio demo``: returns the exit code."""
    parser = ArgumentParser(prog=f"{PROG} demo", usage="%(prog)s [OPTIONS]", description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                        help="threads / interpreters / processes (default: CPU count)")
    parser.add_argument("--tasks", type=int, default=None,
                        help="chunks of work (default: 8 x workers; 2 x workers with --quick)")
    parser.add_argument("--size", type=int, default=None,
                        help="numbers per chunk (default: 30000; 2000 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a run of a second or so: small chunks, to see that it works")
    args = parser.parse_args(argv)
    if args.workers < 1 or any(n is not None and n < 1 for n in (args.tasks, args.size)):
        parser.error("--workers, --tasks and --size must be positive")
    tasks = args.tasks or (2 if args.quick else 8) * args.workers
    size = args.size or (2_000 if args.quick else 30_000)
    chunks = _chunks(tasks, size)

    print(f"interpreters_aio {interpreters.__version__} on Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs: counting primes below {tasks * size:,} "
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


def _serve(argv: list[str]) -> int:
    from interpreters_aio.serve.cli import main

    return main(argv)


def _check(argv: list[str]) -> int:
    from interpreters_aio.serve.check import main

    return main(argv)


#: name: (what it does, in one line; its main(argv) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "serve": ("run an ASGI or asyncio app as N copies in N subinterpreters of one process "
              "(uvicorn's options)", _serve),
    "check": ("import an app in a subinterpreter: which of its modules refuse one, "
              "which isolation serve would use", _check),
    "demo": ("count primes sequentially, on threads, on N interpreters and on N processes: "
             "the speedup of one GIL per interpreter", demo_main),
}


def _parser() -> ArgumentParser:
    width = max(map(len, COMMANDS)) + 2
    commands = "".join(
        textwrap.fill(summary, 79, initial_indent=f"  {name:<{width}}",
                      subsequent_indent=" " * (width + 2)) + "\n"
        for name, (summary, _) in COMMANDS.items()
    )
    parser = ArgumentParser(
        prog=PROG, usage="%(prog)s [--version] [--help] COMMAND [ARGS ...]",
        description="Subinterpreters for asyncio and concurrent.futures, and an app server "
        f"that runs\none app per subinterpreter.\n\ncommands:\n{commands}",
        epilog=textwrap.fill(f"'{PROG} COMMAND --help' shows a command's options. With no "
                             "command: this help, exit status 0 (as pip's); a usage error "
                             "exits 2.", 79),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=VERSION)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``python -m interpreters_aio [COMMAND]``: returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]][1](argv[1:])
    parser = _parser()
    if not argv:
        parser.print_help()
        return 0
    if not argv[0].startswith("-"):
        parser.error(f"unknown command {argv[0]!r}{did_you_mean(argv[0], COMMANDS)}")
    parser.parse_args(argv)  # -h and --version exit; anything else is an error
    parser.error("a command is needed: " + ", ".join(COMMANDS))
    return 2  # not reached: error() exits


if __name__ == "__main__":
    sys.exit(main())
