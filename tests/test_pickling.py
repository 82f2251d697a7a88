"""Functions, closures and classes the standard pickle cannot send: by value with cloudpickle.

The by-value cases need cloudpickle (in the `test` and `dask` extras); the
messages given without it are checked in a subprocess whose `cloudpickle`
import fails. Code that must live in a real `__main__` runs as a script in a
subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from fractions import Fraction

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import InterpreterPoolExecutor, NotShareableError, aio

SCALE = 3  # a module global that nested functions below use


def make_adder(n):
    def add(x):
        return x + n

    return add


def make_scaler():
    def scale(x):
        return x * SCALE  # a global of this module, no closure

    return scale


def run_script(tmp_path, source: str, *, block_cloudpickle: bool = False, stdin: bool = False):
    """Runs `source` as a real `__main__` (a script file, or read from stdin:
    interactive, without `__file__`) in a fresh process; returns its stdout."""
    env = None
    if block_cloudpickle:
        # A `cloudpickle` package first on the path whose import fails, in the
        # main interpreter and in every subinterpreter (they copy sys.path).
        stub = tmp_path / "blocked" / "cloudpickle"
        stub.mkdir(parents=True)
        (stub / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
        env = {**os.environ, "PYTHONPATH": str(stub.parent)}
    source = textwrap.dedent(source)
    if stdin:
        argv, text = [sys.executable, "-"], source
    else:
        script = tmp_path / "main_script.py"
        script.write_text(source)
        argv, text = [sys.executable, str(script)], None
    done = subprocess.run(
        argv, input=text, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()


@pytest.fixture
def cloudpickle():
    return pytest.importorskip("cloudpickle")


def test_closure_crosses_by_value(interp, cloudpickle):
    assert interp.call(make_adder(5), 1) == 6
    assert interp.call(lambda f, x: f(x), make_adder(2), 40) == 42  # as an argument too
    back = interp.call(workloads.main_exec, "pass")  # the target still works normally
    assert back is None


def test_nested_function_using_module_globals_crosses_with_them(interp, cloudpickle):
    assert interp.call(make_scaler(), 14) == 42


def test_closure_result_comes_back_by_value(interp, cloudpickle):
    source = "def outer(k):\n    def inner(x):\n        return x * k\n    return inner\n"
    interp.exec(source)
    inner = interp.call(eval, "outer(7)")
    assert inner(6) == 42


def test_local_class_and_its_instances_cross(interp, cloudpickle):
    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y

        def total(self):
            return self.x + self.y

    assert interp.call(Point.total, Point(1, 2)) == 3
    made = interp.call(Point, 4, 5)
    assert type(made) is Point, "cloudpickle maps its own class back to the original"
    assert (made.x, made.y) == (4, 5)


def test_call_in_thread_executor_and_async_pool(interp, cloudpickle):
    add = make_adder(100)
    box = interpreters.create_queue()
    interp.call_in_thread(lambda q: q.put(add(1)), box).join(30)
    assert box.get(timeout=10) == 101
    with InterpreterPoolExecutor(2) as pool:
        assert pool.submit(add, 2).result(timeout=30) == 102
        assert list(pool.map(make_adder(1), range(4))) == [1, 2, 3, 4]


async def test_async_pool_sends_closures(cloudpickle):
    async with aio.InterpreterPool(2) as pool:
        assert await pool.call(make_adder(3), 4) == 7
        assert [r async for r in pool.map(make_adder(10), [1, 2])] == [11, 12]
    ai = await aio.create()
    try:
        assert await ai.call(make_adder(-1), 1) == 0
    finally:
        await ai.close()


def test_exception_of_a_closure_carries_its_traceback(interp, cloudpickle):
    def fails(x):
        raise ValueError(f"bad value {x}")

    with pytest.raises(interpreters.ExecutionFailed) as info:
        interp.call(fails, 7)
    assert info.value.excinfo.type.__name__ == "ValueError"
    assert "bad value 7" in info.value.excinfo.msg
    assert "in fails" in info.value.excinfo.formatted  # the frame of the function
    with InterpreterPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="bad value 8") as raised:
            pool.submit(fails, 8).result(timeout=30)
    assert isinstance(raised.value.__cause__, interpreters.ExecutionFailed)
    assert "in fails" in str(raised.value.__cause__)


def test_what_cloudpickle_cannot_send_either_is_named(interp, cloudpickle):
    lock = threading.Lock()

    def uses_lock():
        with lock:
            return 1

    with pytest.raises(NotShareableError, match=r"uses_lock.*cloudpickle could not pickle.*lock"):
        interp.call(uses_lock)


def test_native_and_stdlib_paths_do_not_import_cloudpickle(interp):
    # Data, functions by name and stateless lambdas need no cloudpickle.
    interp.call(workloads.add, [1, 2.5, "x"], [{"k": (None, b"")}])
    interp.call(lambda: 1)
    assert interp.call(workloads.add, Fraction(1, 3), Fraction(2, 3)) == 1  # stdlib pickle
    assert interp.call(eval, "'cloudpickle' in __import__('sys').modules") is False


MAIN_SCRIPT = """
    import dataclasses
    import interpreters_aio as interpreters
    from interpreters_aio import InterpreterPoolExecutor

    @dataclasses.dataclass
    class Point:
        x: int
        y: int

    class Oops(Exception):
        pass

    def make_adder(n):
        return lambda x: x + n

    def raises_oops(message):
        raise Oops(message)

    if __name__ == "__main__":
        interp = interpreters.create()
        print(interp.call(make_adder(1), 41))
        print(interp.call(lambda p: p.x * p.y, Point(6, 7)))
        made = interp.call(lambda: Point(1, 2))
        print(made, type(made) is Point)
        with InterpreterPoolExecutor(2) as pool:
            print(sorted(pool.map(lambda p: p.x, [Point(i, 0) for i in range(3)])))
            try:
                pool.submit(lambda: raises_oops("deep")).result()
            except Oops as e:
                print("caught", type(e) is Oops, e)
