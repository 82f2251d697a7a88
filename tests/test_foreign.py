"""Interpreters made by the standard library's ``_interpreters`` (3.13+), through our API.

3.14's own ``concurrent.interpreters`` drives them with ``restrict=True``; so
do we (interpreters_aio/_foreign.py), and its errors come back as ours, which
subclass the standard library's.
"""

from __future__ import annotations

import sys

import pytest

import interpreters_aio as interpreters

stdlib = pytest.importorskip("_interpreters", reason="3.12 has no _interpreters module")


@pytest.fixture
def foreign():
    sid = stdlib.create()
    try:
        yield interpreters.Interpreter(sid)
    finally:
        try:
            stdlib.destroy(sid)
        except stdlib.InterpreterNotFoundError:
            pass


def test_listed_with_the_stdlib_whence(foreign):
    assert foreign in interpreters.list_all()
    assert foreign.whence == "_interpreters module"
    assert interpreters.Interpreter(foreign.id) is foreign


def test_exec_prepare_main_and_is_running(foreign, tmp_path):
    out = tmp_path / "out"
    foreign.prepare_main(n=21, path=str(out))
    foreign.exec("open(path, 'w').write(str(n * 2))")
    assert out.read_text() == "42"
    assert foreign.is_running() is False


def test_exec_failure_is_execution_failed(foreign):
    with pytest.raises(interpreters.ExecutionFailed) as caught:
        foreign.exec("raise KeyError('spam')")
    excinfo = caught.value.excinfo
    assert excinfo.type.__name__ == "KeyError"
    assert "KeyError: 'spam'" in excinfo.errdisplay
    assert "Traceback" in excinfo.formatted


@pytest.mark.skipif(
    sys.version_info < (3, 14), reason="3.13's _interpreters.call() gives no result"
)
def test_call_returns_the_result(foreign):
    assert foreign.call(divmod, 17, 5) == (3, 2)
    with pytest.raises(interpreters.ExecutionFailed):
        foreign.call(int, "not a number")


@pytest.mark.skipif(
    sys.version_info >= (3, 14), reason="3.14's _interpreters.call() gives a result"
)
def test_call_is_refused_clearly_on_313(foreign):
    with pytest.raises(interpreters.InterpreterError, match="call a function in"):
        foreign.call(int)


def test_close_then_not_found(foreign):
    foreign.close()
    assert foreign not in interpreters.list_all()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        foreign.close()
    with pytest.raises(interpreters.InterpreterNotFoundError):
        foreign.exec("pass")


def test_not_shareable_through_the_stdlib_is_ours(foreign):
    with pytest.raises(interpreters.NotShareableError):
        foreign.prepare_main(x=object())


def test_our_errors_are_the_stdlibs_too():
    assert issubclass(interpreters.InterpreterError, stdlib.InterpreterError)
    assert issubclass(interpreters.InterpreterNotFoundError, stdlib.InterpreterNotFoundError)
    assert issubclass(interpreters.NotShareableError, stdlib.NotShareableError)
    assert issubclass(interpreters.NotShareableError, TypeError)  # as 3.14, also on 3.13
    with pytest.raises(stdlib.InterpreterNotFoundError):
        interpreters.Interpreter(10**6)


def test_3_14_private_keywords_are_accepted(foreign):
    again = interpreters.Interpreter(foreign.id, _whence=stdlib.WHENCE_STDLIB, _ownsref=False)
    assert again is foreign


def test_one_made_through_the_c_api_is_refused():
    capi = pytest.importorskip("_testinternalcapi")
    sid = capi.create_interpreter()
    try:
        interp = interpreters.Interpreter(sid)
        assert interp.whence != "_interpreters module"
        with pytest.raises(interpreters.InterpreterError):
            interp.exec("pass")
        with pytest.raises(interpreters.InterpreterError):
            interp.close()
        assert interp.is_running() is False
    finally:
        capi.destroy_interpreter(sid)


def test_ours_are_not_sent_to_the_stdlib():
    # Our own interpreters still go through the core, never _interpreters.
    with interpreters.create() as interp:
        interp.exec("import sys; sys.flag = 1")
        assert interp.call(eval, "__import__('sys').flag") == 1
        assert interp.whence == "_interpreters module"
