"""Workers on threads of the main interpreter, for free-threaded builds (3.14t).

There threads run Python in parallel, so N threads each running an event loop
serve like N interpreters, and the app may use C extensions that refuse
subinterpreters but support free threading (pydantic-core, SQLAlchemy's,
greenlet, msgspec...). What they share, unlike interpreters: one ``sys.modules``
(the app is imported once, and its module globals are shared by every worker;
``--factory`` builds an app per worker), one ``logging`` and one ``sys.stdout``
(routed per thread to the worker's log queue, see :func:`..logs.install`). A
rolling restart (SIGHUP) first makes the app's modules be imported anew.

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
import os
import sys
import threading

from .. import logs, worker
from . import Isolation, Runner, WorkerCall


class ThreadRunner(Runner):
    def __init__(self) -> None:
        self._thread: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"thread {self._thread.native_id}" if self._thread is not None else "thread -"

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
                    shared_interpreter=True,
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

    def runner(self) -> Runner:
        return ThreadRunner()

    def start(self) -> None:
        logs.route_threads()

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
