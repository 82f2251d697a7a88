"""Worker logs, one whole line at a time, through a queue to the supervisor.

Each interpreter has its own ``logging`` and its own ``sys.stdout`` buffer,
so N workers writing to the process's shared fds interleave mid-line. In a
worker, :func:`install` routes the ``logging`` records and everything printed
to ``sys.stdout``/``sys.stderr`` into one cross-interpreter queue as
``(stream, line)`` items, each a complete line already tagged with the
worker; the supervisor's :func:`pump` writes them out in arrival order.

The queue is bounded: a worker never blocks on its logs (which would stall
its event loop) and never grows memory without limit; lines that do not fit
are counted and the count is reported in the next line that does.
"""

from __future__ import annotations

import contextlib
import http
import io
import logging
import sys
import threading
from typing import Any

STDOUT = 1
STDERR = 2

#: Lines a worker may have in flight before it starts dropping them.
QUEUE_SIZE = 10_000

# uvicorn's level names, "TRACE" included, padded as its DefaultFormatter does.
TRACE = 5
LEVELS = {"critical": 50, "error": 40, "warning": 30, "info": 20, "debug": 10, "trace": TRACE}


class _QueueSink:
    """Puts tagged lines on the log queue without ever blocking."""

    def __init__(self, queue: Any, tag: str) -> None:
        self._queue = queue
        self._tag = tag
        self.dropped = 0

    def put(self, stream: int, line: str) -> None:
        if self.dropped:
            line = f"{line}  [{self.dropped} earlier lines dropped: log queue full]"
        try:
            self._queue.put_nowait((stream, line))
        except Exception:  # QueueFull, or the queue is closed at shutdown
            self.dropped += 1
        else:
            self.dropped = 0


class _Formatter(logging.Formatter):
    """uvicorn's plain format (``INFO:     message``) with the worker's tag."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self._tag = tag

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(10)
        text = super().format(record)
        if record.name == "uvicorn.access" and isinstance(record.args, tuple):
            # uvicorn's AccessFormatter: the status code with its phrase.
            with contextlib.suppress(Exception):
                text = f"{text} {http.HTTPStatus(int(record.args[-1])).phrase}"
        return f"{prefix}{self._tag} {text}"


class _QueueHandler(logging.Handler):
    def __init__(self, sink: _QueueSink, tag: str) -> None:
        super().__init__()
        self._sink = sink
        self.setFormatter(_Formatter(tag))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        # uvicorn writes access lines to stdout and everything else to stderr.
        stream = STDOUT if record.name == "uvicorn.access" else STDERR
        for line in text.splitlines() or [""]:
            self._sink.put(stream, line)


class _LineWriter(io.TextIOBase):
    """A ``sys.stdout`` stand-in that sends each complete line to the queue."""

    def __init__(self, sink: _QueueSink, stream: int, tag: str) -> None:
        self._sink = sink
        self._stream = stream
        self._tag = tag
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._sink.put(self._stream, f"{self._tag} {line}")
        return len(text)

    def flush(self) -> None:
        # A partial line waits for its end; close() sends what is left.
        pass

    def close(self) -> None:
        if self._partial:
            self._sink.put(self._stream, f"{self._tag} {self._partial}")
            self._partial = ""
        super().close()


def install(
    queue: Any, tag: str, level: str, access_log: bool, *, per_thread: bool = False
) -> list[_LineWriter]:
    """Routes this interpreter's logging and stdio to ``queue``; returns the writers to close.

    With ``per_thread`` (workers on threads of one interpreter, which share
    ``logging`` and ``sys.stdout``), only this thread's records and prints go to
    ``queue``, through the router that :func:`route_threads` installed.
    """
    logging.addLevelName(TRACE, "TRACE")
    sink = _QueueSink(queue, tag)
    handler = _QueueHandler(sink, tag)
    root = logging.getLogger()
    if per_thread:
        _thread_route.handler = handler
    else:
        for old in list(root.handlers):
            root.removeHandler(old)
        root.addHandler(handler)
    root.setLevel(LEVELS[level])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(LEVELS[level])
    access = logging.getLogger("uvicorn.access")
    access.disabled = not access_log
    writers = [_LineWriter(sink, STDOUT, tag), _LineWriter(sink, STDERR, tag)]
    if per_thread:
        _thread_route.writers = writers
    else:
        sys.stdout, sys.stderr = writers  # type: ignore[assignment]
    return writers


def uninstall(writers: list[_LineWriter], *, per_thread: bool = False) -> None:
    """Sends the last partial lines and restores the interpreter's own stdio."""
    for writer in writers:
        writer.close()
    if per_thread:
        _thread_route.__dict__.clear()
    else:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__


