"""The other side of the ``channels`` section: echo and consumer loops.

They run in subinterpreters (interpreters_aio's and the standard library's),
in threads of this interpreter and in worker processes, so they live in an
importable module and import nothing at module level.

Each loop works over whichever kind of queue it is given:

- interpreters_aio queues and receiving channel ends are iterated, which
  stops once they are closed (the benchmark stops the loop by closing them);
- anything else (``queue.Queue``, the standard library's interpreter queues,
  ``multiprocessing`` queues and connections) is read with ``get()`` or
  ``recv()`` until it yields ``None``, the stop sentinel.

With ``busy_poll``, any queue is read by spinning on ``get_nowait()`` (see
:func:`busy_get`) until it yields ``None``.

Replies go through ``put()`` (queues) or ``send()`` (channels, connections).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Not at run time: keep the workers' interpreters and processes lean.
    from collections.abc import Callable, Iterator
    from typing import Any


def busy_get(queue: Any) -> Callable[[], Any]:
    """A ``get()`` for ``queue`` that spins on ``get_nowait()`` until an item comes.

    For the standard library's interpreter queues, whose ``get()`` sleeps 10 ms
    each time it finds the queue empty: spinning shows what their transport
    itself costs, at the price of a busy CPU; and for interpreters_aio's, to
    tell the cost of waking a blocked ``get()`` from the rest.
    """
    from queue import Empty  # Both QueueEmpty classes derive from it.

    get_nowait = queue.get_nowait

    def get() -> Any:
        while True:
            try:
                return get_nowait()
            except Empty:
                pass

    return get


def _receive(inbox: Any, busy_poll: bool) -> Iterator[Any]:
    """The items arriving on ``inbox``, until it is closed or yields ``None``."""
    if busy_poll:
        return iter(busy_get(inbox), None)
    if hasattr(inbox, "__iter__"):  # interpreters_aio: iteration ends on close()
        return iter(inbox)
    return iter(inbox.get if hasattr(inbox, "get") else inbox.recv, None)


def _sender(outbox: Any) -> Callable[[Any], object]:
    """``outbox``'s put (queues) or send (channels, connections)."""
    return outbox.put if hasattr(outbox, "put") else outbox.send


def echo(inbox: Any, outbox: Any, busy_poll: bool = False) -> None:
    """Send every item that arrives on ``inbox`` back on ``outbox``."""
    reply = _sender(outbox)
    for item in _receive(inbox, busy_poll):
        reply(item)


def consume(inbox: Any, done: Any, batch: int, sized: bool, busy_poll: bool = False) -> None:
    """Take the items arriving on ``inbox``; after every ``batch`` of them, send on
    ``done`` how many arrived or, with ``sized``, how many bytes they held."""
    reply = _sender(done)
    total = count = 0
    for item in _receive(inbox, busy_poll):
        total += memoryview(item).nbytes if sized else 1
        count += 1
        if count == batch:
            reply(total)
            total = count = 0
