"""Workers in subinterpreters: a fresh interpreter per worker, with its own GIL,
on a thread of its own (``AsyncInterpreter.call``). One process; a worker
stuck in Python is interrupted, one stuck in C code can only be abandoned."""

from __future__ import annotations

import contextlib

from ... import _core, aio
from .. import worker
from . import Isolation, Runner, WorkerCall


class InterpreterRunner(Runner):
    kind = "interpreter"

    def __init__(self) -> None:
        self._interp: aio.AsyncInterpreter | None = None

    @property
    def ident(self) -> int | None:
        return self._interp.id if self._interp is not None else None

    async def run(self, call: WorkerCall) -> None:
        # Daemon threads allowed: asgiref (Django) starts one per request to
        # join its executor; closing the worker waits for them.
        self._interp = await aio.create(daemon_threads=True)
        await self._interp.call(
            worker.worker_main, call.wire, call.slot, call.key, call.fds,
            call.ctl, call.events, call.logs,
        )

    def interrupt(self) -> None:
        if self._interp is not None:
            _core.interrupt(self._interp.id)

    async def close(self) -> None:
        if self._interp is not None:
            with contextlib.suppress(Exception):
                await self._interp.close()


class Interpreters(Isolation):
    name = "interpreters"
    plural = "interpreters"

    def runner(self) -> Runner:
        return InterpreterRunner()
