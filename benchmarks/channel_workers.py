"""The other side of the ``channels`` section: echo and consumer loops.

They run in subinterpreters (interpreters_aio's and the standard library's),
in threads of this interpreter, and in worker processes, so they live in an
importable module and import nothing at module level.

Each loop works over whichever kind of queue it is given:

- interpreters_aio queues and receiving channel ends are iterated, which
  stops once they are closed (the benchmark stops the loop by closing them);
- anything else (``queue.Queue``, the standard library's interpreter queues,
  ``multiprocessing`` queues and connections) is read with ``get()`` or
  ``recv()`` until it yields ``None``, the stop sentinel.

Replies go through ``put()`` (queues) or ``send()`` (channels, connections).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def _receive(inbox: Any) -> Iterator[Any]:
    """The items arriving on ``inbox``, until it is closed or yields ``None``."""
    if hasattr(inbox, "__iter__"):  # interpreters_aio: iteration ends on close()
        return iter(inbox)
    get = inbox.get if hasattr(inbox, "get") else inbox.recv
    return iter(get, None)


def _sender(outbox: Any) -> Callable[[Any], object]:
    """``outbox``'s put (queues) or send (channels, connections)."""
    return outbox.put if hasattr(outbox, "put") else outbox.send


def echo(inbox: Any, outbox: Any) -> None:
    """Send back every item that arrives on ``inbox``, on ``outbox``."""
    reply = _sender(outbox)
    for item in _receive(inbox):
        reply(item)


def echo_busy_poll(inbox: Any, outbox: Any) -> None:
    """:func:`echo` for the standard library's interpreter queues, spinning on
    ``get_nowait()`` instead of their ``get()``, which sleeps 10 ms while empty."""
    from queue import Empty  # The stdlib's QueueEmpty derives from it.

    get_nowait, put = inbox.get_nowait, outbox.put
    while True:
        try:
            item = get_nowait()
        except Empty:
            continue
        if item is None:
            return
        put(item)


def consume(inbox: Any, done: Any, batch: int, sized: bool) -> None:
    """Take the items arriving on ``inbox``; after every ``batch`` of them, put on
    ``done`` how many arrived, or with ``sized`` how many bytes they held."""
    reply = _sender(done)
    total = count = 0
    for item in _receive(inbox):
        total += memoryview(item).nbytes if sized else 1
        count += 1
        if count == batch:
            reply(total)
            total = count = 0
