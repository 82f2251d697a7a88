"""The tests of CPython's ``test.test_interpreters`` that ``runner.py`` does not run.

Each entry maps a test id pattern (fnmatch, without the leading
``test.test_interpreters.``) to ``(reason, detail)``. Only three reasons are
allowed: a test of CPython's private modules, one that needs CPython's test
C API, or a documented deliberate difference (see docs/guide.md).
"""

REASONS = {
    "private": (
        "exercises CPython's private modules "
        "(_interpreters, _interpqueues, _interpchannels) directly"
    ),
    "capi": "needs _testcapi or _testinternalcapi",
    "difference": "a documented deliberate difference (docs/guide.md, Differences from 3.14)",
}

EXCLUDED: dict[str, tuple[str, str]] = {
    "test_api.LowLevelTests.*": ("private", "the _interpreters module's own corner cases"),
    "test_queues.LowLevelTests.*": ("private", "the _interpqueues module's own corner cases"),
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
