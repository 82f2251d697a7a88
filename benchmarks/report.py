"""Presenting results: a plain-text table per section, and a JSON dump."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
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


_RATE_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _si(value: float) -> tuple[str, str]:
    """``value`` scaled by an SI prefix, to about 3 significant digits, and the prefix."""
    for scale, prefix in _RATE_PREFIXES:
        if value >= scale * 0.9995:
            return _three_digits(value / scale), prefix
    return _three_digits(value), ""


def format_item_rate(per_second: float) -> str:
    """Items per second: "1.23 M items/s", "523 k items/s"."""
    number, prefix = _si(per_second)
    return f"{number} {prefix} items/s" if prefix else f"{number} items/s"


def format_byte_rate(per_second: float) -> str:
    """Bytes per second, in decimal units: "2.50 GB/s"."""
    number, prefix = _si(per_second)
    return f"{number} {prefix}B/s"


def format_size(nbytes: int) -> str:
    """A byte count in the binary unit that divides it: "64 B", "1 MiB", "64 MiB"."""
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if nbytes >= 1 << shift and nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift} {unit}"
    return f"{nbytes} B"


def _throughput(result: ContenderResult) -> str:
    """For a contender that moves several items per operation: the batch and the rate."""
    if result.items_per_op <= 1:
        return ""
    batch = f"{result.items_per_op} items/op, times per item"
    if result.item_bytes:
        batch = f"{result.items_per_op} x {format_size(result.item_bytes)}/op, times per item"
    per_item = result.timing.best if result.timing is not None else 0.0
    if per_item <= 0:
        return batch
    rate = format_item_rate(1 / per_item)
    if result.item_bytes:
        rate += f", {format_byte_rate(result.item_bytes / per_item)}"
    return f"{batch}; best {rate}"


def _time_target(result: ContenderResult) -> str:
    """The absolute target, as a rate for throughput rows, else as a time."""
    assert result.target_time is not None
    if result.items_per_op > 1:
        return f">= {format_item_rate(1 / result.target_time)}"
    return f"<= {format_duration(result.target_time)}"


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
    if throughput := _throughput(result):
        parts.append(throughput)
    met = case.target_met(result)
    if met is not None:
        verdict = "met" if met else "MISSED"
        parts.append(f"target: {case.baseline} >= {result.target_speedup:g}x faster, {verdict}")
    met = case.time_target_met(result)
    if met is not None:
        parts.append(f"target: {_time_target(result)}, {'met' if met else 'MISSED'}")
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


def render_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = (2, 3)
) -> list[str]:
    """Aligned columns separated by " | ", with a rule under the header; the
    columns numbered in ``right`` (numbers) are right-aligned."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

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
    if section.table:
        return f"== {section.name}: {section.description} ==\n{section.table.rstrip()}"
    rows: list[list[str]] = []
    for case in section.cases:
        for index, result in enumerate(case.results):
            row = _row(case, result)
            if index > 0:
                row[0] = ""  # the case name only on its first row
            rows.append(row)
    lines = [f"== {section.name}: {section.description} =="]
    lines.extend(render_table(COLUMNS, rows))
    return "\n".join(lines)


def render(header: Sequence[str], sections: Sequence[SectionResult]) -> str:
    """The whole report: the environment lines, then each section's table."""
    parts = ["\n".join(header)]
    parts.extend(render_section(section) for section in sections)
    return "\n\n".join(parts) + "\n"


def to_json(env: dict[str, Any], options: dict[str, Any], sections: Sequence[SectionResult]) -> str:
    """The raw results as JSON: every run's time per operation (per item for
    contenders that move ``items_per_op`` > 1 items per operation), in seconds."""

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
            "target_seconds": result.target_time,
            "target_seconds_met": case.time_target_met(result),
            "items_per_op": result.items_per_op,
            "item_bytes": result.item_bytes or None,
        }
        if result.timing is not None:
            data.update(
                number=result.timing.number,  # operations per run; the times are per item
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
                **({"data": section.data} if section.data is not None else {}),
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
