"""Importable functions for tests: sent to other interpreters by reference.

Kept free of heavy imports so that importing it in a new interpreter is cheap.
"""

from __future__ import annotations

import os


def add(a, b=10, *, scale=1):
    return (a + b) * scale


def echo(*args, **kwargs):
    return args, kwargs


def identity(x):
    return x


def interpreter_id() -> int:
    import interpreters_aio

    return interpreters_aio.get_current().id


def busy_sum(n: int) -> int:
    """Holds the GIL of its interpreter for the whole C loop."""
    return sum(range(n))


def signal_then_busy(fd: int, n: int) -> int:
    os.write(fd, b"x")
    return busy_sum(n)


def spin(seconds: float) -> int:
    """A pure-Python loop (bytecode, so interruptible)."""
    import time

    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1
    return count


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception fails")


def raise_bad_str():
    raise BadStr("x")


def raise_value_error(msg):
    raise ValueError(msg)


def return_lock():
    import threading

    return threading.Lock()


class Point:
    """A plain class: crosses by pickle."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __eq__(self, other):
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)

    def __hash__(self):
        return hash((self.x, self.y))


def try_close_current() -> str:
    import interpreters_aio

    try:
        interpreters_aio.get_current().close()
    except interpreters_aio.InterpreterError as exc:
        return str(exc)
    return "closed?!"


def ids_seen_inside():
    import interpreters_aio as i

    cur = i.get_current()
    return cur.id, i.get_main().id, cur.is_running(), cur in i.list_all()


def create_and_call_nested():
    import interpreters_aio

    inner = interpreters_aio.create()
    try:
        return inner.call(sum, [1, 2, 3])
    finally:
        inner.close()


def call_outer_from_inner(outer_id: int) -> str:
    import interpreters_aio

    inner = interpreters_aio.create()
    try:
        try:
            # inner -> outer, while outer is running us: refused, not deadlocked.
            inner.call(reenter, outer_id)
        except interpreters_aio.ExecutionFailed as exc:
            return str(exc)
        return "no error"
    finally:
        inner.close()


def reenter(outer_id: int) -> None:
    import interpreters_aio

    interpreters_aio.Interpreter(outer_id).exec("pass")


def main_eval(expr: str):
    """Evaluates `expr` in the calling interpreter's __main__."""
    import __main__

    return eval(expr, vars(__main__))


def main_exec(src: str) -> None:
    """Executes `src` in the calling interpreter's __main__."""
    import __main__

    exec(src, vars(__main__))


def produce_and_consume(q, done, producer, count, kind):
    """Runs in a subinterpreter: one producer here, one consumer thread here.

    Puts (producer, seq) for seq in range(count) on `q` (a queue or a channel
    send end), reports on `done` when finished, and returns what the
    consumer thread received from `recv` before the channel/queue closed.
    """
    import threading

    send, recv = q if kind == "channel" else (q, q)
    got = []

    def consume():
        import interpreters_aio as ia

        if kind == "channel":
            for item in recv:
                got.append(item)
        else:
            while True:
                try:
                    got.append(recv.get())
                except ia.QueueClosed:
                    return

    consumer = threading.Thread(target=consume)
    consumer.start()
    for seq in range(count):
        if kind == "channel":
            send.send((producer, seq))
        else:
            send.put((producer, seq))
    done.put(producer)
    consumer.join()
    return got


def recv_one(r, timeout=None):
    return r.recv(timeout=timeout)


def get_one(q, timeout=None):
    return q.get(timeout=timeout)


def send_one(s, obj):
    s.send(obj)
    return "sent"


def write_shared(buf, index, value):
    memoryview(buf)[index] = value
    return bytes(memoryview(buf)[:4])


def async_echo_service(requests, replies, count):
    """Runs in a subinterpreter: its own event loop echoes `count` requests."""
    import asyncio

    async def main():
        inbox, outbox = requests.aio, replies.aio
        for _ in range(count):
            await outbox.send(("echo", await inbox.recv()))
        return count

    return asyncio.run(main())


def fail_init():
    raise RuntimeError("initializer fails")


def set_marker(value):
    import __main__

    __main__.marker = value


def read_marker():
    import __main__

    return getattr(__main__, "marker", None), __import__("interpreters_aio").get_current().id


def handshake(mine, theirs, token):
    """Completes only if the task holding `theirs` runs at the same time."""
    mine.put(token)
    return theirs.get(timeout=30)


def produce_numbers(q, s, count):
    """Put ``0 .. count-1`` on queue ``q`` and, from a second thread, send the
    same numbers on channel end ``s`` (rendezvous sends wait for a receiver);
    each end is closed when its numbers are out."""
    import threading

    def send_all():
        for i in range(count):
            s.send(i)
        s.close()

    sender = threading.Thread(target=send_all)
    sender.start()
    for i in range(count):
        q.put(i)
    q.close()
    sender.join()


def echo_one(q, back):
    """Take one item from ``q`` and put it on ``back``."""
    back.put(q.get(timeout=10))


def consume_sized(q, done, count):
    """Take ``count`` items from ``q``; put their total length on ``done``."""
    total = 0
    for _ in range(count):
        total += len(q.get(timeout=30))
    done.put(total)


def put_value(q, value):
    """Records that this task ran, on a queue the test drains."""
    q.put(value)
    return value


def spin_then_id(seconds: float) -> int:
    spin(seconds)
    return interpreter_id()


def sigint_handler_repr() -> str:
    import signal

    return repr(signal.getsignal(signal.SIGINT))


def spin_echo(inbox, outbox, cpu=None):
    """Echo every item of ``inbox`` back on ``outbox``, spinning on
    ``get_nowait()`` (optionally pinned to ``cpu``), until ``None`` comes."""
    from queue import Empty

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    while True:
        try:
            item = inbox.get_nowait()
        except Empty:
            continue
        outbox.put(item)
        if item is None:
            return


def digest_each(q, out, count):
    """Gets ``count`` items from ``q`` and puts each one's SHA-256 on ``out``."""
    import hashlib

    for _ in range(count):
        out.put(hashlib.sha256(q.get(timeout=30)).hexdigest())
