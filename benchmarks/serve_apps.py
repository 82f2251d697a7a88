"""The plain ASGI app served by every server of the ``serve`` section.

No framework, so the server, not a router, is what is measured. Endpoints:

- ``GET /``: ``Hello, world!`` (13 bytes);
- ``GET /cpu``: about 1 ms of pure Python (a loop of ``SERVE_BENCH_CPU_LOOPS``
  iterations, calibrated once by the benchmark and passed in the environment
  so that every server does the same work), then a short body;
- ``GET /16k``: a 16 KiB body;
- ``GET /json``: about 1 KB of JSON, ``json.dumps`` of a 12-item dict built
  fresh for each request (real per-request work and allocations);
- ``POST /upload``: reads the whole request body and answers with its length.

Each worker (a process, or an interpreter of ours) counts the requests it
served per path and, at lifespan shutdown, writes the counts to a file in
``SERVE_BENCH_STATS_DIR`` (if set), so the benchmark can see how evenly the
load was spread over the workers. This module is imported in subinterpreters
and in spawned processes: it imports only ``os`` and ``json``.
"""

from __future__ import annotations

import json
import os

CPU_LOOPS = int(os.environ.get("SERVE_BENCH_CPU_LOOPS", "20000"))
STATS_DIR = os.environ.get("SERVE_BENCH_STATS_DIR", "")
WORKER_ID = f"{os.getpid()}-{os.urandom(4).hex()}"

HELLO = b"Hello, world!"
BODY_16K = b"x" * (16 * 1024)

_counts: dict[str, int] = {}


def burn(loops: int) -> int:
    """Pure Python work: the loop the ``/cpu`` endpoint runs."""
    total = 0
    for i in range(loops):
        total += i * i % 7
    return total


def document() -> dict[str, object]:
    """The ``/json`` document: a fresh 12-item dict (about 1 KB as JSON)."""
    return {
        "id": 12345,
        "name": "interpreters-aio",
        "active": True,
        "score": 98.6,
        "tags": ["asgi", "http", "rust", "subinterpreters", "asyncio", "benchmark"],
        "owner": {"login": "octocat", "id": 1, "site_admin": False, "type": "User"},
        "items": [{"n": i, "square": i * i, "label": f"item-{i}"} for i in range(12)],
        "description": "A server that runs ASGI apps in subinterpreters of one process " * 2,
        "counts": {"stars": 4200, "forks": 310, "issues": 28, "watchers": 150},
        "created": "2026-11-01T12:00:00Z",
        "updated": "2026-12-07T17:30:00Z",
        "license": None,
    }


def _headers(length: int, content_type: bytes = b"text/plain") -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"content-length", str(length).encode())]


async def _respond(send, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(len(body))})
    await send({"type": "http.response.body", "body": body})


def _write_stats() -> None:
    if not STATS_DIR:
        return
    path = os.path.join(STATS_DIR, f"{WORKER_ID}.json")
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"worker": WORKER_ID, "pid": os.getpid(), "counts": _counts}, file)


async def _lifespan(receive, send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            _write_stats()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    """The ASGI 3 app."""
    kind = scope["type"]
    if kind == "lifespan":
        await _lifespan(receive, send)
        return
    if kind != "http":
        return
    path = scope["path"]
    _counts[path] = _counts.get(path, 0) + 1
    if path == "/":
        await _respond(send, HELLO)
    elif path == "/cpu":
        await _respond(send, b"%d" % burn(CPU_LOOPS))
    elif path == "/json":
        body = json.dumps(document()).encode()
        headers = _headers(len(body), b"application/json")
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/16k":
        await _respond(send, BODY_16K)
    elif path == "/upload":
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await _respond(send, b"%d" % size)
    else:
        await _respond(send, b"not found", status=404)
