"""Task functions for tests/dask/test_local_scheduler.py, importable by name in
worker interpreters (the test module itself imports pytest)."""

from __future__ import annotations

import interpreters_aio as interpreters


def inc(x: int) -> int:
    return x + 1


def add(a: int, b: int) -> int:
    return a + b


def interpreter_id(_: object = None) -> int:
    return interpreters.get_current().id


def count_primes(limit: int) -> int:
    """Pure-Python CPU work: primes below `limit` by trial division."""
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def fail(kind: str, message: str) -> None:
    errors = {"value": ValueError, "key": KeyError, "zero": ZeroDivisionError}
    raise errors[kind](message)
