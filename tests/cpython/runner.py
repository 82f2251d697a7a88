"""Run CPython's own ``test.test_interpreters`` against the installed package.

    python tests/cpython/runner.py [--timeout S] [--per-test S] [-v] [PATTERN ...]

The Python running this must be a 3.14+ build whose ``test`` package has
``support`` and ``test_interpreters`` (as the builds in ``../shared/python``
have), with ``interpreters_aio`` installed. Before the suite is imported,
:func:`interpreters_aio.install` makes ``concurrent.interpreters`` (and its
``_queues`` and ``_crossinterp``) ours in this interpreter and in every
interpreter we create, exactly as a user of the backport switch gets it.

The tests listed in :mod:`exclusions` are not run; every other test must pass.
One process runs the whole suite. A test that runs longer than ``--per-test``
seconds, or a suite longer than ``--timeout``, is a hang: every thread's stack
is printed and the process exits at once with status 1. Exit status 1 also
means a failure, an error or an unexpected success; 2, a broken exclusion list
(an entry that no longer matches any test); 0, all passed.
"""

from __future__ import annotations

import argparse
import atexit
import faulthandler
import fnmatch
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import unittest
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVERLAY_ENV = "INTERPRETERS_AIO_CPYTHON_SUITE_OVERLAY"
# The parts of CPython's `test` package the suite needs, besides our stand-ins.
STDLIB_TEST_PARTS = ("support", "libregrtest", "test_interpreters")


def build_overlay() -> Path:
    """A ``test`` package: the build's own parts, plus our two stand-in modules.

    It goes first on PYTHONPATH, so that interpreters created later (whose
    ``sys.path`` comes from the process's start-up configuration) import the
    stand-ins too: the suite ships functions to them by reference.
    """
    import test

    stdlib_test = Path(test.__file__).resolve().parent
    missing = [p for p in STDLIB_TEST_PARTS if not (stdlib_test / p).is_dir()]
    if missing:
        sys.exit(
            f"cpython-suite: {stdlib_test} has no {', '.join(missing)}; "
            "use a CPython 3.14+ build that ships test.test_interpreters"
        )
    root = Path(tempfile.mkdtemp(prefix="interpreters-aio-cpython-suite-"))
    package = root / "test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for part in STDLIB_TEST_PARTS:
        if part == "test_interpreters" and sysconfig.get_config_var("Py_GIL_DISABLED"):
            copy_without_gil_skip(stdlib_test / part, package / part)
        else:
            (package / part).symlink_to(stdlib_test / part)
    for stand_in in (HERE / "stand_ins").glob("_*.py"):
        own = stdlib_test / stand_in.name  # the build's own wins, where it has one
        (package / stand_in.name).symlink_to(own if own.exists() else stand_in)
    # With cloudpickle installed (the `test` extra has it), closures and other
    # objects the standard pickle refuses cross by value: a deliberate
    # difference (docs/guide.md) that the suite's "must be refused" cases
    # would count as failures. The suite checks 3.14's semantics, so a
    # `cloudpickle` whose import fails shadows the real one in every
    # interpreter (they all get this PYTHONPATH).
    blocked = root / "cloudpickle"
    blocked.mkdir()
    (blocked / "__init__.py").write_text(
        "raise ImportError('hidden from the CPython suite by tests/cpython/runner.py')\n"
    )
    return root


def copy_without_gil_skip(source: Path, target: Path) -> None:
    """A copy of ``test_interpreters`` that runs on a free-threaded build.

    Upstream skips the whole package there (``raise unittest.SkipTest("GIL
    disabled")`` in its ``__init__``), for the standard library's module, not
    ours; the modules themselves stay as they are, symlinked.
    """
    target.mkdir()
    for entry in source.iterdir():
        if entry.name != "__init__.py":
            (target / entry.name).symlink_to(entry)
    init = (source / "__init__.py").read_text()
    guard = 'if Py_GIL_DISABLED:\n    raise unittest.SkipTest("GIL disabled")\n'
    if guard not in init:
        sys.exit(f"cpython-suite: {source / '__init__.py'} no longer has the GIL skip to remove")
    (target / "__init__.py").write_text(init.replace(guard, ""))


