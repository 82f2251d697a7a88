"""Large ``bytes`` through queues and channels: lent by the sender, copied once
at receipt (see ``rust/python/src/lending.rs``). The sender's object must come
back to its own refcount, every size must round-trip exactly, and an item must
survive its sender's interpreter closing (DESIGN rule 6)."""

from __future__ import annotations

import hashlib
import os
import sys

import pytest
import workloads

import interpreters_aio as interpreters

LEND_MIN = 64 * 1024  # rust/core/src/lending.rs
SIZES = [0, 1, 1000, LEND_MIN - 1, LEND_MIN, LEND_MIN + 1, 1 << 20, (3 << 20) + 7]


def payload(size: int) -> bytes:
    # Random, so that an offset or a stale buffer cannot pass for the right bytes.
    return os.urandom(size)


@pytest.mark.parametrize("size", SIZES)
def test_sizes_round_trip_exactly_through_a_queue(interp, size):
    q, back = interpreters.create_queue(), interpreters.create_queue()
    data = payload(size)
    q.put(data)
    assert interp.call(workloads.echo_one, q, back) is None
    got = back.get(timeout=10)
    assert type(got) is bytes and got == data


@pytest.mark.parametrize("size", SIZES)
def test_sizes_round_trip_exactly_through_a_channel(interp, size):
    r, s = interpreters.create_channel(4)
    data = payload(size)
    s.send(data)
    assert interp.call(workloads.recv_one, r, 10) == data
    # And from the subinterpreter to this one.
    interp.call(workloads.send_one, s, data)
    assert r.recv(timeout=10) == data


def test_large_bytes_inside_containers(interp):
    q, back = interpreters.create_queue(), interpreters.create_queue()
    big = payload(1 << 20)
    item = (big, [big, b"small"], {"k": big})
    q.put(item)
    interp.call(workloads.echo_one, q, back)
    assert back.get(timeout=10) == item


def test_the_senders_reference_comes_back_after_receipt(interp):
    q, back = interpreters.create_queue(), interpreters.create_queue()
    data = payload(1 << 20)
    before = sys.getrefcount(data)
    for _ in range(3):
        q.put(data)
    assert sys.getrefcount(data) == before + 3  # kept alive until received
    for _ in range(3):
        interp.call(workloads.echo_one, q, back)
        assert back.get(timeout=10) == data
    # Each get() released what the subinterpreter had received before it.
    assert sys.getrefcount(data) == before


def test_a_discarded_item_gives_its_reference_back():
    data = payload(1 << 20)
    before = sys.getrefcount(data)
    q = interpreters.create_queue()
    q.put(data)
    q.put((data, data))
    assert sys.getrefcount(data) == before + 3
    del q  # the items go with the queue, unreceived
    interpreters.create_queue().put(None)
    assert sys.getrefcount(data) == before


def test_large_bytes_survive_their_senders_interpreter_closing():
    r, s = interpreters.create_channel(8)
    q = interpreters.create_queue()
    sizes = [LEND_MIN, 1 << 20, (3 << 20) + 7]
    sender = interpreters.create()
    sender.prepare_main(s=s, q=q, sizes=sizes)
    # The sender keeps no reference of its own: only the loan does.
    sender.exec(
        "import hashlib, random\n"
        "for size in sizes:\n"
        "    data = random.randbytes(size)\n"
        "    q.put(hashlib.sha256(data).hexdigest())\n"
        "    s.send_nowait(data)\n"
        "    s.send_nowait((data, size))\n"
        "del data\n"
    )
    digests = [q.get(timeout=10) for _ in sizes]
    sender.close()
    for size, digest in zip(sizes, digests, strict=True):
        first = r.recv(timeout=10)
        second, size_again = r.recv(timeout=10)
        assert len(first) == size == size_again
        assert hashlib.sha256(first).hexdigest() == digest
        assert second == first


def test_queue_items_of_a_closed_sender_follow_the_unbound_rules():
    q = interpreters.create_queue()  # default: UNBOUND in place of the item
    sender = interpreters.create()
    sender.prepare_main(q=q)
    sender.exec("q.put(b'z' * (1 << 20))")
    sender.close()
    assert q.get(timeout=10) is interpreters.UNBOUND


def test_many_items_between_two_subinterpreters():
    q, done = interpreters.create_queue(), interpreters.create_queue()
    producer, consumer = interpreters.create(), interpreters.create()
    try:
        count, size = 50, (1 << 20) + 3
        t = consumer.call_in_thread(workloads.consume_sized, q, done, count)
        producer.prepare_main(q=q, count=count, size=size)
        producer.exec(
            "data = bytes(range(256)) * (size // 256) + b'abc'\nfor _ in range(count): q.put(data)"
        )
        t.join(30)
        assert done.get(timeout=10) == count * size
    finally:
        producer.close()
        consumer.close()


PARALLEL_MIN, CHUNK = 256 * 1024, 64 * 1024  # rust/core/src/parallel_copy.rs


def test_concurrent_large_receipts_are_exact():
    # From 256 KiB up a receipt's copy is shared with a helper thread, one
    # receiver at a time: three receivers at once, sizes around the threshold
    # and the chunk boundaries, each item different, each checked by digest.
    sizes = [PARALLEL_MIN - 1, PARALLEL_MIN, PARALLEL_MIN + 1, 5 * CHUNK + 17]
    sizes += [(2 << 20) + 3, 1 << 20]
    consumers = [interpreters.create() for _ in range(3)]
    try:
        lanes = [(interpreters.create_queue(), interpreters.create_queue()) for _ in consumers]
        per_lane = 4 * len(sizes)
        threads = [
            c.call_in_thread(workloads.digest_each, q, out, per_lane)
            for c, (q, out) in zip(consumers, lanes, strict=True)
        ]
        expected: list[list[str]] = [[] for _ in lanes]
        for round_ in range(4):
            for size in sizes:
                for lane, (q, _) in enumerate(lanes):
                    data = payload(size + round_)
                    expected[lane].append(hashlib.sha256(data).hexdigest())
                    q.put(data)
        for t in threads:
            t.join(60)
        got = [[out.get(timeout=10) for _ in range(per_lane)] for _, out in lanes]
        assert got == expected
    finally:
        for c in consumers:
            c.close()
