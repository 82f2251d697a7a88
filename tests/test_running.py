"""exec / call / prepare_main / call_in_thread semantics, and remote exceptions."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import ExecutionFailed, InterpreterError, NotShareableError


def test_state_persists_in_main_module(interp):
    interp.exec("counter = 1")
    interp.exec("counter += 41")
    assert interp.call(workloads.main_eval, "counter") == 42
    assert interp.call(workloads.main_eval, "__name__") == "__main__"


def test_interpreters_are_isolated(interp):
    other = interpreters.create()
    try:
        interp.exec("import sys; sys.marker = 'A'; shared = 1")
        other.exec("import sys; sys.marker = 'B'")
        assert interp.call(workloads.main_eval, "__import__('sys').marker") == "A"
        assert other.call(workloads.main_eval, "__import__('sys').marker") == "B"
        assert other.call(workloads.main_eval, "'shared' in globals()") is False
    finally:
        other.close()


def test_exec_dedents_indented_blocks(interp):
    interp.exec(
        """
        x = 3
        if x:
            y = x * 2
        """
    )
    assert interp.call(workloads.main_eval, "y") == 6


def test_call_returns_result_with_args_and_kwargs(interp):
    assert interp.call(workloads.add, 1) == 11
    assert interp.call(workloads.add, 1, 2, scale=3) == 9
    assert interp.call(workloads.echo, 1, "a", k=[1, 2]) == ((1, "a"), {"k": [1, 2]})


def test_call_builtin(interp):
    assert interp.call(pow, 2, 100) == 2**100
    assert interp.call(len, "abc") == 3


def test_call_runs_in_the_target(interp):
    assert interp.call(workloads.interpreter_id) == interp.id


def test_nested_function_ships_by_code_with_target_globals(interp):
    def _main_like(a, b=2, *, c=3):
        return a + b + c + offset  # noqa: F821  (a global of the target's __main__)

    interp.prepare_main(offset=100)
    assert interp.call(_main_like, 1) == 106
    assert interp.call(_main_like, 1, 1, c=1) == 103


def test_lambda_ships_by_code(interp):
    assert interp.call(lambda a, b=5: a * b, 3) == 15
    interp.exec("base = 7")
    assert interp.call(lambda: base + 1) == 8  # noqa: F821


def test_closure_crosses_by_value_or_gets_clear_error(interp):
    captured = 5

    def uses_closure():
        return captured

    if importlib.util.find_spec("cloudpickle") is not None:
        assert interp.call(uses_closure) == 5  # by value (tests/test_pickling.py)
        return
    with pytest.raises(NotShareableError, match=r"enclosing function.*captured.*cloudpickle"):
        interp.call(uses_closure)


def test_main_function_ships_by_code(run_python):
    proc = run_python(
        """
        import interpreters_aio as interpreters

        def work(n, *, twice=False):
            return sum(range(n)) * (2 if twice else 1), __name__

        interp = interpreters.create()
        print(interp.call(work, 10, twice=True))
        interp.close()
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(90, '__main__')"


def test_exec_exception_becomes_execution_failed(interp):
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("raise KeyError('spam')")
    exc = info.value
    assert isinstance(exc, InterpreterError)
    assert exc.excinfo.type.__name__ == "KeyError"
    assert exc.excinfo.type.__qualname__ == "KeyError"
    assert exc.excinfo.type.__module__ == "builtins"
    assert exc.excinfo.msg == "'spam'"
    assert exc.excinfo.errdisplay.strip() == "KeyError: 'spam'"
    assert 'File "<string>", line 1' in exc.excinfo.formatted
    assert exc.args == ("KeyError: 'spam'",)
    assert str(exc) == (
        "KeyError: 'spam'\n\nUncaught in the interpreter:\n\n" + exc.excinfo.formatted.strip()
    )
    assert exc.__cause__ is None  # 3.14 chains nothing: the traceback is in the message


def without_carets(text: str) -> list[str]:
    """The lines of a traceback without the ~~~^^^ markers (3.13+ only)."""
    return [line for line in text.splitlines() if line.strip().strip("~^")]


