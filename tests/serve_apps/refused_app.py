"""An app that needs a C extension which subinterpreters refuse (tests/test_serve.py)."""

import _testsinglephase  # noqa: F401


async def app(scope, receive, send):
    pass
