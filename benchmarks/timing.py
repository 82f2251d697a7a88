"""Timing helpers: calibrate a loop, repeat it, report the time per operation.

Like :mod:`timeit`, the loop count is chosen so one run lasts at least
``min_run_time``, the run is repeated, and the garbage collector is disabled
while timing. The machine may be noisy, so both the best and the median run
are kept; the best is the least disturbed estimate of the cost.
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

Op = Callable[[], object]
"""One operation to time: a no-argument callable."""


@dataclass(frozen=True)
class SplitOp:
    """An operation with an untimed clean-up step.

    ``run()`` is timed and returns ``(result, resource)``; ``cleanup(resource)``
    runs after the clock stops (shutting down the pool whose time to first
    result was timed, say). Calling it runs both and returns the result, so it
    can stand wherever an :data:`Op` does.
    """

    run: Callable[[], tuple[object, object]]
    cleanup: Callable[[object], object]

    def __call__(self) -> object:
        result, resource = self.run()
        self.cleanup(resource)
        return result


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time each operation."""

    min_run_time: float
    """Seconds one run of the loop should last at least."""
    repeat: int
    """Number of timed runs."""
    max_number: int = 1_000_000
    """Upper bound on the operations per run."""


QUICK = TimingConfig(min_run_time=0.05, repeat=5)
"""For CI smoke runs: well under a second per contender."""

FULL = TimingConfig(min_run_time=0.2, repeat=7)
"""The default."""


@dataclass(frozen=True)
class Timing:
    """The outcome of :func:`measure`."""

    number: int
    """Operations per run."""
    per_op: tuple[float, ...]
    """Seconds per operation, one entry per run."""

    @property
    def best(self) -> float:
        """The fastest run's seconds per operation."""
        return min(self.per_op)

    @property
    def median(self) -> float:
        """The median run's seconds per operation."""
        return statistics.median(self.per_op)

    def per_item(self, items: int) -> Timing:
        """The same runs, in seconds per item of operations that move ``items`` items."""
        return Timing(number=self.number, per_op=tuple(t / items for t in self.per_op))


def time_loop(op: Op, number: int) -> float:
    """Call ``op`` ``number`` times; return the elapsed seconds (of the timed
    parts only, for a :class:`SplitOp`)."""
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        if isinstance(op, SplitOp):
            return _time_split(op, number)
        start = time.perf_counter()
        for _ in range(number):
            op()
        return time.perf_counter() - start
    finally:
        if gc_was_enabled:
            gc.enable()


def _time_split(op: SplitOp, number: int) -> float:
    elapsed = 0.0
    for _ in range(number):
        start = time.perf_counter()
        _, resource = op.run()
        elapsed += time.perf_counter() - start
        op.cleanup(resource)
    return elapsed


def calibrate(op: Op, config: TimingConfig) -> int:
    """Choose how many calls of ``op`` make one run last about ``config.min_run_time``.

    Doubles the count until a trial loop lasts a tenth of the target, then
    scales up from there, so slow operations (a process start) are tried
    only once or twice.
    """
    number = 1
    while True:
        elapsed = time_loop(op, number)
        if elapsed >= config.min_run_time / 10 or number >= config.max_number:
            break
        number *= 2
    scaled = int(number * config.min_run_time / elapsed) if elapsed > 0 else config.max_number
    return max(1, min(config.max_number, scaled))


def measure(op: Op, config: TimingConfig) -> Timing:
    """Time ``op``: calibrate the loop, then run it ``config.repeat`` times.

    Call ``op`` once before (to warm up and check it) if that matters: this
    function only times it.
    """
    number = calibrate(op, config)
    runs = tuple(time_loop(op, number) / number for _ in range(config.repeat))
    return Timing(number=number, per_op=runs)


def run_in_thread[T](fn: Callable[[], T], name: str = "benchmark-worker") -> T:
    """Run ``fn`` in a new thread, wait for it, and return its result or raise its error."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
