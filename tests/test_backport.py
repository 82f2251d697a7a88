"""3.14's module layout and the backport switch, ``install()`` (issue 12).

The layout tests compare with the real 3.14 modules where they exist and
with 3.14.7's names elsewhere. The switch changes ``sys.modules`` for the
whole process, so every test of it runs in a fresh one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import pytest

import interpreters_aio
from interpreters_aio import _crossinterp, _queues

# 3.14.7's public names, less the modules they import (pickle, queue, ...).
QUEUES_314 = {
    "ItemInterpreterDestroyed",
    "Queue",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "create",
    "list_all",
}
CROSSINTERP_314 = {
    "ItemInterpreterDestroyed",
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "UnboundItem",
    "classonly",
    "resolve_unbound",
    "serialize_unbound",
}
# And the private ones CPython's test_interpreters reads.
CROSSINTERP_314_TESTS = {"_UNBOUND_CONSTANT_TO_FLAG"}

ON_314 = sys.version_info >= (3, 14)


def _public(module: types.ModuleType) -> set[str]:
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }


def _stdlib(name: str) -> types.ModuleType:
    import importlib

    module = importlib.import_module(name)
    assert not module.__name__.startswith("interpreters_aio"), "the switch is on in this process"
    return module


@pytest.mark.parametrize(
    ("ours", "stdlib_name", "known"),
    [
        (_queues, "concurrent.interpreters._queues", QUEUES_314),
        (_crossinterp, "concurrent.interpreters._crossinterp", CROSSINTERP_314),
    ],
)
def test_submodules_have_314s_public_names(ours, stdlib_name, known):
    expected = _public(_stdlib(stdlib_name)) if ON_314 else known
    assert expected <= _public(ours), expected - _public(ours)
    assert expected <= set(ours.__all__) | {"UnboundItem"}
    for name in ours.__all__:
        assert hasattr(ours, name), name


def test_the_314_lists_are_the_real_ones():
    if not ON_314:
        pytest.skip("needs 3.14's concurrent.interpreters")
    assert _public(_stdlib("concurrent.interpreters._queues")) == QUEUES_314
    assert _public(_stdlib("concurrent.interpreters._crossinterp")) == CROSSINTERP_314


def test_package_has_314s_public_names_and_submodules():
    if ON_314:
        stdlib = _stdlib("concurrent.interpreters")
        assert _public(stdlib) <= _public(interpreters_aio), _public(stdlib) - _public(
            interpreters_aio
        )
    assert interpreters_aio._queues is _queues
    assert interpreters_aio._crossinterp is _crossinterp


def test_crossinterp_private_names_used_by_cpythons_tests():
    for name in CROSSINTERP_314_TESTS:
        assert hasattr(_crossinterp, name), name
    # test_queues.py: REPLACE = _crossinterp._UNBOUND_CONSTANT_TO_FLAG[_crossinterp.UNBOUND]
    assert _crossinterp._UNBOUND_CONSTANT_TO_FLAG[_crossinterp.UNBOUND] == 3


def test_names_are_the_existing_objects_not_copies():
    assert _queues.create is _queues.create_queue is interpreters_aio.create_queue
    assert _queues.list_all is _queues.list_all_queues is interpreters_aio.list_all_queues
    for name in ("UNBOUND", "UNBOUND_ERROR", "UNBOUND_REMOVE", "ItemInterpreterDestroyed"):
        assert getattr(_queues, name) is getattr(interpreters_aio, name)
    for name in ("UNBOUND_ERROR", "UNBOUND_REMOVE"):
        assert getattr(_crossinterp, name) is getattr(_queues, name)


def test_unbound_markers_are_laid_out_as_in_314():
    # 3.14: _queues.UNBOUND is a queue-specific singleton of _crossinterp.UnboundItem.
    assert isinstance(_crossinterp.UNBOUND, _crossinterp.UnboundItem)
    assert isinstance(_queues.UNBOUND, _crossinterp.UnboundItem)
    assert _queues.UNBOUND is not _crossinterp.UNBOUND
    assert issubclass(_queues.ItemInterpreterDestroyed, _crossinterp.ItemInterpreterDestroyed)
    assert not hasattr(_queues.UNBOUND, "singleton")  # classonly
    with pytest.raises(TypeError):
        type(_queues.UNBOUND)()
    marker = _crossinterp.UnboundItem.singleton("thing", __name__, "MY_UNBOUND")
    assert repr(marker) == f"{__name__}.MY_UNBOUND"
    assert type(marker).__name__ == "UnboundThingItem"
    # Either UNBOUND means "replace" to a queue, as in 3.14.
    for marker in (_queues.UNBOUND, _crossinterp.UNBOUND):
        queue = _queues.create(unbounditems=marker)
        try:
            assert queue.unbounditems is _queues.UNBOUND
        finally:
            queue.close()


def test_queues_create_and_list_all_as_in_314():
    queue = _queues.create(3, unbounditems=_queues.UNBOUND_ERROR)
    try:
        assert isinstance(queue, _queues.Queue)
        assert (queue.maxsize, queue.unbounditems) == (3, _queues.UNBOUND_ERROR)
        assert queue in _queues.list_all()
        with pytest.raises(_queues.QueueNotFoundError):
            _queues.Queue(1_000_000)
        with pytest.raises(_queues.QueueEmpty):
            queue.get_nowait()
        assert issubclass(_queues.QueueFull, _queues.QueueError)
    finally:
        queue.close()


def test_serialize_and_resolve_unbound():
    for marker, flag in [
        (_crossinterp.UNBOUND_REMOVE, 1),
        (_crossinterp.UNBOUND_ERROR, 2),
        (_crossinterp.UNBOUND, 3),
    ]:
        assert _crossinterp.serialize_unbound(marker) == (flag,)
    assert _crossinterp.resolve_unbound(3, LookupError) is _crossinterp.UNBOUND
    with pytest.raises(LookupError):
        _crossinterp.resolve_unbound(2, LookupError)
    for bad_flag in (1, 99):
        with pytest.raises(NotImplementedError):
            _crossinterp.resolve_unbound(bad_flag, LookupError)
    with pytest.raises(NotImplementedError):
        _crossinterp.serialize_unbound(object())


def test_classonly_is_visible_on_the_class_only():
    class Thing:
        @_crossinterp.classonly
        def make(cls):
            return cls

    assert Thing.make() is Thing
    with pytest.raises(AttributeError):
        Thing().make  # noqa: B018


# The switch, in fresh processes.


def _run(source: str, *, switch_env: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k != interpreters_aio._backport.ENV_VAR}
    if switch_env:
        env[interpreters_aio._backport.ENV_VAR] = "1"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(source)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_install_is_public_and_documented():
    assert "install" in interpreters_aio.__all__
    doc = interpreters_aio.install.__doc__ or ""
    assert "Returns:" in doc and "Raises:" in doc


def test_install_in_the_main_interpreter():
    out = _run(
        """
        import interpreters_aio
        first = interpreters_aio.install()
        print(first)
        print(interpreters_aio.install())

        from concurrent import interpreters
        import concurrent.interpreters._queues as queues
        import concurrent.interpreters._crossinterp as crossinterp
        import concurrent.futures
        assert interpreters is interpreters_aio
        assert queues is interpreters_aio._queues
        assert crossinterp is interpreters_aio._crossinterp
        from concurrent.interpreters import _queues
        assert _queues is queues
        pool_class = concurrent.futures.InterpreterPoolExecutor
        assert pool_class is interpreters_aio.InterpreterPoolExecutor
        assert "InterpreterPoolExecutor" in dir(concurrent.futures)

        interp = interpreters.create()
        assert interp.call(pow, 2, 10) == 1024
        queue = queues.create()
        queue.put("hi")
        assert queue.get() == "hi" and queue in queues.list_all()
        with concurrent.futures.InterpreterPoolExecutor(2) as pool:
            assert list(pool.map(pow, [2, 3], [3, 2])) == [8, 9]
        import os
        print(os.environ["INTERPRETERS_AIO_INSTALL"])
        """
    )
    first, second, env = out.splitlines()
    verb = "replaced" if ON_314 else "added"
    assert first.startswith(verb + " concurrent.interpreters, ")
    assert "concurrent.futures.InterpreterPoolExecutor" in first
    assert second == "already installed"
    assert env == "1"


def test_created_interpreters_get_ours_without_importing_interpreters_aio():
    out = _run(
        """
        import interpreters_aio
        interpreters_aio.install()
        from concurrent import interpreters

        def inside():
            # No `import interpreters_aio` here: create() installed the switch.
            from concurrent import interpreters
            import concurrent.interpreters._queues as queues
            import concurrent.futures
            nested = interpreters.create()
            return (
                interpreters.__name__,
                queues.__name__,
                concurrent.futures.InterpreterPoolExecutor.__module__,
                nested.call(lambda: __import__("concurrent.interpreters").interpreters.__name__),
            )

        print(*interpreters.create().call(inside))
        interp = interpreters.create()
        # install() ran there but left its __main__ as fresh as ever.
        assert [name for name in interp.call(eval, "dir()") if name[:2] != "__"] == []
        interp.exec("from concurrent import interpreters as i")
        assert interp.call(eval, "i.__name__") == "interpreters_aio"
        import concurrent.futures
        with concurrent.futures.InterpreterPoolExecutor(1) as pool:
            print(pool.submit(inside).result()[0])
        """
    )
    assert out.splitlines() == [
        "interpreters_aio interpreters_aio._queues interpreters_aio.executor interpreters_aio",
        "interpreters_aio",
    ]


@pytest.mark.skipif(not ON_314, reason="replacing needs 3.14's own modules")
def test_install_replaces_already_imported_stdlib_modules():
    out = _run(
        """
        from concurrent import interpreters as stdlib
        import concurrent.futures
        stdlib_pool = concurrent.futures.InterpreterPoolExecutor
        old = stdlib.create()
        import interpreters_aio
        print(interpreters_aio.install())
        from concurrent import interpreters
        import concurrent.interpreters._queues as queues
        assert interpreters is interpreters_aio and queues is interpreters_aio._queues
        assert concurrent.futures.InterpreterPoolExecutor is not stdlib_pool
        assert old.call(pow, 2, 3) == 8  # the stdlib's objects keep working
        """
    )
    assert out.startswith("replaced concurrent.interpreters, concurrent.interpreters._queues")


def test_not_installed_unless_asked():
    out = _run(
        """
        import sys
        import interpreters_aio
        import concurrent.futures
        # (3.14+ has a stdlib InterpreterPoolExecutor of its own: it must stay it)
        pool = concurrent.futures.__dict__.get("InterpreterPoolExecutor")
        print(sys.modules.get("concurrent.interpreters") is interpreters_aio,
              pool is interpreters_aio.InterpreterPoolExecutor)
        """
    )
    assert out.split() == ["False", "False"]


def test_environment_variable_installs_on_import():
    out = _run(
        """
        import interpreters_aio
        from concurrent import interpreters
        import concurrent.futures
        pool_class = concurrent.futures.InterpreterPoolExecutor
        print(interpreters is interpreters_aio,
              pool_class is interpreters_aio.InterpreterPoolExecutor,
              interpreters_aio.install())
        """,
        switch_env=True,
    )
    assert out.split() == ["True", "True", "already", "installed"]
