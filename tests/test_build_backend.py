"""The sdist's build backend (build_backend/): where Rust is missing, its one
line says what is true about wheels for the Python at hand."""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest
from conftest import REPO


@pytest.fixture
def backend(monkeypatch):
    """The backend module, with maturin stubbed out (it is only wrapped there)."""
    stub = types.ModuleType("maturin")
    stub.__getattr__ = lambda name: (lambda *args, **kwargs: name)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "maturin", stub)
    path = REPO / "build_backend" / "interpreters_aio_build_backend.py"
    spec = importlib.util.spec_from_file_location("interpreters_aio_build_backend_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module.shutil, "which", lambda name: None)  # no cargo, no rustc
    return module


def test_a_python_that_has_a_wheel_is_told_so(backend):
    # The suite runs on CPython 3.12-3.15 (or 3.14t) on Linux x86_64 with glibc.
    assert backend._wheel_fits()
    with pytest.raises(SystemExit) as exc:
        backend._preflight()
    message = str(exc.value)
    assert message.startswith("interpreters-aio: building from source needs Rust")
    assert "a prebuilt wheel exists for this Python, but pip chose the source" in message
    assert "no prebuilt wheel fits" not in message


def test_a_python_without_a_wheel_is_told_which_exist(backend, monkeypatch):
    monkeypatch.setattr(backend, "_wheel_fits", lambda: False)
    with pytest.raises(SystemExit) as exc:
        backend._preflight()
    assert "no prebuilt wheel fits this Python: prebuilt wheels exist for CPython 3.12-3.15" in (
        str(exc.value)
    )
    assert "3.14t" in str(exc.value)
