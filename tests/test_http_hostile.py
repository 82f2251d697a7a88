"""Hostile input to interpreters_aio.http.HttpProtocol: every case gets a
clean 4xx/501 with Connection: close and a closed connection, never an
exception in the loop's handler or a stuck connection."""

from __future__ import annotations

import asyncio

import pytest
from test_http_support import TIMEOUT, echo_app, exchange, responses, serve

H = b"Host: x\r\n"


@pytest.fixture
async def loop_errors():
    """Fails the test if anything reaches the event loop's exception handler."""
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(None)
    assert errors == []


def refused(data: bytes, status: int) -> None:
    head, _, _ = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), data
    assert b"\r\nconnection: close" in head


CASES = {
    "no version": (b"GET /\r\n\r\n", 400),
    "bad version": (b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    "http/2.0": (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    "http/1.2": (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "garbage": (b"\x00\x01\x02\r\n\r\n", 400),
    "bad method": (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    "non-ascii target": (b"GET /\xe2\x82\xac HTTP/1.1\r\n" + H + b"\r\n", 400),
    "space in name": (b"GET / HTTP/1.1\r\n" + H + b"Bad Name: v\r\n\r\n", 400),
    "control in value": (b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400),
    "no colon": (b"GET / HTTP/1.1\r\n" + H + b"NoColon\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400),
    "missing host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "two hosts": (b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", 400),
    "cl and te": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "duplicate cl": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
    ),
    "differing cl": (
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    "cl list": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    "negative cl": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    "huge cl": (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n", 400),
    "te gzip": (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    "te twice": (
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    "te in 1.0": (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "oversize head": (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 20000 + b"\r\n\r\n", 431),
    "endless head": (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 40000, 431),
    "too many headers": (
        b"GET / HTTP/1.1\r\n" + H + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n",
        431,
    ),
}

CHUNKED = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
CHUNK_CASES = {
    "not hex": CHUNKED + b"xyz\r\nabc\r\n0\r\n\r\n",
    "negative": CHUNKED + b"-5\r\nabcde\r\n0\r\n\r\n",
    "overflow": CHUNKED + b"fffffffffffffffff\r\n",
    "bare lf": CHUNKED + b"3\nabc\r\n0\r\n\r\n",
    "no crlf after data": CHUNKED + b"3\r\nabcXX0\r\n\r\n",
    "space before size": CHUNKED + b" 3\r\nabc\r\n0\r\n\r\n",
    "bare lf ends the body": CHUNKED + b"3\r\nabc\r\n0\r\n\n",
    "bare lf in a trailer": CHUNKED + b"3\r\nabc\r\n0\r\nx-t: 1\n\r\n",
    "long extension in one read": CHUNKED + b"3;" + b"e" * 8192 + b"\r\nabc\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("name", list(CASES))
async def test_refused_heads(name, loop_errors):
    request, status = CASES[name]
    async with serve(echo_app) as port:
        refused(await exchange(port, request), status)


@pytest.mark.parametrize("name", list(CHUNK_CASES))
async def test_invalid_chunked_bodies(name, loop_errors):
    seen: list[dict] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
        if message["type"] == "http.request":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"should not happen"})

    async with serve(app) as port:
        data = await exchange(port, CHUNK_CASES[name])
    refused(data, 400)
    assert b"should not happen" not in data
    # The app is not started for a request refused in the same read, or
    # sees a disconnect: never a truncated body as if it were complete.
    assert not seen or seen[-1]["type"] == "http.disconnect"


async def test_invalid_chunk_after_a_good_one_disconnects_the_app(loop_errors):
    seen: list[dict] = []
    got_first = asyncio.Event()

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message)
            got_first.set()
            if message["type"] == "http.disconnect":
                return

    async with serve(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(CHUNKED + b"3\r\nabc\r\n")
        await asyncio.wait_for(got_first.wait(), TIMEOUT)
        writer.write(b"zz\r\n")
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    refused(data, 400)
    assert seen == [
        {"type": "http.request", "body": b"abc", "more_body": True},
        {"type": "http.disconnect"},
    ]


async def test_oversize_limit_follows_uvicorn_option(loop_errors):
    request = b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 2000 + b"\r\n\r\n"
    async with serve(echo_app, h11_max_incomplete_event_size=1024) as port:
        refused(await exchange(port, request), 431)
    async with serve(echo_app) as port:
        ok = await exchange(port, request.replace(H, H + b"Connection: close\r\n"))
        assert ok.startswith(b"HTTP/1.1 200 ")


async def test_body_longer_than_announced_is_the_next_request(loop_errors):
    async with serve(echo_app) as port:
        good = await exchange(
            port,
            b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
            b"GET /next HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
        )
        bad = await exchange(
            port, b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabcGARBAGE\r\n\r\n"
        )
    assert [(s, b) for s, _, b in responses(good)] == [(200, b"abc"), (200, b"")]
    # The first request is answered, the garbage after it refused.
    first, _, rest = bad.partition(b"abc")
    assert first.startswith(b"HTTP/1.1 200 ")
    refused(rest, 400)


async def test_pipelined_garbage_waits_for_earlier_responses(loop_errors):
    async def slow(scope, receive, send):
        await asyncio.sleep(0.05)
        await echo_app(scope, receive, send)

    async with serve(slow) as port:
        data = await exchange(port, b"GET /1 HTTP/1.1\r\n" + H + b"\r\nBAD\r\n\r\n")
    first, _, rest = data.partition(b"x-path: /1\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 ")
    refused(rest, 400)


async def test_slow_client_gets_408(loop_errors):
    async with serve(echo_app, timeout_keep_alive=0.3) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHo")
        # Dribbling more bytes does not extend the deadline for the head.
        for _ in range(2):
            await asyncio.sleep(0.1)
            writer.write(b"s")
        data = await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()
    refused(data, 408)


async def test_idle_connection_is_closed_silently(loop_errors):
    async with serve(echo_app, timeout_keep_alive=0.2) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
        writer.close()


async def test_disconnect_mid_body_gives_http_disconnect(loop_errors):
    seen: list[dict] = []
    done = asyncio.Event()

    async def app(scope, receive, send):
        try:
            while True:
                message = await receive()
                seen.append(message)
                if message["type"] == "http.disconnect":
                    break
            # Sending after the disconnect is harmless.
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        finally:
            done.set()

    async with serve(app) as port:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        await asyncio.wait_for(done.wait(), TIMEOUT)
    assert seen[0] == {"type": "http.request", "body": b"partial", "more_body": True}
    assert seen[-1] == {"type": "http.disconnect"}


async def test_random_garbage_never_hangs(loop_errors):
    import random

    rng = random.Random(1234)
    async with serve(echo_app, timeout_keep_alive=1) as port:
        for _ in range(30):
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
            data = await exchange(port, b"GET / HTTP/1.1\r\n" + blob + b"\r\n\r\n", half_close=True)
            assert data == b"" or data.startswith(b"HTTP/1.1 ")
