"""The registry of benchmark sections, and what a section is made of.

A :class:`Section` is a named group of :class:`Case` objects; a case times
several :class:`Contender` objects doing the same job, so they can be compared
side by side. The reference contender of a case (``interpreters_aio`` unless
the case says otherwise) is the one the ratios are computed against.

A section module registers itself with :func:`register_section`, and is listed
in :data:`SECTION_MODULES` so that :func:`all_sections` imports it. Cases are
built only when the section is about to run, so a section may inspect the
running Python (and report a contender as unavailable) without cost at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from .timing import Op

BASELINE = "interpreters_aio"
"""The name of the contender every other one is compared with."""

SECTION_MODULES: tuple[str, ...] = (
    "benchmarks.interpreters_bench",
    "benchmarks.channels_bench",
    "benchmarks.async_bench",
    "benchmarks.serve_bench",
)
"""Modules that register sections, in the order the sections run."""

Setup = Callable[[], AbstractContextManager[Op]]
"""Prepares a contender (start a process, create an interpreter) and yields the
operation to time; cleans up on exit."""


class _NoCheck:
    def __repr__(self) -> str:
        return "NO_CHECK"


NO_CHECK: object = _NoCheck()
"""Marks a contender whose operation's result is not checked."""


@dataclass(frozen=True)
class Contender:
    """One way of doing a case's job.

    ``setup`` is ``None`` when the contender does not exist on this Python;
    ``reason`` says why, and the report shows "n/a".
    """

    name: str
    setup: Setup | None
    expected: object = NO_CHECK
    """What one operation must return; checked once before timing."""
    note: str = ""
    """Shown next to the result: what exactly is measured, if not obvious."""
    reason: str = ""
    target_speedup: float | None = None
    """If set, the baseline should be at least this many times faster than this
    contender; the report says whether it is. Any number of a case's contenders
    may have one."""
    target_time: float | None = None
    """If set, this contender's best time per operation (per item, see
    :attr:`items_per_op`) should be at most this many seconds; the report says
    whether it is."""
    fresh_process: bool = False
    """Time it in a new process of its own (see :mod:`benchmarks.isolated`), so
    that nothing timed before in this process affects it."""
    items_per_op: int = 1
    """For throughput: how many items one operation moves. Times are then
    reported per item, and the note gives the rate."""
    item_bytes: int = 0
    """For throughput: the size of one item, to report the rate in bytes/s too."""

    @classmethod
    def unavailable(cls, name: str, reason: str) -> Contender:
        """A contender that is reported as "n/a" with ``reason``."""
        return cls(name=name, setup=None, reason=reason)


@dataclass(frozen=True)
class Case:
    """A job timed for several contenders."""

    name: str
    contenders: Sequence[Contender]
    description: str = ""
    in_thread: bool = False
    """Time the operations from a new thread instead of the main thread."""
    baseline: str = BASELINE


@dataclass(frozen=True)
class Section:
    """A named group of cases, built on demand."""

    name: str
    description: str
    build: Callable[[], list[Case]] = field(repr=False)
    run: Callable[..., Any] | None = field(default=None, repr=False)
    """For a section that measures something other than time per operation
    (the ``serve`` section: requests per second of HTTP servers): called as
    ``run(cases, config, progress)`` with the selected cases, it measures them
    itself and returns a :class:`~benchmarks.runner.SectionResult` with its own
    ``table`` (and ``data`` for the JSON output). Its cases' contenders are then
    only names (``setup`` may be ``None``)."""


_SECTIONS: dict[str, Section] = {}


def register_section(
    name: str, description: str, *, run: Callable[..., Any] | None = None
) -> Callable[[Callable[[], list[Case]]], Callable[[], list[Case]]]:
    """Decorator: register ``build`` (which returns the cases) as section ``name``
    (``run``: see :attr:`Section.run`)."""

    def decorator(build: Callable[[], list[Case]]) -> Callable[[], list[Case]]:
        if name in _SECTIONS:
            raise ValueError(f"benchmark section {name!r} is registered twice")
        _SECTIONS[name] = Section(name=name, description=description, build=build, run=run)
        return build

    return decorator


def all_sections() -> Iterator[Section]:
    """Import the section modules and yield their sections, in registration order."""
    for module in SECTION_MODULES:
        importlib.import_module(module)
    yield from _SECTIONS.values()


def qualified_name(section: Section, case: Case) -> str:
    """``section/case``: the name ``--only`` matches against."""
    return f"{section.name}/{case.name}"
