"""Workers on threads of the main interpreter, for free-threaded builds (3.14t).

There threads run Python in parallel, so N threads each running an event loop
serve like N interpreters, and the app may use C extensions that refuse
subinterpreters but support free threading (pydantic-core, SQLAlchemy's,
greenlet, msgspec...). What they share, unlike interpreters: one ``sys.modules``
(the app is imported once, and its module globals are shared by every worker;
``--factory`` builds an app per worker), one ``logging`` and one ``sys.stdout``
(routed per thread to the worker's log queue, see :func:`..logs.install`). A
rolling restart (SIGHUP) first makes the app's modules be imported anew.

Each worker runs uvloop where it is installed and keeps the GIL off (asked
once, in a child process: uvloop 0.23 does), else asyncio's loop.

A thread cannot be killed: a worker whose loop stops answering gets a
``KeyboardInterrupt`` raised in its thread (``PyThreadState_SetAsyncExc``, as
an interpreter's is), which ends a loop stuck in Python code; one stuck in C
code is reported, abandoned (the thread is a daemon) and replaced, as an
interpreter stuck in C is.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import importlib.util
import os
import subprocess
import sys
import threading
from typing import Any

from .. import logs, worker
from . import Isolation, Runner, WorkerCall


def _uvloop_keeping_the_gil_off() -> Any:
    """uvloop's loop factory if uvloop is installed and importing it keeps the
    GIL off (asked in a child process: once on, the GIL stays on), else None."""
    if importlib.util.find_spec("uvloop") is None:
        return None
    if "uvloop" not in sys.modules:
        probe = "import sys, uvloop; sys.exit(1 if sys._is_gil_enabled() else 0)"
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60)
        if result.returncode != 0:
            return None
    import uvloop

    return uvloop.new_event_loop


class ThreadRunner(Runner):
    kind = "thread"

    def __init__(self, loop_factory: Any = None) -> None:
        self._thread: threading.Thread | None = None
        self._loop_factory = loop_factory

    @property
    def ident(self) -> int | None:
        return self._thread.native_id if self._thread is not None else None

    async def run(self, call: WorkerCall) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[BaseException | None] = loop.create_future()

        def settle(outcome: BaseException | None) -> None:
            if not done.done():
                done.set_result(outcome)

        def target() -> None:
            outcome: BaseException | None = None
            try:
                worker.worker_main(
                    call.wire, call.slot, call.key, call.fds, call.ctl, call.events, call.logs,
                    shared_interpreter=True, loop_factory=self._loop_factory,
                )
            except BaseException as exc:  # reported to the supervisor below
                outcome = exc
            with contextlib.suppress(RuntimeError):  # the supervisor's loop is gone
                loop.call_soon_threadsafe(settle, outcome)

        self._thread = threading.Thread(
            target=target, name=f"serve worker {call.slot}", daemon=True
        )
        self._thread.start()
        outcome = await done
        if outcome is not None:
            raise outcome

    def interrupt(self) -> None:
        thread = self._thread
        if thread is not None and thread.ident is not None and thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(thread.ident), ctypes.py_object(KeyboardInterrupt)
            )

    async def close(self) -> None:
        pass  # the thread has returned, or is abandoned (a daemon thread)


class Threads(Isolation):
    name = "threads"
    plural = "threads"

    def __init__(self) -> None:
        self._loop_factory: Any = None

    def runner(self) -> Runner:
        return ThreadRunner(self._loop_factory)

    def start(self) -> None:
        logs.route_threads()
        self._loop_factory = _uvloop_keeping_the_gil_off()

    def before_reload(self, app_dir: str) -> None:
        # Workers share sys.modules: forget the app's own modules (those under
        # --app-dir, not the packages installed there), so each new worker of
        # the rolling restart imports the code as it is now. Old workers keep
        # the module objects they hold until they stop.
        root = os.path.abspath(app_dir) + os.sep
        for name, module in list(sys.modules.items()):
            path = getattr(module, "__file__", None)
            if (
                isinstance(path, str)
                and os.path.abspath(path).startswith(root)
                and "site-packages" not in path
            ):
                sys.modules.pop(name, None)
        importlib.invalidate_caches()

    def stop(self) -> None:
        logs.unroute_threads()
