"""Helpers for the tests of interpreters_aio.http: a uvicorn server on
127.0.0.1 with port 0, started and stopped by the test, and raw clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import h11
import uvicorn

from interpreters_aio.http import HttpProtocol

TIMEOUT = 10


@contextlib.asynccontextmanager
async def serve(app: Any, http: Any = HttpProtocol, **options: Any) -> AsyncIterator[int]:
    """Runs `app` under uvicorn with the protocol `http`; yields the port."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    options.setdefault("lifespan", "off")
    options.setdefault("log_level", "warning")
    config = uvicorn.Config(app, http=http, **options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "server did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        sock.close()


async def exchange(port: int, data: bytes, *, half_close: bool = False) -> bytes:
    """Sends `data` on a new connection and returns all bytes until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if half_close:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


def responses(data: bytes, methods: list[bytes] | None = None) -> list[tuple[int, dict, bytes]]:
    """Parses the responses in `data` with h11: (status, headers, body) each."""
    conn = h11.Connection(h11.CLIENT)
    out: list[tuple[int, dict, bytes]] = []
    conn.receive_data(data)
    conn.receive_data(b"")
    methods = list(methods or [])
    while True:
        if conn.our_state is h11.IDLE:
            method = methods.pop(0) if methods else b"GET"
            conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
        event = conn.next_event()
        if isinstance(event, h11.Response):
            current = [event.status_code, dict(event.headers), b""]
        elif isinstance(event, h11.InformationalResponse):
            continue
        elif isinstance(event, h11.Data):
            current[2] += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append(tuple(current))  # type: ignore[arg-type]
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                break
            conn.start_next_cycle()
        else:
            break
    return out


async def echo_app(scope: dict, receive: Any, send: Any) -> None:
    """Answers with the request body, and the method and path in headers."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-length", str(len(body)).encode()),
                (b"x-method", scope["method"].encode()),
                (b"x-path", scope["path"].encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def test_serve_and_exchange():
    async with serve(echo_app) as port:
        data = await exchange(port, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    [(status, headers, body)] = responses(data)
    assert (status, body) == (200, b"")
    assert headers[b"x-path"] == b"/x" and headers[b"server"] == b"uvicorn"
