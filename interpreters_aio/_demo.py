"""The workload of ``python -m interpreters_aio demo``: pure-Python, CPU-bound.

Kept in its own small module so that every worker (an interpreter or a
process) can import it by name, cheaply.
"""

from __future__ import annotations


def count_primes(start: int, stop: int) -> int:
    """Count primes in [start, stop) by trial division: all bytecode, no C loop."""
    count = 0
    for n in range(max(start, 2), stop):
        if n % 2 == 0:
            count += n == 2
            continue
        d = 3
        while d * d <= n:
            if n % d == 0:
                break
            d += 2
        else:
            count += 1
    return count
