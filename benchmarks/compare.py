"""``--compare FILE``: this run's times against a run saved earlier with ``--json``.

A row is one contender of one case, named ``section/case`` and contender. For
every row timed in both runs the report gives the change of its best and of
its median time as a ratio ("1.08x slower", "1.25x faster"); a change of the
best time beyond the noise threshold (10% by default: a ratio above 1.10x
either way) is marked ``SLOWER`` or ``faster``. The best time is what the
tables compare too: it is the least disturbed by other work on the machine,
while the median says whether the whole distribution moved. Rows timed in only
one of the runs are listed as new or missing, and differences between the two
environments (Python, platform, extension build, options) are noted above the
table, since they explain changes no code did.

Files written before the environment recorded a commit, a date or the
extension's digest are read all the same; what they lack is reported as
unknown. Sections that render their own table and time nothing per row (the
HTTP ``serve`` section, measured in requests/s) are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .report import format_duration, format_ratio, render_table
from .runner import SectionResult, selects

DEFAULT_THRESHOLD = 0.10
"""The noise threshold: a change of the best time by a ratio above 1.10x (either
way) is marked. Runs of the same build on a quiet machine stay within a few
percent on most rows; wake-up latencies on an idle virtual machine move more."""


class CompareError(Exception):
    """The saved results cannot be read or are not a ``--json`` results file."""


@dataclass(frozen=True)
class Times:
    """A row's best and median seconds per operation (per item for throughput rows)."""

    best: float
    median: float


RowKey = tuple[str, str, str]
"""``(section, case, contender)``."""


@dataclass(frozen=True)
class Saved:
    """A results file read back: its environment, options and timed rows."""

    path: str
    environment: dict[str, Any]
    options: dict[str, Any]
    rows: dict[RowKey, Times]


@dataclass(frozen=True)
class Change:
    """A row timed in both runs."""

    key: RowKey
    saved: Times
    current: Times

    @property
    def best_ratio(self) -> float:
        """This run's best time over the saved run's (above 1: slower now)."""
        return self.current.best / self.saved.best

    @property
    def median_ratio(self) -> float:
        """This run's median time over the saved run's."""
        return self.current.median / self.saved.median


@dataclass(frozen=True)
class Comparison:
    """The rows of two runs matched up."""

    changes: list[Change] = field(default_factory=list)
    new: list[RowKey] = field(default_factory=list)
    """Timed in this run, not in the saved one."""
    missing: list[RowKey] = field(default_factory=list)
    """Timed in the saved run (and selected by ``--only``), not in this one."""
    threshold: float = DEFAULT_THRESHOLD

    def is_slower(self, change: Change, threshold: float | None = None) -> bool:
        """Whether ``change``'s best time grew beyond ``threshold`` (default: the noise one)."""
        limit = self.threshold if threshold is None else threshold
        return change.best_ratio > 1 + limit

    def is_faster(self, change: Change) -> bool:
        """Whether ``change``'s best time shrank beyond the noise threshold."""
        return change.best_ratio < 1 / (1 + self.threshold)

    def regressions(self, threshold: float) -> list[Change]:
        """The rows whose best time grew by more than ``threshold`` (0.25: 25%)."""
        return [change for change in self.changes if self.is_slower(change, threshold)]