def test_uncaught_execution_failed_prints_as_314_does(tmp_path):
    # CPython's test_display_preserved_exception, with our class's name.
    (tmp_path / "spam.py").write_text(
        "def ham():\n    raise RuntimeError('uh-oh!')\n\ndef eggs():\n    ham()\n"
    )
    script = tmp_path / "script.py"
    script.write_text(
        "import interpreters_aio as interpreters\n"
        "\n"
        "def script():\n"
        "    import spam\n"
        "    spam.eggs()\n"
        "\n"
        "interp = interpreters.create()\n"
        "try:\n"
        "    interp.exec(script)\n"
        "finally:\n"
        "    interp.close()\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert proc.returncode == 1 and proc.stdout == ""
    tail = proc.stderr.split("interpreters_aio._errors.ExecutionFailed: ", 1)[1]
    assert without_carets(tail) == without_carets(textwrap.dedent(
        f"""\
        RuntimeError: uh-oh!

        Uncaught in the interpreter:

        Traceback (most recent call last):
          File "{script}", line 5, in script
            spam.eggs()
            ~~~~~~~~~^^
          File "{tmp_path / 'spam.py'}", line 5, in eggs
            ham()
            ~~~^^
          File "{tmp_path / 'spam.py'}", line 2, in ham
            raise RuntimeError('uh-oh!')
        RuntimeError: uh-oh!
        """
    ))
    assert "RemoteTraceback" not in proc.stderr and "direct cause" not in proc.stderr


def test_original_exception_is_rebuilt_with_its_remote_traceback(interp):
    with pytest.raises(ExecutionFailed) as info:
        interp.call(workloads.raise_value_error, "bad value")
    original = info.value.excinfo.rebuild()
    assert type(original) is ValueError
    assert original.args == ("bad value",)
    assert isinstance(original.__cause__, interpreters.RemoteTraceback)
    assert "raise_value_error" in str(original.__cause__)
    # The re-raise-by-type pattern works.
    with pytest.raises(ValueError):
        try:
            interp.call(workloads.raise_value_error, "again")
        except interpreters.RunFailedError as exc:
            raise exc.excinfo.rebuild() from exc


def test_printed_traceback_shows_the_remote_traceback(interp):
    interp.exec("def inner():\n    raise RuntimeError('deep down')\n")
    try:
        interp.exec("inner()")
    except ExecutionFailed as exc:
        printed = "".join(traceback.format_exception(exc))
    else:
        pytest.fail("no exception")
    assert "in inner" in printed
    assert "RuntimeError: deep down" in printed
    assert "ExecutionFailed" in printed


def test_exception_class_only_known_remotely(interp):
    interp.exec("class Custom(Exception): pass")
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("raise Custom('only here')")
    assert info.value.excinfo.type.__name__ == "Custom"
    assert "Custom: only here" in str(info.value)
    rebuilt = info.value.excinfo.rebuild()
    if importlib.util.find_spec("cloudpickle") is not None:
        # Rebuilt here by value: a copy of the class, caused by the traceback.
        assert type(rebuilt).__name__ == "Custom" and str(rebuilt) == "only here"
        assert isinstance(rebuilt.__cause__, interpreters.RemoteTraceback)
        assert "Custom: only here" in str(rebuilt.__cause__)
    else:
        assert rebuilt is None


def test_exception_whose_str_raises(interp):
    with pytest.raises(ExecutionFailed) as info:
        interp.call(workloads.raise_bad_str)
    assert info.value.excinfo.type.__name__ == "BadStr"
    assert "str() failed" in info.value.excinfo.msg
    assert interp.call(workloads.add, 1) == 11  # still usable


def test_syntax_error_leaves_interpreter_usable(interp):
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("def broken(:\n")
    assert info.value.excinfo.type.__name__ == "SyntaxError"
    interp.exec("ok = True")
    assert interp.call(workloads.main_eval, "ok") is True


def test_system_exit_is_reported_not_obeyed(interp):
    with pytest.raises(ExecutionFailed) as info:
        interp.exec("raise SystemExit(3)")
    assert info.value.excinfo.type.__name__ == "SystemExit"
    interp.exec("pass")


def test_prepare_main_binds_values(interp):
    interp.prepare_main({"a": 1, "b": [1, 2]}, c="three", point=workloads.Point(1, 2))
    assert interp.call(workloads.main_eval, "(a, b, c)") == (1, [1, 2], "three")
    assert interp.call(workloads.main_eval, "point") == workloads.Point(1, 2)


def test_prepare_main_rejects_non_str_names(interp):
    with pytest.raises(TypeError, match="must be str"):
        interp.prepare_main({1: "x"})


def test_prepare_main_with_nothing_raises_as_in_3_14(interp):
    with pytest.raises(ValueError):
        interp.prepare_main()
    with pytest.raises(ValueError):
        interp.prepare_main({})


def test_call_in_thread_runs_in_parallel_thread(interp):
    interp.exec("import threading; done = threading.Event()")
    thread = interp.call_in_thread(workloads.main_exec, "result = 6 * 7")
    assert isinstance(thread, threading.Thread)
    thread.join(30)
    assert not thread.is_alive()
    assert interp.call(workloads.main_eval, "result") == 42


def test_running_interpreter_refuses_a_second_runner(interp):
    r, w = os.pipe()
    try:
        thread = interp.call_in_thread(workloads.signal_then_busy, w, 30_000_000)
        assert os.read(r, 1) == b"x"
        assert interp.is_running()
        with pytest.raises(InterpreterError, match="already running"):
            interp.exec("pass")
        with pytest.raises(InterpreterError, match="running"):
            interp.close()
        thread.join(60)
        assert not interp.is_running()
    finally:
        os.close(r)
        os.close(w)


def test_nested_interpreters(interp):
    assert interp.call(workloads.create_and_call_nested) == 6


def test_reentering_a_running_interpreter_is_refused(interp):
    message = interp.call(workloads.call_outer_from_inner, interp.id)
    assert "already running" in message


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.12's getsignal() bug only")
@pytest.mark.parametrize("first_entry", ["creator", "other thread"])
def test_getsignal_answers_none_in_an_interpreter_on_312(first_entry):
    # 3.12 hands a subinterpreter the main interpreter's handler object, and
    # touching it corrupts memory; ours answers None from the first entry on.
    it = interpreters.create()
    try:
        if first_entry == "creator":
            assert it.call(workloads.sigint_handler_repr) == "None"
        else:
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                assert pool.submit(it.call, workloads.sigint_handler_repr).result() == "None"
        assert it.call(workloads.sigint_handler_repr) == "None"
    finally:
        it.close()



DAEMON_THREAD = """
import threading
started = threading.Event()
def linger():
    started.set()
    release.get(timeout=10)
t = threading.Thread(target=linger, daemon=True)
t.start()
started.wait(10)
"""


def test_daemon_threads_are_refused_by_default(interp):
    interp.prepare_main(release=interpreters.create_queue())
    with pytest.raises(ExecutionFailed, match="daemon threads are disabled"):
        interp.exec(DAEMON_THREAD)


def test_daemon_threads_allowed_on_request_and_joined_at_close():
    release = interpreters.create_queue()
    it = interpreters.create(daemon_threads=True)
    try:
        it.prepare_main(release=release)
        it.exec(DAEMON_THREAD)
        assert it.call(workloads.main_eval, "t.daemon and t.is_alive()") is True
        # close() waits for it, as for any thread (an interpreter cannot end
        # with one inside): it is released from here meanwhile.
        threading.Timer(0.2, release.put, args=(1,)).start()
        started = time.monotonic()
    finally:
        it.close()
    assert 0.1 < time.monotonic() - started < 5
    assert it.id not in [i.id for i in interpreters.list_all()]


async def test_aio_create_with_daemon_threads():
    from interpreters_aio import aio

    worker = await aio.create(daemon_threads=True)
    try:
        await worker.prepare_main(release=interpreters.create_queue())
        await worker.exec(DAEMON_THREAD + "release.put(1); t.join()")
    finally:
        await worker.close()
