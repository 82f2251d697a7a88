"""``serve``: real HTTP over 127.0.0.1 against the command in a child process."""

from __future__ import annotations

import asyncio
import http.client as http_client
import json
import os
import shutil
import signal
import socket
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
from serve_helpers import APPS, ServeProcess, needs_safe_asyncio

from interpreters_aio import serve
from interpreters_aio.serve.config import ConfigError, ServeConfig, read_env_file

unsafe_python = pytest.mark.skipif(
    needs_safe_asyncio,
    reason="serve runs no subinterpreter on CPython 3.12.0-3.12.3 (gh-119213); "
    "test_old_312_serves_from_processes_and_refuses_interpreters covers it",
)

pytestmark = pytest.mark.timeout(120)

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))

#: Every isolation mode this Python has: interpreters (not on the 3.12 releases
#: that abort after asyncio in a subinterpreter), processes, and threads on a
#: free-threaded build.
ISOLATIONS = [
    pytest.param("interpreters", marks=unsafe_python),
    "processes",
    *(["threads"] if FREE_THREADED else []),
]


def _ids(proc: ServeProcess, want: int) -> set[str]:
    """The interpreter ids of ``want`` different workers (at most 2 here).

    All workers accept on one socket, and on an idle machine the kernel may give
    every connection to the same one. So the first request goes to /hold, which
    answers and then stalls its worker's loop for half a second: the next
    request must be answered by another worker, if there is one. With
    ``--reuse-port`` the kernel picks a worker's socket by the connection's
    ports, so that request lands on the stalled worker half the time: rounds
    are repeated.
    """
    seen: set[str] = set()
    for _ in range(20):
        for path in ("/hold", "/"):
            status, body = proc.get(path)
            assert status == 200
            seen.add(body.split()[1])
        if len(seen) >= want:
            break
    return seen


@unsafe_python
@pytest.mark.parametrize("http", ["auto", "h11"])
def test_responses_come_from_n_interpreters(http):
    with ServeProcess("asgi_app:app", "--workers", "2", "--port", "0", "--http", http) as proc:
        proc.wait_serving()
        assert len(_ids(proc, 2)) == 2
        assert proc.stop() == 0
    # lifespan ran once per worker, start-up and shutdown
    assert len(proc.wait_for(r"lifespan startup \d+", count=2)) == 2
    assert len(proc.wait_for(r"lifespan shutdown \d+", count=2)) == 2
    assert proc.output.count("lifespan startup") == 2
    assert '"GET / HTTP/1.1" 200 OK' in proc.output  # uvicorn's access log, tagged
    assert "[worker 0]" in proc.output and "[worker 1]" in proc.output


@pytest.mark.skipif(
    getattr(sys, "_is_gil_enabled", lambda: True)(), reason="free-threaded builds only"
)
@pytest.mark.parametrize("http", ["auto", "h11"])
def test_serve_keeps_the_gil_disabled_on_a_free_threaded_build(http):
    """No module that serve, uvicorn or our HTTP protocol loads turns the GIL
    on (CPython would say so with a RuntimeWarning, for the whole process)."""
    with ServeProcess("asgi_app:app", "--workers", "2", "--port", "0", "--http", http) as proc:
        proc.wait_serving()
        for _ in range(20):
            assert proc.get("/gil") == (200, "disabled")
        assert proc.stop() == 0
    assert "global interpreter lock" not in proc.output.lower()


@unsafe_python
def test_reuse_port_gives_each_worker_its_socket():
    with ServeProcess("asgi_app:app", "--workers", "2", "--port", "0", "--reuse-port") as proc:
        proc.wait_serving()
        assert len(_ids(proc, 2)) == 2
        assert proc.stop() == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_crashed_worker_is_replaced(isolation):
    args = ("asgi_app:app", "--workers", "2", "--port", "0", "--isolation", isolation)
    with ServeProcess(*args) as proc:
        proc.wait_serving()
        before = _ids(proc, 2)
        _swallow(proc.get, "/crash", 10)  # the worker's loop stops after this request
        proc.wait_for(r"restarting worker \d")
        proc.wait_for(r"lifespan startup \d+", count=3)
        after = _ids(proc, 2)
        assert len(after) == 2 and after != before  # one new worker
        assert proc.stop() == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_a_stuck_worker_is_interrupted_and_replaced(isolation):
    args = ("asgi_app:app", "--workers", "2", "--port", "0", "--timeout-worker-healthcheck", "1.5",
            "--isolation", isolation)
    with ServeProcess(*args) as proc:
        proc.wait_serving()
        threading.Thread(target=lambda: _swallow(proc.get, "/block", 30), daemon=True).start()
        proc.wait_for(r"did not answer for .* interrupting and replacing it", timeout=30)
        proc.wait_for(r"lifespan startup \d+", count=3)
        # The interrupted worker's loop is free again: while asyncio.run tears
        # it down (cancelling its tasks, which runs the loop) it may still
        # answer a request or two. Then exactly two workers answer.
        deadline = time.monotonic() + 15
        while len(ids := _ids(proc, 2)) != 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(ids) == 2
        assert proc.stop() == 0