def _positive_seconds(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _rows_of_document(document: Any, path: str) -> dict[RowKey, Times]:
    """The timed rows of a parsed results file; raises :class:`CompareError` if
    its shape is not that of :func:`report.to_json`'s output."""
    if not isinstance(document, dict) or not isinstance(document.get("sections"), list):
        raise CompareError(f"{path}: not a benchmark results file (no 'sections' list)")
    rows: dict[RowKey, Times] = {}
    try:
        for section in document["sections"]:
            for case in section["cases"]:
                for result in case["results"]:
                    best, median = result.get("best_seconds"), result.get("median_seconds")
                    if best is None and median is None:
                        continue  # not timed: n/a, an error, or a section measured otherwise
                    if not (_positive_seconds(best) and _positive_seconds(median)):
                        raise CompareError(
                            f"{path}: {section['name']}/{case['name']}, "
                            f"{result['contender']}: bad times {best!r}, {median!r}"
                        )
                    key = (str(section["name"]), str(case["name"]), str(result["contender"]))
                    rows[key] = Times(float(best), float(median))
    except (KeyError, TypeError, AttributeError) as exc:
        raise CompareError(f"{path}: not a benchmark results file ({exc!r} is wrong)") from None
    return rows


def load(path: str) -> Saved:
    """Read a file written by ``--json``; raises :class:`CompareError` with a message
    naming the file if it is missing, not JSON, or not a results file."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as exc:
        raise CompareError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path} is not a JSON results file: {exc}") from None
    rows = _rows_of_document(document, path)
    environment = document.get("environment")
    options = document.get("options")
    return Saved(
        path,
        environment if isinstance(environment, dict) else {},
        options if isinstance(options, dict) else {},
        rows,
    )


def current_rows(sections: Sequence[SectionResult]) -> dict[RowKey, Times]:
    """The timed rows of this run."""
    return {
        (section.name, case.name, result.contender): Times(result.timing.best, result.timing.median)
        for section in sections
        for case in section.cases
        for result in case.results
        if result.timing is not None
    }


def _selected(key: RowKey, only: str | None) -> bool:
    """Whether ``--only only`` selects the row, by the runner's rule."""
    return selects(only, f"{key[0]}/{key[1]}")


def compare(
    saved: Mapping[RowKey, Times],
    current: Mapping[RowKey, Times],
    only: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> Comparison:
    """Match the rows of the two runs; saved rows that ``only`` does not select
    are neither compared nor missing."""
    saved = {key: times for key, times in saved.items() if _selected(key, only)}
    return Comparison(
        changes=[Change(key, saved[key], times) for key, times in current.items() if key in saved],
        new=[key for key in current if key not in saved],
        missing=[key for key in saved if key not in current],
        threshold=threshold,
    )


_ENVIRONMENT_FACTS = (
    ("python_build", "Python"),
    ("implementation", "implementation"),
    ("platform", "platform"),
    ("cpu_count", "CPUs"),
    ("interpreters_aio", "interpreters_aio version"),
    ("extension_sha256", "extension build (SHA-256)"),
    ("extension_debug_info", "extension debug info"),
    ("commit", "commit"),
)


def environment_notes(
    saved: Saved, env: Mapping[str, Any], options: Mapping[str, Any]
) -> list[str]:
    """What differs between the saved run's environment and options and this run's."""
    notes = []
    for key, label in _ENVIRONMENT_FACTS:
        before, now = saved.environment.get(key), env.get(key)
        if before != now:
            shown = "unknown" if before is None else before
            notes.append(f"{label} differs: saved {shown}, now {now}")
    saved_quick, quick = bool(saved.options.get("quick")), bool(options.get("quick"))
    if saved_quick != quick:
        modes = {True: "--quick", False: "full"}
        notes.append(f"the saved run was a {modes[saved_quick]} run, this one {modes[quick]}")
    return notes


def _mark(comparison: Comparison, change: Change) -> str:
    if comparison.is_slower(change):
        return "SLOWER"
    if comparison.is_faster(change):
        return "faster"
    return ""


def _row_name(key: RowKey) -> str:
    return f"{key[0]}/{key[1]}: {key[2]}"


COLUMNS = (
    "case",
    "contender",
    "best: saved",
    "best: now",
    "best: change",
    "median: change",
    "mark",
)


def render(
    comparison: Comparison,
    saved: Saved,
    env: Mapping[str, Any],
    options: Mapping[str, Any],
) -> str:
    """The comparison as text: environment notes, a table of the changes, then
    the new and the missing rows."""
    when = saved.environment.get("date") or "date unknown"
    commit = saved.environment.get("commit") or "commit unknown"
    lines = [
        f"== compared with {saved.path} ({when}, {commit}) ==",
        f"marked: a change of the best time beyond {comparison.threshold:.0%} "
        f"(ratio above {1 + comparison.threshold:.2f}x)",
    ]
    lines.extend(f"NOTE: {note}" for note in environment_notes(saved, env, options))
    if comparison.changes:
        rows = [
            [
                f"{change.key[0]}/{change.key[1]}",
                change.key[2],
                format_duration(change.saved.best),
                format_duration(change.current.best),
                format_ratio(change.current.best, change.saved.best),
                format_ratio(change.current.median, change.saved.median),
                _mark(comparison, change),
            ]
            for change in comparison.changes
        ]
        lines.extend(render_table(COLUMNS, rows, right=(2, 3, 4, 5)))
    else:
        lines.append("no row was timed in both runs")
    if comparison.new:
        lines.append("new in this run: " + "; ".join(map(_row_name, comparison.new)))
    if comparison.missing:
        lines.append("missing from this run: " + "; ".join(map(_row_name, comparison.missing)))
    return "\n".join(lines) + "\n"
