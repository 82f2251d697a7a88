"""Section "serve": HTTP servers under load from ``wrk``, side by side.

Every server runs the plain ASGI app of :mod:`benchmarks.serve_apps` on
127.0.0.1, started and stopped here: ``python -m interpreters_aio serve``
(N worker interpreters in one process) with our Rust HTTP/1.1 protocol (with
and without ``--reuse-port``) and with uvicorn's h11 protocol, against uvicorn
with N worker processes (its default stack, uvloop and httptools: the
baseline; and h11 on asyncio), gunicorn with uvicorn's worker class, and one
uvicorn process. Each endpoint (a case) gets a short ``wrk`` warm-up, then a
timed ``wrk -t2 -c64 --latency`` run; near the end of that run the resident
(RSS) and proportional (PSS) memory of the server's whole process tree is
read from ``/proc/PID/smaps_rollup``. The table gives requests/s, p50 and p99
latency, the memory, and each row's ratios to the baseline; after it, how our
N workers scale against 1 on the CPU-bound endpoint.

Servers get ports chosen free at run time, their own session (process group),
SIGTERM to stop and SIGKILL for the group after a timeout, in ``finally``:
nothing is left running. A server whose package is missing is reported as
"n/a" with the reason; without ``wrk`` the whole section is.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from .registry import Case, Contender, register_section
from .runner import CaseResult, ContenderResult, SectionResult
from .timing import QUICK, TimingConfig

WORKERS = int(os.environ.get("SERVE_BENCH_WORKERS", "2"))
"""Workers of every multi-worker server (this machine has 2 CPUs)."""
PIN = os.environ.get("SERVE_BENCH_PIN", "") not in ("", "0")
"""Per-core figures: every server on CPU 0 and wrk on CPU 1 (``SERVE_BENCH_PIN=1``)."""
WRK_THREADS = 1 if PIN else 2
WRK_CONNECTIONS = 64
CPU_SECONDS = 1e-3
"""Pure-Python work per request of the CPU-bound endpoint."""
UPLOAD_BYTES = 64 * 1024
SCALING_GOAL = 0.9
"""Our N workers should serve at least this times N as many CPU-bound requests as 1 worker."""

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory that holds the ``benchmarks`` package (the servers' working directory)."""
APP = os.environ.get("SERVE_BENCH_APP", "benchmarks.serve_apps:app")
"""The app every server serves: the plain ASGI app, or ``benchmarks.serve_fastapi:app``
(the same endpoints in FastAPI) with ``SERVE_BENCH_APP``."""
BASELINE_SERVER = f"uvicorn -w{WORKERS} (uvloop+httptools)"
OURS_DEFAULT = f"ours -w{WORKERS} rust (default)"
OURS_REUSE_PORT = f"ours -w{WORKERS} rust --reuse-port"
OURS_ONE = "ours -w1 rust"
UVICORN_ONE = "uvicorn 1 process (uvloop+httptools)"


@dataclass(frozen=True)
class Endpoint:
    """A case: one path of the app, and how wrk requests it."""

    case: str
    path: str
    description: str
    post: bool = False


ENDPOINTS = (
    Endpoint("hello", "/", "GET /: 13 bytes"),
    Endpoint("cpu 1 ms", "/cpu", "GET /cpu: about 1 ms of pure Python per request"),
    Endpoint(
        "json ~1 KB", "/json", "GET /json: json.dumps of a 12-item dict built per request (~1 KB)"
    ),
    Endpoint("16 KiB response", "/16k", "GET /16k: a 16 KiB body"),
    Endpoint("POST 64 KiB", "/upload", "POST /upload: a 64 KiB body, read whole", post=True),
)


@dataclass(frozen=True)
class Server:
    """A server contender: its command line (given the port), or why it cannot run."""

    name: str
    argv: Callable[[int], list[str]]
    note: str = ""
    requires: tuple[str, ...] = ()
    """Modules that must be importable in the servers' Python."""
    only: tuple[str, ...] = ()
    """The cases it runs in (all if empty)."""
    unavailable: str = ""
    """Why it cannot run on this Python at all (shown as n/a), if it cannot."""


