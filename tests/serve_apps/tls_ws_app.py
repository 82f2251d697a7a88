"""ASGI test app for tests/test_serve_tls_ws.py: GET answers with the
request's scheme (and the client certificate's subject, if any); a
WebSocket echoes what it receives, prefixed with its scheme."""


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
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
