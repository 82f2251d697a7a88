"""Proof that interpreters are real: own GIL, and the extension loads everywhere."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import workloads

import interpreters_aio as interpreters


def _stdlib_module():
    if sys.version_info >= (3, 13):
        import _interpreters

        return _interpreters
    import _xxsubinterpreters

    return _xxsubinterpreters


def test_extension_imports_in_our_interpreter(interp):
    interp.exec("import interpreters_aio._core as core; import interpreters_aio")
    assert interp.call(workloads.main_eval, "core.current_id()") == interp.id


def test_extension_imports_in_a_stdlib_interpreter(tmp_path):
    stdlib = _stdlib_module()
    sid = stdlib.create()
    out = tmp_path / "out.txt"
    try:
        script = (
            "import sys\n"
            f"sys.path[:] = {sys.path!r}\n"
            "import interpreters_aio as ia\n"
            "inner = ia.create()\n"
            "value = inner.call(sum, [1, 2, 3])\n"
            "inner.close()\n"
            f"open({str(out)!r}, 'w').write(f'{{ia.get_current().id}} {{value}}')\n"
        )
        run = getattr(stdlib, "run_string", None) or stdlib.exec
        failure = run(sid, script)
        assert failure is None, failure
    finally:
        stdlib.destroy(sid)
    assert out.read_text() == f"{sid} 6"


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="3.13+: driven through _interpreters "
                    "(tests/test_foreign.py)")
def test_stdlib_interpreters_are_listed_but_not_driven_on_312():
    stdlib = _stdlib_module()
    sid = stdlib.create()
    try:
        foreign = interpreters.Interpreter(sid)
        assert foreign in interpreters.list_all()
        attempts = (
            lambda: foreign.exec("pass"),
            foreign.close,
            lambda: foreign.prepare_main(x=1),
            lambda: foreign.call(int),
        )
        for attempt in attempts:
            with pytest.raises(interpreters.InterpreterError, match="not created by"):
                attempt()
    finally:
        stdlib.destroy(sid)


@pytest.mark.skipif(
    sys.version_info >= (3, 13),
    reason="3.13's private _interpreters.destroy() aborts on an interpreter that has other "
    "thread states (ours keeps one parked); 3.14's public API refuses foreign ones instead",
)
def test_interpreter_destroyed_behind_our_back_is_not_found():
    stdlib = _stdlib_module()
    it = interpreters.create()
    stdlib.destroy(it.id)
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.exec("pass")
    with pytest.raises(interpreters.InterpreterNotFoundError):
        it.close()  # as 3.14 for one already gone
    assert it.id not in interpreters._core.our_ids()


def test_own_gil_other_interpreters_keep_running():
    """A C loop holding one interpreter's GIL for seconds stalls nobody else.

    With a shared GIL, `sum(range(n))` never releases it, so the main thread
    could not run a single bytecode until it finished.
    """
    busy = interpreters.create()
    other = interpreters.create()
    r, w = os.pipe()
    try:
        finished = threading.Event()
        n = 300_000_000  # several seconds of GIL-holding C loop

        def run_busy():
            busy.call(workloads.signal_then_busy, w, n)
            finished.set()

        thread = threading.Thread(target=run_busy)
        thread.start()
        assert os.read(r, 1) == b"x"  # the busy loop is about to start
        for i in range(200):
            assert other.call(workloads.add, i) == i + 10
        progressed_while_busy = not finished.is_set()
        thread.join(120)
        assert progressed_while_busy, "the busy interpreter finished first: GIL shared?"
    finally:
        os.close(r)
        os.close(w)
        busy.close()
        other.close()


@pytest.mark.skipif(sys.version_info < (3, 14), reason="concurrent.interpreters is new in 3.14")
def test_stdlib_public_api_refuses_to_destroy_ours(interp):
    import _interpreters

    with pytest.raises(_interpreters.InterpreterError):
        _interpreters.destroy(interp.id, restrict=True)  # what concurrent.interpreters does
    interp.exec("pass")


@pytest.mark.skipif(sys.version_info < (3, 14), reason="concurrent.interpreters is new in 3.14")
def test_extension_works_inside_concurrent_interpreters():
    from concurrent import interpreters as stdlib_interpreters

    outer = stdlib_interpreters.create()
    try:
        outer.prepare_main(path=tuple(sys.path))  # the stdlib shares tuples, not lists
        outer.exec("import sys; sys.path[:] = path")
        assert outer.call(workloads.create_and_call_nested) == 6
    finally:
        outer.close()
