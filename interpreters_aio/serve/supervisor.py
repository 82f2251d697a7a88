"""The supervisor: N workers of one app, run from the main interpreter.

It is itself an asyncio program on this package's async layer, shaped after
uvicorn's ``supervisors/multiprocess.py`` and gunicorn's arbiter, with
threads of one process where they have processes:

* sockets are bound once, here (:mod:`.sockets`), and handed out by number;
* each worker runs :func:`.worker.worker_main` with its own event loop, in a
  fresh interpreter on a thread of its own, on a thread of this interpreter
  (free-threaded builds) or in a child process: the isolation modes of
  :mod:`.isolation`, all behind one small interface, so nothing below
  branches on the mode;
* workers talk back over one events queue (ready, heartbeat, exit, app
  messages) and one log queue; each has a control queue (stop, force,
  messages);
* signals are the main thread's alone, so SIGINT/SIGTERM (stop; a second one
  forces), SIGHUP (rolling restart), SIGTTIN/SIGTTOU (one worker more or
  fewer) become method calls here and control messages there;
* with ``reload``, a watcher thread (:mod:`.reload`, here only, never in a
  worker) turns a change to the source files into the rolling restart of
  SIGHUP; a restart asked while one runs is done again once it ends;
* a worker whose heartbeat stops is reported, interrupted and replaced; one
  whose app raised is restarted with backoff, up to a limit; one that could
  not start ends the whole server with exit code 3 at start-up (as uvicorn),
  and aborts a rolling restart later (the old worker keeps serving).

What interpreters and threads cannot give: a crash in C takes every worker
down (one process), and a worker stuck in C code cannot be interrupted; it is
reported, abandoned and replaced (a process is killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import threading
import time
from typing import Any

from .. import _core, create_queue
from . import logs, worker
from .config import STARTUP_FAILURE, ServeConfig
from .isolation import Isolation, Runner, WorkerCall
from .metrics import MetricsServer, Tally, render
from .preflight import ServeError
from .sockets import Listeners

logger = logging.getLogger("interpreters_aio.serve")

RESTART_BACKOFF = (0.1, 0.5, 1.0, 2.0, 5.0)
#: Seconds a forced stop lets workers end on their own (they close their
#: connections and cancel their requests) before it interrupts them...
FORCE_INTERRUPT_AFTER = 1.0
#: ...and waits for workers (interrupted twice a second) before it gives up on
#: them: one stuck in C code cannot be interrupted.
FORCE_GRACE = 5.0


class _Worker:
    """The supervisor's record of one worker."""

    def __init__(self, slot: int, key: int) -> None:
        self.slot = slot
        self.key = key
        self.runner: Runner | None = None
        self.ctl = create_queue()
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.exited = asyncio.get_running_loop().create_future()
        self.last_beat = time.monotonic()
        self.tally = Tally()  # its last heartbeat: requests, the rest with --metrics-port
        self.retired = False  # replaced or stopped on purpose: its exit starts nothing
        self.unresponsive = False  # its loop stopped answering: interrupted, maybe stuck in C

    def send(self, *message: object) -> None:
        with contextlib.suppress(Exception):
            self.ctl.put_nowait(message)

    def __repr__(self) -> str:
        return f"worker {self.slot} ({self.runner.label if self.runner is not None else '-'})"


