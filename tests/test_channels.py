"""PEP 554 channels, with the PEP's examples, plus timeouts, buffers and fds."""

from __future__ import annotations

import os
import select
import textwrap
import threading
import time

import pytest
import workloads

import interpreters_aio as interpreters
from interpreters_aio import (
    ChannelClosedError,
    ChannelEmptyError,
    ChannelNotEmptyError,
    ChannelNotFoundError,
    ChannelReleasedError,
    NotReceivedError,
    NotShareableError,
    RecvChannel,
    SendChannel,
)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def test_rendezvous_send_waits_for_the_receiver():
    r, s = interpreters.create_channel()
    assert r.id == s.id and r.maxsize == 0
    received = []
    t = threading.Thread(target=lambda: received.append(r.recv()))
    t.start()
    s.send("x")  # returns once received
    t.join(10)
    assert received == ["x"]


def test_send_timeout_retracts_the_object():
    r, s = interpreters.create_channel()
    with pytest.raises(NotReceivedError):
        s.send("nobody listens", timeout=0.05)
    assert r.recv_nowait(None) is None  # not left behind: never delivered


def test_send_nowait_is_lossless():
    r, s = interpreters.create_channel()
    assert s.send_nowait(1) is False  # nobody waiting: nothing sent
    assert r.recv_nowait("empty") == "empty"
    t = threading.Thread(target=lambda: r.recv(timeout=10))
    t.start()
    deadline = time.monotonic() + 10
    while not readable(s.fileno()) and time.monotonic() < deadline:
        time.sleep(0.001)
    assert s.send_nowait(2) is True
    t.join(10)


def test_buffered_channel():
    r, s = interpreters.create_channel(2)
    assert s.send_nowait(1) and s.send_nowait(2)
    assert not s.send_nowait(3)
    with pytest.raises(NotReceivedError):
        s.send(3, timeout=0.02)
    assert [r.recv(), r.recv()] == [1, 2]
    with pytest.raises(ChannelEmptyError):
        r.recv(timeout=0.02)
    with pytest.raises(ChannelEmptyError):
        r.recv_nowait()


def test_iteration_until_closed():
    r, s = interpreters.create_channel(10)
    for i in range(5):
        s.send(i)
    s.close()
    assert list(r) == [0, 1, 2, 3, 4]
    with pytest.raises(ChannelClosedError):
        s.send(5)


def test_close_rules():
    r, s = interpreters.create_channel(4)
    s.send(1)
    with pytest.raises(ChannelNotEmptyError):
        r.close()
    r.close(force=True)
    with pytest.raises(ChannelClosedError):
        r.recv()
    r2, s2 = interpreters.create_channel(4)
    s2.send(1)
    s2.close(force=True)
    with pytest.raises(ChannelClosedError):
        r2.recv_nowait()


def test_close_wakes_a_blocked_receiver_and_sender():
    r, s = interpreters.create_channel()
    errors = []

    def receiver():
        try:
            r.recv(timeout=30)
        except ChannelClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=receiver)
    t.start()
    time.sleep(0.05)
    s.close()
    t.join(10)
    assert len(errors) == 1
    r3, s3 = interpreters.create_channel()

    def sender():
        try:
            s3.send(1, timeout=30)
        except ChannelClosedError as exc:
            errors.append(exc)

    t = threading.Thread(target=sender)
    t.start()
    time.sleep(0.05)
    r3.close(force=True)
    t.join(10)
    assert not t.is_alive()
    assert len(errors) == 2


def test_release_and_association(interp):
    r, s = interpreters.create_channel(4)
    assert s.interpreters == [] and r.interpreters == []
    s.send(1)
    assert s.interpreters == [interpreters.get_current()]
    interp.prepare_main(r=r)
    assert interp.call(workloads.recv_one, r) == 1
    assert r.interpreters == [interp]
    assert s.release() is True
    assert s.release() is False
    with pytest.raises(ChannelReleasedError):
        s.send(2)
    assert issubclass(ChannelReleasedError, ChannelClosedError)
    interp.exec("r.release()")
    with pytest.raises(ChannelClosedError):
        _ = r.interpreters  # nobody associated on either end: closed


def test_only_native_objects_unless_pickle_allowed():
    _r, s = interpreters.create_channel(4)
    with pytest.raises(NotShareableError, match="pickle=True"):
        s.send(workloads.Point(1, 2))
    r2, s2 = interpreters.create_channel(4, pickle=True)
    s2.send(workloads.Point(1, 2))
    assert r2.recv() == workloads.Point(1, 2)


