"""Benchmark harness for interpreters_aio.

Run it from the repository root with ``python -m benchmarks`` (``--help`` for
the options). Sections of cases are registered in :mod:`benchmarks.registry`;
each case times several contenders (this package, the standard library's
private interpreters module, processes, ...) side by side.

This package is imported by subinterpreters and by ``spawn``/``forkserver``
worker processes (to reach :mod:`benchmarks.workers`), so it must stay free of
side effects and heavy imports.
"""
