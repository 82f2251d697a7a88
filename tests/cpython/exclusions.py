"""The tests of CPython's ``test.test_interpreters`` that ``runner.py`` does not run.

Each entry maps a test id pattern (fnmatch, without the leading
``test.test_interpreters.``) to ``(reason, detail)``. Only three reasons are
allowed: a test of CPython's private modules, one that needs CPython's test
C API, or a documented deliberate difference (see docs/guide.md).
"""

REASONS = {
    "private": "exercises CPython's private modules (_interpreters, _interpqueues, _interpchannels) directly",
    "capi": "needs _testcapi or _testinternalcapi",
    "difference": "a documented deliberate difference (docs/guide.md, Differences from 3.14)",
}

EXCLUDED: dict[str, tuple[str, str]] = {
}
