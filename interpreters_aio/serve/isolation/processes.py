"""Workers in child processes, on any build: for apps whose C extensions load
neither in subinterpreters nor without the GIL.

Each worker is ``python -m interpreters_aio.serve.isolation.processes FD``,
running the app in its own main interpreter (uvloop too, where installed, as
uvicorn's ``--loop auto``), on the listening sockets it inherits (the same
descriptor numbers). Its control, events and logs queues are bridged over a
socket pair, one pickled frame per item, so :func:`..worker.worker_main` and
the supervisor see the same queues as in the other modes.

The children are in a session of their own: a Ctrl-C in the terminal reaches
the supervisor alone, which stops them as it stops any worker. ``interrupt``
is SIGINT (a ``KeyboardInterrupt`` in the child's loop); a child still there
after a forced stop gave up on it is killed. A child whose supervisor
vanished (its socket reads end-of-file) stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import socket
import struct
import sys
import threading
from typing import Any

from . import Isolation, Runner, WorkerCall

_HEADER = struct.Struct("!I")


def _frame(item: object) -> bytes:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = sock.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_frame(sock: socket.socket) -> Any:
    """The next item from the socket (blocking), or ``EOFError`` at its end."""
    header = _read_exactly(sock, _HEADER.size)
    data = _read_exactly(sock, _HEADER.unpack(header)[0]) if header is not None else None
    if data is None:
        raise EOFError
    return pickle.loads(data)


class ProcessRunner(Runner):
    kind = "process"

    def __init__(self, owner: Processes) -> None:
        self._owner = owner
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def ident(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def run(self, call: WorkerCall) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", __name__, str(theirs.fileno()),
                pass_fds=(*call.fds, theirs.fileno()),
                start_new_session=True,
            )
        finally:
            theirs.close()
        self._owner.live.add(self)
        reader, writer = await asyncio.open_connection(sock=ours)
        writer.write(_frame((call.wire, call.slot, call.key, call.fds, list(sys.path))))
        forward = asyncio.ensure_future(self._forward_control(call.ctl, writer))
        try:
            await self._pump(reader, call)
        finally:
            forward.cancel()
            writer.close()
            code = await self._proc.wait()
            self._owner.live.discard(self)
        if code != 0:
            raise RuntimeError(f"process {self._proc.pid} exited with status {code}")

    async def _forward_control(self, ctl: Any, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            async for message in ctl.aio:
                writer.write(_frame(message))
                await writer.drain()

    async def _pump(self, reader: asyncio.StreamReader, call: WorkerCall) -> None:
        """Events and log lines from the child into the supervisor's queues."""
        targets = {"event": call.events, "log": call.logs}
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = _HEADER.unpack(await reader.readexactly(_HEADER.size))[0]
                kind, item = pickle.loads(await reader.readexactly(size))
                with contextlib.suppress(Exception):  # a full log queue drops the line
                    targets[kind].put_nowait(item)

    def interrupt(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGINT)

    def kill(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()

    async def close(self) -> None:
        self.kill()  # only a child that is still there: one abandoned by a forced stop


class Processes(Isolation):
    name = "processes"
    plural = "processes"

    def __init__(self) -> None:
        self.live: set[ProcessRunner] = set()

    def runner(self) -> Runner:
        return ProcessRunner(self)

    def stop(self) -> None:
        for runner in list(self.live):  # abandoned by a forced stop that gave up
            runner.kill()


# --- the child ------------------------------------------------------------------------


def _child(fd: int) -> int:
    from ... import create_queue
    from .. import logs, worker

    sock = socket.socket(fileno=fd)
    wire, slot, key, fds, path = _read_frame(sock)
    sys.path[:] = path
    ctl, events, log_queue = create_queue(), create_queue(), create_queue(logs.QUEUE_SIZE)
    send_lock = threading.Lock()

    def send_all(kind: str, queue: Any) -> None:
        while True:
            try:
                item = queue.get()
            except Exception:  # closed and drained: the worker is done
                return
            with send_lock, contextlib.suppress(OSError):
                sock.sendall(_frame((kind, item)))

    def receive_control() -> None:
        try:
            while True:
                ctl.put(_read_frame(sock))
        except (EOFError, OSError):
            with contextlib.suppress(Exception):
                ctl.put(("force",))  # the supervisor is gone: stop now

    senders = [
        threading.Thread(target=send_all, args=("event", events), daemon=True),
        threading.Thread(target=send_all, args=("log", log_queue), daemon=True),
    ]
    for thread in [*senders, threading.Thread(target=receive_control, daemon=True)]:
        thread.start()

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Not signal.default_int_handler, which asyncio.run() replaces with one that
    # only cancels the main task: the supervisor's interrupt must reach a loop
    # stuck in Python code.
    signal.signal(signal.SIGINT, interrupted)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    worker.worker_main(wire, slot, key, fds, ctl, events, log_queue, loop_factory=loop_factory)
    events.close()
    log_queue.close()
    for thread in senders:
        thread.join(10)
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(_child(int(sys.argv[1])))
