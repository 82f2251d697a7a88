"""HTTP/1.1 semantics of interpreters_aio.http.HttpProtocol under uvicorn:
keep-alive, pipelining, request bodies with back-pressure, 100-continue,
HEAD, chunked responses, Connection: close, HTTP/1.0, WebSocket hand-over,
and the ASGI scope compared with uvicorn's own protocols."""

from __future__ import annotations

import asyncio
import importlib.util
import logging

import pytest
from test_http_support import TIMEOUT, echo_app, exchange, responses, serve

from interpreters_aio.http import HttpProtocol

H = b"Host: x\r\n"


async def test_keep_alive_and_pipelining_in_order():
    requests = b"".join(b"GET /%d HTTP/1.1\r\n%b\r\n" % (i, H) for i in range(20))
    requests += b"GET /last HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    async with serve(echo_app) as port:
        data = await exchange(port, requests)
    got = responses(data)
    assert [h[b"x-path"] for _, h, _ in got] == [b"/%d" % i for i in range(20)] + [b"/last"]
    assert got[-1][1][b"connection"] == b"close"


async def sized_app(scope, receive, send):
    """Answers ``GET /N`` with N bytes, each the last digit of N."""
    if scope["type"] != "http":
        return
    size = int(scope["path"][1:])
    body = str(size % 10).encode() * size
    headers = [(b"content-length", b"%d" % size)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def test_held_back_responses_keep_each_connections_order():
    # Small whole responses are held back to the end of the loop iteration
    # (DEFER_MAX), larger ones written at once, after what the connection
    # holds. 24 connections pipelining a mix of sizes on either side of that
    # must each get their responses complete and in order.
    sizes = [10, 16384, 70000, 3000, 65536, 40000, 1, 65537, 16384, 200]
    requests = b"".join(b"GET /%d HTTP/1.1\r\n%b\r\n" % (n, H) for n in sizes)
    requests += b"GET /5 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    async with serve(sized_app) as port:
        answers = await asyncio.gather(*(exchange(port, requests) for _ in range(24)))
    for data in answers:
        bodies = [body for _, _, body in responses(data)]
        assert bodies == [str(n % 10).encode() * n for n in [*sizes, 5]]


async def test_keep_alive_across_writes():
    async with serve(echo_app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in range(3):
            writer.write(b"POST /k HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\n" + b"%d" % i)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await asyncio.wait_for(reader.readexactly(1), TIMEOUT) == b"%d" % i
        writer.close()


async def test_content_length_and_chunked_bodies():
    body = b"x" * 100_000
    async with serve(echo_app) as port:
        data = await exchange(
            port,
            b"POST / HTTP/1.1\r\n"
            + H
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
            + b"POST / HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
            + b"GET / HTTP/1.1\r\n"
            + H
            + b"Connection: close\r\n\r\n",
        )
    assert [b for _, _, b in responses(data)] == [body, b"hello world", b""]


async def test_body_streams_with_more_body_and_back_pressure():
    """A slow app sees the body in parts, and the server stops reading
    while much is buffered (the client's writes then back up)."""
    parts: list[tuple[int, bool]] = []
    paused: list[bool] = []

    async def app(scope, receive, send):
        while True:
            await asyncio.sleep(0.01)
            message = await receive()
            parts.append((len(message["body"]), message["more_body"]))
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    size = 4 * 1024 * 1024
    original = HttpProtocol.pause_reading

    def spy(self):
        paused.append(True)
        original(self)

    HttpProtocol.pause_reading = spy  # type: ignore[method-assign]
    try:
        async with serve(app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % size)
            for _ in range(size // 65536):
                writer.write(b"y" * 65536)
                await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
            writer.close()
    finally:
        HttpProtocol.pause_reading = original  # type: ignore[method-assign]
    assert head.startswith(b"HTTP/1.1 204")
    assert sum(n for n, _ in parts) == size
    assert len(parts) > 1 and all(more for _, more in parts[:-1]) and not parts[-1][1]
    assert paused


async def test_expect_100_continue():
    async with serve(echo_app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"ok")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 2" in head
        assert await asyncio.wait_for(reader.readexactly(2), TIMEOUT) == b"ok"
        writer.close()


async def test_no_100_continue_when_app_answers_without_reading():
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body"})

    async with serve(app) as port:
        data = await exchange(
            port,
            b"POST / HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 9\r\n"
            b"Connection: close\r\n\r\n",
        )
    assert data.startswith(b"HTTP/1.1 413 ")


async def hello_app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"b")]})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    await send({"type": "http.response.body", "body": b" world", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def test_chunked_response_without_content_length():
    async with serve(hello_app) as port:
        data = await exchange(port, b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert b"transfer-encoding: chunked\r\n" in data
    assert data.endswith(b"\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert responses(data)[0][2] == b"hello world"


async def test_head_sends_no_body():
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async with serve(app) as port:
        data = await exchange(
            port,
            b"HEAD / HTTP/1.1\r\n"
            + H
            + b"\r\nHEAD / HTTP/1.1\r\n"
            + H
            + b"Connection: close\r\n\r\n",
        )
        chunked = await exchange(port, b"HEAD / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert data.count(b"content-length: 5\r\n") == 2 and b"hello" not in data
    assert responses(data, [b"HEAD", b"HEAD"])[1][0] == 200
    assert b"hello" not in chunked


async def test_connection_close_from_the_app():
    async def app(scope, receive, send):
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"Connection", b"close")]}
        )
        await send({"type": "http.response.body", "body": b"bye"})

    async with serve(app) as port:
        data = await exchange(
            port, b"GET / HTTP/1.1\r\n" + H + b"\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\n"
        )
    assert data.count(b"HTTP/1.1 200") == 1 and data.count(b"onnection: close") == 1


async def test_http10_closes_unless_keep_alive():
    async with serve(hello_app) as port:
        plain = await exchange(port, b"GET / HTTP/1.0\r\n\r\n")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        kept = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
        async with serve(echo_app) as port2:
            both = await exchange(
                port2, b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n"
            )
    # Without a length, an HTTP/1.0 body ends with the connection (no chunking).
    assert b"chunked" not in plain and plain.endswith(b"\r\n\r\nhello world")
    assert b"connection: close" in plain
    assert kept.count(b"HTTP/1.1 200") == 1
    # With a length, keep-alive is honoured and said.
    assert both.count(b"HTTP/1.1 200") == 2 and b"connection: keep-alive" in both


def _scope_app(scopes):
    async def app(scope, receive, send):
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    return app


REQUEST = (
    b"GET /a%20b/%E2%82%AC/%zz?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\n"
    b"User-Agent: test\r\nX-Mixed-Case:  v1 \r\nAccept: */*\r\nConnection: close\r\n\r\n"
)

REFERENCES = ["h11"] + (["httptools"] if importlib.util.find_spec("httptools") else [])


@pytest.mark.parametrize("reference", REFERENCES)
@pytest.mark.parametrize("root_path", ["", "/root"])
async def test_scope_matches_uvicorn(reference, root_path):
    ours: list[dict] = []
    theirs: list[dict] = []
    async with serve(_scope_app(ours), root_path=root_path) as port:
        await exchange(port, REQUEST)
        await exchange(port, REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
    try:
        async with serve(_scope_app(theirs), http=reference, root_path=root_path) as port:
            await exchange(port, REQUEST)
            await exchange(port, REQUEST.replace(b"HTTP/1.1", b"HTTP/1.0"))
    except ImportError:  # httptools found but not importable here
        pytest.skip(f"{reference} cannot be imported")
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs, strict=True):
        # Ports differ between the two servers and clients.
        for scope in (a, b):
            scope["server"] = (scope["server"][0], 0)
            scope["client"] = (scope["client"][0], 0)
        assert a == b
        assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}
    assert ours[0]["path"] == root_path + "/a b/\u20ac/%zz"
    assert ours[0]["headers"][2] == (b"x-mixed-case", b"v1")


