"""``serve``'s TLS (``--ssl-*``) and WebSocket (``--ws*``) options, with uvicorn's
names, over real connections on 127.0.0.1 (certificates made by the openssl CLI)."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from serve_helpers import ServeProcess, needs_safe_asyncio

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
    pytest.mark.skipif(needs_safe_asyncio, reason="CPython 3.12.0-3.12.3 serve in processes only"),
]

FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()
ISOLATIONS = ["interpreters", "processes"] + (["threads"] if FREE_THREADED else [])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    # Extensions as Python 3.13+'s strict verification wants them.
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=interpreters-aio test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    common = "authorityKeyIdentifier=keyid,issuer\nkeyUsage=critical,digitalSignature\n"
    for name, ext in (
        ("server", common + "extendedKeyUsage=serverAuth\n"
                   "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", common + "extendedKeyUsage=clientAuth"),
    ):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=test {name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                 "-extfile", f"{name}.ext", cwd=d)
    _openssl("pkey", "-in", "server.key", "-aes256", "-passout", "pass:s3cret",
             "-out", "server-locked.key", cwd=d)
    return d


def _tls_serving(serve: ServeProcess) -> int:
    match = serve.wait_for(r"serving \S+ on https://127\.0\.0\.1:(\d+)", 60)[0]
    serve.port = int(match.group(1))
    return serve.port


def _client_context(certs: Path, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if with_cert:
        context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    return context


def _https_get(port: int, context: ssl.SSLContext, path: str = "/") -> tuple[int, str]:
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _tls_args(certs: Path) -> list[str]:
    return ["--ssl-certfile", str(certs / "server.pem"), "--ssl-keyfile", str(certs / "server.key")]


@pytest.mark.parametrize("isolation", ISOLATIONS)
def test_tls_round_trip_and_plain_http_is_refused_cleanly(certs: Path, isolation: str):
    with ServeProcess("tls_ws_app:app", "--workers", "2", "--port", "0",
                      "--isolation", isolation, *_tls_args(certs)) as serve:
        port = _tls_serving(serve)
        for _ in range(4):  # both workers, new connections
            assert _https_get(port, _client_context(certs)) == (200, "https")
        # Plain HTTP to the TLS port: no HTTP answer, the connection closes.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as plain:
            plain.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            received = b""
            try:
                while chunk := plain.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass
        assert b"HTTP/1.1 200" not in received
        assert _https_get(port, _client_context(certs)) == (200, "https")
        assert serve.stop() == 0
    assert "Traceback" not in serve.output, serve.output


def test_client_certificate_required(certs: Path):
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0", *_tls_args(certs),
                      "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(certs / "ca.pem")) as serve:
        port = _tls_serving(serve)
        assert _https_get(port, _client_context(certs, with_cert=True)) == (200, "https")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _https_get(port, _client_context(certs))
        assert _https_get(port, _client_context(certs, with_cert=True)) == (200, "https")
        assert serve.stop() == 0


def test_key_password(certs: Path):
    locked = ["--ssl-certfile", str(certs / "server.pem"),
              "--ssl-keyfile", str(certs / "server-locked.key")]
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0", *locked,
                      "--ssl-keyfile-password", "wrong") as serve:
        assert serve.wait(60) != 0
    assert "error: TLS: cannot use --ssl-certfile/--ssl-keyfile" in serve.output, serve.output
    assert "Traceback" not in serve.output, serve.output
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0", *locked,
                      "--ssl-keyfile-password", "s3cret") as serve:
        port = _tls_serving(serve)
        assert _https_get(port, _client_context(certs)) == (200, "https")
        assert serve.stop() == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--ssl-keyfile", "server.key"], "--ssl-keyfile needs --ssl-certfile"),
        (["--ssl-certfile", "absent.pem"], "--ssl-certfile 'absent.pem': no such file"),
        (["--ws-ping-interval", "0"], "--ws-ping-interval 0.0: must be positive"),
    ],
)
def test_bad_tls_and_ws_options_are_refused_at_start(certs: Path, args: list[str], message: str):
    args = [str(certs / a) if a == "server.key" else a for a in args]
    with ServeProcess("tls_ws_app:app", "--port", "0", *args) as serve:
        assert serve.wait(60) != 0
    assert message in serve.output, serve.output
    assert "Traceback" not in serve.output, serve.output


def _ws_echo(url: str, text: str, **kwargs) -> str:
    from websockets.sync.client import connect

    with connect(url, open_timeout=30, close_timeout=5, **kwargs) as ws:
        ws.send(text)
        return ws.recv(timeout=30)


@pytest.mark.parametrize("ws", ["auto", "websockets", "websockets-sansio", "wsproto"])
def test_websocket_over_each_ws_choice(ws: str):
    pytest.importorskip("websockets")
    if ws == "wsproto":
        pytest.importorskip("wsproto")
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0", "--ws", ws,
                      "--ws-max-size", "1024", "--no-ws-per-message-deflate") as serve:
        port = serve.wait_serving()
        assert _ws_echo(f"ws://127.0.0.1:{port}/", "hello") == "ws:hello"
        assert serve.get() == (200, "http")
        assert serve.stop() == 0
    if ws != "websockets":  # uvicorn's own deprecation of its legacy implementation
        assert "DeprecationWarning" not in serve.output, serve.output
    assert "Traceback" not in serve.output, serve.output


def test_ws_max_size_is_enforced():
    pytest.importorskip("websockets")
    from websockets.exceptions import ConnectionClosed

    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0",
                      "--ws-max-size", "64") as serve:
        port = serve.wait_serving()
        assert _ws_echo(f"ws://127.0.0.1:{port}/", "x" * 60) == "ws:" + "x" * 60
        with pytest.raises(ConnectionClosed):
            _ws_echo(f"ws://127.0.0.1:{port}/", "x" * 200)
        assert serve.stop() == 0


def test_ws_none_serves_upgrades_as_http():
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0", "--ws", "none") as serve:
        port = serve.wait_serving()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        })
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"http (upgrade served as http)")
        conn.close()
        assert serve.stop() == 0


def test_websocket_over_tls(certs: Path):
    pytest.importorskip("websockets")
    args = ["--workers", "1", "--port", "0", *_tls_args(certs)]
    with ServeProcess("tls_ws_app:app", *args) as serve:
        port = _tls_serving(serve)
        echoed = _ws_echo(f"wss://127.0.0.1:{port}/", "secret", ssl=_client_context(certs))
        assert echoed == "wss:secret"
        assert serve.stop() == 0


def test_a_worker_imports_websockets_at_its_first_upgrade_and_no_uvicorn_cli():
    # Memory per worker (issue 28 item 3): websockets (~1.7 MiB) loads at the
    # first upgrade, and uvicorn's package __init__ (click, the supervisors)
    # not at all, though its names still work for the app.
    pytest.importorskip("websockets")
    with ServeProcess("tls_ws_app:app", "--workers", "1", "--port", "0",
                      "--isolation", "interpreters") as serve:
        port = serve.wait_serving()
        assert serve.get("/modules") == (200, "-")
        assert _ws_echo(f"ws://127.0.0.1:{port}/", "hi") == "ws:hi"
        assert serve.get("/modules")[1] == "websockets"
        status, body = serve.get("/uvicorn")
        assert status == 200 and body.endswith(" Config run"), body
        assert serve.get("/modules")[1] == "click uvicorn.main websockets"
        assert serve.stop() == 0
