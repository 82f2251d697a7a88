"""dask.distributed workers that run tasks in subinterpreters: the three ways
in (an executor given to LocalCluster, the worker plugin, `dask worker
--preload interpreters_aio.dask`), with real clusters and real scheduler and
worker processes on 127.0.0.1. Skipped where distributed is not installed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("dask")
pytest.importorskip("distributed", reason="distributed is not installed")
pytest.importorskip("cloudpickle")
if sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4):
    pytest.skip(
        "CPython 3.12.0-3.12.3 abort at exit once a subinterpreter created a pickle.Pickler "
        "subclass (cloudpickle's), gh-119213",
        allow_module_level=True,
    )

# Imported first in the main interpreter (the import-order rule, see docs/dask.md).
import dask
import distributed_tasks as tasks
from distributed import Client, LocalCluster

import interpreters_aio as interpreters
from interpreters_aio.dask import (
    InterpretersPlugin,
    InterpreterTaskExecutor,
    ProfilerEnabledError,
    UnsupportedDistributedVersion,
)

PROFILER_OFF = {"distributed.worker.profile.enabled": False}
TESTS_DIR = str(Path(__file__).parent)


@pytest.fixture(autouse=True)
def profiler_off():
    with dask.config.set(PROFILER_OFF):
        yield


def _local_cluster(*, processes: bool = False, **kwargs) -> LocalCluster:
    if processes:
        kwargs["host"] = "127.0.0.1"  # in-process clusters use the inproc transport
    return LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=processes,
        dashboard_address=None,
        **kwargs,
    )


def _pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if "Dask-Interpreters" in t.name]


def test_executor_on_local_cluster_runs_annotated_tasks_in_subinterpreters():
    before = {i.id for i in interpreters.list_all()}
    with (
        _local_cluster(executor={"interpreters": InterpreterTaskExecutor(2)}) as cluster,
        Client(cluster) as client,
    ):
        with dask.annotate(executor="interpreters"):
            futures = client.map(tasks.where, range(8))
        on_threads = client.map(tasks.where, range(8, 10))
        results = client.gather(futures)
        assert [square for _, square in results] == [i * i for i in range(8)]
        assert all(where != 0 for where, _ in results)
        assert {where for where, _ in client.gather(on_threads)} == {0}
        with dask.annotate(executor="interpreters"):
            counts = [client.submit(tasks.count_primes, n) for n in (100, 200)]
        dependent = client.submit(sum, counts)
        assert dependent.result(timeout=30) == 25 + 46
    # Closing the cluster shut the executor down: its interpreters and threads are gone.
    assert {i.id for i in interpreters.list_all()} == before
    assert _pool_threads() == []


def test_task_exception_carries_type_message_and_remote_traceback():
    with (
        _local_cluster(executor={"interpreters": InterpreterTaskExecutor(2)}) as cluster,
        Client(cluster) as client,
    ):
        with dask.annotate(executor="interpreters"):
            failing = client.submit(tasks.lookup, "absent")
            fine = client.submit(tasks.lookup, "present")
        with pytest.raises(KeyError, match="absent") as info:
            failing.result(timeout=30)
        assert fine.result(timeout=30) == 1
        frames = [frame.name for frame in info.traceback]
        assert "lookup" in frames
        assert "table[key]" in "".join(__import__("traceback").format_tb(failing.traceback()))


def test_lambda_and_closure_from_the_test_cross_by_value():
    offset = 7
    with (
        _local_cluster(executor={"interpreters": InterpreterTaskExecutor(2)}) as cluster,
        Client(cluster) as client,
    ):
        with dask.annotate(executor="interpreters"):
            futures = client.map(lambda x: (interpreters.get_current().id, x + offset), range(4))
        results = client.gather(futures)
    assert [value for _, value in results] == [7, 8, 9, 10]
    assert all(where != 0 for where, _ in results)


def test_plugin_installs_and_removes_the_executor():
    with _local_cluster() as cluster, Client(cluster) as client:
        client.register_plugin(InterpretersPlugin(2))
        with dask.annotate(executor="interpreters"):
            results = client.gather(client.map(tasks.where, range(6)))
        assert all(where != 0 for where, _ in results)
        client.unregister_worker_plugin(InterpretersPlugin.name)
        assert _pool_threads() == []
        with dask.annotate(executor="interpreters"):
            orphan = client.submit(tasks.where, 1)
        with pytest.raises(ValueError, match="Invalid executor"):
            orphan.result(timeout=30)


def test_refuses_to_start_while_the_profiler_is_on():
    with dask.config.set({"distributed.worker.profile.enabled": True}):
        with pytest.raises(ProfilerEnabledError, match=r"distributed\.worker\.profile\.enabled"):
            InterpreterTaskExecutor(1)
    assert _pool_threads() == []


def test_unknown_distributed_version_fails_clearly(monkeypatch):
    import distributed

    monkeypatch.setattr(distributed, "__version__", "2099.1.0")
    with pytest.raises(UnsupportedDistributedVersion, match=r"2099\.1\.0"):
        InterpreterTaskExecutor(1)


def test_executor_pickles_to_worker_processes():
    with (
        _local_cluster(
            processes=True, executor={"interpreters": InterpreterTaskExecutor(2)}
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(sys.path.insert, 0, TESTS_DIR)
        with dask.annotate(executor="interpreters"):
            results = client.gather(client.map(tasks.where, range(4)))
        worker_pid = next(iter(client.run(os.getpid).values()))
    assert worker_pid != os.getpid()
    assert all(where != 0 for where, _ in results)
    _wait_gone(worker_pid)


def _wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"process {pid} still runs {timeout} s after shutdown")


def _dask_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "distributed.cli.dask_" + args[0], *args[1:]]


@contextlib.contextmanager
def _dask_processes(tmp_path: Path, *, profile: bool, nthreads: int):
    """A ``dask scheduler`` and a ``dask worker --preload interpreters_aio.dask``
    on 127.0.0.1, both logging to one file; yields (scheduler, worker,
    scheduler_file, logs). Whatever still runs at the end is stopped."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {
        **os.environ,
        "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": str(profile),
        "PYTHONPATH": os.pathsep.join(filter(None, [TESTS_DIR, os.environ.get("PYTHONPATH")])),
    }
    logs = tmp_path / "logs.txt"
    with open(logs, "w") as log:
        scheduler = subprocess.Popen(
            _dask_command(
                "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                "--scheduler-file", str(scheduler_file),
            ),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker = None
        try:
            deadline = time.monotonic() + 60
            while not scheduler_file.exists():
                assert scheduler.poll() is None, logs.read_text()
                assert time.monotonic() < deadline, logs.read_text()
                time.sleep(0.1)
            worker = subprocess.Popen(
                _dask_command(
                    "worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                    "--nthreads", str(nthreads), "--no-dashboard",
                    "--preload", "interpreters_aio.dask",
                ),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            yield scheduler, worker, scheduler_file, logs
        finally:
            for proc in (worker, scheduler):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=30)


def test_dask_worker_preload_with_real_processes_and_restart(tmp_path):
    with _dask_processes(tmp_path, profile=False, nthreads=2) as (
        scheduler, worker, scheduler_file, logs
    ):
        with Client(scheduler_file=str(scheduler_file), timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            with dask.annotate(executor="interpreters"):
                results = client.gather(client.map(tasks.where, range(6)))
                failing = client.submit(tasks.lookup, "absent")
            assert [square for _, square in results] == [i * i for i in range(6)]
            assert all(where != 0 for where, _ in results)
            with pytest.raises(KeyError, match="absent") as info:
                failing.result(timeout=30)
            assert "lookup" in [frame.name for frame in info.traceback]
            old_pids = set(client.run(os.getpid).values())

            client.restart(timeout=60)
            client.wait_for_workers(1, timeout=60)
            new_pids = set(client.run(os.getpid).values())
            assert new_pids.isdisjoint(old_pids)
            with dask.annotate(executor="interpreters"):
                again = client.gather(client.map(tasks.where, range(4), pure=False))
            assert all(where != 0 for where, _ in again)
            client.shutdown()
        assert scheduler.wait(timeout=60) == 0, logs.read_text()
        assert worker.wait(timeout=60) == 0, logs.read_text()
        for pid in old_pids | new_pids:
            _wait_gone(pid)
    text = logs.read_text()
    assert "Fatal Python error" not in text and "Segmentation fault" not in text, text


def test_dask_worker_preload_stops_the_worker_when_setup_fails(tmp_path):
    # With the profiler on, the executor cannot start: the worker (and its
    # nanny) must stop, saying why, not run on without the executor.
    with _dask_processes(tmp_path, profile=True, nthreads=1) as (_, worker, _, logs):
        worker.wait(timeout=60)  # it stops by itself
    text = logs.read_text()
    assert "interpreters_aio.dask preload failed: ProfilerEnabledError" in text, text
    assert "stopping worker" in text, text
    assert "Fatal Python error" not in text and "Segmentation fault" not in text, text