def test_ends_cross_interpreters_and_lookup(interp):
    r, s = interpreters.create_channel()
    assert RecvChannel(r.id) is r and SendChannel(s.id) is s
    assert (r, s) in interpreters.list_all_channels()
    with pytest.raises(ChannelNotFoundError):
        RecvChannel(10**9)
    interp.prepare_main(s=s)
    t = interp.call_in_thread(workloads.send_one, s, ("from", interp.id))
    assert r.recv(timeout=10) == ("from", interp.id)
    t.join(10)


def test_send_buffer_and_shared_buffer(interp):
    r, s = interpreters.create_channel(4)
    s.send_buffer(bytearray(b"abcd"))
    got = r.recv()
    assert isinstance(got, interpreters.SharedBuffer)
    assert bytes(memoryview(got)) == b"abcd"
    buf = interpreters.SharedBuffer(8)
    s.send(buf)  # by reference
    same = r.recv()
    memoryview(same)[0] = 42
    assert memoryview(buf)[0] == 42
    assert interp.call(workloads.write_shared, buf, 1, 7) == bytes([42, 7, 0, 0])
    assert bytes(memoryview(buf)[:2]) == bytes([42, 7])


def test_fds(interp):
    r, s = interpreters.create_channel(1)
    assert not readable(r.fileno()) and readable(s.fileno())
    s.send(1)
    assert readable(r.fileno()) and not readable(s.fileno())
    r.recv()
    assert not readable(r.fileno())
    r0, s0 = interpreters.create_channel()
    assert not readable(s0.fileno()), "rendezvous: nobody is receiving"
    interp.prepare_main(r0=r0)
    t = interp.call_in_thread(workloads.recv_one, r0, 10)
    assert select.select([s0.fileno()], [], [], 10)[0], "a receiver is waiting"
    s0.send("now")
    t.join(10)


def test_pep554_synchronize_using_a_channel(interp):
    r, s = interpreters.create_channel()
    out_r, out_s = interpreters.create_channel(1)

    def run():
        interp.run(
            textwrap.dedent(
                """
                reader.recv()
                out.send("during")
                reader.release()
                """
            ),
            channels=dict(reader=r, out=out_s),
        )

    t = threading.Thread(target=run)
    t.start()
    s.send(b"")
    s.release()
    t.join(10)
    assert out_r.recv(timeout=10) == "during"


def test_pep554_sharing_a_file_descriptor(interp, tmp_path):
    path = tmp_path / "spamspamspam"
    path.write_text("spam\nspam\n")
    r1, s1 = interpreters.create_channel()
    r2, s2 = interpreters.create_channel()

    def run():
        interp.run(
            textwrap.dedent(
                """
                import os
                fd = int.from_bytes(reader.recv(), 'big')
                lines = [line for line in os.fdopen(fd, closefd=False)]
                writer.send(len(lines))
                """
            ),
            channels=dict(reader=r1, writer=s2),
        )

    t = threading.Thread(target=run)
    t.start()
    with open(path) as infile:
        fd = infile.fileno().to_bytes(1, "big")
        s1.send(fd)
        assert r2.recv(timeout=10) == 2
    t.join(10)


@pytest.mark.parametrize("codec", ["marshal", "pickle"])
def test_pep554_passing_objects_via_marshal_and_pickle(interp, codec):
    r, s = interpreters.create_channel()
    out_r, out_s = interpreters.create_channel(100)
    interp.run(f"import {codec}", channels=dict(reader=r, out=out_s))

    def run():
        interp.exec(
            textwrap.dedent(
                f"""
                data = reader.recv()
                while data:
                    out.send({codec}.loads(data))
                    data = reader.recv()
                """
            )
        )

    t = threading.Thread(target=run)
    t.start()
    import marshal
    import pickle

    dumps = marshal.dumps if codec == "marshal" else pickle.dumps
    inputs = [1, "two", (3, 4.0), {"five": [5]}]
    for obj in inputs:
        s.send(dumps(obj))
    s.send(None)
    t.join(10)
    assert [out_r.recv() for _ in inputs] == inputs


def test_pipe_fd_still_ours_after_test():
    # The channel fds are owned by the channel; closing a dup is harmless.
    r, s = interpreters.create_channel(1)
    os.close(os.dup(r.fileno()))
    s.send(1)
    assert r.recv() == 1


def test_fds_with_many_receivers_in_many_interpreters():
    r, s = interpreters.create_channel()
    its = [interpreters.create() for _ in range(4)]
    try:
        threads = [it.call_in_thread(workloads.recv_one, r, 30) for it in its]
        deadline = time.monotonic() + 10
        while r.interpreters.__len__() < 4 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert select.select([s.fileno()], [], [], 10)[0], "receivers are waiting"
        for i in range(4):
            s.send(i, timeout=10)
        for t in threads:
            t.join(10)
        assert not readable(s.fileno()), "nobody is waiting any more"
        assert not readable(r.fileno()), "nothing is left to receive"
    finally:
        for it in its:
            it.close()