@dataclass(frozen=True)
class Timings:
    """How long wrk runs: warm-up and measured run, in seconds."""

    warmup: int
    duration: int
    warm_each: bool
    """Warm up before every endpoint, or only before a server's first one."""


QUICK_TIMINGS = Timings(warmup=1, duration=1, warm_each=False)
FULL_TIMINGS = Timings(warmup=2, duration=5, warm_each=True)
"""wrk takes whole seconds."""


def _uvicorn(*options: str, workers: int = WORKERS) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        command = [sys.executable, "-m", "uvicorn", APP, "--host", "127.0.0.1"]
        command += ["--port", str(port), "--app-dir", ROOT]
        if workers > 1:
            command += ["--workers", str(workers)]
        return [*command, "--log-level", "warning", "--no-access-log", *options]

    return argv


def _ours(*options: str, workers: int = WORKERS) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        command = [sys.executable, "-m", "interpreters_aio", "serve", APP]
        command += ["--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
        command += ["--app-dir", ROOT, "--log-level", "warning", "--no-access-log"]
        return [*command, *options]

    return argv


def _granian(port: int) -> list[str]:
    return [
        sys.executable, "-m", "granian", APP,
        "--interface", "asgi", "--workers", str(WORKERS), "--host", "127.0.0.1",
        "--port", str(port), "--working-dir", ROOT, "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_LIMIT = "nginx static 200 (the limit)"
_NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "Hello, world!"; }}
    }}
}}
"""


def _nginx(port: int) -> list[str]:
    """nginx answering a static 200 with one worker process: what a request
    costs on this kernel with nothing but the HTTP work (the "limit" row)."""
    folder = tempfile.mkdtemp(prefix="serve-bench-nginx-")
    atexit.register(shutil.rmtree, folder, True)
    conf = os.path.join(folder, "nginx.conf")
    with open(conf, "w", encoding="ascii") as file:
        file.write(_NGINX_CONF.format(dir=folder, port=port))
    return [NGINX, "-p", folder, "-c", conf]


def _gunicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", APP,
        "-w", str(WORKERS), "-k", "benchmarks.serve_gunicorn.QuietUvicornWorker",
        "-b", f"127.0.0.1:{port}", "--chdir", ROOT, "--log-level", "warning",
    ]  # fmt: skip


SERVERS = (
    Server(
        BASELINE_SERVER,
        _uvicorn("--loop", "uvloop", "--http", "httptools"),
        "uvicorn's default stack, processes",
        requires=("uvicorn", "uvloop", "httptools"),
    ),
    Server(
        f"uvicorn -w{WORKERS} (h11, asyncio)",
        _uvicorn("--loop", "asyncio", "--http", "h11"),
        "processes",
        requires=("uvicorn", "h11"),
    ),
    Server(
        f"gunicorn -w{WORKERS} UvicornWorker",
        _gunicorn,
        "uvloop+httptools, processes",
        requires=("gunicorn", "uvicorn", "uvloop", "httptools"),
    ),
    Server(
        f"granian -w{WORKERS} (asgi)",
        _granian,
        "granian --interface asgi: Rust HTTP; processes (threads on a free-threaded build)",
        requires=("granian",),
    ),
    Server(
        NGINX_LIMIT,
        _nginx,
        "one worker process, no app: the kernel and HTTP alone",
        only=("hello",),
        unavailable="" if os.path.exists(NGINX) else (
            "nginx is not installed (apt-get install nginx-light)"
        ),
    ),
    Server(
        UVICORN_ONE,
        _uvicorn("--loop", "uvloop", "--http", "httptools", workers=1),
        "one process",
        requires=("uvicorn", "uvloop", "httptools"),
    ),
    Server(
        OURS_DEFAULT,
        _ours("--http", "rust"),
        "--isolation auto: interpreters (one process) where the app allows them, "
        "else threads (3.14t) or processes; one shared socket",
        requires=("interpreters_aio.serve",),
    ),
    Server(
        OURS_REUSE_PORT,
        _ours("--http", "rust", "--reuse-port"),
        "a SO_REUSEPORT socket per worker",
        requires=("interpreters_aio.serve",),
    ),
    Server(
        f"ours -w{WORKERS} rust, --metrics-port",
        _ours("--http", "rust", "--metrics-port", "0"),
        "the default row with Prometheus metrics on: the cost of counting (target: < 3%)",
        requires=("interpreters_aio.serve",),
        only=("hello",),
    ),
    Server(
        f"ours -w{WORKERS} h11",
        _ours("--http", "h11"),
        "uvicorn's h11 protocol in our workers",
        requires=("interpreters_aio.serve", "h11"),
    ),
    Server(
        f"ours -w{WORKERS} rust, processes",
        _ours("--http", "rust", "--isolation", "processes"),
        "--isolation processes: a child process per worker (uvloop there where installed)",
        requires=("interpreters_aio.serve",),
    ),
    Server(
        f"ours -w{WORKERS} rust, threads",
        _ours("--http", "rust", "--isolation", "threads"),
        "--isolation threads: threads of one process (free-threaded builds)",
        requires=("interpreters_aio.serve",),
        unavailable="" if sysconfig.get_config_var("Py_GIL_DISABLED") else (
            "needs a free-threaded build (python3.14t)"
        ),
    ),
    Server(
        OURS_ONE,
        _ours("--http", "rust", workers=1),
        "for the scaling line",
        requires=("interpreters_aio.serve",),
        only=("cpu 1 ms",),
    ),
)


# ---------------------------------------------------------------- measurements


@dataclass
class Row:
    """One server on one endpoint."""

    server: str
    note: str = ""
    unavailable: str = ""
    error: str = ""
    requests_per_second: float | None = None
    p50: float | None = None
    p99: float | None = None
    rss: int | None = None
    pss: int | None = None
    processes: int = 0
    wrk_problems: list[str] = field(default_factory=list)
    stop_problems: list[str] = field(default_factory=list)
    server_log: str = ""
    """What the server printed (at log level warning) while it ran."""
    wrk_output: str = ""
    spread: str = ""
    """How the requests were spread over the workers."""


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    requests: int
    p50: float
    p99: float
    problems: list[str]


_LATENCY_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def _seconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(match.group(1)) * _LATENCY_UNITS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p50, p99 and any errors from ``wrk --latency``'s output."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise ValueError(f"unexpected wrk output:\n{output}")
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    requests = int(total.group(1)) if total else 0
    problems = [] if requests else ["no request completed"]
    errors = re.search(r"Socket errors: (.*)", output)
    if errors:
        nonzero = [part for part in errors.group(1).split(", ") if not part.endswith(" 0")]
        if nonzero:
            problems.append("socket errors: " + ", ".join(nonzero))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        problems.append(f"{non2xx.group(1)} non-2xx/3xx responses")
    return WrkResult(
        float(rate.group(1)), requests, _seconds(p50.group(1)), _seconds(p99.group(1)), problems
    )


def _process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parent ids in ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as file:
                stat = file.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def memory(root: int) -> tuple[int, int, int]:
    """Summed RSS and PSS in bytes of ``root``'s process tree, and how many processes."""
    rss = pss = count = 0
    for pid in _process_tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as file:
                text = file.read()
        except OSError:
            continue
        values = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", text, re.MULTILINE))
        if "Rss" in values:
            rss += int(values["Rss"]) * 1024
            pss += int(values.get("Pss", 0)) * 1024
            count += 1
    return rss, pss, count


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            return "".join(file.readlines()[-lines:]).strip()
    except OSError:
        return ""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServerFailed(Exception):
    """The server did not start, or died."""