async def test_lifespan_state_reaches_scope():
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            message = await receive()
            scope["state"]["db"] = "connected"
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append(scope["state"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    async with serve(app, lifespan="on") as port:
        await exchange(port, b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert seen == [{"db": "connected"}]


async def test_app_errors_give_500_and_are_logged(caplog):
    async def app(scope, receive, send):
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        async with serve(app, log_config=None) as port:
            data = await exchange(port, b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    assert data.startswith(b"HTTP/1.1 500 Internal Server Error\r\n")
    assert data.endswith(b"Internal Server Error")
    assert "Exception in ASGI application" in caplog.text


async def test_invalid_response_headers_raise_in_the_app():
    errors = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\nb")]})
        try:
            await send({"type": "http.response.body", "body": b""})
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    async with serve(app) as port:
        await exchange(port, b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    assert errors == ["Invalid HTTP header value."]


async def test_access_log(caplog):
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        async with serve(echo_app, log_config=None, log_level="info") as port:
            await exchange(port, b"GET /p?q=1 HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert '"GET /p?q=1 HTTP/1.1" 200' in caplog.text


async def test_limit_concurrency_gives_503():
    async with serve(echo_app, limit_concurrency=1) as port:
        data = await exchange(port, b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    assert data.startswith(b"HTTP/1.1 503 ")


class FakeWebSocket:
    """A stand-in for uvicorn's ws protocol: records what it was handed."""

    handed: list[bytes] = []

    def __init__(self, config, server_state, app_state):
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        FakeWebSocket.handed.append(data)
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
        self.transport.close()

    def connection_lost(self, exc):
        pass


async def test_websocket_upgrade_hands_over_the_connection():
    FakeWebSocket.handed = []
    request = (
        b"GET /ws?x=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with serve(echo_app, ws=FakeWebSocket) as port:
        data = await exchange(port, request + b"FRAME")
    assert data == b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
    [handed] = FakeWebSocket.handed
    assert handed.startswith(b"GET /ws?x=1 HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n")
    assert handed.endswith(b"\r\n\r\nFRAME")


class RaisingWebSocket(FakeWebSocket):
    """A WebSocket protocol that refuses what follows the handshake, as the
    websockets library does with bytes that are no frame."""

    def data_received(self, data):
        raise ValueError("invalid frame header")


async def test_a_websocket_protocol_that_raises_gets_a_400_not_a_loop_traceback():
    loop = asyncio.get_running_loop()
    loop_errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    records: list[logging.LogRecord] = []
    collect = logging.Handler()
    collect.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("uvicorn.error")
    request = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        async with serve(echo_app, ws=RaisingWebSocket) as port:
            logger.addHandler(collect)  # after uvicorn configured its logging
            data = await exchange(port, request + b"NOT A FRAME")
    finally:
        logger.removeHandler(collect)
        loop.set_exception_handler(None)
    assert data.startswith(b"HTTP/1.1 400 ")
    assert loop_errors == []
    warnings = [r for r in records if "Invalid WebSocket request" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    assert "invalid frame header" in warnings[0].getMessage()


async def test_unsupported_upgrade_is_served_as_http():
    async with serve(echo_app, ws="none") as port:
        data = await exchange(
            port,
            b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert [h[b"x-path"] for _, h, _ in responses(data)] == [b"/u", b"/after"]


async def test_shutdown_closes_idle_connections():
    async with serve(echo_app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    # Leaving `serve` shut the server down: the kept-alive connection is closed.
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()


class _Recording(HttpProtocol):
    """Keeps each connection's protocol, so a test can call shutdown() on it."""

    made: list[HttpProtocol]

    def connection_made(self, transport):
        self.made.append(self)
        super().connection_made(transport)


async def _shut_down_fresh_connection(grace: float, request: bytes) -> bytes:
    """Connects, calls shutdown() before sending anything, sends `request`,
    and returns what the server sent until it closed."""
    made: list[HttpProtocol] = []
    protocol = type("Recording", (_Recording,), {"made": made, "shutdown_grace": grace})
    async with serve(hello_app, http=protocol) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(500):
                if made:
                    break
                await asyncio.sleep(0.01)
            made[0].shutdown()  # as uvicorn's Server.shutdown() does
            writer.write(request)
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()


async def test_shutdown_serves_a_request_already_on_its_way():
    # A connection accepted just before shutdown() has received nothing yet;
    # its request must be answered (with Connection: close), not reset.
    data = await _shut_down_fresh_connection(1.0, b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    [(status, headers, _)] = responses(data)
    assert status == 200
    assert headers[b"connection"] == b"close"


async def test_shutdown_closes_an_idle_connection_after_the_grace():
    assert await _shut_down_fresh_connection(0.05, b"") == b""
