"""Command line of ``python -m benchmarks``."""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import time
from collections.abc import Sequence

from . import environment, report
from .registry import all_sections, qualified_name
from .runner import matches, run_all
from .timing import FULL, QUICK


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark interpreters_aio against the stdlib and multiprocessing.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs and fewer repeats (a CI smoke run)",
    )
    parser.add_argument(
        "--only",
        metavar="PATTERN",
        help="run only the cases whose 'section/case' name contains PATTERN (case-insensitive)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw results to PATH")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--quiet", action="store_true", help="do not report progress on stderr")
    return parser.parse_args(argv)


def precompile() -> None:
    """Write the bytecode of ``interpreters_aio`` and of this package, as a pip
    install does, so every fresh interpreter and process imports them from
    ``.pyc`` instead of compiling them anew (an editable install under
    ``PYTHONDONTWRITEBYTECODE`` never writes them, and each first-result or
    startup measurement would time the compiler)."""
    import interpreters_aio

    for package in (interpreters_aio, sys.modules[__package__]):
        directory = os.path.dirname(os.path.abspath(package.__file__ or ""))
        compileall.compile_dir(directory, quiet=2)


def _progress(message: str) -> None:
    print(f"  running {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; return the exit status (1 if any contender failed)."""
    args = parse_args(argv)
    sections = list(all_sections())

    if args.list:
        for section in sections:
            for case in section.build():
                if matches(args.only, section, case):
                    print(qualified_name(section, case))
        return 0

    precompile()
    env = environment.describe()
    config = QUICK if args.quick else FULL
    started = time.perf_counter()
    results = run_all(sections, config, args.only, None if args.quiet else _progress)
    elapsed = time.perf_counter() - started

    if not results:
        print(f"no benchmark case matches {args.only!r}", file=sys.stderr)
        return 2

    print(report.render(environment.header_lines(env), results), end="")
    print(f"({'quick' if args.quick else 'full'} run, {elapsed:.1f} s)")

    if args.json:
        options = {"quick": args.quick, "only": args.only, "elapsed_seconds": elapsed}
        with open(args.json, "w", encoding="utf-8") as file:
            file.write(report.to_json(env, options, results))

    return 1 if any(section.failed for section in results) else 0