@contextlib.contextmanager
def running(
    server: Server, env: dict[str, str], log_path: str
) -> Iterator[tuple[int, int, list[str]]]:
    """Start ``server``, wait until it answers; yield its pid, port and a list
    that collects problems found when stopping it. Always stops it and its
    whole process group."""
    port = free_port()
    problems: list[str] = []
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*_pinned(0), *server.argv(port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(port):
            if proc.poll() is not None:
                raise ServerFailed(f"exited with {proc.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"did not answer within 30 s: {_tail(log_path)}")
            time.sleep(0.05)
        yield proc.pid, port, problems
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append("did not stop within 15 s of SIGTERM: killed")
        deadline = time.monotonic() + 5
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _group_alive(proc.pid):
            if proc.poll() is not None:
                problems.append("left processes running after it exited: killed")
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _pinned(cpu: int) -> list[str]:
    """A ``taskset`` prefix that runs a command on ``cpu`` when pinning (``SERVE_BENCH_PIN``)."""
    return ["taskset", "-c", str(cpu)] if PIN else []


def _wrk(
    wrk: str, port: int, endpoint: Endpoint, seconds: int, script: str, latency: bool = True
) -> str:
    command = [*_pinned(1), wrk, f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s"]
    if latency:
        command.append("--latency")
    if endpoint.post:
        command += ["-s", script]
    command.append(f"http://127.0.0.1:{port}{endpoint.path}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout}")
    return done.stdout


def measure_endpoint(
    wrk: str,
    pid: int,
    port: int,
    endpoint: Endpoint,
    timings: Timings,
    script: str,
    row: Row,
    warm: bool,
) -> None:
    """Warm up (if ``warm``), then run wrk once, sampling memory near the end of the load."""
    if warm:
        _wrk(wrk, port, endpoint, timings.warmup, script, latency=False)
    sample: list[tuple[int, int, int]] = []
    sampler = threading.Timer(timings.duration * 0.85, lambda: sample.append(memory(pid)))
    sampler.start()
    try:
        output = _wrk(wrk, port, endpoint, timings.duration, script)
    finally:
        sampler.cancel()
        sampler.join()
    result = parse_wrk(output)
    row.requests_per_second, row.p50, row.p99 = result.requests_per_second, result.p50, result.p99
    row.wrk_output = output
    row.wrk_problems.extend(result.problems)
    if sample:
        row.rss, row.pss, row.processes = sample[0]


def _spread(stats_dir: str) -> dict[str, list[int]]:
    """Requests per worker for each path, from the files the workers wrote at shutdown."""
    per_path: dict[str, list[int]] = {}
    for name in sorted(os.listdir(stats_dir)):
        with open(os.path.join(stats_dir, name), encoding="utf-8") as file:
            counts = json.load(file)["counts"]
        for path, count in counts.items():
            per_path.setdefault(path, []).append(count)
    return per_path


def _format_spread(counts: list[int] | None, workers: int) -> str:
    if workers <= 1:
        return ""
    if not counts:
        return "per worker: no counts (no lifespan shutdown?)"
    counts = sorted(counts, reverse=True) + [0] * (workers - len(counts))
    total = sum(counts) or 1
    return "per worker: " + "/".join(f"{100 * c / total:.0f}%" for c in counts)


def calibrate_cpu_loops() -> int:
    """Iterations of :func:`serve_apps.burn` that take about :data:`CPU_SECONDS` here."""
    from .serve_apps import burn

    loops = 1000
    while True:
        best = min(_time(burn, loops) for _ in range(5))
        if best >= CPU_SECONDS / 4:
            return max(1, round(loops * CPU_SECONDS / best))
        loops *= 2


def _time(fn: Callable[[int], object], arg: int) -> float:
    started = time.perf_counter()
    fn(arg)
    return time.perf_counter() - started


def _missing(modules: Sequence[str]) -> dict[str, str]:
    """Of ``modules``, the ones the servers' Python cannot import, with the error."""
    code = (
        "import importlib, json, sys\n"
        "bad = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        bad[name] = f'{type(exc).__name__}: {exc}'\n"
        "print(json.dumps(bad))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code, *modules],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    if done.returncode != 0:
        return dict.fromkeys(modules, done.stderr.strip()[-200:])
    return json.loads(done.stdout)


# ---------------------------------------------------------------- the table


def _mib(nbytes: int | None) -> str:
    return "" if nbytes is None else f"{nbytes / 2**20:.0f} MiB"


def _latency(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _ratio(value: float | None, baseline: float | None) -> str:
    if value is None or baseline is None or baseline <= 0:
        return ""
    return f"{value / baseline:.2f}x"


COLUMNS = (
    "case", "server", "req/s", "p50", "p99", "RSS", "PSS",
    "req/s ratio", "p99 ratio", "PSS ratio", "note",
)  # fmt: skip
_RIGHT = {2, 3, 4, 5, 6, 7, 8, 9}


def render(results: dict[str, list[Row]], scaling: list[str], header: list[str]) -> str:
    """The section's table, its header lines and the scaling lines."""
    rows: list[list[str]] = []
    for case, case_rows in results.items():
        base = next((r for r in case_rows if r.server == BASELINE_SERVER), None)
        for index, row in enumerate(case_rows):
            name = case if index == 0 else ""
            if row.requests_per_second is None:
                status = "ERROR" if row.error else "n/a"
                why = row.error or row.unavailable
                rows.append([name, row.server, status, status, *[""] * 6, why])
                continue
            notes = [row.note] if row.note else []
            if row.processes:
                notes.append(f"{row.processes} process{'es' if row.processes > 1 else ''}")
            if row.spread:
                notes.append(row.spread)
            notes.extend(f"WRK: {problem}" for problem in row.wrk_problems)
            notes.extend(f"STOP: {problem}" for problem in row.stop_problems)
            if row.server_log:
                lines = row.server_log.count("\n") + 1
                notes.append(f"LOG: the server printed {lines} lines (stderr, JSON)")
            if row.error:
                notes.append(f"ERROR: {row.error}")
            is_base = row is base
            base_rate = base.requests_per_second if base else None
            rows.append([
                name,
                row.server,
                f"{row.requests_per_second:,.0f}",
                _latency(row.p50),
                _latency(row.p99),
                _mib(row.rss),
                _mib(row.pss),
                "(baseline)" if is_base else _ratio(row.requests_per_second, base_rate),
                "" if is_base else _ratio(row.p99, base and base.p99),
                "" if is_base else _ratio(row.pss, base and base.pss),
                "; ".join(notes),
            ])  # fmt: skip
    widths = [max(len(r[i]) for r in [list(COLUMNS), *rows]) for i in range(len(COLUMNS))]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(
            c.rjust(w) if i in _RIGHT else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [*header, line(COLUMNS), "-+-".join("-" * w for w in widths)]
    lines.extend(line(r) for r in rows)
    lines.extend(scaling)
    return "\n".join(lines) + "\n"


def _peer_lines(results: dict[str, list[Row]]) -> list[str]:
    """Per case: our default row against the best peer (the fastest server
    that is not ours), and against the nginx limit where it ran."""
    lines = []
    for case, case_rows in results.items():
        rates = {r.server: r.requests_per_second for r in case_rows if r.requests_per_second}
        ours = rates.get(OURS_DEFAULT)
        peers = {n: v for n, v in rates.items() if not n.startswith("ours") and n != NGINX_LIMIT}
        if not ours or not peers:
            continue
        best = max(peers, key=peers.__getitem__)
        text = f"{case}: {OURS_DEFAULT} = {ours / peers[best]:.2f}x the best peer ({best})"
        limit = rates.get(NGINX_LIMIT)
        if limit:
            text += f", {ours / limit:.0%} of the nginx limit"
        lines.append(text)
    return lines


def _scaling_lines(results: dict[str, list[Row]]) -> list[str]:
    rows = {row.server: row for row in results.get("cpu 1 ms", [])}

    def rate(name: str) -> float | None:
        row = rows.get(name)
        return None if row is None else row.requests_per_second

    lines = []
    ours_1 = rate(OURS_ONE)
    for name in (OURS_DEFAULT, OURS_REUSE_PORT):
        ours_n = rate(name)
        if ours_n and ours_1:
            speedup = ours_n / ours_1
            goal = SCALING_GOAL * WORKERS
            verdict = "met" if speedup >= goal else "MISSED"
            lines.append(
                f"scaling, cpu 1 ms: {name} / {OURS_ONE} = {speedup:.2f}x "
                f"(goal >= {goal:.2f}x, {verdict})"
            )
    ours_pss_n, ours_pss_1 = (rows.get(n) and rows[n].pss for n in (OURS_DEFAULT, OURS_ONE))
    if ours_pss_n and ours_pss_1 and WORKERS > 1:
        lines.append(
            f"memory, cpu 1 ms: {OURS_DEFAULT} PSS {_mib(ours_pss_n)} vs 1 worker "
            f"{_mib(ours_pss_1)}: {_mib((ours_pss_n - ours_pss_1) / (WORKERS - 1))} per worker more"
        )
    uvicorn_n, uvicorn_1 = rate(BASELINE_SERVER), rate(UVICORN_ONE)
    if uvicorn_n and uvicorn_1:
        lines.append(
            f"reference, cpu 1 ms: uvicorn {WORKERS} processes / 1 process = "
            f"{uvicorn_n / uvicorn_1:.2f}x (wrk shares the {os.cpu_count()} CPUs with the server)"
        )
    return lines


# ---------------------------------------------------------------- the section


def run(
    cases: list[Case], config: TimingConfig, progress: Callable[[str], None] | None
) -> SectionResult:
    """Measure the selected endpoints on every server; build the section's result."""
    timings = QUICK_TIMINGS if config.min_run_time <= QUICK.min_run_time else FULL_TIMINGS
    selected = [e for e in ENDPOINTS if any(c.name == e.case for c in cases)]
    results: dict[str, list[Row]] = {e.case: [] for e in selected}
    header: list[str] = []
    failed = False
    wrk = shutil.which("wrk")
    loops = 0
    load_before = os.getloadavg()[0]
    if wrk is None:
        message = "wrk not found: install it (apt-get install wrk) to run this section"
        print(f"serve: {message}", file=sys.stderr)
        for endpoint in selected:
            for server in SERVERS:
                if not server.only or endpoint.case in server.only:
                    results[endpoint.case].append(Row(server.name, unavailable=message))
    else:
        loops = calibrate_cpu_loops()
        warm = (
            "before each endpoint" if timings.warm_each else "before each server's first endpoint"
        )
        header.append(
            f"wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{timings.duration}s --latency after a "
            f"{timings.warmup} s warm-up ({warm}), on 127.0.0.1; /cpu burns {loops} iterations "
            f"(~{CPU_SECONDS * 1e3:g} ms here); ratios: row / {BASELINE_SERVER}; memory "
            "summed over the server's process tree near the end of the run"
        )
        missing = _missing(sorted({m for s in SERVERS for m in s.requires}))
        with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
            script = os.path.join(tmp, "post.lua")
            with open(script, "w", encoding="ascii") as file:
                file.write(
                    'wrk.method = "POST"\n'
                    f'wrk.body = string.rep("x", {UPLOAD_BYTES})\n'
                    'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                )
            for server in SERVERS:
                endpoints = [e for e in selected if not server.only or e.case in server.only]
                if not endpoints:
                    continue
                rows = {e.case: Row(server.name, note=server.note) for e in endpoints}
                for e in endpoints:
                    results[e.case].append(rows[e.case])
                absent = [f"{m} ({missing[m]})" for m in server.requires if m in missing]
                why = server.unavailable or (absent and "cannot import " + ", ".join(absent))
                if why:
                    for row in rows.values():
                        row.unavailable = why
                    continue
                failed |= _run_server(
                    server, endpoints, rows, wrk, timings, script, tmp, loops, progress
                )
    if wrk is not None:
        before, after = load_before, os.getloadavg()[0]
        busy = (
            " (WARNING: the machine was busy, the numbers are unreliable)" if before > 0.5 else ""
        )
        header.append(f"load average (1 min) before: {before:.2f}, after: {after:.2f}{busy}")
    scaling = _peer_lines(results) + _scaling_lines(results)
    case_results = [
        CaseResult(
            e.case,
            e.description,
            BASELINE_SERVER,
            [
                ContenderResult(r.server, r.note, None, unavailable=r.unavailable, error=r.error)
                for r in results[e.case]
            ],
        )
        for e in selected
    ]
    data = {
        "cpu_loops": loops,
        "warmup_seconds": timings.warmup,
        "duration_seconds": timings.duration,
        "wrk": {"threads": WRK_THREADS, "connections": WRK_CONNECTIONS},
        "results": {case: [vars(row) for row in rows] for case, rows in results.items()},
        "scaling": scaling,
    }
    return SectionResult(
        "serve",
        _DESCRIPTION,
        case_results,
        table=render(results, scaling, header),
        data=data,
        errors=failed,
    )


def _run_server(
    server: Server,
    endpoints: list[Endpoint],
    rows: dict[str, Row],
    wrk: str,
    timings: Timings,
    script: str,
    tmp: str,
    loops: int,
    progress: Callable[[str], None] | None,
) -> bool:
    """Start ``server``, measure ``endpoints`` on it, stop it; return whether it failed."""
    safe = re.sub(r"\W+", "-", server.name).strip("-")
    stats_dir = os.path.join(tmp, f"stats-{safe}")
    os.mkdir(stats_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "PYTHONPATH")}
    env.update(SERVE_BENCH_CPU_LOOPS=str(loops), SERVE_BENCH_STATS_DIR=stats_dir, PYTHONPATH=ROOT)
    workers = 1 if server.name in (OURS_ONE, UVICORN_ONE) else WORKERS
    current = endpoints[0]
    problems: list[str] = []
    try:
        with running(server, env, os.path.join(tmp, f"{safe}.log")) as (pid, port, problems):
            for index, current in enumerate(endpoints):
                if progress is not None:
                    progress(f"serve/{current.case}: {server.name}")
                warm = timings.warm_each or index == 0
                row = rows[current.case]
                measure_endpoint(wrk, pid, port, current, timings, script, row, warm)
    except Exception as exc:
        if not isinstance(exc, ServerFailed):
            import traceback

            traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        print(f"serve: {server.name}: {message}", file=sys.stderr)
        for endpoint in endpoints[endpoints.index(current) :]:
            rows[endpoint.case].error = message
        return True
    log = _tail(os.path.join(tmp, f"{safe}.log"), 40)
    if log:
        print(f"serve: {server.name} printed:\n{log}", file=sys.stderr)
    spread = _spread(stats_dir)
    for endpoint in endpoints:
        rows[endpoint.case].spread = _format_spread(spread.get(endpoint.path), workers)
        rows[endpoint.case].stop_problems.extend(problems)
        rows[endpoint.case].server_log = log
    return False


_DESCRIPTION = (
    f"HTTP servers with {WORKERS} workers under wrk, the same ASGI app ({APP})"
    + (", server on CPU 0 and wrk on CPU 1 (per core)" if PIN else "")
)


@register_section("serve", _DESCRIPTION, run=run)
def build() -> list[Case]:
    """The cases (endpoints); the servers are measured by :func:`run`."""
    names = [Contender(s.name, None, reason="measured by serve_bench.run") for s in SERVERS]
    return [Case(e.case, names, e.description) for e in ENDPOINTS]
