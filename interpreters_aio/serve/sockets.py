"""Listening sockets, bound once by the supervisor and handed to workers by fd.

The supervisor binds before any worker starts (so "address in use" is one
clear error, and a rolling restart never closes the address), and keeps its
sockets open for its whole life. A worker gets, by number, either:

* a duplicate of the one shared socket (the default, as uvicorn's
  ``--workers``): the kernel keeps one accept queue, so a worker that stops
  never drops a connection another would have taken; or
* with ``reuse_port``, a socket of its own bound with ``SO_REUSEPORT`` to the
  same address: the kernel spreads new connections evenly across workers.
  Connections waiting in the accept queue of a worker that stops are reset
  (unless ``net.ipv4.tcp_migrate_req`` is set), so a rolling restart can drop
  a few under load.

Workers wrap the number as a real ``AF_INET``/``AF_INET6`` socket object
(``socket.socket(fileno=...)`` reads the family from the kernel), which is
what makes asyncio set ``TCP_NODELAY`` on accepted connections; uvicorn's own
``fd=`` option assumes ``AF_UNIX`` and loses it (10x slower on small
responses).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat

from .config import ConfigError, ServeConfig


class BindError(OSError):
    """The address cannot be listened on; the message names it and says why."""


def _describe(config: ServeConfig) -> str:
    if config.uds is not None:
        return f"unix socket {config.uds}"
    host = config.host or "127.0.0.1"
    return f"[{host}]:{config.port}" if ":" in host else f"{host}:{config.port}"


def _tcp_socket(host: str, port: int, *, reuse_port: bool, backlog: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise BindError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            # "::" means every address, IPv4 included, whatever the sysctl says.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise BindError(exc.errno, f"cannot listen on {where}: {reason}") from None
    sock.set_inheritable(False)
    return sock


def _unix_socket(path: str, backlog: int) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            # A stale socket file from a previous run: refuse if someone listens on it.
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)
            else:
                raise BindError(errno.EADDRINUSE, f"cannot listen on unix socket {path}: in use")
            finally:
                probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(exc.errno, f"cannot listen on unix socket {path}: {exc.strerror}") from None
    return sock


class Listeners:
    """The supervisor's listening sockets, and the fds it hands each worker."""

    def __init__(self, config: ServeConfig) -> None:
        self._config = config
        # With reuse_port: the socket bound at start-up (checks the address),
        # until the first worker takes it; then one socket per worker.
        self._spare: socket.socket | None = None
        self._shared: socket.socket | None = None
        self._own: dict[int, socket.socket] = {}
        self._port: int | None = None
        if not config.binds:
            return
        if config.uds is not None:
            self._shared = _unix_socket(config.uds, config.backlog)
            return
        if config.reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError("--reuse-port: this system has no SO_REUSEPORT")
        first = self._new_tcp(config.port or 0)
        self._port = int(first.getsockname()[1])
        if config.reuse_port:
            self._spare = first
        else:
            self._shared = first

    def _new_tcp(self, port: int) -> socket.socket:
        config = self._config
        return _tcp_socket(
            config.host or "127.0.0.1", port, reuse_port=config.reuse_port, backlog=config.backlog
        )

    @property
    def address(self) -> str:
        """Where the app listens, for the start-up message (the real port if 0 was asked)."""
        if self._config.uds is not None:
            return f"unix socket {self._config.uds}"
        if self._port is None:
            return "nowhere (no --host, --port or --uds)"
        host = self._config.host or "127.0.0.1"
        scheme = "https" if self._config.tls else "http"
        if ":" in host:
            return f"{scheme}://[{host}]:{self._port}"
        return f"{scheme}://{host}:{self._port}"

    @property
    def port(self) -> int | None:
        """The TCP port listened on, if any (the one the kernel chose, when 0 was asked)."""
        return self._port

    def fds_for(self, worker_key: int) -> tuple[int, ...]:
        """The socket numbers worker ``worker_key`` serves on (it duplicates them itself)."""
        if self._shared is not None:
            return (self._shared.fileno(),)
        if self._port is None:
            return ()
        sock = self._own.get(worker_key)
        if sock is None:
            sock, self._spare = self._spare or self._new_tcp(self._port), None
            self._own[worker_key] = sock
        return (sock.fileno(),)

    def release(self, worker_key: int) -> None:
        """Worker ``worker_key`` is gone: close the socket of its own, if it had one."""
        sock = self._own.pop(worker_key, None)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        """Closes every socket (and removes the unix socket file)."""
        for sock in [*self._own.values(), self._spare, self._shared]:
            if sock is not None:
                sock.close()
        self._own.clear()
        self._spare = self._shared = None
        if self._config.uds is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._config.uds)


def describe(config: ServeConfig) -> str:
    """The address ``config`` asks for, as a user would write it."""
    return _describe(config)
