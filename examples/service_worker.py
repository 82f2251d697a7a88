"""The worker side of ``async_service.py``: runs inside each subinterpreter.

``async_service.py`` starts one thread per worker interpreter with::

    interp.call_in_thread(service_worker.worker_main, requests, results, reports)

The function is sent by name, so the subinterpreter imports this module
itself (its ``sys.path`` is a copy of the main interpreter's, which starts
with the ``examples/`` directory). Keep it small and standard-library only:
every worker interpreter pays for what it imports.

Messages:

* ``requests`` (receiving end) carries jobs ``(job_id, start, stop)``;
* ``results`` (sending end) carries ``(job_id, result)`` back, where
  ``result`` is the number of primes in ``[start, stop)``, or a ``str``
  describing the error if the job raised;
* ``reports`` (a queue) gets one ``(interpreter_id, jobs_done, busy_seconds)``
  when the worker stops.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any


def count_primes(start: int, stop: int) -> int:
    """Count the primes in ``[start, stop)`` by trial division.

    Pure Python on purpose: every step is bytecode, so it holds the GIL of
    the interpreter that runs it the whole time. Threads of one interpreter
    could not run it in parallel; interpreters with their own GIL can.
    """
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


def worker_main(requests: Any, results: Any, reports: Any) -> None:
    """Entry point, called in the subinterpreter on a thread of its own.

    It runs a whole asyncio event loop there, independent of the main
    interpreter's loop (and of the other workers' loops), and returns when
    the main interpreter closes the ``requests`` channel.

    On CPython 3.12, import ``threading`` in the interpreter from another
    thread first (``async_service.new_worker_interpreter`` does), or
    ``asyncio.run()`` here takes this thread for the interpreter's main
    thread and reads the main interpreter's SIGINT handler, which can crash
    the process.
    """
    asyncio.run(serve(requests, results, reports))


async def serve(requests: Any, results: Any, reports: Any) -> None:
    """Handle jobs until ``requests`` is closed, then report and let go of the ends."""
    from interpreters_aio import ChannelClosedError, QueueClosed, get_current

    me = get_current().id
    jobs_done = 0
    busy = 0.0
    try:
        # Ends when the main interpreter closes the sending end of `requests`
        # (after everything sent before the close has been received).
        async for job_id, start, stop in requests.aio:
            began = time.perf_counter()
            try:
                result: int | str = count_primes(start, stop)
            except Exception as exc:  # report it to main instead of dying silently
                result = f"{type(exc).__name__}: {exc}"
            busy += time.perf_counter() - began
            jobs_done += 1
            await results.aio.send((job_id, result))
    except ChannelClosedError:
        # `results` was closed under us: main gave up (timeout, error, Ctrl-C).
        pass
    finally:
        try:
            reports.put_nowait((me, jobs_done, busy))
        except QueueClosed:
            pass
        # release(), not close(): the other workers still use these channels.
        # close() on a sending end would close `results` for everybody.
        requests.release()
        results.release()
