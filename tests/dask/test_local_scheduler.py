"""Dask's local scheduler on an InterpreterPoolExecutor: the documented one-liner.

`dask.config.set(scheduler=InterpreterPoolExecutor(n))` (or
`dask.compute(..., scheduler=pool)`) runs every task in one of the pool's
subinterpreters: dask's local scheduler accepts any `concurrent.futures`
executor. Skipped where dask is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# `dask` must be the real package (tests/dask/ is a plain directory, which
# Python would take for a namespace package named dask if none is installed).
dask = pytest.importorskip("dask")
pytest.importorskip("dask.delayed", reason="dask is not installed")
# Imported here first: CPython 3.13.0 crashes when a subinterpreter is first
# to import some extension modules (datetime, yaml, ...) that dask brings in.
import local_scheduler_tasks as tasks  # noqa: E402
from dask import delayed  # noqa: E402

import interpreters_aio as interpreters  # noqa: E402
from interpreters_aio import InterpreterPoolExecutor  # noqa: E402


@pytest.fixture(scope="module")
def pool():
    with InterpreterPoolExecutor(2, warm=True) as pool:
        yield pool


def test_config_set_runs_every_task_in_a_subinterpreter(pool):
    with dask.config.set(scheduler=pool):
        totals = dask.compute(*[delayed(tasks.add)(delayed(tasks.inc)(i), 10) for i in range(20)])
        where = dask.compute(*[delayed(tasks.interpreter_id)(i) for i in range(16)])
    assert list(totals) == [i + 11 for i in range(20)]
    assert 0 not in where and set(where) <= {i.id for i in interpreters.list_all()}


def test_scheduler_keyword_and_dependencies(pool):
    total = delayed(sum)([delayed(tasks.count_primes)(n) for n in (100, 200, 300)])
    assert total.compute(scheduler=pool) == 25 + 46 + 62
    (value,) = dask.compute(delayed(tasks.inc)(41), scheduler=pool)
    assert value == 42


def test_lambdas_and_closures_of_a_test_cross(pool):
    pytest.importorskip("cloudpickle")
    offset = 100
    shifted = [delayed(lambda x: x + offset)(i) for i in range(4)]
    assert dask.compute(*shifted, scheduler=pool) == (100, 101, 102, 103)


@pytest.mark.parametrize(
    ("kind", "error"), [("value", ValueError), ("key", KeyError), ("zero", ZeroDivisionError)]
)
def test_task_exception_reaches_the_caller_with_its_type_and_message(pool, kind, error):
    graph = delayed(tasks.inc)(delayed(tasks.fail)(kind, f"task says {kind}"))
    with pytest.raises(error, match=f"task says {kind}") as info:
        dask.compute(graph, scheduler=pool)
    failed = info.value.__cause__
    assert isinstance(failed, interpreters.ExecutionFailed)
    assert "in fail" in str(failed), "the remote traceback names the task's frame"
    assert dask.compute(delayed(tasks.inc)(1), scheduler=pool) == (2,), "the pool still works"


def bag_imports_in_a_subinterpreter() -> str | None:
    """Why `dask.bag` cannot run in a subinterpreter here, or None if it can."""
    try:
        import dask.bag  # noqa: F401  (in this interpreter first, see above)
    except ImportError as e:
        return f"dask.bag does not import: {e}"
    with interpreters.create() as interp:
        try:
            interp.exec("import dask.bag")
        except interpreters.ExecutionFailed as e:
            # The root cause is the first ImportError of the chain (on 3.12:
            # "module _ctypes does not support loading in subinterpreters").
            errors = [line for line in e.excinfo.formatted.splitlines() if "Error:" in line]
            return f"dask.bag does not import in a subinterpreter: {(errors or ['?'])[0]}"
    return None


def test_bag(pool):
    why = bag_imports_in_a_subinterpreter()
    if why:
        pytest.skip(why)
    import dask.bag as db

    bag = db.from_sequence(range(20), npartitions=4).map(tasks.inc).filter(lambda x: x % 2)
    assert bag.compute(scheduler=pool) == list(range(1, 21, 2))
    assert bag.sum().compute(scheduler=pool) == sum(range(1, 21, 2))


MAIN_SCRIPT = """
    import dask
    from dask import delayed
    import interpreters_aio as interpreters
    from interpreters_aio import InterpreterPoolExecutor

    SCALE = 3

    class Reading:
        def __init__(self, value):
            self.value = value

    class SensorError(Exception):
        pass

    def square(x):
        return x * x

    def scaled(reading):
        return Reading(reading.value * SCALE)

    def check(reading):
        if reading.value > 10:
            raise SensorError(f"reading {reading.value} too high")
        return reading.value

    def where(_):
        return interpreters.get_current().id

    if __name__ == "__main__":
        with InterpreterPoolExecutor(2) as pool, dask.config.set(scheduler=pool):
            print(dask.compute(*[delayed(square)(i) for i in range(5)]))
            made = dask.compute(delayed(scaled)(Reading(2)))[0]
            print(type(made) is Reading, made.value)
            print(dask.compute(*[delayed(lambda x, k=k: x + k)(1) for k in range(3)]))
            print(0 in dask.compute(*[delayed(where)(i) for i in range(6)]))
            try:
                dask.compute(delayed(check)(delayed(scaled)(Reading(5))))
            except SensorError as e:
                print("caught", type(e) is SensorError, e)
"""


def test_main_defined_functions_classes_and_exceptions(tmp_path):
    pytest.importorskip("cloudpickle")
    script = tmp_path / "dask_main.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "(0, 1, 4, 9, 16)",
        "True 6",
        "(1, 2, 3)",
        "False",
        "caught True reading 15 too high",
    ]
