"""Dask side by side: the same pure-Python CPU-bound graph on dask's local
scheduler (threads, processes, an InterpreterPoolExecutor) and on
dask.distributed (one worker with 2 threads, 2 worker processes, one worker
with an InterpreterTaskExecutor of 2 interpreters), in one run.

    python -m benchmarks.dask_bench [--tasks 16] [--limit 60000] [--repeat 3]

Prints wall time (best and median), speedup against the threaded
contender of the same scheduler, per-task overhead (200 trivial tasks) and
the resident memory of the processes involved. Servers listen on 127.0.0.1
(in-process transport for the in-process clusters) and are closed by the run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext

PROFILER_OFF = {"distributed.worker.profile.enabled": False}


def count_primes(limit: int) -> int:
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def inc(x: int) -> int:
    return x + 1


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def _time(run: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def local_contenders(args: argparse.Namespace):
    """The local scheduler's contenders, the threaded one (the baseline) first."""
    import dask
    from dask import delayed

    from interpreters_aio import InterpreterPoolExecutor

    def graph():
        return [delayed(count_primes)(args.limit) for _ in range(args.tasks)]

    def tiny():
        return [delayed(inc)(i) for i in range(200)]

    def contender(name: str, rss: Callable[[], int], **scheduler: object):
        return name, lambda g: dask.compute(*g(), **scheduler), graph, tiny, rss

    main_rss = lambda: _rss_kib([os.getpid()])  # noqa: E731
    yield contender("local: threads", main_rss, scheduler="threads", num_workers=2)
    with ProcessPoolExecutor(2) as procs:
        pool_rss = lambda: _rss_kib([os.getpid(), *[p.pid for p in procs._processes.values()]])  # noqa: E731
        yield contender("local: 2 processes", pool_rss, scheduler=procs)
    with InterpreterPoolExecutor(2, warm=True) as pool:
        yield contender("local: InterpreterPoolExecutor(2)", main_rss, scheduler=pool)


def distributed_contenders(args: argparse.Namespace):
    """dask.distributed's contenders, the threaded worker (the baseline) first."""
    import dask
    from distributed import Client, LocalCluster

    from interpreters_aio.dask import InterpreterTaskExecutor

    def make(client, annotate: bool):
        # dask.annotate() is single-use: a fresh one per graph.
        def routed():
            return dask.annotate(executor="interpreters") if annotate else nullcontext()

        def graph():
            with routed():
                return client.map(count_primes, [args.limit] * args.tasks, pure=False)

        def tiny():
            with routed():
                return client.map(inc, range(200), pure=False)

        return graph, tiny

    configs = [
        (
            "distributed: 1 worker, 2 threads",
            dict(n_workers=1, threads_per_worker=2, processes=False),
            False,
        ),
        (
            "distributed: 2 worker processes",
            dict(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1"),
            False,
        ),
        (
            "distributed: 1 worker, InterpreterTaskExecutor(2)",
            dict(
                n_workers=1,
                threads_per_worker=2,
                processes=False,
                executor={"interpreters": InterpreterTaskExecutor(2)},
            ),
            True,
        ),
    ]
    for name, kwargs, annotate in configs:
        with LocalCluster(dashboard_address=None, **kwargs) as cluster, Client(cluster) as client:
            if kwargs["processes"]:
                client.run(sys.path.insert, 0, os.path.dirname(os.path.dirname(__file__)))
            pids = sorted({os.getpid(), *client.run(os.getpid).values()})
            graph, tiny = make(client, annotate)
            yield (
                name,
                lambda g, client=client: client.gather(g()),
                graph,
                tiny,
                lambda pids=pids: _rss_kib(pids),
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.dask_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument(
        "--limit", type=int, default=60_000, help="trial division below this, per task"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import dask

    dask.config.set(PROFILER_OFF)
    import cloudpickle  # noqa: F401  (imported by the main interpreter first)

    expected = count_primes(args.limit)
    rows = []
    for group in (local_contenders, distributed_contenders):
        baseline = None  # each group's first contender
        for name, run, graph, tiny, rss in group(args):
            baseline = baseline or name
            results = run(graph)
            if list(results) != [expected] * args.tasks:
                print(f"{name}: wrong results", file=sys.stderr)
                return 1
            times = _time(lambda run=run, graph=graph: run(graph), args.repeat)
            tiny_times = _time(lambda run=run, tiny=tiny: run(tiny), args.repeat)
            rows.append(
                (name, baseline, min(times), statistics.median(times), min(tiny_times) / 200, rss())
            )
            print(f"  {name}: {min(times):.3f} s", file=sys.stderr)
    best = {name: b for name, _, b, *_ in rows}
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{args.tasks} tasks x count_primes({args.limit}), best of {args.repeat}\n"
    )
    print("| contender | best | median | speedup vs threaded | per-task overhead | RSS |")
    print("|---|---|---|---|---|---|")
    for name, baseline, b, med, per_task, rss in rows:
        print(
            f"| {name} | {b:.3f} s | {med:.3f} s | {best[baseline] / b:.2f}x "
            f"| {per_task * 1e6:.0f} µs | {rss / 1024:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
