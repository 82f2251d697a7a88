"""Shared fixtures: fresh interpreters that are always closed afterwards."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import interpreters_aio as interpreters

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(interpreters.__file__).resolve().parent


def pytest_report_header() -> str:
    return f"interpreters_aio {interpreters.__version__} from {PACKAGE}"


def pytest_configure(config: pytest.Config) -> None:
    # The release check (scripts/test-installed) tests the wheel as users get
    # it: a copy of the package in the source tree must not stand in for it.
    if os.environ.get("INTERPRETERS_AIO_TEST_INSTALLED") and PACKAGE.is_relative_to(REPO):
        raise pytest.UsageError(f"testing the source tree ({PACKAGE}), not the installed package")


FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # On a free-threaded build the GIL must stay off for the whole suite: a
    # module without Py_mod_gil (ours or one a test imported) turns it on for
    # the process, with only a RuntimeWarning to say so.
    if FREE_THREADED and sys._is_gil_enabled():
        session.config.get_terminal_writer().line(
            "FAILED: the GIL was enabled during the suite on a free-threaded build", red=True
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def interp() -> Iterator[interpreters.Interpreter]:
    """A new interpreter, closed after the test."""
    it = interpreters.create()
    try:
        yield it
    finally:
        with contextlib.suppress(interpreters.InterpreterNotFoundError):
            it.close()  # unless the test closed it


@pytest.fixture
def run_python():
    """Runs a script in a fresh Python process; returns the CompletedProcess."""

    def run(source: str, *, timeout: float = 60, env: dict[str, str] | None = None):
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            cwd=str(REPO / "tests"),
        )

    return run
