"""An ASGI app whose requests each keep the worker busy for a while (tests/test_serve_fairness.py).

``GET /busy?MS``: busy-waits MS milliseconds (wall clock, so the service time
does not depend on the machine's speed), records the client's port, answers
``ok``. ``GET /order``: the client ports of the requests served since the last
``/order``, in the order they were served (JSON), and clears them.
"""

from __future__ import annotations

import json
import time

_order: list[int] = []


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/order":
        body = json.dumps(_order).encode()
        _order.clear()
    else:
        ms = int(scope["query_string"] or b"3")
        end = time.perf_counter() + ms / 1000
        while time.perf_counter() < end:
            pass
        _order.append(scope["client"][1])
        body = b"ok"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
