"""``serve --metrics-port``: Prometheus text from the supervisor, with counters
that move with traffic, restarts and health-check misses (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import sys
import time

import pytest
from serve_helpers import ServeProcess, needs_safe_asyncio

pytestmark = pytest.mark.skipif(
    needs_safe_asyncio, reason="CPython 3.12.0-3.12.3 serve in processes only"
)

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
ISOLATIONS = ["interpreters", "processes"] + (["threads"] if FREE_THREADED else [])


def _metrics_port(serve: ServeProcess) -> int:
    match = serve.wait_for(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", 60)[0]
    return int(match.group(1))


def _fetch(port: int, method: str = "GET", path: str = "/metrics") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def _scrape_until(port: int, check, timeout: float = 30) -> dict[str, float]:
    """Scrapes until ``check(samples)`` holds (heartbeats carry the counts)."""
    deadline = time.monotonic() + timeout
    while True:
        samples = _samples(_fetch(port)[2])
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never matched: {samples}")
        time.sleep(0.2)


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_counters_follow_traffic_restarts_and_healthcheck_misses(isolation: str):
    with ServeProcess("metrics_app:app", "--workers", "2", "--port", "0", "--metrics-port", "0",
                      "--timeout-worker-healthcheck", "1", "--isolation", isolation) as serve:
        serve.wait_serving()
        port = _metrics_port(serve)
        statuses = [200] * 6 + [404] * 3 + [503] * 2 + [302]
        for status in statuses:
            assert serve.get(f"/status/{status}")[0] == status
        samples = _scrape_until(port, lambda s: s["serve_server_requests_total"] >= 12)
        assert samples["serve_server_requests_total"] == 12
        assert sum(v for k, v in samples.items() if k.startswith("serve_requests_total{")) == 12
        for code, count in (("2xx", 6), ("3xx", 1), ("4xx", 3), ("5xx", 2)):
            assert samples[f'serve_server_responses_total{{code="{code}"}}'] == count
        assert samples["serve_server_request_duration_seconds_count"] == 12
        assert samples['serve_server_request_duration_seconds_bucket{le="+Inf"}'] == 12
        assert samples["serve_server_request_duration_seconds_sum"] > 0
        assert samples["serve_workers"] == 2
        assert samples["serve_server_worker_restarts_total"] == 0

        # A worker whose loop ends is restarted: counted; the totals keep its requests.
        serve.get("/crash")
        samples = _scrape_until(
            port, lambda s: s["serve_server_worker_restarts_total"] == 1 and s["serve_workers"] == 2
        )
        per_worker = [v for k, v in samples.items() if k.startswith("serve_worker_restarts_total{")]
        assert sum(per_worker) == 1
        assert samples["serve_server_requests_total"] >= 12

        # A loop blocked past the health-check: a miss, and a replacement.
        # (The request's own outcome depends on how the mode interrupts it.)
        with contextlib.suppress(OSError, http.client.HTTPException):
            serve.get("/sleep?4", timeout=2)
        samples = _scrape_until(port, lambda s: s["serve_server_healthcheck_misses_total"] == 1)
        assert samples["serve_server_worker_restarts_total"] == 2
        assert serve.stop() == 0


def test_endpoint_answers_only_get_metrics():
    with ServeProcess("metrics_app:app", "--workers", "1", "--port", "0",
                      "--metrics-port", "0") as serve:
        serve.wait_serving()
        port = _metrics_port(serve)
        status, content_type, body = _fetch(port)
        assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
        assert re.search(r"^# TYPE serve_server_requests_total counter$", body, re.MULTILINE)
        assert _fetch(port, path="/")[0] == 404
        assert _fetch(port, method="POST")[0] == 405
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 405")
        assert _fetch(port)[0] == 200  # still serving
        assert serve.stop() == 0
    assert "Traceback" not in serve.output, serve.output


def test_metrics_are_off_by_default():
    with ServeProcess("metrics_app:app", "--workers", "1", "--port", "0") as serve:
        serve.wait_serving()
        assert serve.get("/")[0] == 200
        assert serve.stop() == 0
    assert "metrics on" not in serve.output
