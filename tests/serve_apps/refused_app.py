"""An app that needs a C extension which subinterpreters refuse (tests/test_serve.py).

Served from processes under ``--isolation auto``, it answers with its process id.
"""

import _testsinglephase  # noqa: F401
import os


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"refused {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
