"""The other side of the ``async`` section: asyncio echo loops and executor tasks.

They run in subinterpreters (interpreters_aio's and the standard library's),
in executor workers (threads, interpreters, processes) and in this
interpreter, so they live in an importable module and import nothing at
module level (``asyncio`` is imported inside the loops that need it).

Each echo loop runs its own event loop (``asyncio.run``) in the interpreter
it is called in, awaits items on ``inbox`` and sends each one back on
``outbox``:

- :func:`aio_echo`: interpreters_aio queues, awaited through their ``.aio``
  views (the event loop watches the queue's file descriptor); it stops when
  ``inbox`` is closed;
- :func:`polling_echo` and :func:`to_thread_echo`: the standard library's
  interpreter queues, which have no async API: the first polls
  ``get_nowait()`` and yields to the loop with ``asyncio.sleep(0)`` while the
  queue is empty; the second awaits ``asyncio.to_thread(inbox.get)``. Both
  stop on a ``None`` item.
"""

from __future__ import annotations

TYPE_CHECKING = False
"""Like ``typing.TYPE_CHECKING``, without importing ``typing`` (about 10 ms in a
fresh interpreter, which the first-result case would time)."""

if TYPE_CHECKING:  # Not at run time: keep the workers' interpreters and processes lean.
    from collections.abc import Awaitable, Callable
    from typing import Any

CPU_TASK_SIZE = 1_000_000
"""How many numbers :func:`count_up` sums in the CPU-bound case."""


def aio_echo(inbox: Any, outbox: Any) -> None:
    """Echo interpreters_aio queue items in an event loop of this interpreter."""
    import asyncio

    async def main() -> None:
        put = outbox.aio.put
        async for item in inbox.aio:
            await put(item)

    asyncio.run(main())


def polling_get(queue: Any) -> Callable[[], Awaitable[Any]]:
    """An async ``get()`` for a queue with no async API: polls ``get_nowait()``,
    yielding to the event loop (``asyncio.sleep(0)``) while it is empty."""
    import asyncio
    from queue import Empty  # The stdlib's QueueEmpty classes derive from it.

    get_nowait = queue.get_nowait

    async def get() -> Any:
        while True:
            try:
                return get_nowait()
            except Empty:
                await asyncio.sleep(0)

    return get


def to_thread_get(queue: Any) -> Callable[[], Awaitable[Any]]:
    """An async ``get()`` for a queue with no async API: ``asyncio.to_thread(queue.get)``."""
    import asyncio

    get = queue.get

    async def get_in_thread() -> Any:
        return await asyncio.to_thread(get)

    return get_in_thread


def _stdlib_echo(inbox: Any, outbox: Any, make_get: Callable[[Any], Any]) -> None:
    import asyncio

    async def main() -> None:
        get, put = make_get(inbox), outbox.put
        while (item := await get()) is not None:
            put(item)

    asyncio.run(main())


def polling_echo(inbox: Any, outbox: Any) -> None:
    """Echo stdlib queue items in an event loop, polling (see :func:`polling_get`)."""
    _stdlib_echo(inbox, outbox, polling_get)


def to_thread_echo(inbox: Any, outbox: Any) -> None:
    """Echo stdlib queue items in an event loop, through ``asyncio.to_thread(get)``."""
    _stdlib_echo(inbox, outbox, to_thread_get)


def add(a: int, b: int) -> int:
    """Return ``a + b``: the tiny executor task."""
    return a + b


def count_up(n: int) -> int:
    """Sum ``0 .. n-1`` in a pure-Python loop: the CPU-bound executor task."""
    total = 0
    for i in range(n):
        total += i
    return total


def eventfd_echo(there: int, back: int, stop: int) -> None:
    """Block in ``read()`` on eventfd ``there`` and write each value to ``back``,
    until the value is ``stop``: the bare wake-up ping-pong (no loop, no queue)."""
    import os

    while (value := os.eventfd_read(there)) != stop:
        os.eventfd_write(back, value)
