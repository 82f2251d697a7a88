"""ASGI test app for tests/test_serve.py: answers with its interpreter's id."""

import asyncio
import itertools
import os
import sys
import threading
import time
import weakref

from interpreters_aio import get_current

VERSION = "v1"
HOLD_SECONDS = 0.5
"""How long /hold stalls its worker's loop after answering."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if os.environ.get("SERVE_TEST_FAIL_STARTUP"):
                    await send({"type": "lifespan.startup.failed", "message": "no database"})
                    return
                print(f"lifespan startup {_worker_id()}")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print(f"lifespan shutdown {_worker_id()}")
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/slow":
        await asyncio.sleep(1.5)
    elif path == "/crash":
        # Ends this worker's event loop: asyncio.run() raises in the worker.
        asyncio.get_running_loop().stop()
    elif path == "/block":
        # A loop stuck in Python code (a runaway computation): the watchdog
        # sees no heartbeat and interrupts it.
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            pass
    elif path == "/hold":
        # Answers, then stalls this worker's loop for a moment: the next
        # request must be answered by another worker (see test_serve._ids).
        await _reply(send, _identity())
        time.sleep(HOLD_SECONDS)
        return None
    elif path == "/sleep":
        # A handler that blocks its loop (a slow synchronous call): ?seconds.
        time.sleep(float(scope["query_string"] or b"0"))
    elif path == "/gil":
        # Whether this worker's interpreter runs with a GIL (free-threaded builds).
        enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
        return await _reply(send, b"enabled" if enabled else b"disabled")
    elif path == "/env":
        body = os.environ.get("SERVE_TEST_GREETING", "-").encode()
        return await _reply(send, body)
    await _reply(send, _identity())


_workers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int]" = weakref.WeakKeyDictionary()
_count = itertools.count(1)
_lock = threading.Lock()


def _worker_id() -> str:
    """This worker, told apart from every other in any isolation mode: its
    interpreter, its process and its event loop (numbered in first-use order:
    threads of one interpreter share this module)."""
    loop = asyncio.get_running_loop()
    with _lock:
        n = _workers.get(loop)
        if n is None:
            n = _workers[loop] = next(_count)
    return f"{get_current().id}-{os.getpid()}-{n}"


def _identity() -> bytes:
    """The default body: the app's version and this worker's identity."""
    return f"{VERSION} {_worker_id()}".encode()


async def _reply(send, body):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def create_app():
    """For --factory: returns the app."""
    return app
