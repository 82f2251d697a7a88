"""``serve --reload``: a change to the watched files rolls the workers over (real HTTP
over 127.0.0.1, the command in a child process), with watchfiles and with the
polling watcher; and the watcher's pieces (interpreters_aio/serve/reload.py)."""

from __future__ import annotations

import asyncio
import http.client
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
from serve_helpers import ServeProcess, needs_safe_asyncio

from interpreters_aio import serve
from interpreters_aio.serve import reload
from interpreters_aio.serve.config import ConfigError, ServeConfig

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(needs_safe_asyncio, reason="serve runs no subinterpreter on 3.12.0-3.12.3"),
]

try:
    import watchfiles  # noqa: F401

    HAVE_WATCHFILES = True
except ImportError:
    HAVE_WATCHFILES = False

#: Each backend as the child sees it: watchfiles when installed, and polling
#: forced by the environment variable (what a Python without watchfiles gets).
BACKENDS = [
    pytest.param(
        "watchfiles",
        marks=pytest.mark.skipif(not HAVE_WATCHFILES, reason="watchfiles is not installed"),
    ),
    "polling",
]

APP = '''\
VERSION = "{version}"


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({{"type": message["type"] + ".complete"}})
            if message["type"] == "lifespan.shutdown":
                return
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
'''

#: Where else workers run: processes, and threads on a free-threaded build.
OTHER_ISOLATIONS = ["processes", *(["threads"] if sysconfig.get_config_var("Py_GIL_DISABLED")
                                   else [])]

READY = r"Will watch for changes in these directories: \[.*\] \((\w+)"
DETECTED = "detected changes in"


def _write_app(folder: Path, version: str) -> None:
    # Versions differ in length: a .pyc is reused when size and mtime (in whole
    # seconds) of its source are unchanged.
    (folder / "reload_app.py").write_text(APP.format(version=version))


def _env(backend: str) -> dict[str, str]:
    return {reload.POLLING_ENV: "1" if backend == "polling" else "0"}


def _serve(folder: Path, backend: str, *args: str, workers: int = 2) -> ServeProcess:
    return ServeProcess(
        "reload_app:app", "--workers", str(workers), "--port", "0", "--reload",
        "--reload-dir", str(folder), *args, app_dir=folder, env=_env(backend),
    )


def _started(proc: ServeProcess, backend: str) -> None:
    proc.wait_serving()
    assert proc.wait_for(READY, timeout=30)[0].group(1) == backend
    time.sleep(0.2)  # watchfiles: its first batch said the watch was set up


class Load:
    """A client thread asking GET / in a loop, a few ms apart (bounded in count and time)."""

    def __init__(self, proc: ServeProcess, limit: int = 10_000, seconds: float = 40) -> None:
        self.proc = proc
        self.bodies: list[str] = []
        self.failures: list[BaseException] = []
        self._done = threading.Event()
        self._limit, self._deadline = limit, time.monotonic() + seconds
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (not self._done.is_set() and len(self.bodies) + len(self.failures) < self._limit
               and time.monotonic() < self._deadline):
            try:
                self.bodies.append(self.proc.get(timeout=10)[1])
            except BaseException as exc:
                self.failures.append(exc)
            time.sleep(0.003)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(30)

    @property
    def exhausted(self) -> bool:
        """Whether the loop ended on its bounds rather than on :meth:`stop`."""
        return len(self.bodies) + len(self.failures) >= self._limit or (
            time.monotonic() >= self._deadline)


def _runs(bodies: list[str]) -> list[tuple[str, int]]:
    """``bodies`` as (body, how many in a row)."""
    runs: list[tuple[str, int]] = []
    for body in bodies:
        if runs and runs[-1][0] == body:
            runs[-1] = (body, runs[-1][1] + 1)
        else:
            runs.append((body, 1))
    return runs


def _reloads(proc: ServeProcess) -> int:
    return proc.output.count(DETECTED)