def _swallow(func, *args):
    try:
        func(*args)
    except OSError:
        pass


@unsafe_python
def test_a_handler_that_blocks_its_loop_for_8_s_is_answered():
    """A slow handler is not a dead worker: the default health-check timeout is 30 s."""
    with ServeProcess("asgi_app:app", "--workers", "1", "--port", "0") as proc:
        proc.wait_serving()
        status, body = proc.get("/sleep?8", timeout=30)
        assert status == 200 and body.startswith("v1 ")
        assert proc.stop() == 0
    assert "did not answer" not in proc.output


@unsafe_python
def test_django_sync_and_async_views(tmp_path: Path):
    """Django answers without an error per request (asgiref starts a daemon
    thread for each one: worker interpreters allow them)."""
    pytest.importorskip("django")
    env = {"SERVE_TEST_DJANGO_DB": str(tmp_path / "db.sqlite3")}
    with ServeProcess("django_app:app", "--workers", "2", "--port", "0", env=env) as proc:
        proc.wait_serving()
        hits = set()
        for n in range(30):
            status, body = proc.get("/sync" if n % 2 else "/async")
            assert status == 200, body
            reply = json.loads(body)
            assert reply["view"] == ("sync" if n % 2 else "async")
            hits.add(reply["hits"])
        assert hits == set(range(1, 31))  # one sqlite3 database, every request counted once
        assert proc.stop() == 0
    assert "ERROR" not in proc.output and "Traceback" not in proc.output, proc.output


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_sigterm_lets_the_request_in_flight_finish(isolation):
    args = ("asgi_app:app", "--workers", "2", "--port", "0", "--isolation", isolation)
    with ServeProcess(*args) as proc:
        proc.wait_serving()
        result: list[tuple[int, str]] = []
        client = threading.Thread(target=lambda: result.append(proc.get("/slow")))
        client.start()
        proc.wait_for(r"lifespan startup", count=2)
        time.sleep(0.5)  # let the request reach the app (it sleeps 1.5 s)
        proc.signal(signal.SIGTERM)
        client.join(30)
        assert result and result[0][0] == 200
        assert proc.wait() == 0
    assert "SIGTERM: shutting down" in proc.output


