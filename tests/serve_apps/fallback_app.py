"""An app with an optional C speed-up that subinterpreters refuse: it falls back
without it, silently, as websockets and Falcon do (tests/test_check.py,
tests/test_serve.py)."""

try:
    import _testsinglephase as speedups
except ImportError:
    speedups = None


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b"fast" if speedups is not None else b"fallback"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
