"""What ``serve`` is asked to do: one immutable, validated description.

The option names are uvicorn's wherever they mean the same thing (its
``Config`` and ``main.py``), so a user moving from ``uvicorn --workers N``
types what they already know. The config travels to every worker
interpreter as a plain dict (:meth:`ServeConfig.to_wire`): it holds only
natively shareable values.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Interface = Literal["auto", "asgi3", "asgi2", "asyncio"]
HttpImpl = Literal["auto", "rust", "h11"]
Lifespan = Literal["auto", "on", "off"]
WebSockets = Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"]
WS_IMPLS = ("auto", "none", "websockets", "websockets-sansio", "wsproto")
IsolationMode = Literal["auto", "interpreters", "threads", "processes"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

#: Exit status of a supervisor whose workers failed to start (uvicorn's
#: STARTUP_FAILURE): a process manager should not respawn it.
STARTUP_FAILURE = 3


class ConfigError(ValueError):
    """An option has a value ``serve`` cannot use; the message says which and why."""


def default_workers() -> int:
    """``$WEB_CONCURRENCY`` if set (as uvicorn), else the number of CPUs."""
    env = os.environ.get("WEB_CONCURRENCY")
    if env:
        try:
            workers = int(env)
        except ValueError:
            raise ConfigError(f"WEB_CONCURRENCY={env!r} is not a number of workers") from None
        if workers < 1:
            raise ConfigError(f"WEB_CONCURRENCY={env!r}: at least one worker is needed")
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parse_app_path(app: str) -> tuple[str, str]:
    """Splits ``"package.module:attr.path"``; raises ConfigError when malformed."""
    module, sep, attr = app.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f'app {app!r} must be given as "module:attribute", e.g. "main:app"')
    if not all(part.isidentifier() for part in module.split(".")):
        raise ConfigError(f"app {app!r}: {module!r} is not a module name")
    if not all(part.isidentifier() for part in attr.split(".")):
        raise ConfigError(f"app {app!r}: {attr!r} is not an attribute name")
    return module, attr


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=value`` lines of a dotenv file (comments, ``export`` and quotes allowed)."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ConfigError(f"--env-file {path!r}: {exc.strerror or exc}") from None
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise ConfigError(f"--env-file {path!r}, line {number}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].rstrip()
        values[key] = value
    return values


def existing_dir(path: str) -> str:
    """``--reload-dir``'s check: an existing folder (as uvicorn's ``click.Path(exists=True)``)."""
    if not os.path.isdir(path):
        import argparse

        raise argparse.ArgumentTypeError(f"{path!r} is not a directory")
    return path


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    """Everything ``serve`` needs to run an app in N workers.

    Args mirror ``uvicorn.Config`` where the name is the same; the ones
    beyond it: ``interface="asyncio"`` (an ``async def main(ctx)`` app, see
    :class:`~interpreters_aio.serve.Context`), ``http="rust"`` (our HTTP/1.1
    protocol; ``"h11"`` is uvicorn's pure-Python one; ``"auto"`` picks ours
    when the extension has it), ``isolation`` (where workers run:
    ``"interpreters"``, ``"threads"`` on a free-threaded build, ``"processes"``,
    or ``"auto"`` to pick the first the app allows), ``heartbeat_interval``
    and the restart policy. ``reload_dirs``, ``reload_includes`` and
    ``reload_excludes`` take a string or a sequence of strings, as uvicorn's.
    """

    app: str
    workers: int = 1
    isolation: IsolationMode = "auto"
    host: str | None = None
    port: int | None = None
    uds: str | None = None
    reuse_port: bool = False
    backlog: int = 2048
    interface: Interface = "auto"
    factory: bool = False
    app_dir: str = "."
    env_file: str | None = None
    http: HttpImpl = "auto"
    lifespan: Lifespan = "auto"
    log_level: str = "info"
    access_log: bool = True
    root_path: str = ""
    proxy_headers: bool = True
    forwarded_allow_ips: str | None = None
    server_header: bool = True
    date_header: bool = True
    timeout_keep_alive: int = 5
    timeout_graceful_shutdown: float | None = None
    timeout_worker_healthcheck: float = 30.0
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None
    ws: WebSockets = "auto"
    ws_max_size: int = 16 * 1024 * 1024
    ws_max_queue: int = 32
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    ssl_keyfile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_version: int = 17  # ssl.PROTOCOL_TLS_SERVER, as uvicorn's (ssl is not imported here)
    ssl_cert_reqs: int = 0  # ssl.CERT_NONE
    ssl_ca_certs: str | None = None
    ssl_ciphers: str = "TLSv1"
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    reload: bool = False
    reload_dirs: Sequence[str] = ()
    reload_includes: Sequence[str] = ()
    reload_excludes: Sequence[str] = ()
    reload_delay: float = 0.25
    heartbeat_interval: float = 0.5
    max_restarts: int = 5
    restart_window: float = 60.0

    def __post_init__(self) -> None:
        parse_app_path(self.app)
        for name in ("reload_dirs", "reload_includes", "reload_excludes"):
            # uvicorn takes a string or a list; a tuple of str crosses to workers.
            value = getattr(self, name)
            values = (value,) if isinstance(value, (str, os.PathLike)) else tuple(value or ())
            if not all(isinstance(v, (str, os.PathLike)) and os.fspath(v) for v in values):
                option = "--" + name[:-1].replace("_", "-")
                raise ConfigError(f"{option}: {value!r} is not a path or pattern")
            object.__setattr__(self, name, tuple(os.fspath(v) for v in values))
        if self.reload_delay < 0:
            raise ConfigError(f"--reload-delay {self.reload_delay}: cannot be negative")
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers}: at least one worker is needed")
        if self.uds is not None and (self.host is not None or self.port is not None):
            raise ConfigError("--uds and --host/--port are exclusive: give one kind of address")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port} is not a TCP port")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"--log-level {self.log_level!r}: one of {', '.join(LOG_LEVELS)}")
        if self.interface not in ("auto", "asgi3", "asgi2", "asyncio"):
            raise ConfigError(f"--interface {self.interface!r}: auto, asgi3, asgi2 or asyncio")
        if self.isolation not in ("auto", "interpreters", "threads", "processes"):
            raise ConfigError(
                f"--isolation {self.isolation!r}: auto, interpreters, threads or processes"
            )
        if self.http not in ("auto", "rust", "h11"):
            raise ConfigError(f"--http {self.http!r}: auto, rust or h11")
        if self.lifespan not in ("auto", "on", "off"):
            raise ConfigError(f"--lifespan {self.lifespan!r}: auto, on or off")
        for name in ("timeout_worker_healthcheck", "heartbeat_interval"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive")
        if self.heartbeat_interval >= self.timeout_worker_healthcheck:
            raise ConfigError("heartbeat_interval must be shorter than timeout_worker_healthcheck")
        if self.limit_max_requests is not None and self.limit_max_requests < 1:
            raise ConfigError("--limit-max-requests must be at least 1")
        if self.ws not in WS_IMPLS:
            raise ConfigError(f"--ws {self.ws!r}: one of {', '.join(WS_IMPLS)}")
        if self.ws_max_size < 1 or self.ws_max_queue < 1:
            raise ConfigError("--ws-max-size and --ws-max-queue must be at least 1")
        for name in ("ws_ping_interval", "ws_ping_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value}: must be positive")
        self._check_tls()
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError(f"--metrics-port {self.metrics_port} is not a TCP port")

    def _check_tls(self) -> None:
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            raise ConfigError("--ssl-keyfile needs --ssl-certfile (the certificate it belongs to)")
        for option, path in (
            ("--ssl-certfile", self.ssl_certfile),
            ("--ssl-keyfile", self.ssl_keyfile),
            ("--ssl-ca-certs", self.ssl_ca_certs),
        ):
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"{option} {path!r}: no such file")
        if self.ssl_cert_reqs not in (0, 1, 2):
            raise ConfigError(
                f"--ssl-cert-reqs {self.ssl_cert_reqs}: 0 (none), 1 (optional) or 2 (required)"
            )
        if self.ssl_cert_reqs and self.ssl_certfile is None:
            raise ConfigError("--ssl-cert-reqs needs TLS: give --ssl-certfile")

    @property
    def tls(self) -> bool:
        """Whether the workers serve HTTPS."""
        return self.ssl_certfile is not None

    def tls_context(self) -> Any:
        """The server's ``ssl.SSLContext``, built as uvicorn builds it (each
        worker builds its own; the supervisor builds one first, to fail early
        with a clear message). Raises :class:`ConfigError` if it cannot be built."""
        import ssl

        from uvicorn.config import create_ssl_context

        try:
            return create_ssl_context(
                keyfile=self.ssl_keyfile,
                certfile=self.ssl_certfile,
                password=self.ssl_keyfile_password,
                ssl_version=self.ssl_version,
                cert_reqs=self.ssl_cert_reqs,
                ca_certs=self.ssl_ca_certs,
                ciphers=self.ssl_ciphers,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(f"TLS: cannot use --ssl-certfile/--ssl-keyfile: {exc}") from None

    @property
    def module(self) -> str:
        """The module part of :attr:`app`."""
        return parse_app_path(self.app)[0]

    @property
    def attribute(self) -> str:
        """The attribute path of :attr:`app`."""
        return parse_app_path(self.app)[1]

    def with_defaults(self, *, http_app: bool) -> ServeConfig:
        """This config with an address filled in for an HTTP app (uvicorn's 127.0.0.1:8000)."""
        if not http_app or self.uds is not None:
            return self
        return dataclasses.replace(
            self,
            host="127.0.0.1" if self.host is None else self.host,
            port=8000 if self.port is None else self.port,
        )

    @property
    def binds(self) -> bool:
        """Whether there is an address to listen on."""
        return self.uds is not None or self.host is not None or self.port is not None

    def to_wire(self) -> dict[str, Any]:
        """The config as a dict of shareable values, for a worker interpreter."""
        return dataclasses.asdict(self)

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> ServeConfig:
        """The inverse of :meth:`to_wire`."""
        return cls(**wire)
