"""One version, everywhere: Cargo's, the wheel's metadata, ``__version__``."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

import interpreters_aio
from interpreters_aio import _core

CARGO_TOML = Path(__file__).resolve().parent.parent / "Cargo.toml"


def test_version_is_cargos_and_the_metadata():
    if not CARGO_TOML.exists():
        pytest.skip("no Cargo.toml beside the tests")
    cargo = tomllib.loads(CARGO_TOML.read_text())["workspace"]["package"]["version"]
    assert interpreters_aio.__version__ == _core.__version__ == cargo
    assert importlib.metadata.version("interpreters-aio") == cargo


def test_metadata_names_what_a_package_index_shows():
    meta = importlib.metadata.metadata("interpreters-aio")
    classifiers = meta.get_all("Classifier") or []
    for python in ("3.12", "3.13", "3.14", "3.15"):
        assert f"Programming Language :: Python :: {python}" in classifiers
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Typing :: Typed" in classifiers
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.12"
    assert meta.get_all("Project-URL")


def test_license_ships_with_the_package():
    files = importlib.metadata.files("interpreters-aio") or []
    assert any(f.name == "LICENSE" and "dist-info" in str(f) for f in files)
