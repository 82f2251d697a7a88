"""Entry point: ``python -m benchmarks``.

``spawn`` and ``forkserver`` children re-import this module as ``__mp_main__``;
the guard keeps them from running the benchmarks again.
"""

if __name__ == "__main__":
    from benchmarks.cli import main

    raise SystemExit(main())
