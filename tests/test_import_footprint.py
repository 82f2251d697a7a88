"""What importing the package costs: every interpreter that receives a queue or
channel imports it, so it must not pull in modules it does not need there."""

from __future__ import annotations

import subprocess
import sys

import interpreters_aio as interpreters

HEAVY = {"concurrent.futures", "logging", "typing", "textwrap", "inspect", "asyncio", "pickle"}
"""Modules that cost milliseconds each and that the core API does not need."""


def _new_modules_in_fresh_process(code: str) -> set[str]:
    script = "\n".join(
        [
            "import sys",
            "before = set(sys.modules)",
            code,
            'print(" ".join(sorted(set(sys.modules) - before)))',
        ]
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return set(out.stdout.split())


def test_import_pulls_in_no_heavy_module():
    new = _new_modules_in_fresh_process("import interpreters_aio")
    assert "interpreters_aio" in new
    assert new & HEAVY == set()


def test_executor_names_load_on_first_use():
    new = _new_modules_in_fresh_process(
        "import interpreters_aio\n"
        "from interpreters_aio import InterpreterPoolExecutor, BrokenInterpreterPool\n"
        "assert issubclass(BrokenInterpreterPool, RuntimeError)\n"
        "with InterpreterPoolExecutor(1) as pool:\n"
        "    assert pool.submit(pow, 2, 5).result() == 32"
    )
    assert {"interpreters_aio.executor", "concurrent.futures"} <= new


def test_module_lists_every_public_name():
    assert set(interpreters.__all__) <= set(dir(interpreters))
    for name in interpreters.__all__:
        assert getattr(interpreters, name) is not None
    try:
        interpreters.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("a missing name must raise AttributeError")


def test_receiving_a_queue_imports_no_heavy_module_there():
    interp = interpreters.create()
    try:
        interp.exec("import sys; before = set(sys.modules)")
        interp.prepare_main(q=interpreters.create_queue())
        new = set(interp.call(eval, "sorted(set(sys.modules) - before)"))
    finally:
        interp.close()
    assert "interpreters_aio" in new
    assert new & HEAVY == set()
