"""ASGI test app for tests/test_serve_tls_ws.py: GET answers with the
request's scheme; a WebSocket echoes what it receives, prefixed with its
scheme; /modules and /uvicorn tell what the worker imported."""

import plain_lifespan


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await plain_lifespan.run(receive, send)
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or (message.get("bytes") or b"").decode()
            await send({"type": "websocket.send", "text": f"{scope['scheme']}:{text}"})
    body = scope["scheme"].encode()
    if scope["path"] == "/modules":  # what this worker has imported (issue 28 item 3)
        import sys

        names = ("click", "uvicorn.main", "websockets", "wsproto")
        body = " ".join(n for n in names if n in sys.modules).encode() or b"-"
    elif scope["path"] == "/uvicorn":  # the package's names still load on use
        import uvicorn

        body = f"{uvicorn.__version__} {uvicorn.Config.__name__} {uvicorn.run.__name__}".encode()
    if scope["headers"] and any(name == b"upgrade" for name, _ in scope["headers"]):
        body += b" (upgrade served as http)"
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
