"""Callers that spin on non-blocking calls (``get_nowait``, ``put_nowait``,
``recv_nowait``): after a short spin each fruitless call yields the CPU with the
GIL released, so the thread they wait for can run, even on their CPU or in their
interpreter; nothing is lost or duplicated meanwhile."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import QueueEmpty, QueueFull

DEADLINE = 10.0
"""Seconds a spin may take before the test fails (it takes milliseconds)."""


@contextmanager
def no_gil_switching() -> Iterator[None]:
    """A switch interval far longer than the test: another thread of this
    interpreter gets the GIL only if the spinning thread lets go of it."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def spin(
    attempt: Callable[[], object],
    fruitless: type[Exception] | None = None,
    nothing: object = False,
) -> object:
    """Calls ``attempt()`` until it neither raises ``fruitless`` nor returns
    ``nothing``, and returns what it returned; fails after ``DEADLINE`` seconds."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            result = attempt()
        except Exception as exc:
            if fruitless is None or not isinstance(exc, fruitless):
                raise
            continue
        if result is not nothing:
            return result
    pytest.fail(f"still spinning after {DEADLINE} s: the other thread never ran")


def start_after_gil_handoff(target: Callable[[], object]) -> threading.Thread:
    """Starts a thread that waits a little (without the GIL), then needs the GIL
    to run ``target``: by then the caller is spinning."""
    thread = threading.Thread(target=lambda: (time.sleep(0.05), target()))
    thread.start()
    return thread


def test_spinning_get_nowait_lets_a_thread_of_this_interpreter_put():
    q = interpreters.create_queue()
    with no_gil_switching():
        producer = start_after_gil_handoff(lambda: q.put("item"))
        assert spin(q.get_nowait, QueueEmpty) == "item"
    producer.join()


def test_spinning_put_nowait_lets_a_thread_of_this_interpreter_get():
    q = interpreters.create_queue(maxsize=1)
    q.put("first")
    got = []
    with no_gil_switching():
        consumer = start_after_gil_handoff(lambda: got.append(q.get()))
        spin(lambda: q.put_nowait("second"), QueueFull)
    consumer.join()
    assert got == ["first"]
    assert q.get_nowait() == "second"


def test_spinning_recv_nowait_lets_a_thread_of_this_interpreter_send():
    r, s = interpreters.create_channel(maxsize=1)
    nothing = object()
    with no_gil_switching():
        sender = start_after_gil_handoff(lambda: s.send("item"))
        got = spin(lambda: r.recv_nowait(nothing), nothing=nothing)
    sender.join()
    assert got == "item"


def test_spinning_send_nowait_lets_a_thread_of_this_interpreter_recv():
    r, s = interpreters.create_channel(maxsize=1)
    s.send("first")
    got = []
    with no_gil_switching():
        receiver = start_after_gil_handoff(lambda: got.append(r.recv()))
        spin(lambda: s.send_nowait("second"))
    receiver.join()
    assert got == ["first"]
    assert r.recv() == "second"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
@pytest.mark.parametrize("size", [8, 1 << 20], ids=["small", "1MiB"])
def test_both_sides_spinning_on_one_cpu_lose_and_duplicate_nothing(interp, size):
    # Both threads spin on get_nowait() on one CPU: each side's yields are
    # what let the other run, item after item.
    cpu = min(os.sched_getaffinity(0))
    there, back = interpreters.create_queue(), interpreters.create_queue()
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        worker = interp.call_in_thread(workloads.spin_echo, there, back, cpu)
        count = 200 if size < 1024 else 50
        for i in range(count):
            item = i.to_bytes(8, "little") * (size // 8)
            there.put(item)
            assert spin(back.get_nowait, QueueEmpty) == item
        there.put(None)
        assert spin(back.get_nowait, QueueEmpty) is None
        worker.join()
    finally:
        os.sched_setaffinity(0, before)
    with pytest.raises(QueueEmpty):
        back.get_nowait()
