"""``--metrics-port``: what the workers count and the Prometheus text the supervisor serves.

Each worker counts its own responses in plain integers (:class:`RequestCounts`,
touched only by the worker's event loop: no lock on the request path) and
sends a snapshot with every heartbeat over the events queue it already has.
The supervisor keeps the latest snapshot of each worker, adds the final one
of each worker that ends to the server's totals (so totals never go back),
counts restarts and health-check misses itself, and renders all of it as
Prometheus text for ``GET /metrics`` on a small server of its own
(:class:`MetricsServer`), on 127.0.0.1 by default.

Status classes and durations come from our HTTP protocol (``--http rust``);
with ``--http h11`` a worker reports its request total and open connections.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("interpreters_aio.serve")

#: Upper bounds of the request duration histogram, in seconds (Prometheus'
#: client defaults, with a 1 ms bucket for fast handlers).
BOUNDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
CLASSES = ("other", "1xx", "2xx", "3xx", "4xx", "5xx")


class RequestCounts:
    """One worker's response counters (its event loop's only)."""

    __slots__ = ("buckets", "classes", "seconds")

    def __init__(self) -> None:
        self.classes = [0] * len(CLASSES)
        self.buckets = [0] * (len(BOUNDS) + 1)  # the last: above every bound
        self.seconds = 0.0

    def record(self, status: int, seconds: float) -> None:
        """A response was sent: ``status``, ``seconds`` after its request's head arrived."""
        self.classes[status // 100 if 100 <= status < 600 else 0] += 1
        self.buckets[bisect.bisect_left(BOUNDS, seconds)] += 1
        self.seconds += seconds

    def snapshot(self) -> tuple[tuple[int, ...], tuple[int, ...], float]:
        """The counters as shareable values, for the heartbeat."""
        return tuple(self.classes), tuple(self.buckets), self.seconds


def started() -> float:
    """The clock :meth:`RequestCounts.record` durations are measured on."""
    return time.perf_counter()


class Tally:
    """Counters of one worker, or of the whole server, in the supervisor."""

    __slots__ = ("buckets", "classes", "connections", "healthcheck_misses", "requests",
                 "restarts", "seconds")

    def __init__(self) -> None:
        self.requests = 0
        self.classes = [0] * len(CLASSES)
        self.buckets = [0] * (len(BOUNDS) + 1)
        self.seconds = 0.0
        self.connections = 0
        self.restarts = 0
        self.healthcheck_misses = 0

    def set_from(self, requests: int, counts: Any, connections: int) -> None:
        """A worker's latest heartbeat (its counters since it started)."""
        self.requests = requests
        self.connections = connections
        if counts is not None:
            classes, buckets, seconds = counts
            self.classes, self.buckets, self.seconds = list(classes), list(buckets), seconds

    def add(self, other: Tally) -> None:
        """Adds a worker's request counters (not its gauges or supervisor counts)."""
        self.requests += other.requests
        self.classes = [a + b for a, b in zip(self.classes, other.classes, strict=True)]
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.seconds += other.seconds


def render(workers: Iterable[tuple[int, Tally]], retired: Tally, supervisor: Tally) -> str:
    """Prometheus text (format 0.0.4): per worker slot, and for the whole
    server since it started (``serve_server_*``: the workers of now, plus the
    last counts of those that ended)."""
    workers = sorted(workers, key=lambda item: item[0])
    total = Tally()
    total.add(retired)
    for _, tally in workers:
        total.add(tally)
    total.connections = sum(t.connections for _, t in workers)
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    def per_worker(name: str, kind: str, help_text: str, value: Callable[[Tally], float]) -> None:
        family(f"serve_{name}", kind, help_text,
               ((f'{{worker="{slot}"}}', value(t)) for slot, t in workers))
        family(f"serve_server_{name}", kind, help_text + " (whole server)", [("", value(total))])

    per_worker("requests_total", "counter", "Requests served.", lambda t: t.requests)
    for prefix, scope in (("serve_", workers), ("serve_server_", [(None, total)])):
        name = prefix + "responses_total"
        family(name, "counter", "Responses by status class.", (
            (_labels(slot, code=code), t.classes[i])
            for slot, t in scope for i, code in enumerate(CLASSES)
        ))
        name = prefix + "request_duration_seconds"
        lines.append(f"# HELP {name} Time from a request's head to its response's end.")
        lines.append(f"# TYPE {name} histogram")
        for slot, t in scope:
            running = 0
            for bound, count in zip((*BOUNDS, float("inf")), t.buckets, strict=True):
                running += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f"{name}_bucket{_labels(slot, le=le)} {running}")
            lines.append(f"{name}_sum{_labels(slot)} {_number(t.seconds)}")
            lines.append(f"{name}_count{_labels(slot)} {running}")
    per_worker("open_connections", "gauge", "Open client connections.", lambda t: t.connections)
    family("serve_worker_restarts_total", "counter", "Workers restarted after they ended.",
           ((f'{{worker="{slot}"}}', t.restarts) for slot, t in workers))
    family("serve_server_worker_restarts_total", "counter",
           "Workers restarted after they ended (whole server).", [("", supervisor.restarts)])
    family("serve_healthcheck_misses_total", "counter",
           "Workers whose event loop stopped answering (interrupted and replaced).",
           ((f'{{worker="{slot}"}}', t.healthcheck_misses) for slot, t in workers))
    family("serve_server_healthcheck_misses_total", "counter",
           "Workers whose event loop stopped answering (whole server).",
           [("", supervisor.healthcheck_misses)])
    family("serve_workers", "gauge", "Workers running.", [("", len(workers))])
    return "\n".join(lines) + "\n"


def _labels(slot: int | None, **extra: str) -> str:
    pairs = ([("worker", str(slot))] if slot is not None else []) + list(extra.items())
    return "{" + ",".join(f'{k}="{v}"' for k, v in pairs) + "}" if pairs else ""


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 on ``host:port``, one response per connection."""

    def __init__(self, host: str, port: int, text: Callable[[], str]) -> None:
        self.host, self.port, self._text = host, port, text
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
            method, target, *_ = [*head.split(b"\r\n", 1)[0].split(b" "), b"", b""]
            if method not in (b"GET", b"HEAD"):
                status, body = "405 Method Not Allowed", b"GET /metrics\n"
            elif target.split(b"?", 1)[0] != b"/metrics":
                status, body = "404 Not Found", b"GET /metrics\n"
            else:
                status, body = "200 OK", self._text().encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + (body if method != b"HEAD" else b"")
            )
            await asyncio.wait_for(writer.drain(), 10.0)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass  # a client that sent no whole request head in time: just close
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
