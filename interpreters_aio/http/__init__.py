"""A fast HTTP/1.1 protocol for ASGI servers, usable in every interpreter.

uvicorn is fast with httptools and uvloop, but both are single-phase C
extensions that refuse to load in own-GIL subinterpreters, where uvicorn
falls back to pure-Python h11. :class:`HttpProtocol` parses requests and
frames responses in Rust inside ``interpreters_aio._core`` (which loads in
every interpreter) and keeps the ASGI plumbing in Python, so it plugs into
uvicorn in place of its own protocols::

    import uvicorn
    from interpreters_aio.http import HttpProtocol

    uvicorn.run(app, http=HttpProtocol)

uvicorn's lifespan, WebSocket upgrade (handed to uvicorn's ``ws`` protocol
as its httptools protocol does), logging and options keep working; h11
stays available as ``http="h11"``.
"""

from __future__ import annotations

from ._protocol import HttpProtocol

__all__ = ["HttpProtocol"]
