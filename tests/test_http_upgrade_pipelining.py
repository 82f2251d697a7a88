"""A WebSocket upgrade pipelined behind plain requests on one connection
(issue 25 item 1): every earlier response is written first, in order, then
the connection goes to the WebSocket protocol with what followed the
upgrade request; nothing after it is parsed as HTTP."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os

import pytest
from test_http_support import TIMEOUT, responses, serve

H = b"Host: x\r\n"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)

#: What the apps saw, in order: ("http", path) and ("ws", path, message).
seen: list[tuple] = []


class MiniWebSocket:
    """A stand-in for uvicorn's ws protocols (no library needed): answers
    the replayed head with a 101, then echoes every byte."""

    def __init__(self, config, server_state, app_state):
        self.transport = None
        self.buffer = b""
        self.path = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        if self.path is None:
            self.buffer += data
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            self.path = head.split(b" ", 2)[1].decode()
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
            data = rest
        if data:
            seen.append(("ws", self.path, data.decode()))
            self.transport.write(data)

    def connection_lost(self, exc):
        pass

    def eof_received(self):
        pass


def _library(name: str, module: str):
    missing = importlib.util.find_spec(module) is None
    return pytest.param(name, marks=pytest.mark.skipif(missing, reason=f"needs {module}"))


#: uvicorn's ws option values: the stand-in, and the real libraries if installed.
WS = [
    pytest.param(MiniWebSocket, id="mini"),
    _library("websockets", "websockets"),
    _library("websockets-sansio", "websockets"),
    _library("wsproto", "wsproto"),
]


async def app(scope, receive, send):
    """HTTP: answers the path after `?delay` seconds (from the query, if any);
    WebSocket: accepts and echoes text messages."""
    if scope["type"] == "http":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["query_string"]:
            await asyncio.sleep(float(scope["query_string"]))
        seen.append(("http", scope["path"]))
        out = scope["path"].encode() + b":" + body
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(out))],
            }
        )
        await send({"type": "http.response.body", "body": out})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] != "websocket.receive":
                return
            seen.append(("ws", scope["path"], message["text"]))
            await send({"type": "websocket.send", "text": "echo " + message["text"]})


def frame(ws, text: str) -> bytes:
    """A masked client text frame (short payloads only); the text for the stand-in."""
    payload = text.encode()
    if ws is MiniWebSocket:
        return payload
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


async def read_echo(ws, reader: asyncio.StreamReader, text: str) -> str:
    """The echo of `text`, as "echo <text>"."""
    if ws is MiniWebSocket:
        return "echo " + (await asyncio.wait_for(reader.readexactly(len(text)), TIMEOUT)).decode()
    first, size = await asyncio.wait_for(reader.readexactly(2), TIMEOUT)
    assert first == 0x81 and size < 126, (first, size)
    return (await asyncio.wait_for(reader.readexactly(size), TIMEOUT)).decode()


async def read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response: (status line and headers, body by content-length)."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT) if length else b""
    return head, body


@pytest.fixture(autouse=True)
def _clear_seen():
    seen.clear()


async def _pipelined_then_echo(ws, port: int, before: bytes, after: str = "") -> list[bytes]:
    """Writes `before` + the upgrade + `after` at once; returns the bodies of
    the HTTP responses before the 101, and checks the WebSocket echoes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(before + UPGRADE + (frame(ws, after) if after else b""))
        bodies = []
        while True:
            head, body = await read_response(reader)
            if head.startswith(b"HTTP/1.1 101 "):
                break
            assert head.startswith(b"HTTP/1.1 200 "), head
            bodies.append(body)
        if after:
            assert await read_echo(ws, reader, after) == "echo " + after
        writer.write(frame(ws, "hello"))
        assert await read_echo(ws, reader, "hello") == "echo hello"
        return bodies
    finally:
        writer.close()


@pytest.mark.parametrize("ws", WS)
async def test_get_pipelined_before_an_upgrade_is_answered_first(ws):
    async with serve(app, ws=ws) as port:
        bodies = await _pipelined_then_echo(ws, port, b"GET /first HTTP/1.1\r\n" + H + b"\r\n")
    assert bodies == [b"/first:"]
    assert seen == [("http", "/first"), ("ws", "/ws", "hello")]


@pytest.mark.parametrize("ws", WS)
async def test_a_slow_earlier_request_is_answered_before_the_101(ws):
    before = b"".join(
        b"POST /%d?%s HTTP/1.1\r\n%bContent-Length: 2\r\n\r\nb%d" % (i, delay, H, i)
        for i, delay in enumerate([b"0.3", b"0", b"0.1"])
    )
    async with serve(app, ws=ws) as port:
        bodies = await _pipelined_then_echo(ws, port, before)
    assert bodies == [b"/0:b0", b"/1:b1", b"/2:b2"]
    assert [s[1] for s in seen] == ["/0", "/1", "/2", "/ws"]


