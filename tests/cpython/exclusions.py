"""The tests of CPython's ``test.test_interpreters`` that ``runner.py`` does not run.

Each entry maps a test id pattern (fnmatch, without the leading
``test.test_interpreters.``) to ``(reason, detail)``. Only four reasons are
allowed: a test of CPython's private modules, one that needs CPython's test
C API, a documented deliberate difference (see docs/guide.md), or a known
defect of ours. A test excluded for a defect is still run, as an expected
failure: once it passes, the run fails until its entry is removed.
"""

REASONS = {
    "private": (
        "exercises CPython's private modules "
        "(_interpreters, _interpqueues, _interpchannels) directly"
    ),
    "capi": "needs _testcapi or _testinternalcapi",
    "difference": "a documented deliberate difference (docs/guide.md, Differences from 3.14)",
    "defect": "a known defect of ours, run as an expected failure",
}

# What _interpreters raises in test_api.LowLevelTests: the standard library's
# own exception classes, which the test catches as concurrent.interpreters';
# with the switch on, those are ours, a different class.
_STDLIB_INTERPRETER_ERROR = (
    "_interpreters raises the standard library's InterpreterError, "
    "which is not the switch's concurrent.interpreters.InterpreterError (ours)"
)
_STDLIB_QUEUE_ERRORS = (
    "_interpqueues raises the standard library's QueueError/QueueNotFoundError, "
    "which are not concurrent.interpreters._queues' (ours)"
)

EXCLUDED: dict[str, tuple[str, str]] = {
    # The other LowLevelTests pass (test_list_all too, once test_destroy's
    # failure no longer leaks a C-API interpreter into it).
    "test_api.LowLevelTests.test_create": (
        "private",
        f"_interpreters.create('empty'): {_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_api.LowLevelTests.test_destroy": (
        "private",
        f"_interpreters.destroy() of the main or a C-API interpreter: {_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_api.LowLevelTests.test_exec": (
        "private",
        f"_interpreters.exec(restrict=True) in a C-API interpreter: {_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_api.LowLevelTests.test_get_config": (
        "private",
        f"_interpreters.get_config(restrict=True) of a C-API interpreter: "
        f"{_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_api.LowLevelTests.test_is_running": (
        "private",
        f"_interpreters.is_running(restrict=True) of the main or a C-API interpreter: "
        f"{_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_api.LowLevelTests.test_set___main___attrs": (
        "private",
        f"_interpreters.set___main___attrs(restrict=True) of a C-API interpreter: "
        f"{_STDLIB_INTERPRETER_ERROR}",
    ),
    "test_queues.LowLevelTests.test_bind_release": (
        "private",
        f"_interpqueues.release() of a queue never bound: {_STDLIB_QUEUE_ERRORS}",
    ),
    "test_queues.LowLevelTests.test_create_destroy": (
        "private",
        f"_interpqueues.get()/destroy() of a destroyed queue: {_STDLIB_QUEUE_ERRORS}",
    ),
    "test_stress.StressTests.test_create_interpreter_no_memory": (
        "capi",
        "_testcapi.set_nomemory around _interpreters.create()",
    ),
    "test_api.TestInterpreterIsRunning.test_from_subinterpreter": (
        "private",
        "asks _interpreters.is_running() about an interpreter running our exec(); "
        "the core runs code without CPython's private 'running __main__' mark",
    ),
    "test_channels.TestChannels.test_shareable": (
        "private",
        "is_shareable() of _interpchannels' channel ends: they cross by pickle here, "
        "and is_shareable() is true only for what crosses natively",
    ),
    "test_api.TestInterpreterPrepareMain.test_not_shareable": (
        "difference",
        "dicts (and lists) are shared natively, so prepare_main(spam={...}) works",
    ),
}
