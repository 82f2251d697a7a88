"""Soak: resident memory under connection churn, ``serve`` next to uvicorn.

Each server runs one worker and answers ``GET /`` of ``benchmarks.serve_apps``
to ``wrk`` with ``Connection: close`` on every request, so every request is
a new connection (issue 25 item 5: RSS crept by 17-34 bytes per request with
our protocol in ``serve``). After a warm-up (a tenth of the requests, at
most 200,000) the server's RSS is the baseline; the load then runs in
``wrk`` slices until the requested number is served, and the report gives
the RSS growth since the baseline per million requests.

    python -m benchmarks.serve_soak                     # 2,000,000 requests per server
    python -m benchmarks.serve_soak --requests 300000   # shorter
    python -m benchmarks.serve_soak --only ours         # servers whose name contains "ours"

Not a section of ``python -m benchmarks`` (it takes minutes per server).
Needs ``wrk``; rows whose modules are missing are skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from .serve_bench import ROOT, Server, ServerFailed, memory, running

APP = "benchmarks.serve_apps:app"
SLICE_SECONDS = 10


def _ours(*options: str) -> list[str]:
    return [
        sys.executable, "-m", "interpreters_aio", "serve", APP, "--workers", "1",
        "--app-dir", ROOT, "--log-level", "warning", "--no-access-log", *options,
    ]  # fmt: skip


def _uvicorn(*options: str) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", APP, "--app-dir", ROOT,
        "--log-level", "warning", "--no-access-log", *options,
    ]  # fmt: skip


SERVERS = (
    ("ours -w1 rust", lambda port: _ours("--host", "127.0.0.1", "--port", str(port)), ()),
    (
        "ours -w1 h11",
        lambda port: _ours("--host", "127.0.0.1", "--port", str(port), "--http", "h11"),
        ("h11",),
    ),
    (
        "uvicorn (our protocol)",
        lambda port: _uvicorn(
            "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio",
            "--http", "interpreters_aio.http:HttpProtocol",
        ),
        ("uvicorn",),
    ),
    (
        "uvicorn (h11, asyncio)",
        lambda port: _uvicorn(
            "--host", "127.0.0.1", "--port", str(port), "--loop", "asyncio", "--http", "h11"
        ),
        ("uvicorn", "h11"),
    ),
    (
        "uvicorn (httptools, uvloop)",
        lambda port: _uvicorn(
            "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools"
        ),
        ("uvicorn", "uvloop", "httptools"),
    ),
)


def _rss(pid: int) -> int:
    return memory(pid)[0]


def _wrk(wrk: str, port: int, seconds: int, script: str) -> int:
    """Runs one wrk slice; returns the requests it completed."""
    done = subprocess.run(
        [wrk, "-t1", "-c16", f"-d{seconds}s", "-s", script, f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    match = re.search(r"(\d+) requests in", done.stdout)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed: {done.stderr.strip() or done.stdout}")
    return int(match.group(1))


def soak(name: str, argv, wrk: str, total: int, script: str, tmp: str) -> str:
    server = Server(name, argv, "")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="")
    log = os.path.join(tmp, re.sub(r"\W+", "_", name) + ".log")
    warmup = min(200_000, total // 10)
    started = time.monotonic()
    with running(server, env, log) as (pid, port, problems):
        served = 0
        while served < warmup:
            served += _wrk(wrk, port, min(SLICE_SECONDS, 5), script)
        time.sleep(0.5)
        base, base_served = _rss(pid), served
        peak = base
        while served < total:
            served += _wrk(wrk, port, SLICE_SECONDS, script)
            peak = max(peak, _rss(pid))
            print(f"  {name}: {served:,} requests, RSS {_rss(pid) / 2**20:.2f} MiB",
                  file=sys.stderr, flush=True)  # fmt: skip
        time.sleep(0.5)
        end = _rss(pid)
    seconds = time.monotonic() - started
    counted = served - base_served
    per_million = (end - base) / counted * 1e6
    note = "; ".join(problems)
    return (
        f"| {name} | {served:,} | {served / seconds:,.0f} | {base / 2**20:.2f} | "
        f"{end / 2**20:.2f} | {peak / 2**20:.2f} | {per_million / 2**10:+,.0f} | "
        f"{per_million / 1e6:+.2f} | {note} |"
    )


def main(args: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve_soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=2_000_000, help="per server")
    parser.add_argument("--only", default="", help="servers whose name contains this")
    options = parser.parse_args(args)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk not found: install it (apt-get install wrk)", file=sys.stderr)
        return 1
    lines = [
        f"Soak: {options.requests:,} one-request connections per server (wrk -t1 -c16, "
        f"Connection: close), 1 worker, Python {sys.version.split()[0]}",
        "",
        "| server | requests | req/s | RSS after warm-up (MiB) | RSS at end (MiB) | peak (MiB) "
        "| growth per million requests (KiB) | bytes per request | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="serve-soak-") as tmp:
        script = os.path.join(tmp, "close.lua")
        with open(script, "w", encoding="ascii") as file:
            file.write('wrk.headers["Connection"] = "close"\n')
        for name, argv, modules in SERVERS:
            if options.only not in name:
                continue
            missing = [m for m in modules if importlib.util.find_spec(m) is None]
            if missing:
                lines.append(f"| {name} | n/a | | | | | | | needs {', '.join(missing)} |")
                continue
            try:
                lines.append(soak(name, argv, wrk, options.requests, script, tmp))
            except (ServerFailed, RuntimeError) as exc:
                lines.append(f"| {name} | ERROR | | | | | | | {exc} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
