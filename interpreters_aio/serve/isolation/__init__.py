"""Where a worker runs: the isolation modes of ``serve``, behind one interface.

The supervisor is written once (as granian's ``AbstractServer`` over its
worker kinds, or gunicorn's arbiter over its worker classes); each mode is a
small module that only knows how to start one worker, interrupt it and
clean up after it:

* :mod:`.interpreters`: a fresh subinterpreter per worker, on a thread of its
  own (one process, one GIL per worker). The default where the app allows it.
* :mod:`.threads`: a thread of the main interpreter per worker, on a
  free-threaded build (3.14t), where threads run Python in parallel; for apps
  whose C extensions refuse subinterpreters but support free threading.
* :mod:`.processes`: a child process per worker, on any build; for every other
  app (the extension loads in each child's main interpreter).

Every mode runs the same :func:`..worker.worker_main` with the same queues
(control, events, logs), so health checks, restarts, rolling restarts,
scaling, logs and signals behave alike. :func:`choose` picks the mode once,
at start-up, and says why.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
import sysconfig
from typing import Any

MODES = ("auto", "interpreters", "threads", "processes")


@dataclasses.dataclass(frozen=True)
class WorkerCall:
    """The arguments of :func:`..worker.worker_main` for one worker."""

    wire: dict[str, Any]
    slot: int
    key: int
    fds: tuple[int, ...]
    ctl: Any
    events: Any
    logs: Any


class Runner(abc.ABC):
    """One worker's host (an interpreter, a thread or a process), used once."""

    #: What a worker host is called in the logs: "interpreter", "thread", "process".
    kind: str

    @property
    @abc.abstractmethod
    def ident(self) -> int | None:
        """The interpreter id, thread id or process id, once it runs."""

    @property
    def label(self) -> str:
        """What the logs call it, e.g. ``"interpreter 3"`` or ``"process 1234"``."""
        return f"{self.kind} {'-' if self.ident is None else self.ident}"

    @abc.abstractmethod
    async def run(self, call: WorkerCall) -> None:
        """Runs the worker until it returns; raises if it could not be run."""

    @abc.abstractmethod
    def interrupt(self) -> None:
        """Raises ``KeyboardInterrupt`` in the worker's event loop thread, if it runs."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Releases what the worker held, once it has returned (or been abandoned)."""


class Isolation(abc.ABC):
    """One way to run workers; :meth:`runner` makes the host of each."""

    name: str
    #: What a worker is, in the start-up line ("interpreters 1, 2").
    plural: str

    @abc.abstractmethod
    def runner(self) -> Runner:
        """The host of a new worker."""

    # Hooks with nothing to do by default (not abstract: most modes need none).
    def start(self) -> None:  # noqa: B027
        """Called once before the first worker starts."""

    def before_reload(self, app_dir: str) -> None:  # noqa: B027
        """Called before a rolling restart, so that new workers load new code."""

    def stop(self) -> None:  # noqa: B027
        """Called once after the last worker is gone."""


@dataclasses.dataclass(frozen=True)
class Choice:
    """The mode :func:`choose` picked, and the reason it gives at start-up."""

    isolation: Isolation
    reason: str


def free_threaded() -> bool:
    """Whether this is a free-threaded build (3.13t, 3.14t), whatever the GIL's state."""
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def gil_enabled() -> bool:
    """Whether the GIL is on now (always on a default build)."""
    return getattr(sys, "_is_gil_enabled", lambda: True)()


def make(name: str) -> Isolation:
    """The isolation called ``name`` (not ``auto``)."""
    if name == "interpreters":
        from .interpreters import Interpreters

        return Interpreters()
    if name == "threads":
        from .threads import Threads

        return Threads()
    if name == "processes":
        from .processes import Processes

        return Processes()
    raise ValueError(f"unknown isolation {name!r}")


def choose(
    requested: str, app: str, refused: str | None, unsafe: str | None = None
) -> Choice:
    """The isolation for ``--isolation requested``.

    ``refused`` is what the start-up probe found: the module that refused to
    load in a subinterpreter when the app was imported in one, or ``None``.
    ``unsafe`` says why this CPython cannot run event loops in subinterpreters
    (3.12.0-3.12.3), or is ``None``. ``auto`` takes interpreters when nothing
    refused and nothing is unsafe; otherwise threads on a free-threaded build
    whose GIL is still off after importing the app (here, in the main
    interpreter); otherwise processes.

    Raises:
        ValueError: ``threads`` asked on a build with a GIL (the message says why).
    """
    if requested == "threads" and not free_threaded():
        raise ValueError(
            "--isolation threads needs a free-threaded Python (such as python3.14t): with a "
            "GIL, threads of one interpreter take turns and the workers would not run in "
            "parallel; use --isolation processes (or auto)"
        )
    if requested != "auto":
        reason = "as asked (--isolation)"
        if requested == "threads" and gil_enabled():
            reason += "; WARNING: importing the app turned the GIL on, so threads take turns"
        return Choice(make(requested), reason)
    if unsafe is not None:
        return Choice(make("processes"), unsafe)
    if refused is None:
        return Choice(make("interpreters"), f"{app} imports in a subinterpreter")
    why = f"{refused} cannot be loaded in a subinterpreter"
    if free_threaded() and not gil_enabled():
        return Choice(make("threads"), f"{why}; free-threaded build with the GIL still off")
    if free_threaded():
        return Choice(
            make("processes"),
            f"{why}, and importing the app turned the GIL on in this free-threaded build",
        )
    return Choice(make("processes"), f"{why}; this build has a GIL, so not threads")
