"""Process exit with interpreters still open, busy or blocked: no abort, no hang."""

from __future__ import annotations

import pytest

PRELUDE = """
import sys, threading, time
import interpreters_aio as interpreters
import workloads
"""

# 3.14's own words for interpreters left open at exit (once, whatever their number).
REMAINING = (
    "<sys>:0: RuntimeWarning: remaining subinterpreters; close them with Interpreter.close()\n"
)


def _assert_clean(proc):
    assert "Fatal Python error" not in proc.stderr, proc.stderr
    assert "Aborted" not in proc.stderr, proc.stderr


def test_exit_with_open_interpreters(run_python):
    proc = run_python(
        PRELUDE
        + """
its = [interpreters.create() for _ in range(5)]
for it in its:
    it.exec("import threading, json; data = [1] * 1000")
print("ok")
"""
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
    assert proc.stderr == REMAINING


def test_exit_after_closing_every_interpreter_is_silent(run_python):
    proc = run_python(PRELUDE + "it = interpreters.create()\nit.close()\nprint('ok')\n")
    _assert_clean(proc)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ok", "")


def test_exit_with_a_pool_never_shut_down_is_silent(run_python):
    # As the stdlib's InterpreterPoolExecutor: the pool's interpreters are its own.
    proc = run_python(
        PRELUDE
        + """
from interpreters_aio import InterpreterPoolExecutor
pool = InterpreterPoolExecutor(2)
print(sum(pool.map(pow, [2, 3], [10, 2])))
"""
    )
    _assert_clean(proc)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "1033", "")


def test_exit_status_is_kept(run_python):
    proc = run_python(PRELUDE + "it = interpreters.create()\nsys.exit(3)\n")
    _assert_clean(proc)
    assert proc.returncode == 3


def test_exit_with_a_thread_running_python_code_in_one(run_python):
    proc = run_python(
        PRELUDE
        + """
it = interpreters.create()
t = it.call_in_thread(workloads.spin, 1000)
time.sleep(0.3)
print("leaving")
""",
        timeout=60,
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert "interpreter 1 is still running code at exit; interrupting it" in proc.stderr


def test_exit_with_a_thread_blocked_in_one(run_python):
    proc = run_python(
        PRELUDE
        + """
it = interpreters.create()
t = it.call_in_thread(time.sleep, 1000)
time.sleep(0.3)
print("leaving", flush=True)
""",
        timeout=60,
        env={"INTERPRETERS_AIO_EXIT_TIMEOUT": "1"},
    )
    _assert_clean(proc)
    assert proc.stdout.strip() == "leaving"
    assert "did not stop within 1s" in proc.stderr
    assert proc.returncode == 1


def test_exit_with_a_daemon_thread_running_in_one(run_python):
    proc = run_python(
        PRELUDE
        + """
it = interpreters.create()
threading.Thread(target=it.call, args=(workloads.spin, 1000), daemon=True).start()
time.sleep(0.3)
""",
        timeout=60,
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr


def test_exit_with_threads_started_inside_an_interpreter(run_python):
    proc = run_python(
        PRELUDE
        + """
it = interpreters.create()
it.exec('''
import threading, time
results = []
threads = [threading.Thread(target=lambda: (time.sleep(0.2), results.append(1))) for _ in range(3)]
for t in threads: t.start()
''')
print("leaving")
""",
        timeout=60,
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr


def test_close_joins_threads_started_inside(interp):
    interp.exec(
        """
        import threading, time
        finished = []
        t = threading.Thread(target=lambda: (time.sleep(0.2), finished.append(1)))
        t.start()
        """
    )
    other = __import__("interpreters_aio").create()
    other.close()
    interp.close()  # joins the thread, then finalizes


@pytest.mark.parametrize("n", [3])
def test_exit_after_nested_interpreters(run_python, n):
    proc = run_python(
        PRELUDE
        + f"""
outer = interpreters.create()
outer.exec('import interpreters_aio; inner = [interpreters_aio.create() for _ in range({n})]')
print(len(interpreters.list_all()))
"""
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(n + 2)


def test_created_and_used_in_one_thread_closed_in_another(run_python):
    # On 3.12, threading's main-thread lock belongs to whichever OS thread
    # imported threading in the interpreter; closing from another thread must
    # neither hang nor fail, explicitly or at exit.
    proc = run_python(
        PRELUDE
        + """
made = []
def worker():
    for _ in range(2):
        it = interpreters.create()
        it.exec("import threading; threading.current_thread()")
        made.append(it)
t = threading.Thread(target=worker)
t.start(); t.join()
made[0].close()          # closed here, by the main thread
print("closed one", flush=True)
""",
        timeout=60,
    )
    _assert_clean(proc)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "closed one"
    assert proc.stderr == REMAINING  # the other one, closed at exit