def _get(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_edit_rolls_the_workers_over_without_a_failed_request(tmp_path: Path, backend):
    _write_app(tmp_path, "v1")
    with _serve(tmp_path, backend) as proc:
        _started(proc, backend)
        assert proc.get() == (200, "v1")
        load = Load(proc)
        time.sleep(0.3)
        _write_app(tmp_path, "v22")
        proc.wait_for("reload done", timeout=30)
        time.sleep(0.2)
        load.stop()
        assert not load.failures, load.failures
        assert not load.exhausted
        assert load.bodies[-1] == "v22" and "v1" in load.bodies, (
            _runs(load.bodies), proc.output)
        assert set(load.bodies) == {"v1", "v22"}
        assert proc.get() == (200, "v22")
        assert _reloads(proc) == 1
        assert "detected changes in 'reload_app.py'. Reloading..." in proc.output
        assert proc.stop() == 0
    assert "Traceback" not in proc.output


@pytest.mark.parametrize("isolation", OTHER_ISOLATIONS)
def test_reload_in_other_isolation_modes(tmp_path: Path, isolation):
    _write_app(tmp_path, "v1")
    with _serve(tmp_path, "polling", "--isolation", isolation) as proc:
        _started(proc, "polling")
        load = Load(proc)
        _write_app(tmp_path, "v22")
        proc.wait_for("reload done", timeout=60)
        load.stop()
        assert not load.failures, load.failures
        assert proc.get() == (200, "v22")
        assert proc.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_broken_edit_keeps_the_old_workers_and_a_fix_recovers(tmp_path: Path, backend):
    _write_app(tmp_path, "v1")
    with _serve(tmp_path, backend) as proc:
        _started(proc, backend)
        load = Load(proc)
        (tmp_path / "reload_app.py").write_text("def broken(:\n")
        proc.wait_for("reload stopped: the new worker 0 did not start", timeout=30)
        assert "SyntaxError" in proc.output  # the error is logged, with where it is
        assert proc.get() == (200, "v1")  # the old workers serve on
        _write_app(tmp_path, "v333")
        proc.wait_for("reload done", timeout=30)
        load.stop()
        assert not load.failures, load.failures
        assert proc.get() == (200, "v333")
        assert proc.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_burst_of_changes_gives_one_restart(tmp_path: Path, backend):
    _write_app(tmp_path, "v1")
    with _serve(tmp_path, backend, workers=1) as proc:
        _started(proc, backend)
        for i in range(8):  # 8 files over about 0.15 s, under --reload-delay's 0.25
            (tmp_path / f"mod{i}.py").write_text(f"X = {i}\n")
            time.sleep(0.02)
        _write_app(tmp_path, "v22")
        proc.wait_for("reload done", timeout=30)
        time.sleep(1.0)
        assert _reloads(proc) == 1, proc.output
        assert "'mod0.py'" in proc.output and "and 4 more" in proc.output
        assert proc.get() == (200, "v22")
        assert proc.stop() == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_include_and_exclude_patterns(tmp_path: Path, backend):
    _write_app(tmp_path, "v1")
    (tmp_path / "templates").mkdir()
    (tmp_path / "generated").mkdir()
    venv = tmp_path / "env"  # a virtual environment below the watched folder
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr\n")
    args = ("--reload-include", "*.html", "--reload-exclude", "scratch_*.py",
            "--reload-exclude", "generated")
    with _serve(tmp_path, backend, *args, workers=1) as proc:
        _started(proc, backend)
        quiet = [
            tmp_path / "scratch_1.py",  # --reload-exclude pattern
            tmp_path / "generated" / "models.py",  # --reload-exclude folder
            venv / "lib" / "installed.py",  # a venv is not watched
            tmp_path / "notes.txt",  # not included
            tmp_path / ".hidden.py",  # default exclude .*
            tmp_path / "templates" / "page.htm",
        ]
        for path in quiet:
            path.write_text("x = 1\n")
        time.sleep(1.5)
        assert _reloads(proc) == 0, proc.output
        (tmp_path / "templates" / "page.html").write_text("<p>hi</p>\n")
        proc.wait_for("reload done", timeout=30)
        assert "detected changes in 'templates/page.html'" in proc.output
        (tmp_path / "new_pkg").mkdir()  # a new folder is watched too
        time.sleep(0.5)
        (tmp_path / "new_pkg" / "mod.py").write_text("y = 2\n")
        proc.wait_for("reload done", timeout=30, count=2)
        assert "'new_pkg/mod.py'" in proc.output
        assert _reloads(proc) == 2
        proc.signal(signal.SIGINT)  # Ctrl-C: the watcher stops with the server
        assert proc.wait(30) == 0
    assert "did not stop" not in proc.output


def test_reload_options_without_reload_warn_and_watch_nothing(tmp_path: Path):
    _write_app(tmp_path, "v1")
    args = ("reload_app:app", "--workers", "1", "--port", "0", "--reload-dir", str(tmp_path))
    with ServeProcess(*args, app_dir=tmp_path) as proc:
        proc.wait_serving()
        _write_app(tmp_path, "v22")
        time.sleep(1.0)
        assert proc.get() == (200, "v1")
        assert proc.stop() == 0
    assert "do nothing without --reload" in proc.output
    assert "Will watch" not in proc.output


def test_reload_dir_must_exist(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "interpreters_aio", "serve", "reload_app:app", "--reload",
         "--reload-dir", str(tmp_path / "missing")],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "is not a directory" in out.stderr


# --- the pieces, in this process ----------------------------------------------


def test_config_takes_a_string_or_a_list_as_uvicorn():
    config = ServeConfig("m:app", reload=True, reload_dirs="src", reload_includes=["*.html"])
    assert config.reload_dirs == ("src",)
    assert config.reload_includes == ("*.html",)
    assert config.reload_excludes == ()
    assert config.reload_delay == 0.25
    assert ServeConfig.from_wire(config.to_wire()) == config
    with pytest.raises(ConfigError):
        ServeConfig("m:app", reload_delay=-1)
    with pytest.raises(ConfigError):
        ServeConfig("m:app", reload_includes=[""])


def test_watchfiles_is_used_when_installed_unless_polling_is_asked(monkeypatch):
    monkeypatch.delenv(reload.POLLING_ENV, raising=False)
    assert reload.watchfiles_available() == HAVE_WATCHFILES
    monkeypatch.setenv(reload.POLLING_ENV, "1")
    assert not reload.watchfiles_available()


def test_file_filter_has_uvicorns_defaults(tmp_path: Path):
    f = reload.FileFilter(cwd=tmp_path)
    assert f(tmp_path / "app.py") and f(tmp_path / "pkg" / "mod.py")
    for name in ("app.pyc", ".app.py.swp", ".hidden.py", "~app.py", "notes.txt"):
        assert not f(tmp_path / name), name
    f = reload.FileFilter(["*.html"], ["*.py"], cwd=tmp_path)
    assert f(tmp_path / "t" / "a.html") and not f(tmp_path / "app.py")
    f = reload.FileFilter([".*"], [], cwd=tmp_path)  # an include takes a default exclude back
    assert f(tmp_path / ".env")


def test_plan_resolves_dirs_and_never_walks_into_a_venv(tmp_path: Path):
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / ".venv-x" / "lib").mkdir(parents=True)
    (tmp_path / ".venv-x" / "pyvenv.cfg").write_text("")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "build").mkdir()
    plan = reload.plan(cwd=tmp_path)
    assert plan.dirs == (tmp_path.resolve(),)
    walked = {Path(folder).relative_to(tmp_path.resolve()) for folder, _ in reload._walk(plan)}
    assert walked == {Path("."), Path("src"), Path("src/pkg"), Path("build")}
    # nested folders collapse into the outer one; an excluded folder leaves the list
    plan = reload.plan(["src", "src/pkg", "build"], [], ["build"], cwd=tmp_path)
    assert plan.dirs == ((tmp_path / "src").resolve(),)
    plan = reload.plan(["missing"], cwd=tmp_path)
    assert plan.dirs == (tmp_path.resolve(),) and len(plan.warnings) == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_watcher_reports_a_burst_once_and_stops_at_once(tmp_path: Path, backend,
                                                             monkeypatch):
    monkeypatch.setenv(reload.POLLING_ENV, "1" if backend == "polling" else "0")
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[str] = loop.create_future()
    batches: asyncio.Queue[list[str]] = asyncio.Queue()
    watcher = reload.Watcher(
        reload.plan([str(tmp_path)]), 0.25, loop, batches.put_nowait,
        on_ready=lambda how: ready.done() or ready.set_result(how),
        on_error=lambda message: pytest.fail(message),
    )
    assert watcher.backend == backend
    watcher.start()
    try:
        assert (await asyncio.wait_for(ready, 10)).split()[0] == backend
        await asyncio.sleep(0.2)
        for i in range(5):
            (tmp_path / f"m{i}.py").write_text("x = 1\n")
            await asyncio.sleep(0.03)
        batch = await asyncio.wait_for(batches.get(), 10)
        assert sorted(Path(p).name for p in batch) == [f"m{i}.py" for i in range(5)]
        await asyncio.sleep(0.8)
        assert batches.empty()
    finally:
        started = time.monotonic()
        assert watcher.stop()
        assert time.monotonic() - started < 1.0
    assert not any(t.name == "interpreters-aio reload watcher" for t in threading.enumerate())


async def test_python_api_takes_reload(tmp_path: Path, monkeypatch):
    _write_app(tmp_path, "v1")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(reload.POLLING_ENV, "1")
    sup = serve.prepare("reload_app:app", workers=1, port=0, app_dir=str(tmp_path),
                        reload=True, reload_dirs=str(tmp_path), reload_delay=0.1)
    assert sup.config.reload and sup.config.reload_dirs == (str(tmp_path),)
    runner = asyncio.ensure_future(sup.run())
    try:
        await asyncio.wait_for(sup.wait_ready(), 60)
        for _ in range(100):
            if sup._watcher is not None:
                break
            await asyncio.sleep(0.05)
        assert sup._watcher is not None and sup._watcher.delay == 0.1
        assert await asyncio.to_thread(_get, sup.port) == "v1"
        await asyncio.sleep(0.3)
        _write_app(tmp_path, "v22")
        deadline = time.monotonic() + 30
        while await asyncio.to_thread(_get, sup.port) != "v22":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        sup.stop(force=True)
        assert await asyncio.wait_for(runner, 60) == 0
    assert sup._watcher is None
    assert not any(t.name == "interpreters-aio reload watcher" for t in threading.enumerate())
