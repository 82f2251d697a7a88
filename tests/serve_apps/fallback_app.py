"""An app with an optional C speed-up that subinterpreters refuse: it falls back
without it, silently, as websockets and Falcon do (tests/test_check.py)."""

try:
    import _testsinglephase as speedups
except ImportError:
    speedups = None


async def app(scope, receive, send):
    pass
