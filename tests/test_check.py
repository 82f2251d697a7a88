"""``python -m interpreters_aio check MODULE:APP``: what refuses subinterpreters, and
which isolation ``serve`` would pick, from a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest
from serve_helpers import APPS

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
OLD_312 = sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4)
tries_subinterpreters = pytest.mark.skipif(
    OLD_312, reason="CPython 3.12.0-3.12.3: check tries no subinterpreter (gh-119213)"
)


def check(app: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "interpreters_aio", "check", app, "--app-dir", str(APPS)],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


@tries_subinterpreters
def test_an_app_that_runs_in_subinterpreters():
    result = check("asgi_app:app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every module it imports loads in a subinterpreter" in result.stdout
    assert "would use: interpreters" in result.stdout


@tries_subinterpreters
def test_an_app_that_needs_a_refused_module():
    result = check("refused_app:app")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refuses subinterpreters: _testsinglephase; the app cannot import without it" in (
        result.stdout
    )
    assert f"would use: {'threads' if FREE_THREADED else 'processes'}" in result.stdout


@tries_subinterpreters
def test_an_app_that_silently_falls_back():
    result = check("fallback_app:app")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "refuses subinterpreters: _testsinglephase; the app falls back without it" in (
        result.stdout
    )
    assert "would use: interpreters" in result.stdout


@tries_subinterpreters
def test_fastapi_names_pydantic_core_and_its_distribution(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("sqlalchemy")
    pytest.importorskip("aiosqlite")
    result = check("fastapi_app:app", SERVE_TEST_DB=str(tmp_path / "db.sqlite3"))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pydantic_core._pydantic_core (from pydantic_core)" in result.stdout
    assert f"would use: {'threads' if FREE_THREADED else 'processes'}" in result.stdout


@tries_subinterpreters
def test_django_runs_in_subinterpreters_from_3_13(tmp_path):
    pytest.importorskip("django")
    result = check("django_app:app", SERVE_TEST_DJANGO_DB=str(tmp_path / "db.sqlite3"))
    if sys.version_info < (3, 13):  # 3.12's _decimal refuses subinterpreters; Django needs it
        assert result.returncode == 1, result.stdout + result.stderr
        assert "_decimal; the app cannot import without it" in result.stdout
        assert "would use: processes" in result.stdout
    else:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "would use: interpreters" in result.stdout


def test_an_app_that_does_not_import():
    result = check("broken_app:app")
    assert result.returncode == 1
    assert "the app does not import: ModuleNotFoundError" in result.stdout


def test_usage_errors():
    result = check("no-colon")
    assert result.returncode == 2
    assert "MODULE:APP" in result.stderr or "app" in result.stderr


@pytest.mark.skipif(not OLD_312, reason="CPython 3.12.0-3.12.3 only")
def test_old_312_says_processes_without_trying():
    result = check("asgi_app:app")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not tried in a subinterpreter on this CPython" in result.stdout
    assert "would use: processes" in result.stdout and "119213" in result.stdout
