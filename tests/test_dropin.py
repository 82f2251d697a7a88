"""Behaving as CPython 3.14's ``concurrent.interpreters`` does (issue 12).

Each test pins one behaviour checked against 3.14.7 itself; the ones that
could hang or depend on the main script run in a fresh process.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

import pytest

import interpreters_aio as interpreters
from interpreters_aio import ExecutionFailed, InterpreterNotFoundError, NotShareableError


@pytest.mark.skipif(
    sys.version_info[:2] == (3, 12) and sys.version_info < (3, 12, 4),
    reason="CPython 3.12.0-3.12.3 abort at exit after a subinterpreter ran a ThreadPoolExecutor "
    "(python/cpython#119213; the stdlib's _xxsubinterpreters does the same)",
)
def test_close_runs_threading_atexit_callbacks_before_joining(run_python):
    # A ThreadPoolExecutor nobody shut down: its workers wait for the
    # threading._register_atexit callback that 3.14 runs in threading._shutdown().
    done = run_python(
        """
        import interpreters_aio as interpreters
        interp = interpreters.create()
        interp.exec('''
        import threading
        from concurrent.futures import ThreadPoolExecutor
        pool = ThreadPoolExecutor(2)
        assert pool.submit(pow, 2, 10).result() == 1024
        stop = threading.Event()
        threading._register_atexit(stop.set)
        threading.Thread(target=stop.wait).start()
        ''')
        interp.close()
        print("closed")
        """,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "closed"


def test_call_runs_builtins_that_need_a_frame(interp):
    assert interp.call(eval, "[1, 2, 3]") == [1, 2, 3]
    assert interp.call(eval, "sum([1, 2, 3])") == 6
    assert interp.call(exec, "...") is None
    names = interp.call(dir)  # __main__'s names (3.12 and 3.13 also have __annotations__)
    expected = {"__builtins__", "__doc__", "__loader__", "__name__", "__package__", "__spec__"}
    assert expected <= set(names)
    assert interp.call(eval, "sorted(vars(__import__('__main__')))") == names
    assert interp.call(eval, "__name__") == "__main__"


def test_call_builtins_see_and_change_main(interp):
    interp.prepare_main(spam=42)
    assert interp.call(eval, "spam") == 42
    assert "spam" in interp.call(dir)
    interp.call(exec, "eggs = spam + 1")
    interp.exec("assert eggs == 43")
    interp.call(exec, "def g(): return eggs")
    interp.exec("assert g() == 43")
    with pytest.raises(ExecutionFailed, match="NameError"):
        interp.call(eval, "ham")


@pytest.mark.parametrize("func", [globals, locals, vars])
def test_call_of_namespace_builtins_is_not_shareable(interp, func):
    # Their result is __main__'s dict, which holds the builtins module.
    with pytest.raises(NotShareableError):
        interp.call(func)


def test_call_traceback_starts_at_the_callable(interp):
    with pytest.raises(ExecutionFailed) as failed:
        interp.call(eval, "1 / 0")
    formatted = failed.value.excinfo.formatted
    assert "ZeroDivisionError" in formatted
    assert "interpreters_aio call" not in formatted


def test_call_still_passes_args_and_kwargs(interp):
    assert interp.call(int, "ff", base=16) == 255
    assert interp.call(sorted, [3, 1, 2], reverse=True) == [3, 2, 1]
    with pytest.raises(ExecutionFailed, match="not callable"):
        interp.call(5)


MAIN_SCRIPT = """
    count = 0
    eggs = True

    def inc(x=1):
        global count
        count += x

    def get_count():
        return count

    def where():
        return [__name__, __file__ == FILE, eggs, globals().get("ham")]

    def stateless():
        return globals()["__name__"]

    FILE = __file__

    if __name__ == "__main__":
        import interpreters_aio as interpreters
        interp = interpreters.create()
        ham = True
        counts = [interp.call(get_count)]
        interp.call(inc)
        counts.append(interp.call(get_count))
        interp.call(inc, 3)
        counts.append(interp.call(get_count))
        print(counts, count)
        print(interp.call(where))
        print(interp.call(stateless))
        print({name: interp.call(eval, f"{name!r} in vars()") for name in ("count", "inc")})
    """


def test_function_of_main_script_runs_with_the_scripts_globals(tmp_path):
    script = tmp_path / "my_script.py"
    script.write_text(textwrap.dedent(MAIN_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    counts, where, stateless, modified = done.stdout.strip().splitlines()
    assert counts == "[0, 1, 4] 0"
    assert where == "['<fake __main__>', True, True, None]"
    assert stateless == "__main__"  # uses no globals: runs in the target's __main__
    assert modified == "{'count': False, 'inc': False}"


RERUN_SCRIPT = """
    import time
    x = 1
    print("script ran", flush=True)

    def local_import():
        import time
        return time.monotonic() > 0

    def attribute_named_like_a_global():
        import types
        return types.SimpleNamespace(x=2).x

    def reads_a_global():
        return x

    if __name__ == "__main__":
        import interpreters_aio as interpreters
        interp = interpreters.create()
        print(interp.call(local_import), flush=True)
        print(interp.call(attribute_named_like_a_global), flush=True)
        print(interp.call(reads_a_global), flush=True)
        interp.close()
    """


def test_main_function_reruns_the_script_only_when_it_reads_a_global(tmp_path):
    # 3.14's rule: only global reads count, not a local import of a name the
    # script also imports, nor an attribute named like a global.
    script = tmp_path / "rerun_script.py"
    script.write_text(textwrap.dedent(RERUN_SCRIPT))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "script ran",  # the script itself
        "True",
        "2",
        "script ran",  # re-run as <fake __main__> for reads_a_global only
        "1",
    ]


def test_memoryview_is_shareable(interp):
    view = memoryview(b"abcdef")
    assert interpreters.is_shareable(view)
    got = interp.call(bytes, view)
    assert got == b"abcdef"
    back = interp.call(memoryview, b"xyz")
    assert isinstance(back, memoryview)
    assert back.tobytes() == b"xyz"
    assert back.readonly


def test_memoryview_keeps_format_shape_and_writability(interp):
    import array

    view = memoryview(array.array("d", [1.5, 2.5, 3.5, 4.5])).cast("B").cast("d", [2, 2])
    q = interpreters.create_queue()
    q.put(view)
    got = q.get()
    assert (got.format, got.shape, got.readonly) == ("d", (2, 2), False)
    assert got.tolist() == [[1.5, 2.5], [3.5, 4.5]]
    strided = memoryview(b"abcdef")[::2]
    q.put(strided)
    assert q.get().tobytes() == b"ace"


def test_memoryview_of_a_shared_buffer_shares_its_memory(interp):
    buf = interpreters.SharedBuffer(8)
    view = memoryview(buf)[2:6]
    interp.prepare_main(view=view)
    interp.exec("view[0] = 7; view[3] = 9")
    assert bytes(buf) == b"\x00\x00\x07\x00\x00\x09\x00\x00"


def module_level_script():
    import math  # noqa: F401  (stays local to the function)

    y = 42  # noqa: F841


def test_exec_takes_code_objects_and_functions(interp):
    interp.exec(compile("z = 3", "<test>", "exec"))
    interp.exec("assert z == 3")
    interp.exec(b"w = 4")
    interp.exec("assert w == 4")
    interp.exec(module_level_script)
    assert "y" not in interp.call(dir)  # a function's variables stay local, as in 3.14
    with pytest.raises(ExecutionFailed, match="ZeroDivisionError"):
        interp.exec(compile("1 / 0", "<test>", "exec"))


def test_exec_refuses_code_with_arguments_or_closures(interp):
    def takes(a):
        pass

    value = 1

    def closes():
        return value

    with pytest.raises(ValueError, match="arguments"):
        interp.exec(takes)
    with pytest.raises(ValueError, match="enclosing"):
        interp.exec(closes)
    with pytest.raises(TypeError):
        interp.exec(5)


def test_dropping_the_last_object_closes_the_interpreter():
    interp = interpreters.create()
    id = interp.id
    q = interpreters.create_queue()
    interp.prepare_main(q=q)
    interp.exec("q.put('mine')")
    del interp
    gc.collect()
    assert id not in {i.id for i in interpreters.list_all()}
    assert q.get_nowait() is interpreters.UNBOUND  # its item is unbound now


def test_an_object_in_another_interpreter_keeps_it_alive(interp):
    other = interpreters.create()
    id = other.id
    interp.prepare_main(other=other)  # that interpreter now holds an object for it
    del other
    gc.collect()
    assert id in {i.id for i in interpreters.list_all()}
    interp.exec("del other; import gc; gc.collect()")
    assert id not in {i.id for i in interpreters.list_all()}


@pytest.mark.parametrize("maxsize", [-1, -10])
def test_negative_maxsize_is_unbounded(maxsize):
    q = interpreters.create_queue(maxsize)
    for i in range(13):
        assert not q.full()
        q.put_nowait(i)
    assert q.qsize() == 13
    assert q.maxsize == maxsize  # reported as given, as in 3.14


def test_core_raises_the_classes_of_a_reloaded_queue_module(run_python):
    done = run_python(
        """
        import importlib
        from interpreters_aio import _queues
        old = _queues.QueueEmpty
        fresh = importlib.reload(_queues)
        assert fresh.QueueEmpty is not old
        try:
            fresh.create_queue().get_nowait()
        except fresh.QueueEmpty:
            print("fresh")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "fresh"


def test_whence_strings_are_3_14s(interp):
    assert interpreters.get_main().whence == "runtime init"
    assert interp.whence == "_interpreters module"


def test_second_close_raises_not_found():
    interp = interpreters.create()
    interp.close()
    with pytest.raises(InterpreterNotFoundError):
        interp.close()


def test_prepare_main_with_nothing_raises_value_error(interp):
    with pytest.raises(ValueError):
        interp.prepare_main()
    with pytest.raises(ValueError):
        interp.prepare_main({})


@pytest.mark.skipif(sys.version_info < (3, 14), reason="compares with the stdlib of 3.14")
def test_whence_matches_stdlib():
    from concurrent import interpreters as stdlib

    ours = interpreters.create()
    theirs = stdlib.create()
    try:
        assert ours.whence == theirs.whence
    finally:
        theirs.close()
        ours.close()