# Workers on threads of one interpreter: one router for logging and stdio,
# which sends what a worker thread logs or prints to that worker's queue and
# everything else where it went before.

_thread_route = threading.local()  # .handler and .writers, on a worker's thread
_routed: list[Any] = []  # what route_threads() replaced, for unroute_threads()


class _ThreadRouter(logging.Handler):
    def __init__(self, fallback: list[logging.Handler]) -> None:
        super().__init__()
        self._fallback = fallback or [logging.lastResort]

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        handler = getattr(_thread_route, "handler", None)
        if handler is not None:
            return bool(handler.handle(record))
        for other in self._fallback:
            if other is not None and record.levelno >= other.level:
                other.handle(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:  # pragma: no cover (handle() routes)
        self.handle(record)


class _ThreadStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` for threads: a worker thread's writer, else the original."""

    def __init__(self, original: Any, index: int) -> None:
        self._original = original
        self._index = index

    def writable(self) -> bool:
        return True

    def _target(self) -> Any:
        writers = getattr(_thread_route, "writers", None)
        return writers[self._index] if writers is not None else self._original

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def fileno(self) -> int:
        return self._original.fileno()


def route_threads() -> None:
    """Installs the per-thread router (once, before the first worker thread starts)."""
    if _routed:
        return
    root = logging.getLogger()
    _routed.extend([list(root.handlers), sys.stdout, sys.stderr])
    root.handlers[:] = [_ThreadRouter(list(root.handlers))]
    sys.stdout = _ThreadStream(sys.stdout, 0)  # type: ignore[assignment]
    sys.stderr = _ThreadStream(sys.stderr, 1)  # type: ignore[assignment]


def unroute_threads() -> None:
    """Puts back what :func:`route_threads` replaced."""
    if not _routed:
        return
    handlers, sys.stdout, sys.stderr = _routed
    logging.getLogger().handlers[:] = handlers
    _routed.clear()


class _LevelPrefix(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.levelprefix = f"{record.levelname}:".ljust(10)
        return True


def configure_supervisor(level: str, *, force: bool = False) -> None:
    """Supervisor log lines as the workers' (``INFO:     [serve] ...``), on stderr.

    Without ``force`` (the Python API), only if the application has configured
    neither our logger nor the root logger: its own logging setup wins.
    """
    log = logging.getLogger("interpreters_aio.serve")
    if not force and (log.handlers or logging.getLogger().handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelprefix)s[serve] %(message)s"))
    handler.addFilter(_LevelPrefix())
    log.handlers[:] = [handler]
    log.setLevel(LEVELS[level])
    log.propagate = False


async def pump(queue: Any) -> None:
    """Supervisor side: writes each line as it arrives, until the queue is closed."""
    streams = {STDOUT: sys.stdout, STDERR: sys.stderr}
    async for stream, line in queue.aio:
        out = streams.get(stream, sys.stderr)
        streams.get(stream, sys.stderr).write(line + "\n")
        # Flush each batch, not each line: what is queued is written first.
        if queue.empty():
            for out in streams.values():
                out.flush()
