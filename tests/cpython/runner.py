"""Run CPython's own ``test.test_interpreters`` against the installed package.

    python tests/cpython/runner.py [--timeout S] [--per-test S] [-v] [PATTERN ...]

The Python running this must be a 3.14+ build whose ``test`` package has
``support`` and ``test_interpreters`` (as the builds in ``../shared/python``
have), with ``interpreters_aio`` installed. Before the suite is imported,
:func:`interpreters_aio.install` makes ``concurrent.interpreters`` (and its
``_queues`` and ``_crossinterp``) ours in this interpreter and in every
interpreter we create, exactly as a user of the backport switch gets it.

Child processes get the switch too: the runner re-executes itself with the
Python of a private virtualenv made for the run, whose ``sitecustomize`` adds
the original Python's site-packages and, in each child's main interpreter,
calls :func:`interpreters_aio.install`. That works for the children the suite
starts with ``sys.executable -I`` or ``-E`` (which ignore ``PYTHONPATH``).
Each child records, as it exits, what ``concurrent.interpreters`` is in it; the
tests in :data:`CHILD_TESTS` must have left at least one such record, and every
record must name ``interpreters_aio``, or the run fails.

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
import json
import os
import shutil
import sys
import sysconfig
import tempfile
import time
import unittest
import venv
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
OVERLAY_ENV = "INTERPRETERS_AIO_CPYTHON_SUITE_OVERLAY"
# The runner's own process id (it keeps it across the re-exec): the switch in
# sitecustomize is for its children; the runner installs it itself.
RUNNER_PID_ENV = "INTERPRETERS_AIO_CPYTHON_SUITE_PID"
# The id of the test running, for the records of the children it starts.
CURRENT_TEST_ENV = "INTERPRETERS_AIO_CPYTHON_SUITE_TEST"
# The suite's tests whose child processes use concurrent.interpreters: each
# must leave a child's record saying it was ours (see check_children).
CHILD_TESTS = (
    "test_api.InterpreterObjectTests.test_cleanup_in_repl",
    "test_api.TestInterpreterExec.test_display_preserved_exception",
    "test_api.TestInterpreterCall.test_func_in___main___valid",
    "test_api.TestInterpreterCall.test_func_in___main___hidden",
    "test_api.TestInterpreterCall.test_func_in___main___uses_globals",
    "test_lifecycle.StartupTests.test_sys_path_0",
    "test_lifecycle.FinalizationTests.test_gh_109793",
)
# The parts of CPython's `test` package the suite needs, besides our stand-ins.
STDLIB_TEST_PARTS = ("support", "libregrtest", "test_interpreters")


def build_overlay(*, stdlib: bool = False) -> Path:
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
    # It goes in the private virtualenv's site-packages too, for the children
    # that ignore PYTHONPATH.
    site_packages = build_child_venv(root, install=not stdlib)
    for where in (root, site_packages):
        blocked = where / "cloudpickle"
        blocked.mkdir()
        (blocked / "__init__.py").write_text(
            "raise ImportError('hidden from the CPython suite by tests/cpython/runner.py')\n"
        )
    return root


def venv_python(root: Path) -> Path:
    """The private virtualenv's Python (the runner and the suite's children run it)."""
    return root / "venv" / "bin" / "python"


def records_dir(root: Path) -> Path:
    """Where each child process leaves its record (see :data:`CHILD_SITECUSTOMIZE`)."""
    return root / "children"


CHILD_SITECUSTOMIZE = """\
# Written by tests/cpython/runner.py: the backport switch for the CPython
# suite's child processes, which run this virtualenv's Python (sys.executable).
import site
import sys

for _dir in {site_dirs!r}:
    site.addsitedir(_dir)  # the original Python's packages, interpreters_aio among them


