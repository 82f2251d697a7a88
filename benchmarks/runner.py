"""Runs the registered sections: sets each contender up, checks it, times it, cleans up.

A contender that fails (setup error, wrong result, exception while timing) is
recorded as an error, with its traceback on stderr, and the run goes on. A
contender marked ``fresh_process`` is timed in a new process by
:mod:`benchmarks.isolated`, which calls :func:`measure_in_process` there.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import isolated
from .registry import NO_CHECK, Case, Contender, Section, qualified_name
from .timing import Op, Timing, TimingConfig, measure, run_in_thread

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ContenderResult:
    """The outcome for one contender of one case."""

    contender: str
    note: str
    timing: Timing | None
    """``None`` when the contender was not available or failed."""
    unavailable: str = ""
    """Why the contender does not exist here (reported as "n/a")."""
    error: str = ""
    """What went wrong, if it failed."""
    target_speedup: float | None = None
    """See :attr:`Contender.target_speedup`."""
    target_time: float | None = None
    """See :attr:`Contender.target_time`."""
    fresh_process: bool = False
    """Whether it was timed in a fresh process (see :attr:`Contender.fresh_process`)."""
    items_per_op: int = 1
    """See :attr:`Contender.items_per_op`; :attr:`timing` is then per item."""
    item_bytes: int = 0
    """See :attr:`Contender.item_bytes`."""


@dataclass(frozen=True)
class CaseResult:
    """The outcomes of one case."""

    name: str
    description: str
    baseline: str
    results: list[ContenderResult]

    def baseline_time(self) -> float | None:
        """The baseline contender's best time per operation, if it was measured."""
        for result in self.results:
            if result.contender == self.baseline and result.timing is not None:
                return result.timing.best
        return None

    def target_met(self, result: ContenderResult) -> bool | None:
        """Whether the baseline beats ``result`` by its target factor; ``None`` if
        there is no target or nothing to compare."""
        baseline = self.baseline_time()
        if result.target_speedup is None or result.timing is None or baseline is None:
            return None
        return result.timing.best >= result.target_speedup * baseline

    @staticmethod
    def time_target_met(result: ContenderResult) -> bool | None:
        """Whether ``result``'s best time is within its :attr:`~ContenderResult.target_time`;
        ``None`` if there is no such target or no time."""
        if result.target_time is None or result.timing is None:
            return None
        return result.timing.best <= result.target_time


@dataclass(frozen=True)
class SectionResult:
    """The outcomes of the selected cases of one section."""

    name: str
    description: str
    cases: list[CaseResult]
    table: str = ""
    """The table of a section that renders its own (see :attr:`Section.run`)."""
    data: Any = None
    """That section's raw results, for the JSON output."""
    errors: bool = False
    """Whether something failed in that section."""

    @property
    def failed(self) -> bool:
        """Whether any contender failed."""
        return self.errors or any(r.error for case in self.cases for r in case.results)


def _short_repr(value: object, limit: int = 120) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _check_and_measure(contender: Contender, op: Op, config: TimingConfig) -> Timing:
    """Call ``op`` once (warm-up and result check), then time it."""
    result = op()
    if contender.expected is not NO_CHECK and result != contender.expected:
        raise AssertionError(
            f"{contender.name} returned {_short_repr(result)}, "
            f"expected {_short_repr(contender.expected)}"
        )
    return measure(op, config)


def measure_in_process(case: Case, contender: Contender, config: TimingConfig) -> Timing:
    """Set ``contender`` up, check and time it in this process (in a new thread if the
    case says so), clean up. Raises if the contender is unavailable or fails."""
    if contender.setup is None:
        raise ValueError(f"{contender.name} is not available: {contender.reason}")
    with contender.setup() as op:
        if case.in_thread:
            return run_in_thread(lambda: _check_and_measure(contender, op, config))
        return _check_and_measure(contender, op, config)


def run_contender(
    section: Section, case: Case, contender: Contender, config: TimingConfig
) -> ContenderResult:
    """Time ``contender`` here, or in a fresh process if it says so; record any failure."""
    if contender.setup is None:
        return ContenderResult(
            contender.name, contender.note, None, unavailable=contender.reason or "n/a"
        )
    fresh = contender.fresh_process
    try:
        if fresh:
            timing = isolated.measure_in_fresh_process(
                qualified_name(section, case), contender.name, config
            )
        else:
            timing = measure_in_process(case, contender, config)
    except Exception as exc:
        if isinstance(exc, isolated.FreshProcessFailed):  # its traceback is the child's
            print(f"{contender.name}: {exc}", file=sys.stderr)
        else:
            traceback.print_exc()
        return ContenderResult(
            contender.name,
            contender.note,
            None,
            error=f"{type(exc).__name__}: {exc}",
            fresh_process=fresh,
        )
    return ContenderResult(
        contender.name,
        contender.note,
        timing.per_item(contender.items_per_op) if contender.items_per_op > 1 else timing,
        target_speedup=contender.target_speedup,
        target_time=contender.target_time,
        fresh_process=fresh,
        items_per_op=contender.items_per_op,
        item_bytes=contender.item_bytes,
    )


def matches(pattern: str | None, section: Section, case: Case) -> bool:
    """Whether ``--only pattern`` selects the case."""
    return selects(pattern, qualified_name(section, case))


def selects(pattern: str | None, name: str) -> bool:
    """Whether ``--only pattern`` selects the case named ``name`` (``section/case``):
    a case-insensitive substring."""
    return pattern is None or pattern.lower() in name.lower()


def run_section(
    section: Section,
    config: TimingConfig,
    pattern: str | None = None,
    progress: Progress | None = None,
) -> SectionResult:
    """Run the cases of ``section`` that ``pattern`` selects."""
    if section.run is not None:
        selected = [case for case in section.build() if matches(pattern, section, case)]
        if not selected:
            return SectionResult(section.name, section.description, [])
        return section.run(selected, config, progress)
    cases = []
    for case in section.build():
        if not matches(pattern, section, case):
            continue
        results = []
        for contender in case.contenders:
            if progress is not None and contender.setup is not None:
                where = " (fresh process)" if contender.fresh_process else ""
                progress(f"{qualified_name(section, case)}: {contender.name}{where}")
            results.append(run_contender(section, case, contender, config))
        cases.append(CaseResult(case.name, case.description, case.baseline, results))
    return SectionResult(section.name, section.description, cases)


def run_all(
    sections: Iterable[Section],
    config: TimingConfig,
    pattern: str | None = None,
    progress: Progress | None = None,
) -> list[SectionResult]:
    """Run every section with at least one selected case."""
    results = [run_section(section, config, pattern, progress) for section in sections]
    return [result for result in results if result.cases]
