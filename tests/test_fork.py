"""os.fork() with subinterpreters alive: CPython's child cannot survive it
(python/cpython#101437), so the parent gets a ForkWithInterpretersWarning.

Each case runs in its own process: the forked children crash or hang inside
CPython, and the pytest process must never fork with interpreters alive.
"""

from __future__ import annotations

FORK_AND_REPORT = """
import os, signal, warnings
import interpreters_aio as interpreters

def fork_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
    # The child may be crashing or hung inside CPython: do not wait for it to exit.
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)
    return [w for w in caught if issubclass(w.category, interpreters.ForkWithInterpretersWarning)]
"""


def _run_ok(run_python, body: str):
    """Run FORK_AND_REPORT + ``body`` in a fresh process; it must print ``ok``."""
    result = run_python(FORK_AND_REPORT + body)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    return result


def test_fork_with_an_interpreter_alive_warns(run_python):
    _run_ok(
        run_python,
        """
interp = interpreters.create()
found = fork_warnings()
assert len(found) == 1, found
message = str(found[0].message)
assert "1 subinterpreter(s)" in message and "101437" in message and "spawn" in message
assert found[0].filename == "<string>", found[0]  # points at the os.fork() call
interp.close()
print("ok")
""",
    )


def test_fork_without_interpreters_is_quiet_and_the_child_runs(run_python):
    _run_ok(
        run_python,
        """
assert fork_warnings() == []              # nothing created yet
interpreters.create().close()
assert fork_warnings() == []              # the last one is closed again

pid = os.fork()
if pid == 0:
    os._exit(7)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 7, status
print("ok")
""",
    )


def test_the_warning_can_be_made_an_error_without_breaking_fork(run_python):
    # Exceptions from fork hooks are reported, not raised: fork itself still happens.
    result = _run_ok(
        run_python,
        """
interp = interpreters.create()
warnings.simplefilter("error", interpreters.ForkWithInterpretersWarning)
pid = os.fork()
if pid == 0:
    os._exit(0)
os.kill(pid, signal.SIGKILL)
os.waitpid(pid, 0)
interp.close()
print("ok")
""",
    )
    assert "ForkWithInterpretersWarning" in result.stderr


def test_a_forked_child_receives_large_items_without_the_copy_helper(run_python):
    # Large receipts share their copy with a helper thread, which a forked
    # child does not have: the child copies alone (and takes no lock that the
    # parent's threads may have held at the fork), and gets every byte.
    _run_ok(
        run_python,
        """
import hashlib
q = interpreters.create_queue()
data = os.urandom(3 << 20)
for _ in range(20):                      # the helper is started and used
    q.put(data)
    assert q.get() == data
pid = os.fork()
if pid == 0:
    ok = True
    for size in (256 * 1024, 1 << 20, (4 << 20) + 3):
        item = os.urandom(size)
        q.put(item)
        ok = ok and hashlib.sha256(q.get()).digest() == hashlib.sha256(item).digest()
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
q.put(data)
assert q.get() == data                   # the parent still has its helper
print("ok")
""",
    )
