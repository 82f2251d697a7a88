"""Shared fixtures: fresh interpreters that are always closed afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import interpreters_aio as interpreters

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def interp() -> Iterator[interpreters.Interpreter]:
    """A new interpreter, closed after the test."""
    it = interpreters.create()
    try:
        yield it
    finally:
        it.close()


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
