"""The runner of CPython's own suite (tests/cpython/runner.py, scripts/cpython-suite).

Its child processes must run this package (the suite starts them with
``sys.executable -I`` or ``-E``, which ignore PYTHONPATH), and its exclusion
list must name single tests, each with a reason.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

import pytest

CPYTHON_DIR = Path(__file__).resolve().parent / "cpython"


def load(name: str):
    spec = importlib.util.spec_from_file_location(
        f"cpython_suite_{name}", CPYTHON_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = load("runner")
exclusions = load("exclusions")


def has_suite() -> bool:
    if sys.version_info < (3, 14):
        return False
    try:
        import test
    except ImportError:
        return False
    here = Path(test.__file__).resolve().parent
    return all((here / part).is_dir() for part in runner.STDLIB_TEST_PARTS)


needs_suite = pytest.mark.skipif(not has_suite(), reason="needs a 3.14+ build with its test suite")


@pytest.fixture(scope="module")
def overlay():
    root = runner.build_overlay()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def child(overlay: Path, *argv: str, test: str = "probe") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != runner.RUNNER_PID_ENV}
    env[runner.CURRENT_TEST_ENV] = test
    env.pop("INTERPRETERS_AIO_INSTALL", None)
    return subprocess.run(
        [str(runner.venv_python(overlay)), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@needs_suite
@pytest.mark.parametrize("flags", [["-I"], ["-E"], []], ids=["-I", "-E", "plain"])
def test_suite_children_run_interpreters_aio(overlay, flags):
    # As script_helper starts them: sys.executable, isolated or without PYTHON* variables.
    code = (
        "from concurrent import interpreters\n"
        "import sys\n"
        "interp = interpreters.create()\n"
        "interp.exec('import concurrent.interpreters as i; "
        'assert i.__name__ == "interpreters_aio"\')\n'
        "interp.close()\n"
        "print(interpreters.__name__, sys.modules['concurrent.interpreters'].__name__)\n"
    )
    test = f"probe{''.join(flags)}"
    done = child(overlay, *flags, "-c", code, test=test)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.split() == ["interpreters_aio", "interpreters_aio"]
    records = [r for r in load_records(overlay) if r["test"] == test]
    assert len(records) == 1 and records[0]["ours"], records
    assert runner.check_children(overlay, [test], stdlib=False) == []


@needs_suite
def test_suite_child_that_loses_the_switch_fails_the_run(overlay):
    # A child whose concurrent.interpreters ends up the standard library's is reported.
    code = (
        "import sys\ndel sys.modules['concurrent.interpreters']\nimport concurrent.interpreters\n"
    )
    done = child(overlay, "-I", "-c", code, test="probe-stdlib")
    assert done.returncode == 0, done.stderr
    problems = runner.check_children(overlay, [], stdlib=False)
    assert len(problems) == 1 and "probe-stdlib" in problems[0], problems
    for path in runner.records_dir(overlay).glob("*.json"):
        path.unlink()  # leave the fixture's records clean


@needs_suite
def test_suite_test_without_child_records_fails_the_run(overlay):
    test = runner.CHILD_TESTS[0]
    assert runner.check_children(overlay, [test], stdlib=False) == [
        f"{test} left no child's record (did its children get the switch?)"
    ]


@needs_suite
def test_suite_uses_the_builds_own_definitions(overlay):
    import test

    for name in ("_crossinterp_definitions.py", "_code_definitions.py"):
        own = Path(test.__file__).resolve().parent / name
        used = (overlay / "test" / name).resolve()
        assert used == (own if own.exists() else CPYTHON_DIR / "stand_ins" / name)


def load_records(overlay: Path) -> list[dict]:
    import json

    return [json.loads(p.read_text()) for p in runner.records_dir(overlay).glob("*.json")]


def test_exclusions_name_single_tests_with_known_reasons():
    # Wildcards hid tests that pass (8 of test_api/test_queues' LowLevelTests).
    for pattern, (reason, detail) in exclusions.EXCLUDED.items():
        assert not any(c in pattern for c in "*?["), pattern
        assert reason in exclusions.REASONS, pattern
        assert detail, pattern


def test_known_defect_runs_as_expected_failure():
    class Case(unittest.TestCase):
        def test_fails(self):
            self.fail("known")

        def test_passes(self):
            pass

    result = unittest.TestResult()
    for name in ("test_fails", "test_passes"):
        case = Case(name)
        runner.expect_failure(case)
        case.run(result)
    assert len(result.expectedFailures) == 1
    assert [t.id() for t in result.unexpectedSuccesses] == [Case("test_passes").id()]
    assert not result.wasSuccessful()
