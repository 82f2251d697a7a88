"""PEP 517 build backend of interpreters-aio: maturin, behind a pre-flight check.

Wheels on PyPI need no compiler. Building from the sdist does: the package is
a Rust extension. Left to itself, maturin's backend answers a missing
``cargo`` by downloading a Rust toolchain (``puccinialin``) and, where that
fails, by a traceback. A user who meant to install a wheel should instead
learn in one line why there is none and what to do, so every hook first
checks what a source build needs (Linux, ``cargo`` on ``PATH``) and stops with
that line, before asking for build requirements. Everything else is
maturin's, unchanged.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from typing import Any

import maturin

_WHEELS = "prebuilt wheels exist for CPython 3.12-3.15 on Linux x86_64 (glibc 2.17+)"


def _preflight() -> None:
    """Exits with one line if this machine cannot build the extension."""
    if not sys.platform.startswith("linux"):
        raise SystemExit(
            f"interpreters-aio supports Linux only for now (this is {sys.platform}); {_WHEELS}."
        )
    if shutil.which("cargo") is None or shutil.which("rustc") is None:
        raise SystemExit(
            "interpreters-aio: building from source needs Rust (cargo and rustc on PATH, "
            f"see https://rustup.rs); no prebuilt wheel fits this Python: {_WHEELS}."
        )


def _checked(hook: Callable[..., Any]) -> Callable[..., Any]:
    """maturin's ``hook``, run only after the pre-flight check passed."""

    @functools.wraps(hook)
    def run(*args: Any, **kwargs: Any) -> Any:
        _preflight()
        return hook(*args, **kwargs)

    return run


# Every PEP 517 / PEP 660 hook maturin has, checked; pip calls one of the
# get_requires_* hooks first, so the check runs before any download.
get_requires_for_build_wheel = _checked(maturin.get_requires_for_build_wheel)
get_requires_for_build_editable = _checked(maturin.get_requires_for_build_editable)
get_requires_for_build_sdist = _checked(maturin.get_requires_for_build_sdist)
prepare_metadata_for_build_wheel = _checked(maturin.prepare_metadata_for_build_wheel)
prepare_metadata_for_build_editable = _checked(maturin.prepare_metadata_for_build_editable)
build_wheel = _checked(maturin.build_wheel)
build_editable = _checked(maturin.build_editable)
build_sdist = _checked(maturin.build_sdist)