class Supervisor:
    """Runs ``config.workers`` copies of an app, each in its own interpreter (or
    thread, or process: ``isolation``, default interpreters).

    Use :meth:`run` (blocking until the server stops) from async code, or
    :func:`interpreters_aio.serve.run` from blocking code. While it runs:
    :meth:`stop`, :meth:`reload`, :meth:`scale`, :meth:`send` and
    :meth:`recv` control it from the same event loop.
    """

    def __init__(
        self,
        config: ServeConfig,
        *,
        kind: str,
        handle_signals: bool = True,
        isolation: Isolation | None = None,
        reason: str = "",
        warnings: list[str] | None = None,
    ) -> None:
        if isolation is None:
            from .isolation.interpreters import Interpreters

            isolation = Interpreters()
        self.config = config
        self.kind = kind
        self.isolation = isolation
        self._isolation_reason = reason
        self._startup_warnings = list(warnings or [])
        self._handle_signals = handle_signals
        self._workers: dict[int, _Worker] = {}  # slot -> current worker
        self._live: dict[int, _Worker] = {}  # key -> every worker not yet exited
        self._keys = itertools.count(1)
        self._restarts: dict[int, list[float]] = {}
        self._exit_code = 0
        self._stopping: asyncio.Event | None = None
        self._force = False
        self._listeners: Listeners | None = None
        self._events: Any = None
        self._logs: Any = None
        self._inbox: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
        self._reloading: asyncio.Task[None] | None = None
        self._reload_again = False
        self._watcher: Any = None
        self._ready = asyncio.Event()
        self._metrics: MetricsServer | None = None
        self._ended = Tally()  # request counters of the workers that have ended
        self._server_counts = Tally()  # restarts and health-check misses, all slots
        self._slot_counts: dict[int, Tally] = {}  # the same, per slot

    # --- control -----------------------------------------------------------

    @property
    def port(self) -> int | None:
        """The TCP port served (the real one when port 0 was asked), once listening."""
        return self._listeners.port if self._listeners is not None else None

    @property
    def workers(self) -> list[int]:
        """The current workers by slot: their interpreter ids (thread ids, process ids)."""
        idents = (w.runner.ident for _, w in sorted(self._workers.items()) if w.runner is not None)
        return [ident for ident in idents if ident is not None]

    async def wait_ready(self) -> None:
        """Returns once every worker has started (or the server stopped)."""
        await self._ready.wait()

    def stop(self, *, force: bool = False) -> None:
        """Stop serving: graceful (uvicorn's shutdown), or at once with ``force``."""
        assert self._stopping is not None
        if self._stopping.is_set() and not force:
            force = True  # a second stop, as a second Ctrl-C
        self._force = self._force or force
        self._stopping.set()
        for w in list(self._live.values()):
            w.send("force" if self._force else "stop")

    def reload(self) -> None:
        """Rolling restart: each worker replaced by a fresh interpreter (new code), in turn.

        Asked while one runs, another follows it (workers replaced early in
        the running one may have loaded the code from before the change)."""
        if self._reloading is None or self._reloading.done():
            self._reload_again = False
            self._reloading = asyncio.get_running_loop().create_task(self._reloads())
        else:
            self._reload_again = True

    def scale(self, delta: int) -> None:
        """One worker more (``+1``) or fewer (``-1``); never fewer than one."""
        assert self._stopping is not None
        if self._stopping.is_set():
            return
        if delta > 0:
            slot = max(self._workers, default=-1) + 1
            logger.info("Adding worker %d", slot)
            self._start(slot)
        elif len(self._workers) > 1:
            slot = max(self._workers)
            w = self._workers.pop(slot)
            logger.info("Removing %s", w)
            w.retired = True
            w.send("stop")

    def send(self, slot: int, message: object) -> None:
        """Send ``message`` to the asyncio app of worker ``slot`` (its ``ctx.inbox``)."""
        self._workers[slot].send("message", message)

    def broadcast(self, message: object) -> None:
        """Send ``message`` to every worker's ``ctx.inbox``."""
        for w in self._workers.values():
            w.send("message", message)

    async def recv(self) -> tuple[int, Any]:
        """The next ``(slot, message)`` an asyncio app sent with ``ctx.send()``."""
        return await self._inbox.get()

    # --- life cycle --------------------------------------------------------

    async def run(self) -> int:
        """Serve until stopped; returns the exit code (0, 1, or 3 for a start-up failure)."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._listeners = Listeners(self.config)
        self._events = create_queue()
        self._logs = create_queue(logs.QUEUE_SIZE)
        pumps = [
            loop.create_task(self._pump_events()),
            loop.create_task(logs.pump(self._logs)),
        ]
        signals = self._install_signals(loop)
        watchdog = loop.create_task(self._watchdog())
        if self._isolation_reason:
            logger.info("isolation: %s (%s)", self.isolation.name, self._isolation_reason)
        for warning in self._startup_warnings:
            logger.warning("%s", warning)
        config = self.config
        if not config.reload and (config.reload_dirs or config.reload_includes
                                  or config.reload_excludes):
            logger.warning("--reload-dir, --reload-include and --reload-exclude do nothing "
                           "without --reload: not watching")
        cancelled: asyncio.CancelledError | None = None
        try:
            # Inside the try: the finally below undoes it (and the rest) if it fails.
            self.isolation.start()
            if config.metrics_port is not None:
                self._metrics = MetricsServer(config.metrics_host, config.metrics_port,
                                              self.metrics_text)
                await self._metrics.start()
            try:
                for slot in range(self.config.workers):
                    self._start(slot)
                await self._startup()
                if not self._stopping.is_set():
                    logger.info(
                        "serving %s on %s with %d workers (%s %s; Press CTRL+C to quit)",
                        self.config.app,
                        self._listeners.address,
                        len(self._workers),
                        self.isolation.plural,
                        ", ".join(map(str, self.workers)),
                    )
                    self._start_watcher(loop)
                await self._stopping.wait()
            except asyncio.CancelledError as exc:
                # Cancelled from outside (the caller's task): the workers must
                # still be stopped, or their threads would hang the exit.
                cancelled = exc
                self.stop(force=True)
            self._stop_watcher()
            if self._reloading is not None:
                self._reloading.cancel()
            await self._shutdown()
            if cancelled is not None:
                raise cancelled
        finally:
            self._stop_watcher()
            watchdog.cancel()
            self._ready.set()
            for sig in signals:
                loop.remove_signal_handler(sig)
            self._events.close()
            self._logs.close()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._listeners.close()
            if self._metrics is not None:
                await self._metrics.close()
            self.isolation.stop()
        return self._exit_code

    async def _startup(self) -> None:
        assert self._stopping is not None
        waits = [asyncio.ensure_future(w.ready) for w in self._workers.values()]
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([asyncio.gather(*waits), stopping],
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        self._ready.set()

    def _spawn(self, slot: int) -> _Worker:
        """A new worker for ``slot``, started; not yet the slot's current one."""
        w = _Worker(slot, next(self._keys))
        self._live[w.key] = w
        w.task = asyncio.get_running_loop().create_task(self._run_worker(w))
        return w

    def _start(self, slot: int) -> _Worker:
        """A new worker, started as the current one of ``slot``."""
        w = self._workers[slot] = self._spawn(slot)
        return w

    async def _run_worker(self, w: _Worker) -> None:
        assert self._listeners is not None
        kind, detail = worker.CRASHED, "the worker ended without a report"
        try:
            w.runner = self.isolation.runner()
            fds = self._listeners.fds_for(w.key)
            await w.runner.run(WorkerCall(
                self.config.to_wire(), w.slot, w.key, fds, w.ctl, self._events, self._logs,
            ))
        except BaseException as exc:  # ExecutionFailed: worker_main itself failed
            detail = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, asyncio.CancelledError):
                raise
        finally:
            # The exit event, if the worker sent one, is already queued: let
            # the pump read it before deciding.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(w.exited), 2.0)
            if w.exited.done():
                kind, detail = w.exited.result()
            self._listeners.release(w.key)
            w.ctl.close()
            if w.runner is not None:
                with contextlib.suppress(Exception):
                    await w.runner.close()
            self._live.pop(w.key, None)
            self._ended.add(w.tally)
            if not w.ready.done():
                w.ready.set_result(False)
        self._after_exit(w, kind, detail)

    def _after_exit(self, w: _Worker, kind: str, detail: str) -> None:
        assert self._stopping is not None
        current = self._workers.get(w.slot) is w
        if current:
            del self._workers[w.slot]
        if self._stopping.is_set() or w.retired:
            if kind in (worker.CRASHED, worker.STARTUP) and not self._stopping.is_set():
                logger.error("%s failed while being replaced: %s", w, detail)
            return
        if kind == worker.STARTUP:
            logger.error("%s could not start: %s", w, detail)
            if self._reloading is not None and not self._reloading.done():
                return  # the rolling restart sees it and keeps the old worker
            self._exit_code = STARTUP_FAILURE
            self.stop()
            return
        if kind == worker.FINISHED and self.kind == "asyncio":
            logger.info("%s finished: %s", w, detail)
            if not self._workers:
                self.stop()
            return
        if kind == worker.LIMIT:
            logger.info("%s %s (--limit-max-requests): replacing it", w, detail)
            self._start(w.slot)
            return
        logger.error("%s %s: %s", w, "exited" if kind == worker.FINISHED else kind, detail)
        recent = [t for t in self._restarts.get(w.slot, []) if time.monotonic() - t
                  < self.config.restart_window]
        if len(recent) >= self.config.max_restarts:
            logger.error(
                "worker %d failed %d times in %.0f s: giving up, stopping the server",
                w.slot, len(recent), self.config.restart_window,
            )
            self._exit_code = 1
            self.stop()
            return
        recent.append(time.monotonic())
        self._restarts[w.slot] = recent
        delay = RESTART_BACKOFF[min(len(recent) - 1, len(RESTART_BACKOFF) - 1)]
        logger.info("restarting worker %d in %.1f s", w.slot, delay)
        self._counted(w.slot, restarts=1)
        asyncio.get_running_loop().call_later(delay, self._restart_slot, w.slot)

    def _restart_slot(self, slot: int) -> None:
        assert self._stopping is not None
        if not self._stopping.is_set() and slot not in self._workers:
            self._start(slot)

    async def _pump_events(self) -> None:
        async for event in self._events.aio:
            kind, key = event[0], event[1]
            w = self._live.get(key)
            if w is None:
                continue  # a worker that has already been cleaned up
            if kind == "beat":
                w.last_beat = time.monotonic()
                w.tally.set_from(event[2], event[3], event[4])
            elif kind == "ready":
                w.last_beat = time.monotonic()
                if not w.ready.done():
                    w.ready.set_result(True)
            elif kind == "exit":
                if not w.exited.done():
                    w.exited.set_result((event[2], event[3]))
            elif kind == "message":
                self._inbox.put_nowait((w.slot, event[2]))

    # --- metrics (--metrics-port) --------------------------------------------

    def _counted(self, slot: int, *, restarts: int = 0, healthcheck_misses: int = 0) -> None:
        for tally in (self._slot_counts.setdefault(slot, Tally()), self._server_counts):
            tally.restarts += restarts
            tally.healthcheck_misses += healthcheck_misses

    def metrics_text(self) -> str:
        """The Prometheus text ``--metrics-port`` serves (see :mod:`.metrics`)."""
        workers = []
        for slot, w in self._workers.items():
            tally = Tally()
            tally.add(w.tally)
            tally.connections = w.tally.connections
            counts = self._slot_counts.get(slot)
            if counts is not None:
                tally.restarts = counts.restarts
                tally.healthcheck_misses = counts.healthcheck_misses
            workers.append((slot, tally))
        # The workers of now count in the totals through `workers`; the
        # ended ones through `_ended`.
        return render(workers, self._ended, self._server_counts)

    async def _watchdog(self) -> None:
        assert self._stopping is not None
        timeout = self.config.timeout_worker_healthcheck
        while True:
            await asyncio.sleep(self.config.heartbeat_interval)
            now = time.monotonic()
            for w in list(self._live.values()):
                # Before it is ready a worker is importing the app: give it longer.
                limit = timeout if w.ready.done() else 4 * timeout
                if not w.unresponsive and now - w.last_beat > limit:
                    logger.error(
                        "%s did not answer for %.1f s (its event loop is blocked): "
                        "interrupting and replacing it", w, now - w.last_beat,
                    )
                    w.retired = w.unresponsive = True
                    self._counted(w.slot, healthcheck_misses=1)
                    if self._workers.get(w.slot) is w:
                        del self._workers[w.slot]
                        if not self._stopping.is_set():
                            self._counted(w.slot, restarts=1)
                            self._start(w.slot)
                    if w.runner is not None:
                        w.runner.interrupt()

    # --- reload (--reload) ---------------------------------------------------

    def _start_watcher(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.config.reload:
            return
        from . import reload

        plan = reload.plan(self.config.reload_dirs, self.config.reload_includes,
                           self.config.reload_excludes)
        for warning in plan.warnings:
            logger.warning("%s", warning)
        dirs = sorted(map(str, plan.dirs))

        def ready(how: str) -> None:
            logger.info("Will watch for changes in these directories: %s (%s)", dirs, how)

        def changed(paths: list[str]) -> None:
            assert self._stopping is not None
            if self._stopping.is_set():
                return
            logger.warning("%s detected changes in %s. Reloading...",
                           self._watcher.backend if self._watcher else "reload",
                           reload.display(paths))
            self.reload()

        self._watcher = reload.Watcher(
            plan, self.config.reload_delay, loop, changed, on_ready=ready,
            on_error=lambda message: logger.error("%s", message),
        )
        self._watcher.start()

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.stop():
            logger.warning("the reload watcher did not stop in time: leaving it")

    async def _reloads(self) -> None:
        assert self._stopping is not None
        while True:
            await self._rolling_restart()
            if not self._reload_again or self._stopping.is_set():
                return
            self._reload_again = False
            logger.info("another reload was asked during this one: reloading again")

    async def _rolling_restart(self) -> None:
        logger.info("reloading: replacing %d workers one at a time", len(self._workers))
        self.isolation.before_reload(self.config.app_dir)
        for slot in sorted(self._workers):
            old = self._workers.get(slot)
            if old is None:
                continue
            new = self._spawn(slot)
            if not await new.ready:
                logger.error("reload stopped: the new worker %d did not start; the old one "
                             "keeps serving", slot)
                return
            old.retired = True
            self._workers[slot] = new
            old.send("stop")
            await asyncio.shield(old.exited)
        logger.info("reload done")

    async def _shutdown(self) -> None:
        for w in list(self._live.values()):
            w.send("force" if self._force else "stop")
        tasks = [w.task for w in list(self._live.values()) if w.task is not None]
        forced_at: float | None = None
        while tasks:
            _, pending = await asyncio.wait(tasks, timeout=0.5)
            tasks = list(pending)
            # A worker that stopped answering cannot run a graceful
            # shutdown: it gets the forced one.
            if tasks and (self._force or all(w.unresponsive for w in self._live.values())):
                forced_at = forced_at or time.monotonic()
                waited = time.monotonic() - forced_at
                if waited > FORCE_GRACE:
                    logger.error("%s did not stop when forced: abandoning it",
                                 ", ".join(map(repr, self._live.values())))
                    return
                for w in list(self._live.values()):
                    # A responsive worker ends its forced stop by itself; an
                    # interrupt would only put a traceback in its log.
                    if w.runner is not None and (w.unresponsive or waited > FORCE_INTERRUPT_AFTER):
                        w.runner.interrupt()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        actions = {
            signal.SIGINT: lambda: self._on_stop_signal("SIGINT"),
            signal.SIGTERM: lambda: self._on_stop_signal("SIGTERM"),
            signal.SIGHUP: self.reload,
            signal.SIGTTIN: lambda: self.scale(+1),
            signal.SIGTTOU: lambda: self.scale(-1),
        }
        for sig, action in actions.items():
            loop.add_signal_handler(sig, action)
        return list(actions)

    def _on_stop_signal(self, name: str) -> None:
        assert self._stopping is not None
        if self._stopping.is_set():
            logger.info("%s again: stopping at once", name)
            self.stop(force=True)
        else:
            logger.info("%s: shutting down (%s again to force)", name, name)
            self.stop()


def check_running_in_main_interpreter() -> None:
    """The supervisor must run in the main interpreter (signals, sockets, exit)."""
    if _core.current_id() != _core.main_id():
        raise ServeError("serve runs its supervisor in the main interpreter only")
