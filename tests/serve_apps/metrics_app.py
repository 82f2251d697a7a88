"""ASGI test app for tests/test_serve_metrics.py: /status/NNN answers with
that status, /crash ends its worker's loop, /sleep?S blocks it."""

import asyncio
import time

import plain_lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await plain_lifespan.run(receive, send)
    path = scope["path"]
    status = 200
    if path.startswith("/status/"):
        status = int(path.rsplit("/", 1)[1])
    elif path == "/crash":
        asyncio.get_running_loop().stop()
    elif path == "/sleep":
        time.sleep(float(scope["query_string"] or b"0"))
    body = str(status).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