def reexec_with_overlay() -> None:
    overlay = build_overlay()
    env = dict(os.environ)
    env[OVERLAY_ENV] = str(overlay)
    env["PYTHONPATH"] = os.pathsep.join([str(overlay), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env.pop("INTERPRETERS_AIO_INSTALL", None)  # main() decides
    os.execve(sys.executable, [sys.executable, "-X", "faulthandler", __file__, *sys.argv[1:]], env)


class WatchedResult(unittest.TextTestResult):
    """Arms a hang watchdog for each test and tallies outcomes."""

    per_test: float = 60.0

    def startTest(self, test: unittest.TestCase) -> None:
        faulthandler.dump_traceback_later(self.per_test, exit=True)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        faulthandler.cancel_dump_traceback_later()


def iter_tests(suite: unittest.TestSuite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def short_id(test: unittest.TestCase) -> str:
    return test.id().removeprefix("test.test_interpreters.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=300.0, help="whole suite, seconds")
    parser.add_argument("--per-test", type=float, default=60.0, help="one test, seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument(
        "--no-exclusions",
        action="store_true",
        help="run the excluded tests too (to review the list)",
    )
    parser.add_argument(
        "--memlimit",
        default="8G",
        help="what the suite's bigmem stress tests may use (regrtest's -M)",
    )
    parser.add_argument(
        "--stdlib",
        action="store_true",
        help="run against the standard library's own module instead (a baseline)",
    )
    parser.add_argument("patterns", nargs="*", help="run only tests whose id matches (fnmatch)")
    args = parser.parse_args()

    import interpreters_aio

    what = "the standard library's module" if args.stdlib else interpreters_aio.install()
    sys.path.insert(0, str(HERE))
    from exclusions import EXCLUDED, REASONS
    from test import support

    support.set_memlimit(args.memlimit)
    loaded = unittest.defaultTestLoader.loadTestsFromName("test.test_interpreters")
    tests = list(iter_tests(loaded))
    broken = [t for t in tests if isinstance(t, unittest.loader._FailedTest)]
    if broken:
        for t in broken:
            print(f"cpython-suite: cannot load {t.id()}:\n{t._exception}", file=sys.stderr)
        return 1

    selected = [
        t
        for t in tests
        if not args.patterns or any(fnmatch.fnmatch(short_id(t), p) for p in args.patterns)
    ]
    excluded: Counter[str] = Counter()
    matched_entries: set[str] = set()
    to_run = unittest.TestSuite()
    for test in selected:
        entry = next(
            (pattern for pattern in EXCLUDED if fnmatch.fnmatch(short_id(test), pattern)), None
        )
        if entry is not None:
            matched_entries.add(entry)
        if entry is not None and not args.no_exclusions:
            excluded[EXCLUDED[entry][0]] += 1
        else:
            to_run.addTest(test)
    stale = sorted(set(EXCLUDED) - matched_entries)
    if stale and not args.patterns:
        print(
            "cpython-suite: exclusions that match no test (remove them):",
            *stale,
            sep="\n  ",
            file=sys.stderr,
        )
        return 2

    print(
        f"cpython-suite: Python {sys.version.split()[0]}, interpreters_aio "
        f"{interpreters_aio.__version__} ({what}); {len(selected)} tests, "
        f"{sum(excluded.values())} excluded"
    )
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    WatchedResult.per_test = args.per_test
    runner = unittest.TextTestRunner(
        verbosity=2 if args.verbose else 1, resultclass=WatchedResult, stream=sys.stdout
    )
    started = time.monotonic()
    result = runner.run(to_run)
    faulthandler.cancel_dump_traceback_later()

    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print(
        f"cpython-suite: run {result.testsRun}, passed "
        f"{result.testsRun - failed - len(result.skipped) - len(result.expectedFailures)}, "
        f"failed {failed}, skipped by the suite itself {len(result.skipped)}, "
        f"in {time.monotonic() - started:.0f} s"
    )
    for reason, count in sorted(excluded.items()):
        print(f"  excluded {count:3d}: {reason}: {REASONS[reason]}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    if OVERLAY_ENV not in os.environ:
        reexec_with_overlay()
    # The overlay was made for this run (by the process we replaced): remove it.
    atexit.register(shutil.rmtree, os.environ[OVERLAY_ENV], ignore_errors=True)
    sys.exit(main())
