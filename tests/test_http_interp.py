"""interpreters_aio.http works where httptools cannot: uvicorn with our
protocol serving from inside an own-GIL subinterpreter, on a socket the
main interpreter bound (passed by fd, as the app host does)."""

from __future__ import annotations

import socket
import sys
import textwrap
import threading

import pytest
import uvicorn  # noqa: F401  (imported in the main interpreter first: CPython 3.13.0)

import interpreters_aio as interpreters
import interpreters_aio.http

pytestmark = pytest.mark.skipif(
    sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4),
    reason="CPython 3.12.0-3.12.3 abort at exit once a subinterpreter ran asyncio (gh-119213)",
)

SERVER = textwrap.dedent(
    """
    import asyncio, os, socket
    import uvicorn
    from interpreters_aio.http import HttpProtocol

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    async def main():
        sock = socket.socket(fileno=os.dup(fd))
        config = uvicorn.Config(app, http=HttpProtocol, lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await stop.aio.get()
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    asyncio.run(main())
    """
)


def test_uvicorn_with_our_protocol_in_a_subinterpreter(interp):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = interpreters.create_queue()
    interp.prepare_main(fd=listener.fileno(), stop=stop)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            interp.exec(SERVER)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=10) as client:
            request = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            client.sendall(request * 3 + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := client.recv(65536):
                data += chunk
    finally:
        stop.put(None)
        thread.join(30)
        listener.close()
    assert not thread.is_alive()
    assert errors == []
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 4
    assert data.count(b"\r\n\r\nhello") == 3
