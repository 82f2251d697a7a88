"""The connection: an ``asyncio.Protocol`` with uvicorn's protocol interface.

uvicorn builds its HTTP protocol as ``cls(config, server_state, app_state,
_loop)`` and relies on ``server_state.connections`` / ``.tasks``,
``shutdown()`` and the ``uvicorn.access`` logger; this class keeps that
contract (read uvicorn's ``httptools_impl.py``, which it follows) without
importing uvicorn, so any server that provides the same config attributes
can use it.

Per ``data_received`` there is one call into Rust (``_core.http_feed``),
which returns every request head, body part and end that arrived, already
as the objects the ASGI scope needs. Requests are answered in order
(pipelining): each waits in ``pipeline`` until the one before it has
responded. Refused input is answered with a 4xx/501 and ``Connection:
close`` once the responses before it are out. A WebSocket upgrade waits the
same way: the connection goes to the WebSocket protocol only once every
request before it is answered (the parser holds what follows it meanwhile).

Timeouts: ``config.timeout_keep_alive`` bounds both the idle time between
requests and the time a client may take to send a complete request head
(slow clients get 408 and a closed connection). Limits:
``config.h11_max_incomplete_event_size`` (default 16 KiB) bounds a request
head, :attr:`HttpProtocol.max_headers` the number of header fields.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections import deque
from typing import Any

from .. import _core
from ._cycle import HIGH_WATER_LIMIT, Cycle, send_plain

_feed = _core.http_feed

_KEEP_ALIVE = 1
_EXPECT = 2
_HAS_BODY = 4
_HTTP10 = 8

_TRACE = 5  # uvicorn.logging.TRACE_LOG_LEVEL


def _address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class _Writes:
    """The responses of one loop iteration, written together at its end.

    Each ``send`` on a loopback (or any) socket whose reader sleeps wakes
    that reader: on this machine the wake-up (an inter-processor interrupt)
    cost the sender 2-4 us, more than the rest of the kernel's send path,
    and it is paid again for every response when the app's work spaces the
    responses further apart than the client takes to go back to sleep
    (~1 KB JSON: 4.3 us a request, 14% of the CPU). Responses completed
    during one iteration of the loop are written back to back in the next
    ``call_soon`` turn instead: the client is woken once for the lot.
    """

    __slots__ = ("conns", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.conns: list[HttpProtocol] = []
        self.scheduled = False

    def add(self, conn: HttpProtocol) -> None:
        self.conns.append(conn)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        conns = self.conns
        self.conns = []
        for conn in conns:
            conn.flush()


def _writes_of(loop: asyncio.AbstractEventLoop, server_state: Any) -> _Writes:
    """The batch of the connections of one server (one loop): kept on its state."""
    writes = getattr(server_state, "http_writes", None)
    if writes is None or writes.loop is not loop:
        writes = _Writes(loop)
        try:
            server_state.http_writes = writes
        except AttributeError:  # a state that takes no attributes: a batch per connection
            pass
    return writes


async def _service_unavailable(scope: Any, receive: Any, send: Any) -> None:
    await send_plain(send, 503, b"Service Unavailable")


class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 for ASGI apps, parsed and framed in Rust; give it to uvicorn
    as ``uvicorn.Config(app, http=HttpProtocol)``.

    Args:
        config: a ``uvicorn.Config`` (loaded on first use).
        server_state: uvicorn's ``ServerState`` (connections, tasks,
            default headers, request count).
        app_state: the lifespan state, copied into each request's scope.
    """

    #: Most header fields a request head may have (beyond: 431). Subclass to change.
    max_headers: int = 100
    #: Run each request's app task eagerly (up to its first wait) instead of
    #: on the next loop iteration, which saves a loop round per request.
    eager_tasks: bool = True

    def __init__(
        self,
        config: Any,
        server_state: Any,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.logger = logging.getLogger("uvicorn.error")
        self.access_logger = logging.getLogger("uvicorn.access")
        self.access_log = self.access_logger.hasHandlers()
        self.ws_protocol_class = config.ws_protocol_class
        if self.ws_protocol_class is None:
            # serve imports the WebSocket implementation at the first upgrade
            # (websockets costs ~1.7 MiB per interpreter): the --ws name.
            self.ws_pending = getattr(server_state, "ws_pending", None)
        self.root_path: str = config.root_path
        self.root_path_bytes = self.root_path.encode("ascii")
        self.asgi_version = config.asgi_version
        self.limit_concurrency = config.limit_concurrency
        self.timeout_keep_alive = config.timeout_keep_alive
        self.reset_contextvars = getattr(config, "reset_contextvars", False)
        self.app_state = app_state
        self.server_state = server_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        #: serve's --metrics-port counters (serve.metrics.RequestCounts), or None.
        self.metrics = getattr(server_state, "metrics", None)
        max_head = getattr(config, "h11_max_incomplete_event_size", None) or 16 * 1024
        self.parser = _core.http_parser(max_head, self.max_headers)
        self.writes = _writes_of(self.loop, server_state)
        #: Bytes of complete responses waiting for the end of the loop iteration.
        self.pending: bytes | None = None

        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.scheme = "http"
        self.scope_template: dict[str, Any] = {}  # made by connection_made
        self.cycle: Cycle | None = None  # the request being read
        self.active: Cycle | None = None  # the request being answered
        self.pipeline: deque[tuple[Cycle | None, Any]] = deque()
        #: A WebSocket upgrade waiting for the requests before it: the head.
        self.upgrade: tuple[str, bytes, bytes, Any] | None = None
        #: The loop's timer for the keep-alive/head timeout (or, after
        #: shutdown(), the grace): it may fire before `deadline`, and then
        #: waits again until it (see _arm_timer).
        self.timer: asyncio.TimerHandle | None = None
        self.deadline: float | None = None  # when the idle/head timeout expires
        self.partial = False  # bytes of an incomplete head have arrived
        self.read_paused = False
        self.write_paused = False
        self.drain_waiter: asyncio.Future[None] | None = None
        self.starting = False
        self.received = False  # any byte ever arrived on this connection
        self.closing = False  # shutdown() was called: serve what is sent, then close

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.connections.add(self)
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                self.client = _address(sock.getpeername())
            except OSError:
                self.client = None
            self.server = _address(sock.getsockname())
        else:
            self.client = _address(transport.get_extra_info("peername"))
            self.server = _address(transport.get_extra_info("sockname"))
        if transport.get_extra_info("sslcontext"):
            self.scheme = "https"
        self.scope_template = {
            "type": "http",
            "asgi": None,
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": None,
            "root_path": self.root_path,
            "path": None,
            "raw_path": None,
            "query_string": None,
            "headers": None,
            "state": None,
        }
        if self.logger.level <= _TRACE:
            self.logger.log(_TRACE, "%sHTTP connection made", self._prefix())
        self._arm_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.connections.discard(self)
        if self.logger.level <= _TRACE:
            self.logger.log(_TRACE, "%sHTTP connection lost", self._prefix())
        for cycle in (self.active, self.cycle):
            if cycle is not None and not cycle.complete:
                cycle.disconnected = True
                cycle.wake()
        self.pipeline.clear()
        self.upgrade = None
        self.pending = None
        self.resume_writing()
        self._stop_timer()
        if exc is None:
            self.transport.close()

    def eof_received(self) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            events = _feed(self.parser, data)
        except Exception:  # a bug of ours: answer it, never raise into the loop
            self.logger.exception("HTTP parser failed")
            self._refuse(500, "Internal Server Error")
            return
        if events:
            self._handle(events)
        elif self.deadline is not None:
            self.partial = True

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self.drain_waiter
        if waiter is not None:
            self.drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # uvicorn's protocol interface

    #: Seconds a connection accepted just before shutdown() waits for its
    #: first request before it is closed.
    shutdown_grace: float = 1.0

    def shutdown(self) -> None:
        """Closes the connection now if idle, else after the current response.

        A connection that has received nothing yet was accepted just before
        the shutdown, and its client has most likely sent a request that is
        still on its way (or in the socket buffer): closing now would reset
        it (a rolling restart would "refuse" that request). It gets
        :attr:`shutdown_grace` seconds for one request, answered with
        ``Connection: close``.
        """
        self.closing = True
        active = self.active
        if active is None or active.complete:
            if self.received or self.cycle is not None:
                self.close()
            else:
                self._stop_timer()
                self.timer = self.loop.call_later(self.shutdown_grace, self._close_if_idle)
        else:
            active.keep_alive = False
            self.pipeline.clear()

    def _close_if_idle(self) -> None:
        self.timer = None
        if self.cycle is None and (self.active is None or self.active.complete):
            self.close()

    # Parsing

    def _handle(self, events: list[Any]) -> None:
        started = False
        i = 0
        n = len(events)
        while i < n:
            event = events[i]
            i += 1
            if event is None:
                cycle = self.cycle
                if cycle is not None:
                    cycle.more_body = False
                    cycle.wake()
            elif type(event) is bytes:
                cycle = self.cycle
                if cycle is not None and not cycle.complete:
                    cycle.chunks.append(event)
                    cycle.nbytes += len(event)
                    if cycle.nbytes > HIGH_WATER_LIMIT:
                        self.pause_reading()
                    cycle.wake()
            elif type(event) is tuple:
                started = True
                if self._on_head(event):
                    break  # a WebSocket upgrade: the parser stopped after it
                if event[6] is not None:
                    # An upgrade served as plain HTTP (the parser paused after
                    # its head): parse what follows it, in this same loop.
                    events = events[i:] + _core.http_resume(self.parser)
                    i = 0
                    n = len(events)
            else:
                self._on_error(event, events[i] if i < n else "Invalid HTTP request")
                break
        if started:
            self._start_next()

    ws_pending: str | None = None

    def _websockets(self) -> Any:
        """The WebSocket protocol class, imported now if serve deferred it (and
        shared through ``server_state`` with the worker's other connections);
        None when there is none (``--ws none``, or no library for ``auto``)."""
        if self.ws_protocol_class is None and self.ws_pending is not None:
            state = self.server_state
            cls = getattr(state, "ws_class", False)
            if cls is False:
                from uvicorn.config import WS_PROTOCOLS
                from uvicorn.importer import import_from_string

                target = WS_PROTOCOLS.get(self.ws_pending)
                cls = state.ws_class = import_from_string(target) if target else None
            self.ws_protocol_class = cls
            self.ws_pending = None
        return self.ws_protocol_class

    def _on_head(self, head: tuple[Any, ...]) -> bool:
        """Queues the request of `head`; True if it is a WebSocket upgrade,
        which happens once the requests before it are answered."""
        method, path, raw_path, query, headers, flags, upgrade = head
        self._cancel_timer()
        self.partial = False
        if upgrade is not None:
            if upgrade == b"websocket" and self._websockets() is not None:
                self.upgrade = (method, raw_path, query, headers)
                if self.active is not None or self.pipeline:
                    self.pause_reading()  # until the requests before it are answered
                return True
            self.logger.warning("Unsupported upgrade request.")
        # A copy of the connection's scope (a dict copy is a block copy;
        # building the 14 keys one by one cost twice as much), then the
        # request's own values. The same keys in the same order as uvicorn's.
        scope = self.scope_template.copy()
        scope["asgi"] = {"version": self.asgi_version, "spec_version": "2.3"}
        if flags & _HTTP10:
            scope["http_version"] = "1.0"
        scope["method"] = method
        if self.root_path:
            scope["path"] = self.root_path + path
            scope["raw_path"] = self.root_path_bytes + raw_path
        else:
            scope["path"] = path
            scope["raw_path"] = raw_path
        scope["query_string"] = query
        scope["headers"] = headers
        scope["state"] = self.app_state.copy()
        keep_alive = bool(flags & _KEEP_ALIVE) and not self.closing
        cycle = Cycle(self, scope, keep_alive, bool(flags & _EXPECT), bool(flags & _HAS_BODY))
        cycle.flags = (1 if method == "HEAD" else 0) | (2 if flags & _HTTP10 else 0)
        if self.metrics is not None:
            cycle.began = time.perf_counter()
        limit = self.limit_concurrency
        if limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit):
            self.logger.warning("Exceeded concurrency limit.")
            app = _service_unavailable
        else:
            app = self.app
        self.cycle = cycle
        self.pipeline.append((cycle, app))
        if self.active is not None:
            self.pause_reading()
        return False

    def _on_error(self, status: int, reason: str) -> None:
        self.logger.warning("Invalid HTTP request received.")
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.complete:
            # The body of the request being read is broken: its app sees a disconnect.
            cycle.disconnected = True
            cycle.wake()
            if cycle is self.active and cycle.started and not cycle.head_pending:
                self.close()
                return
            if self.pipeline and self.pipeline[-1][0] is cycle:
                self.pipeline.pop()  # not started: its app need not run
        self.pipeline.append((None, (status, reason)))
        self._start_next()

    def _refuse(self, status: int, reason: str) -> None:
        """Answers `status` with `reason` as the body, and closes."""
        self.flush()
        transport = self.transport
        if transport.is_closing():
            return
        body = reason.encode("ascii", "replace")
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close"),
        ]
        data = _core.http_response(
            status, self.server_state.default_headers, headers, 0, body, False
        )[0]
        transport.write(data)
        transport.close()

    def _upgrade(self) -> None:
        """Hands the connection to the WebSocket protocol, as uvicorn's
        httptools protocol does: it gets the request head replayed, and
        what arrived after it. Every earlier response is out by now."""
        assert self.upgrade is not None
        method, raw_path, query, headers = self.upgrade
        self.upgrade = None
        if self.logger.level <= _TRACE:
            self.logger.log(_TRACE, "%sUpgrading to WebSocket", self._prefix())
        self._stop_timer()
        self.connections.discard(self)
        target = raw_path + b"?" + query if query else raw_path
        output = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        output.append(_core.http_take_rest(self.parser))
        protocol = self.ws_protocol_class(  # type: ignore[misc]
            config=self.config, server_state=self.server_state, app_state=self.app_state
        )
        self.flush()
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        if self.read_paused:  # it was paused while earlier requests were answered
            self.read_paused = False
            self.transport.resume_reading()
        try:
            protocol.data_received(b"".join(output))
        except Exception as exc:
            # Bytes after the handshake that are no WebSocket frame, in the same
            # read: the library raised before anything was answered. One line,
            # a 400 and a closed connection, not a traceback from the loop.
            self.logger.warning("%sInvalid WebSocket request: %s", self._prefix(), exc)
            self._refuse(400, "Bad Request")

    # Running requests

    def _start_next(self) -> None:
        """Starts the next queued request if none is being answered.

        One request per connection per turn: when a request answered at once
        (its task finished eagerly) has another behind it, already read
        (pipelined), that one waits for the next loop iteration, behind every
        other connection that is ready now, instead of being served straight
        away, again and again, while they wait.
        """
        if self.starting:
            return
        if self.active is None and self.pipeline:
            cycle, app = self.pipeline.popleft()
            if cycle is None:
                self._refuse(*app)
                self.pipeline.clear()
                return
            if self.transport.is_closing():
                self.pipeline.clear()
                return
            self.active = cycle
            self.starting = True
            try:
                self._spawn(cycle, app)
            finally:
                self.starting = False
        if self.active is None and not self.transport.is_closing():
            if self.pipeline:
                self.loop.call_soon(self._start_next)
            elif self.upgrade is not None:
                self._upgrade()
            else:
                self.resume_reading()
                self._arm_timer()

    def _spawn(self, cycle: Cycle, app: Any) -> None:
        context = contextvars.Context() if self.reset_contextvars else None
        if self.eager_tasks:
            task = asyncio.Task(cycle.run(app), loop=self.loop, context=context, eager_start=True)
        else:
            task = self.loop.create_task(cycle.run(app), context=context)
        if not task.done():
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def cycle_done(self, cycle: Cycle) -> None:
        """Called when `cycle`'s app returned: if it never completed a
        response (the client went away), the next request may start."""
        if cycle is self.active:
            self.active = None
            if not self.transport.is_closing():
                self._start_next()

    def response_complete(self, cycle: Cycle) -> None:
        """Called by `cycle` once its response is sent: starts the next request."""
        self.server_state.total_requests += 1
        if self.metrics is not None:
            self.metrics.record(cycle.status, time.perf_counter() - cycle.began)
        if cycle is self.active:
            self.active = None
        if self.transport.is_closing():
            return
        self._start_next()

    # Writing

    def defer(self, data: bytes) -> None:
        """Writes `data` (complete responses) at the end of this loop iteration."""
        if self.pending is None:
            self.pending = data
            self.writes.add(self)
        else:
            self.pending += data

    def flush(self) -> None:
        """Writes what `defer` kept back; every other write and close comes after it."""
        data = self.pending
        if data is not None:
            self.pending = None
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        """Closes the connection once what was sent is written."""
        self.flush()
        self.transport.close()

    # Flow control and timers

    def pause_reading(self) -> None:
        """Stops reading from the client (body buffered or requests queued)."""
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Reads from the client again."""
        if self.read_paused and not self.pipeline and self.upgrade is None:
            self.read_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        """Waits until the transport's write buffer is below its low-water mark."""
        if self.write_paused:
            if self.drain_waiter is None:
                self.drain_waiter = self.loop.create_future()
            await asyncio.shield(self.drain_waiter)

    def _arm_timer(self) -> None:
        """Starts the keep-alive (idle, or head not complete) timeout.

        Called after every response and cancelled by every request head, so
        it only moves `deadline`: the loop's timer is made when there is none
        and, when it fires before `deadline`, set again for it. A TimerHandle
        made and cancelled per request (Python objects, a heap push with
        Python comparisons, cancelled handles for the loop to sweep) cost
        about 1.5 us a request.
        """
        loop = self.loop
        self.deadline = deadline = loop.time() + self.timeout_keep_alive
        if self.timer is None:
            self.timer = loop.call_at(deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        self.deadline = None
        if self.closing and self.timer is not None:  # the shutdown grace: a request came
            self.timer.cancel()
            self.timer = None

    def _stop_timer(self) -> None:
        self.deadline = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if deadline - self.loop.time() > 0.001:
            self.timer = self.loop.call_at(deadline, self._on_timer)
            return
        self.deadline = None
        self._timeout()

    def _timeout(self) -> None:
        if self.transport.is_closing():
            return
        if self.partial and self.active is None:
            self._refuse(408, "Request Timeout")
        else:
            self.close()

    def log_access(self, scope: dict[str, Any], status: int) -> None:
        """Logs one request to ``uvicorn.access`` as uvicorn's protocols do."""
        client = scope.get("client")
        path = scope["raw_path"].decode("latin1")
        if scope["query_string"]:
            path = "{}?{}".format(path, scope["query_string"].decode("ascii"))
        self.access_logger.info(
            '%s - "%s %s HTTP/%s" %d',
            f"{client[0]}:{client[1]}" if client else "",
            scope["method"],
            path.replace('"', "%22"),
            scope["http_version"],
            status,
        )

    def _prefix(self) -> str:
        return f"{self.client[0]}:{self.client[1]} - " if self.client else ""
