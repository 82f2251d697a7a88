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
import platform
import shutil
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

import maturin

_WHEELS = (
    "prebuilt wheels exist for CPython 3.12-3.15 and the free-threaded 3.14t on Linux x86_64 "
    "(glibc 2.17+)"
)


def _wheel_fits() -> bool:
    """Whether one of our prebuilt wheels is for the Python running this build."""
    if sys.implementation.name != "cpython" or not (3, 12) <= sys.version_info[:2] <= (3, 15):
        return False
    if sysconfig.get_config_var("Py_GIL_DISABLED") and sys.version_info[:2] != (3, 14):
        return False
    if not sys.platform.startswith("linux") or platform.machine() != "x86_64":
        return False
    libc, version = platform.libc_ver()
    return libc == "glibc" and tuple(map(int, version.split(".")[:2])) >= (2, 17)


def _preflight() -> None:
    """Exits with one line if this machine cannot build the extension."""
    if not sys.platform.startswith("linux"):
        raise SystemExit(
            f"interpreters-aio supports Linux only for now (this is {sys.platform}); {_WHEELS}."
        )
    if shutil.which("cargo") is None or shutil.which("rustc") is None:
        # Say what is true: pip may have picked the source for a Python that has
        # a wheel (--no-binary, or an index that lacks our wheels).
        why = (
            "a prebuilt wheel exists for this Python, but pip chose the source (--no-binary, "
            "or an index without the wheels?): install the wheel instead"
            if _wheel_fits()
            else f"no prebuilt wheel fits this Python: {_WHEELS}"
        )
        raise SystemExit(
            "interpreters-aio: building from source needs Rust (cargo and rustc on PATH, "
            f"see https://rustup.rs); {why}."
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
