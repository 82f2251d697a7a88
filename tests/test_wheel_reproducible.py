"""The wheel names no folder of the machine that built it (issue 25 item 15).

Two wheels built from the same commit in two folders must be the same bytes:
scripts/build-dist gives the Rust SBOM relative references to our crates and
remaps the cargo home out of the extension's panic locations (scripts/
check-reproducible builds twice and compares). These tests check, cheaply, the
wheel the suite runs against: no absolute path of the checkout, the home or the
cargo home in its SBOM or its extension module, and a RECORD that matches the
SBOM it ships. From the source tree (an editable install) there is no wheel to
check, so they skip; the release check (scripts/test-installed) runs them.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import re
from pathlib import Path

import pytest

import interpreters_aio
from interpreters_aio import _core

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(interpreters_aio.__file__).resolve().parent

pytestmark = [
    pytest.mark.skipif(
        PACKAGE.is_relative_to(REPO), reason="the package is the source tree, not a built wheel"
    ),
    # scripts/check-sdist: pip built this wheel from the sdist on this machine,
    # with maturin's defaults; the promise is for the release wheels.
    pytest.mark.skipif(
        os.environ.get("INTERPRETERS_AIO_LOCAL_BUILD") == "1",
        reason="a local build from the sdist, not a release wheel of scripts/build-dist",
    ),
]

# Where Rust sources may be named in the extension: the standard library and
# its own dependencies (remapped by rustc itself), crates.io sources under the
# /cargo that scripts/build-dist maps the cargo home to. Ours are relative.
ALLOWED_RS_ROOTS = ("/rustc/", "/rust/deps/", "/cargo/registry/")
ABSOLUTE_RS = re.compile(rb"(?<![\w.+-])/[\w.+-]+(?:/[\w.+-]+)*\.rs")


def _build_folders() -> list[str]:
    """Absolute paths that would say where (and by whom) the wheel was built."""
    folders = {str(REPO), os.path.realpath(REPO)}
    home = os.path.expanduser("~")
    if home not in ("", "/"):
        folders.add(home.rstrip("/") + "/")
    if os.environ.get("CARGO_HOME"):
        folders.add(os.environ["CARGO_HOME"])
    return sorted(folders)


def _sboms() -> list[importlib.metadata.PackagePath]:
    try:
        files = importlib.metadata.files("interpreters-aio") or []
    except importlib.metadata.PackageNotFoundError:  # the source tree on sys.path
        return []
    return [f for f in files if "sboms" in f.parts and f.name.endswith(".json")]


def test_the_wheel_ships_a_rust_sbom():
    assert [f.name for f in _sboms()] == ["interpreters-aio-python.cyclonedx.json"]


@pytest.mark.parametrize("sbom", _sboms(), ids=lambda f: f.name)
def test_sbom_names_no_build_folder(sbom):
    text = sbom.read_text()
    for folder in _build_folders():
        assert folder not in text, f"{folder} in {sbom}"
    assert "/.cargo/" not in text, f"a cargo home in {sbom}"
    assert "file:///" not in text  # cargo's package ids: path+file:///<checkout>/rust/core
    bom = json.loads(text)
    ours = [c["bom-ref"] for c in bom["components"] if c["name"].startswith("interpreters-aio")]
    assert ours and all(ref.startswith("path+file:rust/") for ref in ours), ours
    assert bom["metadata"]["component"]["bom-ref"].startswith("path+file:rust/python#")


@pytest.mark.parametrize("sbom", _sboms(), ids=lambda f: f.name)
def test_record_matches_the_sbom(sbom):
    # build-dist rewrites the SBOM after maturin wrote the wheel: its RECORD
    # line must follow.
    data = sbom.read_binary()
    assert sbom.hash is not None and sbom.hash.mode == "sha256"
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    assert (sbom.hash.value, sbom.size) == (digest, len(data))


def test_extension_names_no_build_folder():
    binary = Path(_core.__file__).read_bytes()
    for folder in _build_folders():
        assert folder.encode() not in binary, f"{folder} in {_core.__file__}"
    # Panic locations in crates.io sources, unless the cargo home was remapped.
    assert b"/.cargo/" not in binary, f"a cargo home in {_core.__file__}"
    absolute = {
        m.group().decode()
        for m in ABSOLUTE_RS.finditer(binary)
        if not m.group().decode().startswith(ALLOWED_RS_ROOTS)
    }
    assert not absolute, sorted(absolute)[:5]