@unsafe_python
@pytest.mark.parametrize("http", ["auto", "h11"])
def test_second_signal_forces_the_stop_quietly(http):
    """The request in flight gets its connection closed, not a 500, and the log
    gets one line per worker, not tracebacks."""
    with ServeProcess("asgi_app:app", "--workers", "1", "--port", "0", "--http", http) as proc:
        proc.wait_serving()
        outcome: list[object] = []

        def slow_request() -> None:
            try:
                outcome.append(proc.get("/slow", timeout=30))
            except Exception as exc:  # the connection closed under the request
                outcome.append(exc)

        client = threading.Thread(target=slow_request, daemon=True)
        client.start()
        time.sleep(0.5)  # the request is in the app (it sleeps 1.5 s)
        proc.signal(signal.SIGINT)
        proc.wait_for("SIGINT: shutting down")
        proc.signal(signal.SIGINT)
        assert proc.wait() == 0
        client.join(30)
    assert "SIGINT again: stopping at once" in proc.output
    assert outcome and isinstance(outcome[0], (ConnectionError, http_client.HTTPException))
    assert proc.output.count("Forced stop: closed 1 connection(s)") == 1
    assert "Traceback" not in proc.output and "ERROR" not in proc.output
    assert "lifespan' protocol appears unsupported" not in proc.output


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_sighup_reloads_changed_code_without_refusing_a_connection(tmp_path: Path, isolation):
    shutil.copy(APPS / "asgi_app.py", tmp_path / "asgi_app.py")
    args = ("asgi_app:app", "--workers", "2", "--port", "0", "--isolation", isolation)
    with ServeProcess(*args, app_dir=tmp_path) as proc:
        proc.wait_serving()
        assert proc.get()[1].startswith("v1")
        source = (tmp_path / "asgi_app.py").read_text()
        (tmp_path / "asgi_app.py").write_text(source.replace('VERSION = "v1"', 'VERSION = "v2"'))
        failures: list[BaseException] = []
        bodies: list[str] = []
        done = threading.Event()

        def load() -> None:
            while not done.is_set():
                try:
                    bodies.append(proc.get(timeout=10)[1])
                except BaseException as exc:
                    failures.append(exc)

        client = threading.Thread(target=load)
        client.start()
        proc.signal(signal.SIGHUP)
        proc.wait_for("reload done", timeout=60)
        done.set()
        client.join(30)
        assert not failures, failures
        assert proc.get()[1].startswith("v2")
        assert proc.get()[1].startswith("v2")
        assert bodies
        assert proc.stop() == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_sigttin_and_sigttou_scale(isolation):
    args = ("asgi_app:app", "--workers", "1", "--port", "0", "--isolation", isolation)
    with ServeProcess(*args) as proc:
        proc.wait_serving()
        proc.signal(signal.SIGTTIN)
        proc.wait_for("Adding worker 1")
        proc.wait_for(r"lifespan startup", count=2)
        assert len(_ids(proc, 2)) == 2
        proc.signal(signal.SIGTTOU)
        proc.wait_for("Removing worker 1")
        proc.wait_for(r"lifespan shutdown", count=1)
        assert proc.stop() == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_limit_max_requests_replaces_the_worker(isolation):
    args = ("asgi_app:app", "--workers", "1", "--port", "0", "--limit-max-requests", "3",
            "--isolation", isolation)
    with ServeProcess(*args) as proc:
        proc.wait_serving()
        ids = set()
        for _ in range(100):  # uvicorn checks the limit ten times a second
            try:
                ids.add(proc.get()[1].split()[1])
            except OSError:
                pass  # a connection that raced the worker's hand-over
            if len(ids) >= 2:
                break
            time.sleep(0.05)
        proc.wait_for("limit-max-requests")
        assert len(ids) >= 2
        assert proc.stop() == 0


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_plain_asyncio_app(isolation):
    args = ("asyncio_app:main", "--workers", "2", "--port", "0", "--isolation", isolation)
    with ServeProcess(*args) as proc:
        match = proc.wait_for(r"serving \S+ on http://127\.0\.0\.1:(\d+)")[0]
        port = int(match.group(1))
        proc.wait_for(r"asyncio worker \d of 2 up", count=2)

        def request(line: bytes) -> str:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
                conn.sendall(line)
                reply = conn.makefile().readline()
            index, _, rest = reply.partition(":")
            assert rest == line.decode()
            return index

        # Both workers accept on one shared socket, and on an idle machine the
        # kernel may hand every connection to the same one. So: whichever worker
        # takes "hold" stalls its loop for a second, and only the other one can
        # answer the next connection.
        held = request(b"hold\n")
        assert {held, request(b"ping\n")} == {"0", "1"}
        assert proc.stop() == 0
    assert proc.output.count("done") == 2


@unsafe_python
def test_env_file(tmp_path: Path):
    env = tmp_path / ".env"
    env.write_text("# greeting\nexport SERVE_TEST_GREETING='hello there'\n")
    with ServeProcess("asgi_app:app", "--port", "0", "--workers", "1", "--env-file", str(env)) as p:
        p.wait_serving()
        assert p.get("/env") == (200, "hello there")
        assert p.stop() == 0


# --- errors -------------------------------------------------------------------


@unsafe_python
def test_app_that_does_not_import_exits_1_with_its_traceback():
    with ServeProcess("broken_app:app", "--port", "0") as proc:
        assert proc.wait() == 1
    assert "error loading app 'broken_app:app'" in proc.output
    assert "this_module_does_not_exist" in proc.output
    assert "Traceback" in proc.output
    assert "restarting" not in proc.output


