"""Fair service under CPU-bound load: no connection waits while others are
served again and again (issue 28 item 2).

Real HTTP over 127.0.0.1 against ``serve`` in a child process, with an app
whose every request keeps its worker busy for a few milliseconds (wall
clock), so the ideal wait of a request is (connections x service time) /
workers whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import pytest
from serve_helpers import ServeProcess, needs_safe_asyncio

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(needs_safe_asyncio, reason="no subinterpreters on 3.12.0-3.12.3"),
]

SERVICE_MS = 4


def _request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


async def _client(port: int, requests: int) -> list[float]:
    """A new keep-alive connection that sends its first request at once, as
    wrk's do, then `requests` - 1 more one after the other; their latencies
    (the first one's counted from the connect)."""
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    latencies = []
    try:
        for _ in range(requests):
            writer.write(_request(f"/busy?{SERVICE_MS}"))
            assert await _read_response(reader) == b"ok"
            now = time.perf_counter()
            latencies.append(now - started)
            started = now
    finally:
        writer.close()
    return latencies


async def _steady(port: int, stop: asyncio.Event) -> None:
    """A connection that keeps one request outstanding until `stop`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while not stop.is_set():
            writer.write(_request(f"/busy?{SERVICE_MS}"))
            assert await _read_response(reader) == b"ok"
    finally:
        writer.close()


async def _burst(port: int, busy: int, connections: int, requests: int) -> list[list[float]]:
    stop = asyncio.Event()
    steady = [asyncio.create_task(_steady(port, stop)) for _ in range(busy)]
    await asyncio.sleep(0.3)  # the workers are busy: each loop iteration lasts a while
    clients = [asyncio.create_task(_client(port, requests)) for _ in range(connections)]
    try:
        return await asyncio.wait_for(asyncio.gather(*clients), 60)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*steady), 30)


def test_a_burst_of_new_connections_is_not_starved():
    """wrk's start against busy workers: many connections at once, each
    with a request sent at once. Each loop iteration of a busy worker serves
    every ready connection once; accepting one connection per iteration left
    the last of a burst waiting for the sum of all those iterations (p99 ten
    times the median).

    One worker: on a socket several workers share, each wake-up takes the
    worker's share of the queue, so a burst is taken in a few iterations
    (``--reuse-port`` lets the kernel split it at once)."""
    busy, connections, requests = 4, 12, 4
    args = ["busy_app:app", "--workers", "1", "--port", "0", "--no-access-log"]
    with ServeProcess(*args) as proc:
        port = proc.wait_serving()
        latencies = asyncio.run(_burst(port, busy, connections, requests))
        assert proc.stop() == 0
    # The time a turn takes (every connection served once) is the median
    # latency; the machine's load stretches it, so it is measured, not assumed
    # (ideal: 16 x 4 ms).
    first = [lat[0] for lat in latencies]
    every = sorted(x for lat in latencies for x in lat)
    turn = statistics.median(every)
    detail = (
        f"median {turn * 1e3:.0f} ms (ideal {(busy + connections) * SERVICE_MS} ms), "
        f"max {every[-1] * 1e3:.0f} ms; first requests (ms): "
        f"{sorted(round(x * 1e3) for x in first)}"
    )
    assert turn <= 4 * (busy + connections) * SERVICE_MS / 1000, detail
    # Before the fix the last connection's first answer came after about 13 turns.
    assert max(first) <= 2.5 * turn, detail
    assert every[-1] <= 2.5 * turn, detail


def test_pipelined_requests_wait_their_turn():
    """A connection that sends 20 requests at once gets one served per turn,
    interleaved with the other ready connections, not all 20 back to back
    while they wait."""

    async def scenario(port: int) -> tuple[list[int], int]:
        stop = asyncio.Event()
        others = [asyncio.create_task(_steady(port, stop)) for _ in range(4)]
        await asyncio.sleep(0.3)  # the four are being served in turn
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pipelined = writer.get_extra_info("sockname")[1]
        writer.write(b"".join(_request(f"/busy?{SERVICE_MS}") for _ in range(20)))
        for _ in range(20):
            assert await asyncio.wait_for(_read_response(reader), 30) == b"ok"
        stop.set()
        await asyncio.wait_for(asyncio.gather(*others), 30)
        writer.write(_request("/order"))
        order = json.loads(await _read_response(reader))
        writer.close()
        return order, pipelined

    args = ["busy_app:app", "--workers", "1", "--port", "0", "--no-access-log"]
    with ServeProcess(*args) as proc:
        port = proc.wait_serving()
        order, pipelined = asyncio.run(scenario(port))
        assert proc.stop() == 0
    served = [i for i, p in enumerate(order) if p == pipelined]
    assert len(served) == 20
    window = order[served[0] : served[-1] + 1]
    longest = run = 0
    for p in window:
        run = run + 1 if p == pipelined else 0
        longest = max(longest, run)
    # Before: 20 in a row. Now one per turn (2 if the others were between requests).
    assert longest <= 2, window