@pytest.mark.parametrize("ws", WS[:3])
async def test_bytes_after_the_upgrade_request_go_to_the_websocket(ws):
    """A frame in the same write as the requests is no HTTP request: the
    WebSocket protocol gets it once the earlier response is out. (Not
    wsproto: uvicorn's wsproto protocol drops a frame that comes in the same
    read as the handshake, whichever HTTP protocol hands it over.)"""
    async with serve(app, ws=ws) as port:
        bodies = await _pipelined_then_echo(
            ws, port, b"GET /first?0.2 HTTP/1.1\r\n" + H + b"\r\n", "early"
        )
    assert bodies == [b"/first:"]
    assert seen == [("http", "/first"), ("ws", "/ws", "early"), ("ws", "/ws", "hello")]


@pytest.mark.parametrize("ws", WS)
async def test_keep_alive_timeout_does_not_close_the_upgraded_connection(ws):
    """The keep-alive timer of the HTTP side (armed after a response) is
    not left running on the WebSocket connection (uvicorn's
    test_keepalive_timeout_with_pipelined_websocket_upgrade)."""
    async with serve(app, ws=ws, timeout_keep_alive=0.2) as port:
        # The upgrade pipelined behind a request, and on a second connection
        # an upgrade sent after the first response (which armed the timer).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /a HTTP/1.1\r\n" + H + b"\r\n" + UPGRADE)
            assert (await read_response(reader))[0].startswith(b"HTTP/1.1 200 ")
            assert (await read_response(reader))[0].startswith(b"HTTP/1.1 101 ")
            writer2.write(b"GET /b HTTP/1.1\r\n" + H + b"\r\n")
            assert (await read_response(reader2))[0].startswith(b"HTTP/1.1 200 ")
            writer2.write(UPGRADE)
            assert (await read_response(reader2))[0].startswith(b"HTTP/1.1 101 ")
            await asyncio.sleep(0.6)  # well beyond the keep-alive timeout
            for r, w in ((reader, writer), (reader2, writer2)):
                w.write(frame(ws, "late"))
                assert await read_echo(ws, r, "late") == "echo late"
        finally:
            writer.close()
            writer2.close()


async def test_client_closing_while_the_upgrade_waits():
    loop = asyncio.get_running_loop()
    loop_errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    try:
        async with serve(app, ws=MiniWebSocket) as port:
            logger.addHandler(collect)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /slow?0.3 HTTP/1.1\r\n" + H + b"\r\n" + UPGRADE)
            await asyncio.sleep(0.05)
            writer.close()
            await asyncio.sleep(0.5)  # the slow app ends after the client left
            # The server still serves.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /next HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), TIMEOUT)
            writer.close()
    finally:
        logger.removeHandler(collect)
        loop.set_exception_handler(None)
    assert [(s, b) for s, _, b in responses(data)] == [(200, b"/next:")]
    assert seen == [("http", "/slow"), ("http", "/next")]
    assert loop_errors == []
    assert [r.getMessage() for r in records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("ws", WS)
async def test_upgrade_request_with_a_body_behind_a_request(ws):
    """An upgrade request that has a body: the earlier response comes first,
    then the WebSocket protocol gets the head and the body, and answers as
    it does when the upgrade comes alone."""
    upgrade = UPGRADE[:-2] + b"Content-Length: 3\r\n\r\nabc"
    async with serve(app, ws=ws) as port:
        alone = await _read_all(port, upgrade)
        after = await _read_all(port, b"GET /first HTTP/1.1\r\n" + H + b"\r\n" + upgrade)
    first, rest = after.split(b"\r\n\r\n/first:", 1)
    assert first.startswith(b"HTTP/1.1 200 ")
    if ws is MiniWebSocket:
        assert alone.endswith(b"\r\n\r\nabc") and rest.endswith(b"\r\n\r\nabc")
    # The same status line as the upgrade alone gets (Date headers differ).
    assert rest.split(b"\r\n", 1)[0] == alone.split(b"\r\n", 1)[0]


async def _read_all(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        chunks = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 0.5):
                chunks += chunk
        except TimeoutError:
            pass
        return chunks
    finally:
        writer.close()


async def test_h2c_upgrade_behind_a_request_is_served_as_http():
    async with serve(app, ws=MiniWebSocket) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /a HTTP/1.1\r\n" + H + b"\r\n"
            b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
            b"GET /c HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
        )
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    assert [b for _, _, b in responses(data)] == [b"/a:", b"/b:", b"/c:"]


async def test_websocket_upgrade_behind_a_request_with_ws_none_is_served_as_http():
    async with serve(app, ws="none") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            + UPGRADE
            + b"GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    assert [b for _, _, b in responses(data)] == [b"/a:", b"/ws:", b"/c:"]


async def test_websocket_upgrade_behind_an_h2c_upgrade_served_as_http():
    """The h2c request is served as HTTP and what follows it parsed; the
    WebSocket upgrade after it then waits for both responses, and no
    keep-alive timer is left on the handed-over connection."""
    async with serve(app, ws=MiniWebSocket, timeout_keep_alive=0.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n" + UPGRADE + b"early"
            )
            assert [(await read_response(reader))[1] for _ in range(2)] == [b"/a:", b"/b:"]
            assert (await read_response(reader))[0].startswith(b"HTTP/1.1 101 ")
            assert await read_echo(MiniWebSocket, reader, "early") == "echo early"
            await asyncio.sleep(0.5)  # beyond the keep-alive timeout
            writer.write(b"late")
            assert await read_echo(MiniWebSocket, reader, "late") == "echo late"
        finally:
            writer.close()