@unsafe_python
def test_missing_attribute():
    with ServeProcess("asgi_app:nope", "--port", "0") as proc:
        assert proc.wait() == 1
    assert "has no attribute 'nope'" in proc.output


@unsafe_python
def test_extension_refused_in_subinterpreters_is_named():
    args = ("refused_app:app", "--port", "0", "--workers", "2", "--isolation", "interpreters")
    with ServeProcess(*args) as proc:
        assert proc.wait() == 3
    assert "imports _testsinglephase" in proc.output
    assert "cannot be loaded in a subinterpreter" in proc.output
    assert "restarting" not in proc.output


def test_auto_serves_an_app_that_subinterpreters_refuse_elsewhere():
    """``_testsinglephase`` refuses subinterpreters (it supports free threading):
    auto picks threads on a free-threaded build, processes elsewhere, and says why."""
    mode = "threads" if FREE_THREADED else "processes"
    with ServeProcess("refused_app:app", "--port", "0", "--workers", "2") as proc:
        proc.wait_serving()
        line = proc.wait_for(rf"isolation: {mode} \(.*\)")[0].group(0)
        if needs_safe_asyncio:  # no probe: subinterpreters are out on that CPython
            assert "119213" in line
        else:
            assert "_testsinglephase cannot be loaded in a subinterpreter" in line
        assert proc.wait_for(rf"serving refused_app:app .* with 2 workers \({mode} ")
        pids = {int(proc.get("/")[1].split()[1]) for _ in range(40)}
        if mode == "threads":
            assert pids == {proc.proc.pid}  # answered by threads of the one process
        else:
            assert proc.proc.pid not in pids
        assert proc.stop() == 0


@unsafe_python
def test_auto_keeps_subinterpreters_for_an_app_that_allows_them():
    with ServeProcess("asgi_app:app", "--port", "0", "--workers", "2") as proc:
        proc.wait_serving()
        line = proc.wait_for(r"isolation: interpreters \(.*\)")[0].group(0)
        assert "asgi_app:app imports in a subinterpreter" in line
        assert len(_ids(proc, 2)) == 2
        assert proc.stop() == 0


def test_fastapi_pydantic_sqlalchemy_app_by_default(tmp_path: Path):
    """FastAPI + pydantic + SQLAlchemy's asyncio ORM on aiosqlite, 2 workers,
    default options: pydantic-core refuses subinterpreters, so a free-threaded
    build answers from two threads of one process, any other from two processes."""
    for package in ("fastapi", "sqlalchemy", "aiosqlite"):
        pytest.importorskip(package, reason=f"{package} is not installed (no wheel here?)")
    mode = "threads" if FREE_THREADED else "processes"
    env = {"SERVE_TEST_DB": str(tmp_path / "items.sqlite3")}
    with ServeProcess("fastapi_app:app", "--workers", "2", "--port", "0", env=env) as proc:
        proc.wait_serving()
        line = proc.wait_for(rf"isolation: {mode} \(.*\)")[0].group(0)
        if needs_safe_asyncio:  # no probe: subinterpreters are out on that CPython
            assert "119213" in line
        else:
            assert "pydantic_core" in line and "cannot be loaded in a subinterpreter" in line
        for n in range(10):
            conn = http_client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
            body = json.dumps({"name": f"item {n}", "price": n + 0.5})
            conn.request("POST", "/items", body, {"content-type": "application/json"})
            reply = conn.getresponse()
            assert reply.status == 200, reply.read()
            assert json.loads(reply.read())["name"] == f"item {n}"
            conn.close()
        status, body = proc.get("/items")
        assert status == 200 and [item["price"] for item in json.loads(body)] == [
            n + 0.5 for n in range(10)
        ]
        conn = http_client.HTTPConnection("127.0.0.1", proc.port, timeout=30)
        conn.request("POST", "/items", "{}", {"content-type": "application/json"})
        assert conn.getresponse().status == 422  # pydantic's validation error
        conn.close()
        answers = {tuple(json.loads(proc.get("/whoami")[1]).values()) for _ in range(60)}
        pids = {pid for pid, _ in answers}
        if mode == "threads":
            assert pids == {proc.proc.pid}
        else:
            assert proc.proc.pid not in pids
        assert proc.stop() == 0
    assert "Traceback" not in proc.output, proc.output


