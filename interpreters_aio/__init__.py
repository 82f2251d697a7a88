"""interpreters_aio: multi-core Python with subinterpreters, with a Rust core.

A drop-in for CPython 3.14's ``concurrent.interpreters`` (PEP 734) on Python
3.12 and newer, keeping PEP 554's older names as aliases::

    import interpreters_aio as interpreters

    interp = interpreters.create()     # an isolated interpreter with its own GIL
    interp.exec("import math")         # runs in its __main__, in this thread
    interp.call(pow, 2, 100)           # returns 1267650600228229401496703205376
    interp.call_in_thread(work, 10)    # in a new thread, in parallel with us
    interp.close()

Interpreters, their thread states and the copying of data between them live
in the Rust extension ``interpreters_aio._core``; see docs/ for the design.
"""

from __future__ import annotations

from . import _backport, _core, _fork, _shutdown
from . import _crossinterp as _crossinterp  # 3.14's submodule, there after `import` as in 3.14
from ._backport import install
from ._channels import (
    ChannelClosedError,
    ChannelEmptyError,
    ChannelError,
    ChannelNotEmptyError,
    ChannelNotFoundError,
    ChannelReleasedError,
    NotReceivedError,
    RecvChannel,
    SendChannel,
    create_channel,
    list_all_channels,
)
from ._errors import (
    ExceptionSnapshot,
    ExecutionFailed,
    InterpreterError,
    InterpreterNotFoundError,
    NotShareableError,
    RemoteTraceback,
    RunFailedError,
)
from ._fork import ForkWithInterpretersWarning
from ._interpreter import (
    Interpreter,
    create,
    enumerate,
    get_current,
    get_main,
    is_shareable,
    list_all,
)
from ._queues import (
    UNBOUND,
    UNBOUND_ERROR,
    UNBOUND_REMOVE,
    ItemInterpreterDestroyed,
    Queue,
    QueueClosed,
    QueueEmpty,
    QueueError,
    QueueFull,
    QueueNotFoundError,
    create_queue,
    list_all_queues,
)

SharedBuffer = _core.SharedBuffer

__version__: str = _core.__version__  # Cargo's version, as in the wheel's metadata

__all__ = [
    "UNBOUND",
    "UNBOUND_ERROR",
    "UNBOUND_REMOVE",
    "BrokenInterpreterPool",
    "ChannelClosedError",
    "ChannelEmptyError",
    "ChannelError",
    "ChannelNotEmptyError",
    "ChannelNotFoundError",
    "ChannelReleasedError",
    "ExceptionSnapshot",
    "ExecutionFailed",
    "ForkWithInterpretersWarning",
    "Interpreter",
    "InterpreterError",
    "InterpreterNotFoundError",
    "InterpreterPoolExecutor",
    "ItemInterpreterDestroyed",
    "NotReceivedError",
    "NotShareableError",
    "Queue",
    "QueueClosed",
    "QueueEmpty",
    "QueueError",
    "QueueFull",
    "QueueNotFoundError",
    "RecvChannel",
    "RemoteTraceback",
    "RunFailedError",
    "SendChannel",
    "SharedBuffer",
    "create",
    "create_channel",
    "create_queue",
    "enumerate",
    "get_current",
    "get_main",
    "install",
    "is_shareable",
    "list_all",
    "list_all_channels",
    "list_all_queues",
]

_core._register_errors(InterpreterError, InterpreterNotFoundError, NotShareableError)

_LAZY = {"BrokenInterpreterPool", "InterpreterPoolExecutor"}
"""Names from ``executor``, imported on first use: it needs ``concurrent.futures``
(and with it ``logging``), twice the rest of this package's imports, which every
interpreter that receives a queue or channel would pay."""


def __getattr__(name: str) -> object:
    if name in _LAZY:
        from . import executor

        value = getattr(executor, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY)


_shutdown.install()
_fork.install()
# Last: install() needs the package complete (it is what it puts in sys.modules).
_backport._install_if_asked()