"""


def test_main_script_closures_lambdas_and_classes(tmp_path, cloudpickle):
    lines = run_script(tmp_path, MAIN_SCRIPT)
    assert lines == ["42", "42", "Point(x=1, y=2) True", "[0, 1, 2]", "caught True deep"]


INTERACTIVE = """
    import interpreters_aio as interpreters
    OFFSET = 40
    def helper(x):
        return x + OFFSET
    def task(x):
        return helper(x) + 1
    class Box:
        def __init__(self, v):
            self.v = v
    interp = interpreters.create()
    print(interp.call(task, 1))
    print(interp.call(lambda b: b.v, Box(5)))
    print(type(interp.call(Box, 3)) is Box)
"""


def test_interactive_functions_take_the_globals_they_use(tmp_path, cloudpickle):
    # Read from stdin: no script file to run again in the target, so only
    # by value can `task` find `helper` and `OFFSET`.
    assert run_script(tmp_path, INTERACTIVE, stdin=True) == ["42", "5", "True"]


WITHOUT_CLOUDPICKLE = """
    import interpreters_aio as interpreters
    from interpreters_aio import ExecutionFailed, NotShareableError

    class Box:
        pass

    def make_adder(n):
        return lambda x: x + n

    def report(what, call):
        try:
            print(what, "ok", call())
        except NotShareableError as e:
            print(what, "refused", e)
        except ExecutionFailed as e:
            print(what, "failed", type(e).__name__, e.excinfo.type.__name__)

    def local_class():
        class Local:
            pass
        return Local()

    if __name__ == "__main__":
        interp = interpreters.create()
        report("closure", lambda: interp.call(make_adder(1), 1))
        report("main-instance", lambda: interp.call(id, Box()))
        report("local-instance", lambda: interp.call(id, local_class()))
        report("lock", lambda: interp.call(id, __import__("threading").Lock()))
        report("stateless", lambda: interp.call(lambda: 2))
        source = "class OnlyThere(Exception): pass\\nraise OnlyThere()"
        report("exception", lambda: interp.call(exec, source))
"""


def test_without_cloudpickle_the_errors_say_what_to_install(tmp_path):
    lines = run_script(tmp_path, WITHOUT_CLOUDPICKLE, block_cloudpickle=True)
    results = {line.split()[0]: line for line in lines}
    hint = "pip install 'interpreters-aio[dask]'"
    closure = results["closure"]
    assert "refused" in closure and "<lambda>" in closure and "('n',)" in closure
    assert hint in closure and "define it at module level" in closure
    main_instance = results["main-instance"]
    assert "refused" in main_instance and "__main__" in main_instance and hint in main_instance
    local = results["local-instance"]
    assert "refused" in local and "Local" in local and hint in local
    assert "refused" in results["lock"] and "cloudpickle" not in results["lock"]
    assert results["stateless"] == "stateless ok 2"
    assert results["exception"] == "exception failed ExecutionFailed OnlyThere"
