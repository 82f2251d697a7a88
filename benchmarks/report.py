"""Presenting results: a plain-text table per section, and a JSON dump."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .registry import BASELINE
from .runner import CaseResult, ContenderResult, SectionResult

COLUMNS = ("case", "contender", "median/op", "best/op", f"vs {BASELINE} (best)", "note")

_UNITS = ((1e9, "ns"), (1e6, "µs"), (1e3, "ms"))


def _three_digits(value: float) -> str:
    """``value`` (expected in [1, 1000)) to about 3 significant digits: 1.23, 12.3, 123."""
    if value >= 99.95:
        return f"{value:.0f}"
    if value >= 9.995:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_duration(seconds: float) -> str:
    """``seconds`` in the unit that keeps it between 1 and 1000, to about 3 significant digits."""
    for scale, unit in _UNITS:
        if seconds * scale < 999.5:
            return f"{_three_digits(seconds * scale)} {unit}"
    return f"{_three_digits(seconds)} s"


def format_ratio(seconds: float, baseline: float) -> str:
    """How ``seconds`` compares to ``baseline``: "3.20x slower", "1.50x faster"."""
    if seconds <= 0 or baseline <= 0:
        return "?"
    ratio = seconds / baseline
    if ratio >= 1:
        return f"{ratio:.2f}x slower"
    return f"{1 / ratio:.2f}x faster"


def _note(case: CaseResult, result: ContenderResult) -> str:
    """The row's note: where it was timed, what it measures, and whether it meets its target."""
    parts = ["fresh process"] if result.fresh_process else []
    if result.note:
        parts.append(result.note)
    met = case.target_met(result)
    if met is not None:
        verdict = "met" if met else "MISSED"
        parts.append(f"target: {case.baseline} >= {result.target_speedup:g}x faster, {verdict}")
    return "; ".join(parts)


def _row(case: CaseResult, result: ContenderResult) -> list[str]:
    """One table row; the ratio compares best times with the case's baseline."""
    if result.timing is None:
        status = "ERROR" if result.error else "n/a"
        return [case.name, result.contender, status, status, "", result.error or result.unavailable]
    best = result.timing.best
    baseline = case.baseline_time()
    if result.contender == case.baseline:
        ratio = "(baseline)"
    elif baseline is None:
        ratio = "n/a"
    else:
        ratio = format_ratio(best, baseline)
    return [
        case.name,
        result.contender,
        format_duration(result.timing.median),
        format_duration(best),
        ratio,
        _note(case, result),
    ]


def _render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned columns separated by " | ", with a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    right = {2, 3}  # numbers are right-aligned

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return " | ".join(padded).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return [line(header), rule, *(line(row) for row in rows)]


def render_section(section: SectionResult) -> str:
    """The section's title and table: one row per contender, the case named on its first."""
    rows: list[list[str]] = []
    for case in section.cases:
        for index, result in enumerate(case.results):
            row = _row(case, result)
            if index > 0:
                row[0] = ""  # the case name only on its first row
            rows.append(row)
    lines = [f"== {section.name}: {section.description} =="]
    lines.extend(_render_table(COLUMNS, rows))
    return "\n".join(lines)


def render(header: Sequence[str], sections: Sequence[SectionResult]) -> str:
    """The whole report: the environment lines, then each section's table."""
    parts = ["\n".join(header)]
    parts.extend(render_section(section) for section in sections)
    return "\n\n".join(parts) + "\n"


def to_json(env: dict[str, Any], options: dict[str, Any], sections: Sequence[SectionResult]) -> str:
    """The raw results as JSON: every run's time per operation, in seconds."""

    def contender(case: CaseResult, result: ContenderResult) -> dict[str, Any]:
        data: dict[str, Any] = {
            "contender": result.contender,
            "note": result.note,
            "available": not result.unavailable,
            "unavailable_reason": result.unavailable or None,
            "error": result.error or None,
            "fresh_process": result.fresh_process,
            "target_speedup": result.target_speedup,
            "target_met": case.target_met(result),
        }
        if result.timing is not None:
            data.update(
                number=result.timing.number,
                per_op_seconds=list(result.timing.per_op),
                best_seconds=result.timing.best,
                median_seconds=result.timing.median,
            )
        return data

    document = {
        "environment": env,
        "options": options,
        "sections": [
            {
                "name": section.name,
                "description": section.description,
                "cases": [
                    {
                        "name": case.name,
                        "description": case.description,
                        "baseline": case.baseline,
                        "results": [contender(case, result) for result in case.results],
                    }
                    for case in section.cases
                ],
            }
            for section in sections
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
