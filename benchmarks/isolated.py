"""Time one contender in a fresh Python process.

Some costs depend on what the process did before: CPython 3.12 and 3.13 leak
memory with every subinterpreter created and destroyed, which slows down the
creations timed after it, so whichever contender goes first looks faster. A
contender marked ``fresh_process`` is therefore timed by a new
``sys.executable`` process, started as::

    python -m benchmarks.isolated SECTION/CASE CONTENDER [--quick]

The child builds the sections as the parent does, finds the contender, checks
and times it with the same :mod:`benchmarks.timing` logic, and prints the
timings as JSON on the last line of stdout (tracebacks go to stderr, which it
shares with the parent). The parent passes its timing configuration
explicitly, so both measure the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .registry import Case, Contender, all_sections
from .timing import FULL, QUICK, Timing, TimingConfig

CHILD_TIMEOUT = 600.0
"""Seconds a fresh process may take before it is killed and the contender fails."""

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory holding this ``benchmarks`` package, so the child imports the same one."""


class FreshProcessFailed(RuntimeError):
    """The fresh process failed to time the contender; its traceback is on stderr."""


# --- parent side -----------------------------------------------------------------


def command(qualified_case: str, contender: str, config: TimingConfig) -> list[str]:
    """The command line of the child timing ``contender`` of ``qualified_case``."""
    return [
        sys.executable,
        # The parent's interpreter options (-X dev, -O, ...), as multiprocessing's spawn does.
        *subprocess._args_from_interpreter_flags(),  # type: ignore[attr-defined]
        "-m",
        "benchmarks.isolated",
        qualified_case,
        contender,
        f"--min-run-time={config.min_run_time!r}",
        f"--repeat={config.repeat}",
        f"--max-number={config.max_number}",
    ]


def measure_in_fresh_process(qualified_case: str, contender: str, config: TimingConfig) -> Timing:
    """Time ``contender`` of ``qualified_case`` (``section/case``) in a new process.

    Raises :class:`FreshProcessFailed` if the child fails, dies or times out.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_PACKAGE_ROOT, env.get("PYTHONPATH")]))
    try:
        child = subprocess.run(
            command(qualified_case, contender, config),
            stdout=subprocess.PIPE,
            env=env,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise FreshProcessFailed(
            f"the fresh process did not finish within {CHILD_TIMEOUT:g} s"
        ) from None
    lines = child.stdout.strip().splitlines()
    try:
        outcome: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        outcome = {}
    if "error" in outcome:
        raise FreshProcessFailed(outcome["error"])
    if child.returncode != 0 or "per_op" not in outcome:
        status = (
            f"was killed by signal {-child.returncode}"
            if child.returncode < 0
            else f"exited with status {child.returncode}"
        )
        raise FreshProcessFailed(f"the fresh process {status} without reporting timings")
    return Timing(number=int(outcome["number"]), per_op=tuple(map(float, outcome["per_op"])))


# --- child side --------------------------------------------------------------------


def find(qualified_case: str, contender: str) -> tuple[Case, Contender]:
    """The case named ``section/case`` and its contender named ``contender``."""
    section_name, _, case_name = qualified_case.partition("/")
    for section in all_sections():
        if section.name != section_name:
            continue
        for case in section.build():
            if case.name != case_name:
                continue
            for candidate in case.contenders:
                if candidate.name == contender:
                    return case, candidate
            raise LookupError(f"case {qualified_case!r} has no contender {contender!r}")
    raise LookupError(f"no benchmark case {qualified_case!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the child's command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.isolated",
        description="Time one contender of one case in this (fresh) process; print JSON.",
    )
    parser.add_argument(
        "case", help="the case, as 'section/case' (see python -m benchmarks --list)"
    )
    parser.add_argument("contender", help="the contender's name, as in the report")
    parser.add_argument(
        "--quick", action="store_true", help="the timing of python -m benchmarks --quick"
    )
    parser.add_argument("--min-run-time", type=float, help="seconds per run (overrides --quick)")
    parser.add_argument("--repeat", type=int, help="number of runs (overrides --quick)")
    parser.add_argument("--max-number", type=int, help="most operations per run")
    return parser.parse_args(argv)


def config_from(args: argparse.Namespace) -> TimingConfig:
    """The timing configuration the command line asks for."""
    fields = asdict(QUICK if args.quick else FULL)
    for name in fields:
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    return TimingConfig(**fields)


def main(argv: Sequence[str] | None = None) -> int:
    """Time the contender; print ``{"number", "per_op"}`` or ``{"error"}`` as JSON."""
    # Imported here, not at the top: the runner imports this module to start children.
    from .runner import measure_in_process

    args = parse_args(argv)
    try:
        case, contender = find(args.case, args.contender)
        timing = measure_in_process(case, contender, config_from(args))
    except Exception as exc:
        traceback.print_exc()
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps({"number": timing.number, "per_op": list(timing.per_op)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
