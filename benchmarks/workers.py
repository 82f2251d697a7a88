"""Functions run on the other side: in subinterpreters and in worker processes.

They live in an importable module (not ``__main__``) so that ``spawn`` and
``forkserver`` children can import them, and so that interpreters_aio sends
them to a subinterpreter by reference. Keep this module dependency-free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Not at run time: subinterpreters import this module too.
    from multiprocessing.connection import Connection


def noop() -> None:
    """Do nothing: the target of the process create+join case."""


def add(a: int, b: int) -> int:
    """Return ``a + b``: the trivial call."""
    return a + b


def trivial_noarg() -> int:
    """A no-argument, closure-free function, as ``_interpreters.call()`` requires."""
    return 1 + 2


def round_trip(lst: list[int], dct: dict[str, int]) -> tuple[list[int], dict[str, int]]:
    """Return the containers unchanged, so they are copied there and back."""
    return lst, dct


def echo_loop(conn: Connection) -> None:
    """Reply to every message on ``conn`` with the message itself; stop on ``None``."""
    try:
        while True:
            message: Any = conn.recv()
            if message is None:
                return
            conn.send(message)
    except EOFError:  # The parent went away.
        return
    finally:
        conn.close()