@unsafe_python
def test_a_module_the_app_silently_does_without_is_named_at_start_up():
    """An optional speed-up refused in subinterpreters (websockets', Falcon's):
    the app runs there without it, and serve says so once, at start-up."""
    with ServeProcess("fallback_app:app", "--port", "0", "--workers", "1") as proc:
        proc.wait_serving()
        assert proc.wait_for(r"isolation: interpreters \(fallback_app:app imports")
        warning = proc.wait_for(r"WARNING: .*_testsinglephase cannot be loaded.*")[0].group(0)
        assert "runs without it" in warning and "--isolation threads or processes" in warning
        assert proc.get("/") == (200, "fallback")
        assert proc.stop() == 0


@pytest.mark.skipif(FREE_THREADED, reason="builds with a GIL only")
def test_threads_need_a_free_threaded_build():
    with ServeProcess("asgi_app:app", "--port", "0", "--isolation", "threads") as proc:
        assert proc.wait() == 1
    assert "--isolation threads needs a free-threaded Python" in proc.output


@unsafe_python
def test_lifespan_startup_failure_exits_3_without_restarts():
    env = {"SERVE_TEST_FAIL_STARTUP": "1"}
    with ServeProcess("asgi_app:app", "--port", "0", "--workers", "2", env=env) as proc:
        assert proc.wait() == 3
    assert "no database" in proc.output
    assert "restarting" not in proc.output


@unsafe_python
def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with ServeProcess("asgi_app:app", "--port", str(port)) as proc:
            assert proc.wait() == 1
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in proc.output


@unsafe_python
def test_a_worker_that_crashes_at_every_start_gives_up(tmp_path: Path):
    script = tmp_path / "run.py"
    script.write_text(
        "import sys\n"
        "from interpreters_aio import serve\n"
        f"sys.path.insert(0, {str(APPS)!r})\n"
        "try:\n"
        "    serve.run('asyncio_app:crash', workers=1, max_restarts=2, restart_window=60)\n"
        "except serve.ServeError as exc:\n"
        "    print('ServeError', exc.exit_code, exc)\n"
    )
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=str(APPS)
    )
    output = proc.stdout + proc.stderr
    assert "crashes at every start" in output
    assert output.count("restarting worker 0") == 2
    assert "giving up" in output
    assert "ServeError 1 the workers kept failing" in output


@pytest.mark.skipif(not needs_safe_asyncio, reason="only CPython 3.12.0-3.12.3 are refused")
def test_old_312_serves_from_processes_and_refuses_interpreters():
    args = ("asgi_app:app", "--port", "0", "--isolation", "interpreters")
    with ServeProcess(*args) as proc:
        assert proc.wait() == 1
    assert "serve needs CPython 3.12.4 or newer for --isolation interpreters" in proc.output
    assert "119213" in proc.output
    with ServeProcess("asgi_app:app", "--port", "0", "--workers", "2") as proc:
        proc.wait_serving()
        assert "119213" in proc.wait_for(r"isolation: processes \(.*\)")[0].group(0)
        assert proc.get("/")[0] == 200
        assert proc.stop() == 0


