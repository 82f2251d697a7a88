"""The worker side of ``serve``: what runs inside each worker interpreter.

The supervisor calls :func:`worker_main` in a fresh interpreter, on a thread
of its own (``AsyncInterpreter.call``). It runs one asyncio event loop there
for the worker's whole life: the app (an ASGI app under uvicorn's server
machinery, or an ``async def main(ctx)``), a heartbeat, and a control task
that listens to the supervisor. It never raises: every ending is reported as
an ``("exit", key, kind, detail)`` event, so the supervisor decides between
restart, stop and "startup failed" on facts, not on tracebacks.

Only the main thread of the main interpreter receives signals, so nothing
here installs a signal handler: stop and force arrive as control messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import importlib
import inspect
import logging
import os
import re
import socket
import sys
import traceback
from typing import Any

from .. import _lazy
from . import logs
from .config import ServeConfig

logger = logging.getLogger("uvicorn.error")

# Exit kinds reported to the supervisor.
STOPPED = "stopped"  # asked to stop, and did
FINISHED = "finished"  # the app returned on its own
LIMIT = "limit"  # --limit-max-requests reached: replace me
CRASHED = "crashed"  # the app raised: restart with backoff
STARTUP = "startup"  # could not start (import, lifespan): do not restart
INTERRUPTED = "interrupted"  # KeyboardInterrupt, e.g. a stuck loop interrupted

_REFUSED_HINT = (
    "a C extension module that cannot be loaded in a subinterpreter (it uses single-phase "
    "initialization or declares no per-interpreter GIL support); known today: uvloop, "
    "httptools, pydantic-core (so FastAPI), orjson, msgspec, ujson, numpy. serve runs "
    "each worker in its own interpreter, so the app must avoid such modules."
)


class ListeningSocket(socket.socket):
    """A listening socket the supervisor bound; ``listen()`` leaves its backlog alone.

    asyncio's ``create_server(sock=..., backlog=n)`` calls ``sock.listen(n)``
    (the kernel's accept queue, which the supervisor sized: ignored here) and
    accepts up to ``n`` connections per wake-up of the listening socket.

    ``share``: how many workers accept on this same socket. With more than
    one, the first worker to wake would take a whole burst (wrk's 64
    connections, say) and keep them, leaving the others idle; so each
    wake-up takes only this worker's share of the connections waiting in the
    kernel's queue (``ceil(queued / share)``, read with ``TCP_INFO``; one
    where the queue cannot be read). Not one per wake-up: a busy worker wakes
    once per loop iteration, which lasts as long as serving every ready
    connection once, so taking one connection per iteration left the last of
    a burst waiting for dozens of iterations (p99 ten times the median).
    """

    share = 1
    _budget: int | None = None  # accepts left in this wake-up; None: a new wake-up

    def listen(self, backlog: int = 0, /) -> None:
        pass

    def accept(self) -> tuple[socket.socket, Any]:
        if self.share <= 1:
            return super().accept()
        budget = self._budget
        if budget is None:
            budget = self._queued_share()
        elif budget <= 0:
            # This wake-up's share is taken: asyncio stops accepting until
            # the socket is reported readable again (next loop iteration).
            self._budget = None
            raise BlockingIOError(errno.EAGAIN, "this worker's share is accepted")
        try:
            conn = super().accept()
        except OSError:
            self._budget = None
            raise
        self._budget = budget - 1
        return conn

    def _queued_share(self) -> int:
        """This worker's share of the connections waiting to be accepted (at least 1)."""
        if self.family in (socket.AF_INET, socket.AF_INET6):
            try:
                info = self.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            except (OSError, AttributeError):
                return 1
            # struct tcp_info: 8 bytes of u8 fields, then u32 rto, ato, snd_mss,
            # rcv_mss, unacked (for a listening socket: the accept queue's length).
            if len(info) >= 28:
                queued = int.from_bytes(info[24:28], sys.byteorder)
                return max(1, -(-queued // self.share))
        return 1


class StartupError(Exception):
    """The app cannot start in this worker; the message says why."""


class Context:
    """What a plain asyncio app (``async def main(ctx)``) gets from ``serve``.

    Attributes:
        index: this worker's slot, ``0`` to ``workers - 1`` (a replacement
            worker keeps the slot of the one it replaces).
        workers: the number of worker slots when this worker started.
        sockets: the listening sockets (when ``--host``/``--port``/``--uds``
            was given), ready for ``asyncio.start_server(sock=...)``.
        stopping: set when the supervisor asks the app to stop (SIGINT,
            SIGTERM, a rolling restart); return from ``main`` soon after.
        inbox: an ``asyncio.Queue`` of messages the supervisor sent this worker.
    """

    def __init__(
        self, index: int, workers: int, sockets: list[socket.socket], events: Any, key: int
    ) -> None:
        self.index = index
        self.workers = workers
        self.sockets = sockets
        self.stopping = asyncio.Event()
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._events = events
        self._key = key

    def send(self, message: object) -> None:
        """Send ``message`` (a shareable object) to the supervisor; never blocks."""
        self._events.put_nowait(("message", self._key, message))

    def __repr__(self) -> str:
        return f"<serve.Context worker {self.index} of {self.workers}>"


def _import_failed(config: ServeConfig) -> str:
    return f"app {config.app!r} does not import:\n{traceback.format_exc()}"


def _resolve(config: ServeConfig) -> Any:
    """Imports the app in this interpreter; raises StartupError with the reason."""
    try:
        module = importlib.import_module(config.module)
    except ImportError as exc:
        if "subinterpreter" in str(exc):
            # CPython says "module X does not support loading in subinterpreters".
            named = re.match(r"module (\S+) does not support", str(exc))
            name = exc.name or (named.group(1) if named else "a module")
            message = f"app {config.app!r} imports {name}, {_REFUSED_HINT} ({exc})"
            raise StartupError(message) from None
        raise StartupError(_import_failed(config)) from None
    except BaseException:
        raise StartupError(_import_failed(config)) from None
    obj: Any = module
    for part in config.attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise StartupError(
                f"app {config.app!r}: module {config.module!r} has no attribute "
                f"{config.attribute!r}"
            ) from None
    return obj


def is_asyncio_main(app: object) -> bool:
    """Whether ``app`` looks like ``async def main(ctx)`` (one positional parameter)."""
    if not inspect.iscoroutinefunction(app):
        return False
    try:
        params = [
            p
            for p in inspect.signature(app).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
    except (TypeError, ValueError):
        return False
    return len(params) == 1


def _lean_uvicorn() -> None:
    """Registers the ``uvicorn`` package without running its ``__init__``,
    whose ``from uvicorn.main import ...`` brings click, the supervisors and
    multiprocessing into every worker (~1.9 MiB each) for nothing: a worker
    imports ``uvicorn.config`` and ``uvicorn.server`` itself. The package's
    names (``Config``, ``Server``, ``run``, ``main``, ``__version__``) load on
    first use, so an app that uses them sees no difference. Not done where
    uvicorn is already imported (the supervisor's interpreter, threads mode)."""
    if "uvicorn" in sys.modules:
        return
    import importlib.util

    try:
        spec = importlib.util.find_spec("uvicorn")
    except (ImportError, ValueError):
        return
    if spec is None or spec.submodule_search_locations is None:
        return  # not installed (run_asgi says so) or not the package we know
    package = importlib.util.module_from_spec(spec)
    package.__getattr__ = _lazy.attributes("uvicorn", _UVICORN_NAMES)  # type: ignore[attr-defined]
    package.__all__ = ["main", "run", "Config", "Server"]  # type: ignore[attr-defined]
    sys.modules["uvicorn"] = package


_UVICORN_NAMES = {
    "__version__": "uvicorn._version",
    "Config": "uvicorn.config",
    "Server": "uvicorn.server",
    "main": "uvicorn.main",
    "run": "uvicorn.main",
}


def http_protocol(name: str) -> Any:
    """uvicorn's ``http=`` value for ``--http``: our Rust protocol class, or ``"h11"``."""
    if name == "h11":
        return "h11"
    try:
        from ..http import HttpProtocol
    except ImportError:
        if name == "rust":
            message = "--http rust: this build of interpreters_aio has no HTTP protocol"
            raise StartupError(message) from None
        return "h11"
    return HttpProtocol


class _Worker:
    """One worker's event loop: app, heartbeat and control."""

    def __init__(
        self, config: ServeConfig, slot: int, key: int, fds: tuple[int, ...], events: Any
    ) -> None:
        self.config = config
        self.slot = slot
        self.key = key
        self.fds = fds
        self.events = events
        self.server: Any = None
        self.ctx: Context | None = None
        self.main_task: asyncio.Task[Any] | None = None
        self.stop_requested = False

    def emit(self, *event: object) -> None:
        with contextlib.suppress(Exception):  # the queue is closed only after we are done
            self.events.put_nowait(event)

    def requests(self) -> int:
        if self.server is not None:
            return int(self.server.server_state.total_requests)
        return 0

    def counts(self) -> tuple[Any, int]:
        """For --metrics-port: the response counters and open connections."""
        server = self.server
        if server is None or self.config.metrics_port is None:
            return None, 0
        metrics = getattr(server.server_state, "metrics", None)
        snapshot = metrics.snapshot() if metrics is not None else None
        return snapshot, len(server.server_state.connections)

    async def heartbeat(self) -> None:
        while True:
            self.emit("beat", self.key, self.requests(), *self.counts())
            await asyncio.sleep(self.config.heartbeat_interval)

    async def control(self, ctl: Any) -> None:
        async for message in ctl.aio:
            kind = message[0]
            if kind == "stop":
                self.stop(force=False)
            elif kind == "force":
                self.stop(force=True)
            elif kind == "message" and self.ctx is not None:
                self.ctx.inbox.put_nowait(message[1])

    def stop(self, *, force: bool) -> None:
        self.stop_requested = True
        if self.server is not None:
            self.server.should_exit = True
            if force and not self.server.force_exit:
                self.server.force_exit = True
                self.drop_connections()
        if self.ctx is not None:
            self.ctx.stopping.set()
            if force and self.main_task is not None:
                self.main_task.cancel()
            elif self.config.timeout_graceful_shutdown is not None and self.main_task is not None:
                asyncio.get_running_loop().call_later(
                    self.config.timeout_graceful_shutdown, self.main_task.cancel
                )

    def drop_connections(self) -> None:
        """A forced stop: close every connection now and end its request.

        The client sees its connection closed, not a 500 from a request torn
        in half; the app's handlers are cancelled (their ``finally`` blocks
        run), and the cancellations are not logged as app errors. One line
        says what was dropped.
        """
        assert self.server is not None
        state = self.server.server_state
        connections, tasks = list(state.connections), list(state.tasks)
        logging.getLogger("uvicorn.error").addFilter(_quiet_cancellations)
        for conn in connections:
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        for task in tasks:
            task.cancel()
        if connections or tasks:
            logger.info(
                "Forced stop: closed %d connection(s), cancelled %d request(s) in flight",
                len(connections), len(tasks),
            )

    def sockets(self, share: int = 1) -> list[socket.socket]:
        # socket.socket(fileno=) asks the kernel for the family, so a TCP
        # socket stays AF_INET/AF_INET6 and asyncio sets TCP_NODELAY.
        sockets = [ListeningSocket(fileno=os.dup(fd)) for fd in self.fds]
        for sock in sockets:
            sock.share = share
        return sockets

    async def run(self, ctl: Any) -> tuple[str, str]:
        app = _resolve(self.config)
        interface = self.config.interface
        if interface == "auto" and not self.config.factory and is_asyncio_main(app):
            interface = "asyncio"
        tasks = [
            asyncio.create_task(self.heartbeat()),
            asyncio.create_task(self.control(ctl)),
        ]
        try:
            if interface == "asyncio":
                return await self.run_asyncio(app)
            return await self.run_asgi(app, interface)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_asyncio(self, main: Any) -> tuple[str, str]:
        if self.config.factory:
            main = main()
        self.ctx = Context(self.slot, self.config.workers, self.sockets(), self.events, self.key)
        if self.stop_requested:  # stop arrived while we were importing
            self.ctx.stopping.set()
        self.emit("ready", self.key)
        self.main_task = asyncio.create_task(main(self.ctx))
        try:
            await self.main_task
        except asyncio.CancelledError:
            if not self.stop_requested:
                raise
            return STOPPED, "cancelled after the graceful shutdown timeout"
        finally:
            for sock in self.ctx.sockets:
                sock.close()
        return (STOPPED, "") if self.stop_requested else (FINISHED, "main() returned")

    async def run_asgi(self, app: Any, interface: str) -> tuple[str, str]:
        try:
            import uvicorn
        except ImportError:
            raise StartupError(
                "serving an ASGI app needs uvicorn: pip install 'interpreters-aio[serve]'"
            ) from None
        worker = self
        config = self.config

        class WorkerServer(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:
                # Signals reach the supervisor only; it sends "stop" instead.
                yield

            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets=sockets)
                if self.started:
                    worker.emit("ready", worker.key)

        options: dict[str, Any] = dict(
            app=app,
            factory=config.factory,
            interface="auto" if interface == "auto" else interface,
            http=http_protocol(config.http),
            lifespan=config.lifespan,
            log_config=None,
            access_log=config.access_log,
            root_path=config.root_path,
            proxy_headers=config.proxy_headers,
            forwarded_allow_ips=config.forwarded_allow_ips,
            server_header=config.server_header,
            date_header=config.date_header,
            timeout_keep_alive=config.timeout_keep_alive,
            timeout_graceful_shutdown=config.timeout_graceful_shutdown,
            limit_concurrency=config.limit_concurrency,
            limit_max_requests=config.limit_max_requests,
            # Accepts per wake-up: at most this; on a socket all workers
            # share, only this worker's share of the queue (ListeningSocket).
            backlog=config.backlog,
        )
        protocol = options["http"]
        # With our protocol the WebSocket implementation is imported at the
        # first upgrade (HttpProtocol._websockets): websockets costs ~1.7 MiB
        # in every worker that may never see one. uvicorn's h11 needs it now.
        deferred_ws = protocol != "h11" and config.ws != "none"
        options.update(
            ws="none" if deferred_ws else config.ws,
            ws_max_size=config.ws_max_size,
            ws_max_queue=config.ws_max_queue,
            ws_ping_interval=config.ws_ping_interval,
            ws_ping_timeout=config.ws_ping_timeout,
            ws_per_message_deflate=config.ws_per_message_deflate,
        )
        if config.tls:  # each worker builds its own context (uvicorn's config.load())
            options.update(
                ssl_keyfile=config.ssl_keyfile,
                ssl_certfile=config.ssl_certfile,
                ssl_keyfile_password=config.ssl_keyfile_password,
                ssl_version=config.ssl_version,
                ssl_cert_reqs=config.ssl_cert_reqs,
                ssl_ca_certs=config.ssl_ca_certs,
                ssl_ciphers=config.ssl_ciphers,
            )
        if "limit_max_requests_jitter" in inspect.signature(uvicorn.Config).parameters:
            options["limit_max_requests_jitter"] = 0
        server = self.server = WorkerServer(uvicorn.Config(**options))
        if deferred_ws:
            server.server_state.ws_pending = config.ws
        if config.metrics_port is not None:
            from .metrics import RequestCounts

            server.server_state.metrics = RequestCounts()  # counted by our protocol
        if self.stop_requested:  # stop arrived while we were importing
            server.should_exit = True
        # A socket of one's own (--reuse-port) takes whole bursts.
        sockets = self.sockets(share=1 if config.reuse_port else config.workers)
        try:
            await server.serve(sockets=sockets)
        except SystemExit as exc:
            # uvicorn exits with 3 when lifespan startup fails, 1 when the app
            # does not load: the app cannot start here.
            if not server.started:
                raise StartupError(
                    f"the app did not start (uvicorn exited with status {exc.code}; "
                    "see the log lines above)"
                ) from None
            raise
        finally:
            for sock in sockets:
                sock.close()
        if not server.started:
            raise StartupError("the app did not start (see the log lines above)")
        if self.stop_requested:
            return STOPPED, ""
        limit = config.limit_max_requests
        if limit is not None and server.server_state.total_requests >= limit:
            return LIMIT, f"served {server.server_state.total_requests} requests"
        return FINISHED, "the server stopped on its own"


def _quiet_cancellations(record: logging.LogRecord) -> bool:
    """After a forced stop: drops "Exception in ASGI application" for a request
    that was cancelled on purpose (uvicorn's protocols log every ending), and
    the lifespan task's "appears unsupported" when the forced stop (which skips
    the lifespan shutdown, as uvicorn's does) cancels it at the loop's end."""
    exc = record.exc_info[1] if record.exc_info else None
    if isinstance(exc, asyncio.CancelledError):
        return False
    return record.getMessage() != "ASGI 'lifespan' protocol appears unsupported."


def worker_main(
    wire: dict[str, Any],
    slot: int,
    key: int,
    fds: tuple[int, ...],
    ctl: Any,
    events: Any,
    log_queue: Any,
    *,
    shared_interpreter: bool = False,
    loop_factory: Any = None,
) -> None:
    """Entry point of a worker (in its interpreter, thread or process); returns when it is done.

    Reports exactly one ``("exit", key, kind, detail)`` event before it returns.
    ``shared_interpreter``: other workers run in this interpreter too (on other
    threads), so logs and prints are routed per thread. ``loop_factory``: the
    event loop to run (uvloop's, in a process of its own), else asyncio's.
    """
    config = ServeConfig.from_wire(wire)
    _lean_uvicorn()
    writers = logs.install(
        log_queue, f"[worker {slot}]", config.log_level, config.access_log,
        per_thread=shared_interpreter,
    )
    worker = _Worker(config, slot, key, fds, events)
    kind, detail = CRASHED, ""
    try:
        kind, detail = asyncio.run(worker.run(ctl), loop_factory=loop_factory)
    except StartupError as exc:
        kind, detail = STARTUP, str(exc)
    except KeyboardInterrupt:
        kind, detail = INTERRUPTED, "interrupted (KeyboardInterrupt)"
    except SystemExit as exc:
        if worker.stop_requested:
            kind, detail = STOPPED, ""
        else:
            kind, detail = CRASHED, f"the app raised SystemExit({exc.code})"
    except BaseException:
        kind, detail = CRASHED, traceback.format_exc()
    finally:
        logs.uninstall(writers, per_thread=shared_interpreter)
        worker.emit("exit", key, kind, detail)
