"""What the results were measured on: Python, platform, the extension's build,
the source commit and the date.

The Rust extension matters: ``maturin develop`` without ``--release`` builds
an unoptimized binary, whose timings say little about the package. Such a
build carries DWARF debug info (a release build strips it by default), which
:func:`has_debug_info` detects by reading the ELF section headers.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import platform
import struct
import subprocess
import sys
import sysconfig
from typing import Any

import interpreters_aio
from interpreters_aio import _core


def has_debug_info(path: str) -> bool | None:
    """Whether the ELF file at ``path`` has a ``.debug_info`` section.

    ``None`` if it is not a 64-bit little-endian ELF file or cannot be read.
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError:
        return None
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELFCLASS64, little-endian
        return None
    try:
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        names_offset = struct.unpack_from("<Q", data, shoff + shstrndx * shentsize + 0x18)[0]
        for index in range(shnum):
            (name_index,) = struct.unpack_from("<I", data, shoff + index * shentsize)
            start = names_offset + name_index
            name = data[start : data.index(b"\0", start)]
            if name == b".debug_info":
                return True
    except (struct.error, ValueError):
        return None
    return False


def file_digest(path: str) -> str | None:
    """The SHA-256 of the file at ``path`` (tells two builds of the extension
    apart), or ``None`` if it cannot be read."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return None


def _git(directory: str, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", directory, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def source_commit() -> str | None:
    """The git commit of the checkout these benchmarks run from, with ``+modified``
    when tracked files differ from it; ``None`` outside a git checkout."""
    directory = os.path.dirname(os.path.abspath(__file__))
    commit = _git(directory, "rev-parse", "HEAD")
    if not commit:
        return None
    changes = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return f"{commit}+modified" if changes else commit


def describe() -> dict[str, Any]:
    """The facts printed above the tables and saved with the JSON results."""
    extension = getattr(_core, "__file__", None) or ""
    return {
        "python": sys.version.split()[0],
        "python_build": sys.version,
        "implementation": platform.python_implementation(),
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
        "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "interpreters_aio": interpreters_aio.__version__,
        "extension": extension,
        "extension_debug_info": has_debug_info(extension) if extension else None,
        "extension_sha256": file_digest(extension) if extension else None,
        "commit": source_commit(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def header_lines(env: dict[str, Any]) -> list[str]:
    """Human-readable lines for the top of the report."""
    if env["free_threaded"]:
        gil = "disabled" if not env["gil_enabled"] else "ENABLED (a module turned it on)"
        build = f"free-threaded build (3.14t: no GIL), GIL {gil}"
    else:
        build = "default build (one GIL per interpreter)"
    lines = [
        f"Python {env['python_build']}",
        build,
        f"{env['implementation']} on {env['platform']}, {env['cpu_count']} CPUs",
        f"interpreters_aio {env['interpreters_aio']} ({env['extension']})",
        f"commit {env['commit'] or 'unknown'}, {env['date']}",
    ]
    if env["extension_debug_info"]:
        lines.append(
            "WARNING: the extension has debug info; if it is an unoptimized build "
            "(maturin develop without --release), its timings are not representative"
        )
    return lines
