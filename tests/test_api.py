"""The module-level API and Interpreter objects (PEP 734 / concurrent.interpreters)."""

from __future__ import annotations

import pickle

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import Interpreter, InterpreterError, InterpreterNotFoundError


def test_main_and_current_in_main_interpreter():
    main = interpreters.get_main()
    assert main.id == 0
    assert interpreters.get_current() is main
    assert main.whence == "runtime init"
    assert main.is_running()


def test_create_adds_to_list_all_and_close_removes(interp):
    assert interp in interpreters.list_all()
    assert interp.id != 0
    assert interp.whence == "_interpreters module"  # 3.14's string for create()
    assert not interp.is_running()
    other = interpreters.create()
    assert [i.id for i in interpreters.list_all()][-2:] == sorted([interp.id, other.id])
    other.close()
    assert other not in interpreters.list_all()


def test_pep554_aliases(interp):
    assert interpreters.enumerate is interpreters.list_all
    assert interpreters.RunFailedError is interpreters.ExecutionFailed
    assert Interpreter.destroy is Interpreter.close
    interp.run("x = 1")
    assert interp.call(workloads.main_eval, "x") == 1


def test_run_injects_values_into_main(interp):
    interp.run("result = token * 2", channels={"token": "ab"})
    assert interp.call(workloads.main_eval, "result") == "abab"


def test_one_object_per_id_and_equality(interp):
    assert Interpreter(interp.id) is interp
    assert interpreters.list_all()[-1] is interp
    assert hash(interp) == hash(interp.id)
    assert interp != interpreters.get_main()
    assert interp != interp.id  # not equal to a plain int


def test_repr_is_evaluable(interp):
    assert repr(interp) == f"Interpreter({interp.id})"
    assert eval(repr(interp), {"Interpreter": Interpreter}) is interp


def test_id_is_read_only(interp):
    with pytest.raises(AttributeError):
        interp.id = 5  # type: ignore[misc]


def test_pickles_by_id(interp):
    assert pickle.loads(pickle.dumps(interp)) is interp


def test_interpreter_object_crosses_to_another_interpreter(interp):
    # Sent by pickle (by id): it names the same interpreter over there.
    interp.prepare_main(me=interp)
    assert interp.call(workloads.main_eval, "me.id") == interp.id
    assert interp.call(workloads.main_eval, "me == __import__('interpreters_aio').get_current()")


def test_unknown_id_raises_not_found():
    with pytest.raises(InterpreterNotFoundError, match="interpreter 99999 not found"):
        Interpreter(99999)


@pytest.mark.parametrize("bad", ["1", 1.0, None, True])
def test_id_must_be_an_int(bad):
    with pytest.raises(TypeError, match="must be an int"):
        Interpreter(bad)


def test_negative_id_is_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        Interpreter(-1)


def test_closing_twice_raises_not_found_as_in_3_14():
    it = interpreters.create()
    it.close()
    with pytest.raises(InterpreterNotFoundError):
        it.close()
    with pytest.raises(InterpreterNotFoundError):
        Interpreter(it.id)


def test_closed_interpreter_cannot_run_code():
    it = interpreters.create()
    it.close()
    with pytest.raises(InterpreterNotFoundError):
        it.exec("pass")
    with pytest.raises(InterpreterNotFoundError):
        it.call(int)
    with pytest.raises(InterpreterNotFoundError):
        it.prepare_main(x=1)
    with pytest.raises(InterpreterNotFoundError):
        it.is_running()


def test_cannot_close_main():
    with pytest.raises(InterpreterError, match="main interpreter"):
        interpreters.get_main().close()


def test_cannot_close_current(interp):
    failure = interp.call(workloads.try_close_current)
    assert "current interpreter" in failure


def test_context_manager_closes():
    with interpreters.create() as it:
        it.exec("pass")
    assert it not in interpreters.list_all()


def test_main_interpreter_is_running_so_cannot_exec():
    with pytest.raises(InterpreterError, match="already running"):
        interpreters.get_main().exec("pass")


def test_subinterpreter_sees_itself_and_main(interp):
    ids = interp.call(workloads.ids_seen_inside)
    assert ids == (interp.id, 0, True, True)


def test_is_shareable_exported():
    assert interpreters.is_shareable((1, "a", [b"b", {2: None}]))
    assert not interpreters.is_shareable(object())


def test_public_api_is_documented():
    for name in interpreters.__all__:
        obj = getattr(interpreters, name)
        assert getattr(obj, "__doc__", None), name
    for name in ("id", "whence", "is_running", "close", "prepare_main", "exec", "call",
                 "call_in_thread", "run"):
        assert getattr(Interpreter, name).__doc__, name
