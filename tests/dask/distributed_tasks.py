"""Task functions for tests/dask/test_distributed.py, importable by name in
worker interpreters and worker processes (the test module imports pytest)."""

from __future__ import annotations

import interpreters_aio as interpreters


def where(x: int) -> tuple[int, int]:
    """The id of the interpreter that ran the task, and a result to check."""
    return interpreters.get_current().id, x * x


def count_primes(limit: int) -> int:
    return sum(all(n % d for d in range(2, int(n**0.5) + 1)) for n in range(2, limit))


def lookup(key: str) -> object:
    table = {"present": 1}
    return table[key]
