"""Differential test: random and mutated requests parsed by our Rust parser
(interpreters_aio._core.http_feed) and by h11 must agree on method, target,
headers and body, or ours must refuse. Refusing more is allowed (we refuse
duplicate Content-Length, obs-fold, and more that h11 tolerates), and so is
accepting empty lines before a request line (RFC 9112 section 2.2), which
h11 refuses; accepting
what h11 refuses, or reading it differently, is a bug."""

from __future__ import annotations

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interpreters_aio import _core

TOKEN = st.text(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-!#$%&'*+.^_`|~",
    min_size=1,
    max_size=12,
)
VALUE = st.from_regex(rb"[ -~]{0,20}", fullmatch=True) | st.binary(max_size=8)
NAMES = st.sampled_from(
    [b"Host", b"Content-Length", b"Transfer-Encoding", b"Connection", b"Expect", b"X-A", b"Upgrade"]
)


def ours(data: bytes) -> list[tuple] | None:
    """The requests in `data` as (method, (path, query), headers, body), or None if refused."""
    parser = _core.http_parser(16384, 100)
    events = _core.http_feed(parser, data)
    out: list[tuple] = []
    for event in events:
        if type(event) is tuple:
            method, _path, raw_path, query, headers, _flags, upgrade = event
            if upgrade is not None:
                return None  # h11 pauses on upgrades; compare plain requests only
            out.append([method.encode(), (raw_path, query), headers, b"", False])
        elif type(event) is bytes:
            out[-1][3] += event
        elif event is None:
            out[-1][4] = True
        elif type(event) is int:
            return None
    return [tuple(r[:4]) for r in out if r[4]]


def theirs(data: bytes) -> tuple[list[tuple], str | None]:
    """The same with h11, and why h11 refused the rest (None if it did not)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out: list[list] = []
    refused = None
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                headers = [(n, v) for n, v in event.headers]
                path, _, query = event.target.partition(b"?")  # as uvicorn's h11 protocol
                out.append([event.method, (path, query), headers, b""])
            elif isinstance(event, h11.Data):
                out[-1][3] += event.data
            elif isinstance(event, h11.EndOfMessage):
                out[-1].append(True)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE:
                    break
                # Answer so h11 goes on to the next pipelined request.
                conn.send(h11.Response(status_code=204, headers=[]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            else:  # NEED_DATA, PAUSED, ConnectionClosed
                break
    except h11.RemoteProtocolError as exc:
        refused = str(exc)
    return [tuple(r[:4]) for r in out if len(r) == 5], refused


def check(data: bytes) -> None:
    mine = ours(data)
    if mine is None:
        return  # refusing is always allowed
    ref, refused = theirs(data)
    if refused == "no request line received":
        # h11 refuses empty lines before a request line, which RFC 9112
        # section 2.2 says a server SHOULD ignore (and we do): compare the
        # requests before them.
        assert mine[: len(ref)] == ref, data
    elif refused is not None:
        # We may still be waiting for the end of what h11 refused, but must
        # not have accepted it.
        assert len(mine) <= len(ref) and mine == ref[: len(mine)], data
    else:
        # We may parse further than h11 (e.g. after an HTTP/1.0 keep-alive).
        assert mine[: len(ref)] == ref, data


@st.composite
def requests(draw):
    method = draw(st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD"]) | TOKEN.map(str.encode))
    target = draw(
        st.sampled_from([b"/", b"/a?b=c", b"/%20x", b"*", b"/a/b?"]) | st.binary(max_size=10)
    )
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"http/1.1"]))
    headers = [(b"Host", b"example")] if draw(st.sampled_from([1, 1, 1, 0])) else []
    for name, value in draw(st.lists(st.tuples(NAMES | TOKEN.map(str.encode), VALUE), max_size=5)):
        headers.append((name, value))
    body = draw(st.binary(max_size=30))
    framing = draw(st.sampled_from(["none", "length", "chunked", "wrong-length"]))
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "wrong-length":
        headers.append((b"Content-Length", b"%d" % draw(st.integers(0, 40))))
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = (b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)) if body else b"0\r\n\r\n"
    sep = draw(st.sampled_from([b"\r\n", b"\n"]))
    head = method + b" " + target + b" " + version + sep
    head += b"".join(n + b": " + v + sep for n, v in headers) + sep
    return head + (body if framing != "none" else b"")


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=3))
def test_random_requests_agree_with_h11(reqs):
    check(b"".join(reqs))


@SETTINGS
@given(requests(), st.data())
def test_mutated_requests_agree_with_h11(req, data):
    buf = bytearray(req)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        i = data.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[i] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[i:i] = data.draw(st.sampled_from([b"\r\n", b":", b" ", b"\x00", b",", b"0", b"\n"]))
        elif buf:
            del buf[i]
    check(bytes(buf))


def test_known_requests_agree():
    check(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nX:  y \r\n\r\n")
    check(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    check(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\n\r\n"
    )
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    assert ours(request) == theirs(request)[0] != []
