"""One request/response cycle: the ASGI ``receive`` and ``send`` of a request.

The shape is uvicorn's ``RequestResponseCycle`` (so apps see the same
behaviour and errors), made leaner: no ``asyncio.Event`` per request (a
future is made only when ``receive`` has to wait), the request body kept as
the ``bytes`` objects the parser made (joined only when several arrived),
and the response head framed in Rust together with the first body part, so
a whole response is usually one ``transport.write``. The head is therefore
written when the first ``http.response.body`` is sent, not at
``http.response.start``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .. import _core

if TYPE_CHECKING:
    from ._protocol import HttpProtocol

_response = _core.http_response

# Body modes returned by _core.http_response.
MODE_LENGTH = 0
MODE_CHUNKED = 1
MODE_UNTIL_CLOSE = 2

# Request flags for _core.http_response.
_HEAD_REQUEST = 1
_HTTP10 = 2
_KEEP_ALIVE = 4

#: Buffered request body beyond which the connection stops reading (as uvicorn).
HIGH_WATER_LIMIT = 65536

#: Largest whole response kept back to be written with the others of the same
#: loop iteration (HttpProtocol.defer). Larger ones are written at once: the
#: client's wake-up matters less next to their copy, and 64 connections' worth
#: of 16 KiB responses held back is 1 MiB that leaves the CPU's cache before
#: it is sent (16 KiB route: 8% more CPU when deferred).
DEFER_MAX = 4096

_DISCONNECT = {"type": "http.disconnect"}


async def send_plain(send: Any, status: int, body: bytes) -> None:
    """Sends a whole ``text/plain`` response that closes the connection (errors)."""
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Cycle:
    """The ASGI side of one request on a connection (private)."""

    # No __slots__: an instance keeps its attributes inline (3.13+), as fast
    # as slots, and the defaults below need not be stored per request.
    chunks: list[bytes] | None = None  # body parts not yet received by the app
    nbytes = 0
    end_delivered = False
    waiter: asyncio.Future[None] | None = None
    disconnected = False
    started = False
    head_pending = False
    complete = False
    status = 0
    began = 0.0  # perf_counter() at the head, with serve's --metrics-port
    headers: Any = None
    mode = MODE_LENGTH
    remaining = 0
    flags = 0

    def __init__(
        self, conn: HttpProtocol, scope: dict[str, Any], keep_alive: bool, expect: bool, body: bool
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect
        self.more_body = body
        self.chunks = []

    def wake(self) -> None:
        """Wakes a ``receive`` waiting for body or disconnection."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, app: Any) -> None:
        """Runs the app for this request, answering 500 if it fails early."""
        conn = self.conn
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and conn.transport.is_closing():
                raise  # a forced stop closed the connection and ended its request
            conn.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await self._send_500()
            else:
                conn.close()
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
        else:
            if result is not None:
                conn.logger.error("ASGI callable should return None, but returned '%s'.", result)
                conn.close()
            elif not self.started and not self.disconnected:
                conn.logger.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.complete and not self.disconnected:
                conn.logger.error("ASGI callable returned without completing response.")
                conn.close()
        finally:
            conn.cycle_done(self)

    async def _send_500(self) -> None:
        await send_plain(self.send, 500, b"Internal Server Error")

    async def receive(self) -> dict[str, Any]:
        """The ASGI ``receive``: body parts, then ``http.disconnect``."""
        conn = self.conn
        if self.expect_continue:
            self.expect_continue = False
            if not conn.transport.is_closing():
                conn.flush()
                conn.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if not self.chunks and (self.more_body or self.end_delivered):
            if not (self.disconnected or self.complete):
                conn.resume_reading()
                self.waiter = waiter = conn.loop.create_future()
                try:
                    await waiter
                finally:
                    self.waiter = None
        if self.disconnected or self.complete:
            return _DISCONNECT
        chunks = self.chunks
        if not chunks:
            body = b""
        elif len(chunks) == 1:
            body = chunks[0]
            chunks.clear()
        else:
            body = b"".join(chunks)
            chunks.clear()
        if self.nbytes > HIGH_WATER_LIMIT:
            conn.resume_reading()
        self.nbytes = 0
        if not self.more_body:
            self.end_delivered = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def send(self, message: dict[str, Any]) -> None:
        """The ASGI ``send``: ``http.response.start``, then body parts."""
        conn = self.conn
        if conn.write_paused and not self.disconnected:
            await conn.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if not self.started:
            if kind != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{kind}'."
                )
            self.started = True
            self.head_pending = True
            self.expect_continue = False
            self.status = status = message["status"]
            self.headers = message.get("headers")
            if conn.access_log:
                conn.log_access(self.scope, status)
            return
        if self.complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{kind}' sent, after response already completed."
            )
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        transport = conn.transport
        if self.head_pending:
            self.head_pending = False
            flags = self.flags | _KEEP_ALIVE if self.keep_alive else self.flags
            data, self.mode, self.remaining, self.keep_alive = _response(
                self.status, conn.server_state.default_headers, self.headers, flags, body, more_body
            )
            if more_body or not self.keep_alive or len(data) > DEFER_MAX:
                conn.flush()
                transport.write(data)
            else:  # a whole small response: written with the others of this loop iteration
                conn.defer(data)
        else:
            conn.flush()
            mode = self.mode
            if mode == MODE_CHUNKED:
                if body:
                    end = b"" if more_body else b"0\r\n\r\n"
                    transport.write(b"%x\r\n%b\r\n%b" % (len(body), body, end))
                elif not more_body:
                    transport.write(b"0\r\n\r\n")
            elif mode == MODE_LENGTH:
                size = len(body)
                if size > self.remaining:
                    raise RuntimeError("Response content longer than Content-Length")
                self.remaining -= size
                if not more_body and self.remaining:
                    raise RuntimeError("Response content shorter than Content-Length")
                if size:
                    transport.write(body)
            elif mode == MODE_UNTIL_CLOSE and body:
                transport.write(body)
        if not more_body:
            self.complete = True
            self.wake()
            if not self.keep_alive:
                conn.close()
            conn.response_complete(self)
