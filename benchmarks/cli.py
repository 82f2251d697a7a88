"""Command line of ``python -m benchmarks``."""

from __future__ import annotations

import argparse
import compileall
import os
import sys
import time
from collections.abc import Sequence

from . import compare, environment, report
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
    parser.add_argument(
        "--compare",
        metavar="PATH",
        help="also compare the times with a run saved earlier by --json PATH",
    )
    parser.add_argument(
        "--threshold",
        metavar="PCT",
        type=_percent,
        default=compare.DEFAULT_THRESHOLD * 100,
        help="with --compare: mark changes of the best time beyond PCT%% (default: %(default)g)",
    )
    parser.add_argument(
        "--fail-on-regression",
        metavar="PCT",
        type=_percent,
        help="with --compare: exit with status 3 if a row's best time grew by more than PCT%%",
    )
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--quiet", action="store_true", help="do not report progress on stderr")
    args = parser.parse_args(argv)
    if args.fail_on_regression is not None and args.compare is None:
        parser.error("--fail-on-regression needs --compare")
    return args


def _percent(text: str) -> float:
    """A non-negative percentage (``"10"``, ``"2.5"``) for argparse."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"not a percentage: {text!r}")
    return value


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
    """Run the benchmarks; return the exit status: 1 if any contender failed, 2 if
    ``--only`` matched nothing or the ``--compare`` file cannot be read, 3 if a
    row is slower than ``--fail-on-regression`` allows (and nothing failed)."""
    args = parse_args(argv)
    sections = list(all_sections())

    if args.list:
        for section in sections:
            for case in section.build():
                if matches(args.only, section, case):
                    print(qualified_name(section, case))
        return 0

    saved = None
    if args.compare is not None:
        try:  # before the run: a bad file should not cost minutes of benchmarks
            saved = compare.load(args.compare)
        except compare.CompareError as exc:
            print(f"python -m benchmarks: --compare: {exc}", file=sys.stderr)
            return 2

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

    options = {"quick": args.quick, "only": args.only, "elapsed_seconds": elapsed}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            file.write(report.to_json(env, options, results))

    failed = any(section.failed for section in results)
    if saved is None:
        return 1 if failed else 0
    comparison = compare.compare(
        saved.rows, compare.current_rows(results), args.only, args.threshold / 100
    )
    print()
    print(compare.render(comparison, saved, env, options), end="")
    if failed:
        return 1
    if args.fail_on_regression is not None:
        regressions = comparison.regressions(args.fail_on_regression / 100)
        if regressions:
            print(
                f"{len(regressions)} row(s) slower by more than "
                f"{args.fail_on_regression:g}% (--fail-on-regression)",
                file=sys.stderr,
            )
            return 3
    return 0
