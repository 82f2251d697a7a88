"""Stress and interruption, bounded in time: many producers and consumers in
many interpreters, Ctrl-C while blocked; every item arrives exactly once."""

from __future__ import annotations

import collections
import signal
import threading
import time

import pytest
import workloads

import interpreters_aio as interpreters

TOTAL = 200_000
WORKERS = 8


def _check_exactly_once_in_order(results):
    seen = collections.Counter()
    for got in results:
        last = {}
        for producer, seq in got:
            assert seq > last.get(producer, -1), "out of order for one producer"
            last[producer] = seq
            seen[(producer, seq)] += 1
    assert len(seen) == TOTAL, f"{TOTAL - len(seen)} items lost"
    assert max(seen.values()) == 1, "an item was duplicated"


@pytest.mark.parametrize("kind", ["queue", "channel"])
def test_8_producers_8_consumers_8_interpreters(kind):
    per_producer = TOTAL // WORKERS
    if kind == "queue":
        shared = interpreters.create_queue(256)
        close = shared.close
    else:
        r, s = interpreters.create_channel()
        shared = (s, r)
        close = s.close
    done = interpreters.create_queue()
    its = [interpreters.create() for _ in range(WORKERS)]
    results: list[list] = [[] for _ in range(WORKERS)]

    def run(i):
        results[i] = its[i].call(workloads.produce_and_consume, shared, done, i, per_producer, kind)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        for _ in range(WORKERS):
            done.get(timeout=120)
        close()  # consumers drain what is left, then stop
        for t in threads:
            t.join(120)
        assert not any(t.is_alive() for t in threads)
    finally:
        for it in its:
            it.close()
    _check_exactly_once_in_order(results)
    assert time.monotonic() - started < 120


def test_timeouts_and_closes_under_load():
    q = interpreters.create_queue(8)
    stop = threading.Event()
    got = collections.Counter()
    timeouts = [0]

    def producer(p):
        n = 0
        while not stop.is_set():
            try:
                q.put((p, n), timeout=0.001)
                n += 1
            except interpreters.QueueFull:
                timeouts[0] += 1
            except interpreters.QueueClosed:
                return

    def consumer():
        while True:
            try:
                got[q.get(timeout=0.001)] += 1
            except interpreters.QueueEmpty:
                timeouts[0] += 1
            except interpreters.QueueClosed:
                return

    threads = [threading.Thread(target=producer, args=(p,)) for p in range(3)]
    threads += [threading.Thread(target=consumer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stop.set()
    q.close()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert sum(got.values()) > 0 and max(got.values()) == 1


CTRL_C = """
import os, signal, threading, time
import interpreters_aio as interpreters

def interrupt_soon():
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGINT)

q = interpreters.create_queue()
threading.Thread(target=interrupt_soon).start()
try:
    q.get()
except KeyboardInterrupt:
    print("get interrupted")
q.put(1)
print("then got", q.get(timeout=5), "left", q.qsize())

r, s = interpreters.create_channel()
threading.Thread(target=interrupt_soon).start()
try:
    s.send("nobody receives")
except KeyboardInterrupt:
    print("send interrupted")
print("left in channel:", r.recv_nowait("nothing"))
"""


def test_ctrl_c_while_blocked_loses_and_duplicates_nothing(run_python):
    proc = run_python(CTRL_C, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:4] == [
        "get interrupted",
        "then got 1 left 0",
        "send interrupted",
        "left in channel: nothing",
    ]


# The worker echoes quickly, so the main thread's waits end within
# microseconds and it may spin before it sleeps; then the worker sends SIGINT
# instead of an answer, and nothing will ever wake the main thread. Whether
# the signal lands during a spin (no system call to interrupt: the spin must
# end by itself and let the handler run), during the sleep, or during the
# put, the main thread must raise KeyboardInterrupt and not hang.
CTRL_C_WHILE_SPINNING = """
import os, signal, threading
import interpreters_aio as interpreters

inbox, outbox = interpreters.create_queue(), interpreters.create_queue()
interp = interpreters.create()
interp.prepare_main(inbox=inbox, outbox=outbox)
echo = '''
import os, signal, time
while (item := inbox.get()) != "interrupt":
    outbox.put(item)
soon = time.perf_counter() + 20e-6  # the main thread is most likely in outbox.get()
while time.perf_counter() < soon:
    pass
os.kill(os.getpid(), signal.SIGINT)
'''
worker = threading.Thread(target=interp.exec, args=(echo,))
worker.start()
for i in range(3000):
    inbox.put(i)
    assert outbox.get() == i
try:
    inbox.put("interrupt")
    outbox.get()
except KeyboardInterrupt:
    print("interrupted")
worker.join()
interp.close()
"""


def test_ctrl_c_reaches_a_thread_fed_quickly_that_may_be_spinning(run_python):
    proc = run_python(CTRL_C_WHILE_SPINNING, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["interrupted"]


def test_exit_with_a_thread_blocked_on_a_queue_in_an_interpreter(run_python):
    proc = run_python(
        """
import interpreters_aio as interpreters, workloads, time
q = interpreters.create_queue()
it = interpreters.create()
t = it.call_in_thread(workloads.get_one, q)
time.sleep(0.2)
print("leaving", flush=True)
""",
        timeout=60,
    )
    assert "Fatal Python error" not in proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "leaving"


def test_sigint_handler_still_python_default():
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_closing_an_interpreter_blocked_in_get_wakes_it():
    q = interpreters.create_queue()
    r, s = interpreters.create_channel()
    it = interpreters.create()
    outcome = []

    def run():
        try:
            it.call(workloads.get_one, q)
        except interpreters.ExecutionFailed as exc:
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 30
    while not it.is_running():  # a close before the call starts would refuse the call
        assert time.monotonic() < deadline
        time.sleep(0.001)
    while True:  # until the call is blocked in get() (before that: "running")
        try:
            it.close()  # wakes the blocked get with a clear error, then closes
            break
        except interpreters.InterpreterError as exc:
            assert "running" in str(exc)
            assert time.monotonic() < deadline
            time.sleep(0.01)
    t.join(10)
    assert not t.is_alive()
    assert outcome and outcome[0].excinfo.type.__name__ == "InterpreterError"
    assert "being closed" in outcome[0].excinfo.msg
    q.put(1)
    assert q.get() == 1, "the queue is intact and nothing was taken"
    # The cancellation does not leak into this thread's later waits.
    s_sent = []
    t2 = threading.Thread(target=lambda: s_sent.append(s.send("later", timeout=10)))
    t2.start()
    assert r.recv(timeout=10) == "later"
    t2.join(10)
