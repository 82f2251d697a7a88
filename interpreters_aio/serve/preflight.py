"""Checks and imports in the main interpreter, before any worker starts.

* CPython 3.12.0-3.12.3 abort the whole process at exit once asyncio ran in
  a subinterpreter (python/cpython#119213, fixed in 3.12.4), and every
  worker runs an event loop: refuse, with the reason and the fix.
* The app is imported here first. An app that does not import fails once,
  with its traceback, instead of N workers failing (and being restarted) in
  a loop; and CPython 3.13.0 crashes when subinterpreters import some
  extension modules (``datetime``, which Starlette uses) before the main
  interpreter has. uvicorn and our HTTP protocol are imported for the same
  reason.
* ``--env-file`` and ``--app-dir`` apply to the whole process, as in
  uvicorn: new interpreters copy ``os.environ`` and ``sys.path`` from here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import re
import sys
import traceback
from typing import Any

from . import worker
from .config import ServeConfig, read_env_file


class ServeError(Exception):
    """``serve`` cannot run, or had to stop; ``exit_code`` is what the CLI exits with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def interpreters_unsafe() -> str | None:
    """Why this CPython cannot run workers in subinterpreters, or ``None``:
    3.12.0-3.12.3 abort at exit once an event loop ran in one."""
    if sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4):
        version = ".".join(map(str, sys.version_info[:3]))
        return (
            f"CPython {version} aborts the process at exit once an event loop ran in a "
            "subinterpreter (python/cpython#119213, fixed in 3.12.4)"
        )
    return None


def check_python() -> None:
    """Refuses workers in subinterpreters on the CPython releases that abort at exit."""
    why = interpreters_unsafe()
    if why is not None:
        raise ServeError(
            f"serve needs CPython 3.12.4 or newer for --isolation interpreters: {why}; "
            "use --isolation processes (or auto)"
        )


def apply_environment(config: ServeConfig) -> None:
    """``--env-file`` into ``os.environ`` and ``--app-dir`` onto ``sys.path``."""
    if config.env_file is not None:
        os.environ.update(read_env_file(config.env_file))
    app_dir = os.path.abspath(config.app_dir)
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)


def import_app(config: ServeConfig) -> Any:
    """Imports the app here; raises ServeError (exit 1) with the traceback if it fails."""
    try:
        module = importlib.import_module(config.module)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ServeError(
            f"error loading app {config.app!r}:\n{traceback.format_exc().rstrip()}"
        ) from None
    obj: Any = module
    for part in config.attribute.split("."):
        if not hasattr(obj, part):
            raise ServeError(
                f"error loading app {config.app!r}: module {config.module!r} has no attribute "
                f"{config.attribute!r}"
            )
        obj = getattr(obj, part)
    return obj


# Runs in the probe subinterpreter: watches CPython's extension loader for
# refusals, then imports the app. `refused` and `failure` are read back.
_PROBE = """
import _imp, importlib
refused = []
_create = _imp.create_dynamic

def _watched(spec, *args):
    try:
        return _create(spec, *args)
    except ImportError as exc:
        if "subinterpreter" in str(exc) and spec.name not in refused:
            refused.append(spec.name)
        raise

_imp.create_dynamic = _watched
try:
    importlib.import_module(MODULE)
    failure = None
except BaseException as exc:
    failure = f"{type(exc).__name__}: {exc}"
finally:
    _imp.create_dynamic = _create
"""


@dataclasses.dataclass(frozen=True)
class Refusals:
    """What importing the app in a subinterpreter met: the extension modules
    that refused to load there, and how the import ended."""

    refused: list[str]
    failure: str | None

    @property
    def decisive(self) -> str | None:
        """The refused module the app's import failed on (``None``: it imported,
        or failed for another reason)."""
        if self.failure is None or not self.refused:
            return None
        named = re.search(r"module (\S+) does not support", self.failure)
        return named.group(1) if named and named.group(1) in self.refused else self.refused[-1]

    @property
    def fallbacks(self) -> list[str]:
        """Refused modules the app did without (optional speed-ups, most likely)."""
        return [name for name in self.refused if name != self.decisive]


def probe_subinterpreter(module: str) -> Refusals:
    """Imports ``module`` in a fresh subinterpreter and reports the refusals.

    Called after the app was imported here, so what it imports is imported in
    the main interpreter first (CPython 3.13.0 crashes otherwise).
    """
    from .. import create

    probe = create(daemon_threads=True)
    try:
        probe.prepare_main(MODULE=module)
        probe.exec(_PROBE)
        return Refusals(list(probe.call(eval, "refused")), probe.call(eval, "failure"))
    finally:
        with contextlib.suppress(Exception):  # a thread the import left running
            probe.close()


def kind_of(config: ServeConfig, app: Any) -> str:
    """``"asyncio"`` for an ``async def main(ctx)`` app, ``"asgi"`` otherwise."""
    if config.interface == "asyncio":
        return "asyncio"
    if config.interface == "auto" and not config.factory and worker.is_asyncio_main(app):
        return "asyncio"
    return "asgi"


def import_server(config: ServeConfig) -> None:
    """Imports the HTTP server stack here first (see the module docstring)."""
    try:
        import uvicorn.config
        import uvicorn.lifespan.on
    except ImportError:
        raise ServeError(
            "serving an ASGI app needs uvicorn: pip install 'interpreters-aio[serve]'"
        ) from None
    try:
        protocol = worker.http_protocol(config.http)
    except worker.StartupError as exc:
        raise ServeError(str(exc)) from None
    if protocol == "h11":
        import uvicorn.protocols.http.h11_impl  # noqa: F401
    # Only the WebSocket implementation --ws picks: importing the legacy
    # websockets one prints uvicorn's deprecation warning at every start.
    module = _WS_MODULES.get(config.ws)
    if module is not None:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ServeError(
                f"--ws {config.ws} needs the {exc.name or 'missing'} package: "
                f"pip install {_WS_PACKAGES[config.ws]}"
            ) from None


_WS_MODULES = {
    "auto": "uvicorn.protocols.websockets.auto",  # websockets' sans-I/O, else wsproto, else none
    "websockets": "uvicorn.protocols.websockets.websockets_impl",
    "websockets-sansio": "uvicorn.protocols.websockets.websockets_sansio_impl",
    "wsproto": "uvicorn.protocols.websockets.wsproto_impl",
}
_WS_PACKAGES = {"websockets": "websockets", "websockets-sansio": "websockets", "wsproto": "wsproto"}
