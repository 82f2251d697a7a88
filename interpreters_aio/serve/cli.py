"""``python -m interpreters_aio serve`` (and ``interpreters-aio serve``): the command line.

Option names and defaults are uvicorn's wherever the meaning is the same, so
``uvicorn main:app --workers 4 --port 8000`` becomes ``interpreters-aio serve
main:app --workers 4 --port 8000``. Exit codes: 0 after a clean stop, 1 for
an error (the app does not import, bad options, workers that keep crashing),
3 when the workers could not start (uvicorn's STARTUP_FAILURE: a process
manager should not respawn it), 2 for a usage error (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import textwrap

from .._cli import PROG, VERSION, ArgumentParser
from . import logs
from .config import LOG_LEVELS, ConfigError, ServeConfig, default_workers, existing_dir
from .preflight import ServeError

#: The end of ``serve --help``: what the supervisor does with signals
#: (supervisor.py), and where to look first.
EPILOG = f"""\
signals (to the process: kill -s NAME PID):
  HUP        rolling restart: one worker at a time is replaced by a fresh one
             that imports the app anew, and stopped once that one is ready; if
             one cannot start, the restart ends there and the old keeps serving
  TTIN/TTOU  one worker more / one fewer (never fewer than one)
  INT/TERM   graceful stop (uvicorn's): stop accepting, let requests finish
             (--timeout-graceful-shutdown); a second INT or TERM (Ctrl-C twice)
             forces it: connections closed, requests cancelled

exit status: 0 after a clean stop, 1 for an error, 2 for a usage error, 3 when
the workers could not start (a process manager should not respawn it).

Will the app run in subinterpreters? This says which of its modules refuse
them, and which isolation --isolation auto would pick:
  {PROG} check MODULE:APP
"""


def _parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=f"{PROG} serve",
        usage="%(prog)s [OPTIONS] MODULE:APP",
        description=textwrap.fill(
            "Run an ASGI app, or an asyncio app (async def main(ctx)), as N copies in "
            "N subinterpreters of one process, or on threads or processes where the app's C "
            "extensions refuse subinterpreters (uvicorn's options where they mean the same).",
            79),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bool_opt = argparse.BooleanOptionalAction
    add = parser.add_argument
    add("app", metavar="MODULE:APP", help='the app, e.g. "main:app" or "pkg.service:main"')
    add("--workers", type=int, default=None,
        help="workers (default: $WEB_CONCURRENCY, else the CPU count)")
    add("--isolation", choices=["auto", "interpreters", "threads", "processes"], default="auto",
        help="where workers run: subinterpreters of one process, threads of one process "
        "(free-threaded Python only) or child processes; auto (default): interpreters if the "
        "app's imports load in one, else threads on a free-threaded build, else processes")
    add("--host", default=None, help="bind to this address (default for ASGI apps: 127.0.0.1)")
    add("--port", type=int, default=None, help="bind to this port (default for ASGI apps: 8000)")
    add("--uds", default=None, help="bind to this unix domain socket")
    add("--reuse-port", action="store_true",
        help="one SO_REUSEPORT socket per worker: the kernel spreads connections evenly")
    add("--backlog", type=int, default=2048, help="listen backlog (default: 2048)")
    add("--interface", choices=["auto", "asgi3", "asgi2", "asyncio"], default="auto",
        help="app interface; asyncio: async def main(ctx) (default: auto-detect)")
    add("--factory", action="store_true", help="APP is a factory that returns the app")
    add("--app-dir", default=".", help="look for the app here (put first on sys.path)")
    add("--env-file", default=None, help="read environment variables from this file")
    add("--http", choices=["auto", "rust", "h11"], default="auto",
        help="HTTP protocol: rust (ours, the default with auto) or h11 (uvicorn's, pure Python)")
    add("--lifespan", choices=["auto", "on", "off"], default="auto", help="ASGI lifespan")
    add("--log-level", choices=LOG_LEVELS, default="info", help="log level (default: info)")
    add("--access-log", action=bool_opt, default=True, help="log each request")
    add("--root-path", default="", help="ASGI root_path, for apps mounted below a prefix")
    add("--proxy-headers", action=bool_opt, default=True,
        help="trust X-Forwarded-Proto/For from --forwarded-allow-ips")
    add("--forwarded-allow-ips", default=None, help="proxies to trust (default: 127.0.0.1)")
    add("--server-header", action=bool_opt, default=True, help="send a Server header")
    add("--date-header", action=bool_opt, default=True, help="send a Date header")
    add("--timeout-keep-alive", type=int, default=5,
        help="close idle keep-alive connections after this many seconds (default: 5)")
    add("--timeout-graceful-shutdown", type=float, default=None,
        help="seconds to let requests finish on shutdown (default: wait for them)")
    add("--timeout-worker-healthcheck", type=float, default=30.0,
        help="replace a worker whose event loop does not answer for this many seconds "
        "(default: 30, gunicorn's --timeout): longer than any handler may block its loop")
    add("--limit-concurrency", type=int, default=None,
        help="answer 503 above this many connections and tasks per worker")
    add("--limit-max-requests", type=int, default=None,
        help="replace a worker after it served this many requests")
    add("--ws", choices=["auto", "none", "websockets", "websockets-sansio", "wsproto"],
        default="auto", help="WebSocket protocol: auto (websockets' sans-I/O one if installed, "
        "else wsproto) or none (upgrade requests are served as HTTP)")
    add("--ws-max-size", type=int, default=16 * 1024 * 1024,
        help="largest WebSocket message accepted, in bytes (default: 16 MiB)")
    add("--ws-max-queue", type=int, default=32,
        help="WebSocket messages buffered for the app (default: 32)")
    add("--ws-ping-interval", type=float, default=20.0,
        help="seconds between WebSocket pings (default: 20)")
    add("--ws-ping-timeout", type=float, default=20.0,
        help="close a WebSocket whose ping is not answered in this many seconds (default: 20)")
    add("--ws-per-message-deflate", action=bool_opt, default=True,
        help="offer WebSocket per-message compression")
    add("--ssl-keyfile", default=None, help="TLS: the private key file (PEM)")
    add("--ssl-certfile", default=None, help="TLS: the certificate (chain) file (PEM)")
    add("--ssl-keyfile-password", default=None, help="TLS: the private key's password")
    add("--ssl-version", type=int, default=17,
        help="TLS: the ssl module's protocol constant (default: 17, PROTOCOL_TLS_SERVER)")
    add("--ssl-cert-reqs", type=int, default=0, choices=[0, 1, 2],
        help="TLS: client certificates: 0 none (default), 1 optional, 2 required")
    add("--ssl-ca-certs", default=None, help="TLS: CA certificates to verify clients with")
    add("--ssl-ciphers", default="TLSv1", help="TLS: ciphers (default: TLSv1)")
    add("--metrics-port", type=int, default=None, metavar="PORT",
        help="serve Prometheus metrics at http://METRICS-HOST:PORT/metrics from the "
        "supervisor: requests, responses by status class, durations, open connections, "
        "restarts and health-check misses, per worker and in total (default: off)")
    add("--metrics-host", default="127.0.0.1",
        help="the address of --metrics-port (default: 127.0.0.1)")
    add("--reload", action="store_true",
        help="watch the source files: a change rolls the workers over as SIGHUP does "
        "(watchfiles if installed, else polling)")
    add("--reload-dir", dest="reload_dirs", action="append", type=existing_dir, default=None,
        metavar="DIR", help="watch this folder instead of the current one (repeatable)")
    add("--reload-include", dest="reload_includes", action="append", default=None,
        metavar="GLOB", help="also reload on files matching this pattern; '*.py' is "
        "included by default, which --reload-exclude can take back (repeatable)")
    add("--reload-exclude", dest="reload_excludes", action="append", default=None,
        metavar="GLOB", help="do not reload on files (or folders) matching this pattern; "
        "'.*, .py[cod], .sw.*, ~*' are excluded by default, which --reload-include can "
        "take back (repeatable)")
    add("--reload-delay", type=float, default=0.25, metavar="S",
        help="reload once the watched files have been quiet this long (default: 0.25)")
    add("--version", action="version", version=VERSION)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns the exit code."""
    args = _parser().parse_args(argv)
    logs.configure_supervisor(args.log_level, force=True)
    options = vars(args)
    app = options.pop("app")
    try:
        if options["workers"] is None:
            options["workers"] = default_workers()
        from . import prepare

        supervisor = prepare(ServeConfig(app=app, **options))
        code = asyncio.run(supervisor.run())
    except (ConfigError, ServeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    sys.stderr.flush()
    if supervisor._live:  # a worker stuck in C code that no interrupt reached
        print("error: a worker did not stop; exiting without waiting for it", file=sys.stderr)
        os._exit(code or 1)
    return code