def _switch():
    import _interpreters
    import os

    if _interpreters.get_current()[0] != _interpreters.get_main()[0]:
        return  # a subinterpreter: interpreters_aio installs the switch in its own
    if os.environ.get({pid_env!r}) == str(os.getpid()):
        return  # the runner itself: it installs the switch in main()
    import atexit
    import json

    installed = None
    if {install!r}:
        import interpreters_aio

        installed = interpreters_aio.install()

    def record():
        import concurrent

        module = sys.modules.get("concurrent.interpreters")
        attribute = getattr(concurrent, "interpreters", None)
        ours = sys.modules.get("interpreters_aio")
        data = {{
            "test": os.environ.get({test_env!r}),
            "pid": os.getpid(),
            "argv": sys.orig_argv,  # with its -I or -E
            "installed": installed,
            "module": getattr(module, "__name__", None),
            "ours": ours is not None and module is ours and attribute is ours,
            "package": getattr(ours, "__file__", None),
        }}
        with open(os.path.join({records!r}, f"{{os.getpid()}}.json"), "w") as out:
            json.dump(data, out)

    atexit.register(record)


_switch()
del _switch
"""


def build_child_venv(root: Path, *, install: bool) -> Path:
    """A private virtualenv at ``root/venv`` whose Python has the switch on.

    Its ``sitecustomize`` adds this Python's site directories (so
    ``interpreters_aio`` and what it needs import, as here) and, unless
    ``install`` is false (the ``--stdlib`` baseline), installs the switch in
    each process's main interpreter and records what ``concurrent.interpreters``
    is in it when the process exits. A sitecustomize in site-packages is run
    also under ``-I`` and ``-E``, unlike anything on ``PYTHONPATH``. Returns
    its site-packages.
    """
    import site

    import interpreters_aio

    target = root / "venv"
    venv.EnvBuilder(symlinks=True, with_pip=False).create(target)
    site_packages = Path(
        sysconfig.get_path("purelib", scheme="venv", vars={"base": target, "platbase": target})
    )
    site_dirs = [*site.getsitepackages()]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        site_dirs.append(site.getusersitepackages())
    # The package's own directory, should it come from neither (PYTHONPATH).
    package_parent = str(Path(interpreters_aio.__file__).resolve().parent.parent)
    if not any(Path(d).resolve() == Path(package_parent) for d in site_dirs):
        site_dirs.append(package_parent)
    records_dir(root).mkdir()
    (site_packages / "sitecustomize.py").write_text(
        CHILD_SITECUSTOMIZE.format(
            site_dirs=site_dirs,
            pid_env=RUNNER_PID_ENV,
            test_env=CURRENT_TEST_ENV,
            install=install,
            records=str(records_dir(root)),
        )
    )
    return site_packages


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
    overlay = build_overlay(stdlib="--stdlib" in sys.argv[1:])
    env = dict(os.environ)
    env[OVERLAY_ENV] = str(overlay)
    env[RUNNER_PID_ENV] = str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join([str(overlay), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep
    )
    env.pop("INTERPRETERS_AIO_INSTALL", None)  # main() decides
    env.pop(CURRENT_TEST_ENV, None)
    python = str(venv_python(overlay))
    os.execve(python, [python, "-X", "faulthandler", __file__, *sys.argv[1:]], env)


def check_children(root: Path, ran: list[str], *, stdlib: bool) -> list[str]:
    """What is wrong with the suite's child processes (an empty list: nothing).

    Every child that left a record must have had ``interpreters_aio`` as its
    ``concurrent.interpreters`` (with ``stdlib``: the standard library's), and
    each test of :data:`CHILD_TESTS` in ``ran`` must have left one.
    """
    records = [json.loads(p.read_text()) for p in sorted(records_dir(root).glob("*.json"))]
    problems = []
    for record in records:
        if record["ours"] == stdlib:
            problems.append(
                f"a child of {record['test']} ran {record['argv']} with "
                f"concurrent.interpreters = {record['module']!r}"
                + ("" if stdlib else f" (not {record['package']!r})")
            )
    seen = {record["test"] for record in records}
    for test in ran:
        if test in CHILD_TESTS and test not in seen:
            problems.append(f"{test} left no child's record (did its children get the switch?)")
    return problems


class WatchedResult(unittest.TextTestResult):
    """Arms a hang watchdog for each test and tallies outcomes."""

    per_test: float = 60.0

    def startTest(self, test: unittest.TestCase) -> None:
        faulthandler.dump_traceback_later(self.per_test, exit=True)
        os.environ[CURRENT_TEST_ENV] = short_id(test)
        super().startTest(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        super().stopTest(test)
        os.environ.pop(CURRENT_TEST_ENV, None)
        faulthandler.cancel_dump_traceback_later()


def iter_tests(suite: unittest.TestSuite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from iter_tests(item)
        else:
            yield item


def expect_failure(test: unittest.TestCase) -> None:
    """Run ``test`` as an expected failure (a known defect): its passing fails the run."""
    method = getattr(test, test._testMethodName)

    def expected_to_fail(*args, **kwargs):
        return method(*args, **kwargs)

    expected_to_fail.__unittest_expecting_failure__ = True  # what @expectedFailure sets
    setattr(test, test._testMethodName, expected_to_fail)


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
    known_defects: list[str] = []
    to_run = unittest.TestSuite()
    for test in selected:
        entry = next(
            (pattern for pattern in EXCLUDED if fnmatch.fnmatch(short_id(test), pattern)), None
        )
        if entry is not None:
            matched_entries.add(entry)
        kind = EXCLUDED[entry][0] if entry is not None else None
        if kind is None or args.no_exclusions or (kind == "defect" and args.stdlib):
            to_run.addTest(test)  # (the standard library's module has not our defects)
        elif kind == "defect":
            expect_failure(test)
            known_defects.append(f"{short_id(test)}: {EXCLUDED[entry][1]}")
            to_run.addTest(test)
        else:
            excluded[kind] += 1
    stale = sorted(set(EXCLUDED) - matched_entries)
    stale += sorted(set(CHILD_TESTS) - {short_id(t) for t in tests})
    if stale and not args.patterns:
        print(
            "cpython-suite: exclusions or CHILD_TESTS that match no test (remove them):",
            *stale,
            sep="\n  ",
            file=sys.stderr,
        )
        return 2

    print(
        f"cpython-suite: Python {sys.version.split()[0]}, interpreters_aio "
        f"{interpreters_aio.__version__} ({what}); {len(selected)} tests, "
        f"{sum(excluded.values())} excluded, {len(known_defects)} expected to fail"
    )
    faulthandler.dump_traceback_later(args.timeout, exit=True)
    WatchedResult.per_test = args.per_test
    runner = unittest.TextTestRunner(
        verbosity=2 if args.verbose else 1, resultclass=WatchedResult, stream=sys.stdout
    )
    started = time.monotonic()
    to_run_ids = [short_id(t) for t in iter_tests(to_run)]  # the run drops the tests
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
    for defect in known_defects:
        print(f"  expected to fail: {defect}")
    for test in result.unexpectedSuccesses:
        print(f"  {short_id(test)} passes now: remove it from tests/cpython/exclusions.py")
    skipped = {t.id().removeprefix("test.test_interpreters.") for t, _ in result.skipped}
    ran = [t for t in to_run_ids if t not in skipped]
    problems = check_children(Path(os.environ[OVERLAY_ENV]), ran, stdlib=args.stdlib)
    children = sum(1 for t in ran if t in CHILD_TESTS)
    if problems:
        print(
            "cpython-suite: FAILED: child processes without the switch:",
            *problems,
            sep="\n  ",
        )
        return 1
    print(
        f"cpython-suite: the child processes of {children} tests ran "
        + ("the standard library's module" if args.stdlib else "interpreters_aio")
    )
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    if OVERLAY_ENV not in os.environ:
        reexec_with_overlay()
    # The overlay was made for this run (by the process we replaced): remove it.
    atexit.register(shutil.rmtree, os.environ[OVERLAY_ENV], ignore_errors=True)
    sys.exit(main())