def test_cli_version_and_help():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "interpreters_aio", "serve", "--version"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith("interpreters-aio ")
    # the console script of the same name, installed beside this Python
    script = Path(sys.executable).with_name("interpreters-aio")
    assert script.exists()
    out = subprocess.run([str(script), "serve", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("interpreters-aio ")
    out = subprocess.run(
        [sys.executable, "-m", "interpreters_aio", "serve", "--help"],
        capture_output=True, text=True, timeout=60,
    )
    for option in ("--workers", "--host", "--port", "--uds", "--reuse-port", "--log-level",
                   "--no-access-log", "--timeout-graceful-shutdown", "--limit-max-requests",
                   "--app-dir", "--factory", "--env-file"):
        assert option in out.stdout


def test_config_errors():
    with pytest.raises(ConfigError, match="module:attribute"):
        ServeConfig(app="nocolon")
    with pytest.raises(ConfigError, match="at least one worker"):
        ServeConfig(app="a:b", workers=0)
    with pytest.raises(ConfigError, match="exclusive"):
        ServeConfig(app="a:b", uds="/tmp/x.sock", port=1)
    with pytest.raises(ConfigError, match="not a TCP port"):
        ServeConfig(app="a:b", port=70000)


def test_env_file_parsing(tmp_path: Path):
    path = tmp_path / "e"
    path.write_text('A=1\n\n# c\nexport B="two words"\nC=x # comment\n')
    assert read_env_file(str(path)) == {"A": "1", "B": "two words", "C": "x"}
    path.write_text("not a pair\n")
    with pytest.raises(ConfigError, match="line 1"):
        read_env_file(str(path))
    with pytest.raises(ConfigError, match="--env-file"):
        read_env_file(str(tmp_path / "missing"))


def test_web_concurrency(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert serve.config.default_workers() == 3
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(ConfigError):
        serve.config.default_workers()


# --- the Python API, in this process ------------------------------------------


@unsafe_python
async def test_async_api_messages_both_ways(monkeypatch):
    monkeypatch.syspath_prepend(str(APPS))
    sup = serve.prepare("asyncio_app:echo_inbox", workers=2, app_dir=str(APPS))
    runner = asyncio.ensure_future(sup.run())
    try:
        await asyncio.wait_for(sup.wait_ready(), 60)
        ups = {await asyncio.wait_for(sup.recv(), 30) for _ in range(2)}
        assert ups == {(0, ("up", 0)), (1, ("up", 1))}
        sup.send(1, "hello")
        assert await asyncio.wait_for(sup.recv(), 30) == (1, ("echo", 1, "hello"))
        sup.broadcast("bye")
        echoes = {await asyncio.wait_for(sup.recv(), 30) for _ in range(2)}
        assert echoes == {(0, ("echo", 0, "bye")), (1, ("echo", 1, "bye"))}
        # both mains returned: the supervisor stops by itself
        assert await asyncio.wait_for(runner, 60) == 0
    finally:
        if not runner.done():
            sup.stop(force=True)
            await asyncio.wait_for(runner, 60)
    assert os.environ  # nothing above changed the process's environment


def test_unix_socket(tmp_path: Path):
    if needs_safe_asyncio:
        pytest.skip("serve refuses CPython 3.12.0-3.12.3")
    path = tmp_path / "s.sock"
    with ServeProcess("asgi_app:app", "--uds", str(path), "--workers", "1") as proc:
        proc.wait_for("serving asgi_app:app on unix socket")
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(10)
            conn.connect(str(path))
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200")
        assert proc.stop() == 0
    assert not path.exists()


@unsafe_python
def test_serves_the_starlette_example():
    examples = Path(__file__).resolve().parent.parent / "examples"
    with ServeProcess("starlette_app:app", "--workers", "2", "--port", "0", app_dir=examples) as p:
        p.wait_serving()
        assert p.wait_for(r"isolation: interpreters \(starlette_app:app imports in a subinterp")
        seen = set()
        for _ in range(300):
            status, body = p.get("/")
            assert status == 200 and body.startswith("hello from interpreter ")
            seen.add(body.split()[3])
            if len(seen) == 2:
                break
        assert len(seen) == 2
        status, body = p.get("/primes/100000")
        assert status == 200 and '"primes":9592' in body
        assert p.get("/missing")[0] == 404
        assert p.stop() == 0
    assert p.output.count(": starting") == 2 and p.output.count(": stopping after") == 2


@unsafe_python
def test_factory_and_ipv6():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no ::1 here")
    args = ("asgi_app:create_app", "--factory", "--host", "::1", "--port", "0", "--workers", "1")
    with ServeProcess(*args) as proc:
        port = int(proc.wait_for(r"serving \S+ on http://\[::1\]:(\d+)")[0].group(1))
        import http.client

        conn = http.client.HTTPConnection("::1", port, timeout=10)
        conn.request("GET", "/")
        response = conn.getresponse()
        assert response.status == 200 and response.read().startswith(b"v1 ")
        conn.close()
        assert proc.stop() == 0


@unsafe_python
async def test_cancelling_serve_stops_the_workers(monkeypatch):
    from interpreters_aio import list_all

    monkeypatch.syspath_prepend(str(APPS))
    before = len(list_all())
    sup = serve.prepare("asyncio_app:main", workers=2, port=0, app_dir=str(APPS))
    runner = asyncio.ensure_future(sup.run())
    await asyncio.wait_for(sup.wait_ready(), 60)
    assert len(sup.workers) == 2
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, 60)
    assert len(list_all()) == before  # every worker interpreter closed
