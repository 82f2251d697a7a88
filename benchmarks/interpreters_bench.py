"""Section "interpreters": the basic costs of a subinterpreter, against the alternatives.

Each case times interpreters_aio, the standard library's private module
(``_interpreters`` on 3.13 and 3.14, ``_xxsubinterpreters`` on 3.12) and its
public ``concurrent.interpreters`` (3.14) where they can do the job, and
worker processes with each :mod:`multiprocessing` start method doing the
nearest equivalent job.

create+close runs first, and times each interpreter contender in a fresh
process of its own: CPython 3.12 and 3.13 leak memory with every interpreter
created and destroyed, which slows down the creations timed after it in the
same process.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import ModuleType
from typing import Any

import interpreters_aio as interpreters

from . import processes, workers
from .registry import BASELINE, NO_CHECK, Case, Contender, register_section
from .stdlib_interpreters import PUBLIC_MODULE, StdlibInterpreters, detect, detect_public
from .timing import Op

PRIVATE_MODULE_313 = "_interpreters"
"""The private module of CPython 3.13 and later (3.12 has ``_xxsubinterpreters``)."""

PICKLE_TARGET_SPEEDUP = 3.0
"""interpreters_aio's native copy should be at least this many times faster than
pickling: than pickling in-process, and than ``concurrent.interpreters``, which pickles."""

CONTAINER_LIST = list(range(1000))
CONTAINER_DICT = {str(i): i for i in range(100)}


# --- helpers -----------------------------------------------------------------


@contextmanager
def _ready(op: Op) -> Iterator[Op]:
    """A setup with nothing to set up or clean up."""
    yield op


@contextmanager
def _our_interpreter() -> Iterator[interpreters.Interpreter]:
    interp = interpreters.create()
    try:
        yield interp
    finally:
        interp.close()


@contextmanager
def _stdlib_interpreter(stdlib: StdlibInterpreters) -> Iterator[object]:
    id = stdlib.create()
    try:
        yield id
    finally:
        stdlib.destroy(id)


@contextmanager
def _public_interpreter(public: ModuleType) -> Iterator[Any]:
    interp = public.create()
    try:
        yield interp
    finally:
        interp.close()


def _public_contender(
    public: ModuleType | None, make: Callable[[ModuleType], Contender]
) -> Contender:
    """The ``concurrent.interpreters`` row: ``make`` returns the contender."""
    if public is None:
        return Contender.unavailable(PUBLIC_MODULE, f"no {PUBLIC_MODULE} module (CPython 3.14+)")
    return make(public)


def _stdlib_contender(
    stdlib: StdlibInterpreters | None,
    make: Callable[[StdlibInterpreters], Contender | str],
) -> Contender:
    """The stdlib row: ``make`` returns the contender, or why the module cannot do the job."""
    if stdlib is None:
        return Contender.unavailable("stdlib", "no _interpreters/_xxsubinterpreters module")
    made = make(stdlib)
    if isinstance(made, str):
        return Contender.unavailable(stdlib.name, made)
    return made


def _process_contenders(
    setup: Callable[[str], Callable[[], AbstractContextManager[Op]]],
    expected: object = NO_CHECK,
    note: str = "",
) -> list[Contender]:
    """One row per start method; ``setup(method)`` is that row's setup."""
    rows = []
    for method in processes.START_METHODS:
        name = f"process ({method})"
        reason = processes.unavailable_reason(method)
        if reason is not None:
            rows.append(Contender.unavailable(name, reason))
        else:
            rows.append(Contender(name, setup(method), expected=expected, note=note))
    return rows


# --- create+close --------------------------------------------------------------


@contextmanager
def _ours_create_close() -> Iterator[Op]:
    yield lambda: interpreters.create().close()


def _create_close_case(stdlib: StdlibInterpreters | None, public: ModuleType | None) -> Case:
    def stdlib_row(stdlib: StdlibInterpreters) -> Contender:
        create, destroy = stdlib.create, stdlib.destroy
        return Contender(
            stdlib.name,
            lambda: _ready(lambda: destroy(create())),
            note="destroy(create())",
            fresh_process=True,
        )

    def public_row(public: ModuleType) -> Contender:
        create = public.create
        return Contender(
            PUBLIC_MODULE,
            lambda: _ready(lambda: create().close()),
            note="create().close()",
            fresh_process=True,
        )

    def process_setup(method: str) -> Callable[[], AbstractContextManager[Op]]:
        ctx = processes.context(method)
        return lambda: _ready(lambda: processes.start_and_join_noop(ctx))

    return Case(
        name="create+close",
        description="create an interpreter and close it / start a no-op process and join it",
        contenders=[
            Contender(BASELINE, _ours_create_close, note="create().close()", fresh_process=True),
            _stdlib_contender(stdlib, stdlib_row),
            _public_contender(public, public_row),
            *_process_contenders(process_setup, note="start + join a no-op Process"),
        ],
    )


# --- trivial exec ---------------------------------------------------------------


@contextmanager
def _ours_exec() -> Iterator[Op]:
    with _our_interpreter() as interp:
        yield lambda: interp.exec("pass")


@contextmanager
def _pipe_round_trip(method: str) -> Iterator[Op]:
    with processes.echo_worker(method) as conn:
        send, recv = conn.send, conn.recv

        def op() -> object:
            send(1)
            return recv()

        yield op


def _exec_case(
    stdlib: StdlibInterpreters | None, public: ModuleType | None, *, in_thread: bool
) -> Case:
    def stdlib_row(stdlib: StdlibInterpreters) -> Contender:
        @contextmanager
        def setup() -> Iterator[Op]:
            with _stdlib_interpreter(stdlib) as id:
                exec_ = stdlib.exec
                yield lambda: exec_(id, "pass")

        verb = "exec" if stdlib.name == PRIVATE_MODULE_313 else "run_string"
        return Contender(stdlib.name, setup, note=f'{verb}(id, "pass")')

    def public_row(public: ModuleType) -> Contender:
        @contextmanager
        def setup() -> Iterator[Op]:
            with _public_interpreter(public) as interp:
                exec_ = interp.exec
                yield lambda: exec_("pass")

        return Contender(PUBLIC_MODULE, setup, note='exec("pass")')

    where = "worker thread" if in_thread else "main thread"
    return Case(
        name=f"trivial exec ({where})",
        description=f'exec("pass") in an existing interpreter, from the {where} '
        "/ a round trip to a worker process over a Pipe",
        in_thread=in_thread,
        contenders=[
            Contender(BASELINE, _ours_exec, note='exec("pass")'),
            _stdlib_contender(stdlib, stdlib_row),
            _public_contender(public, public_row),
            *_process_contenders(
                lambda method: lambda: _pipe_round_trip(method),
                expected=1,
                note="Pipe round trip (send 1, get 1 back)",
            ),
        ],
    )


# --- calls ----------------------------------------------------------------------


def _pool_apply(method: str, func: Callable[..., object], *args: object) -> Callable[[], object]:
    """The setup of a row that calls ``func(*args)`` in a 1-worker Pool, already started."""

    @contextmanager
    def setup() -> Iterator[Op]:
        with processes.worker_pool(method) as pool:
            apply = pool.apply
            yield lambda: apply(func, args)

    return setup


def _stdlib_call(
    stdlib: StdlibInterpreters, func: Callable[..., object], *args: object
) -> Callable[[], AbstractContextManager[Op]]:
    """The setup of a stdlib row that calls ``func(*args)`` in an existing interpreter."""
    stdlib_call = stdlib.call
    assert stdlib_call is not None

    @contextmanager
    def setup() -> Iterator[Op]:
        with _stdlib_interpreter(stdlib) as id:
            yield lambda: stdlib_call(id, func, *args)

    return setup


def _public_call(
    public: ModuleType, func: Callable[..., object], *args: object
) -> Callable[[], AbstractContextManager[Op]]:
    """The setup of a ``concurrent.interpreters`` row that calls ``func(*args)``."""

    @contextmanager
    def setup() -> Iterator[Op]:
        with _public_interpreter(public) as interp:
            call = interp.call
            yield lambda: call(func, *args)

    return setup


def _call_case(stdlib: StdlibInterpreters | None, public: ModuleType | None) -> Case:
    @contextmanager
    def ours() -> Iterator[Op]:
        with _our_interpreter() as interp:
            call = interp.call
            yield lambda: call(workers.add, 1, 2)

    def stdlib_row(stdlib: StdlibInterpreters) -> Contender | str:
        if stdlib.call is None:
            return f"{stdlib.name} has no call()"
        if stdlib.call_passes_args and stdlib.call_returns_result:
            return Contender(
                stdlib.name,
                _stdlib_call(stdlib, workers.add, 1, 2),
                expected=3,
                note="call(id, add, (1, 2)) -> (3, None)",
            )
        return Contender(
            stdlib.name,
            _stdlib_call(stdlib, workers.trivial_noarg),
            note="call(id, f) of a no-arg f (no args on 3.13); result not returned, not checked",
        )

    def public_row(public: ModuleType) -> Contender:
        return Contender(
            PUBLIC_MODULE,
            _public_call(public, workers.add, 1, 2),
            expected=3,
            note="call(add, 1, 2) -> 3",
        )

    return Case(
        name="trivial call",
        description="call add(1, 2) in an existing interpreter / Pool.apply in a started "
        "1-worker Pool",
        contenders=[
            Contender(BASELINE, ours, expected=3, note="call(add, 1, 2) -> 3"),
            _stdlib_contender(stdlib, stdlib_row),
            _public_contender(public, public_row),
            *_process_contenders(
                lambda method: _pool_apply(method, workers.add, 1, 2),
                expected=3,
                note="Pool.apply(add, (1, 2))",
            ),
        ],
    )


def _pickle_round_trip() -> object:
    """What sending the containers there and the result back costs with pickle."""
    protocol = pickle.HIGHEST_PROTOCOL
    arrived = pickle.loads(pickle.dumps((CONTAINER_LIST, CONTAINER_DICT), protocol))
    return pickle.loads(pickle.dumps(arrived, protocol))


def _containers_case(stdlib: StdlibInterpreters | None, public: ModuleType | None) -> Case:
    lst, dct = CONTAINER_LIST, CONTAINER_DICT
    expected = (lst, dct)

    @contextmanager
    def ours() -> Iterator[Op]:
        with _our_interpreter() as interp:
            call = interp.call
            yield lambda: call(workers.round_trip, lst, dct)

    def stdlib_row(stdlib: StdlibInterpreters) -> Contender | str:
        if stdlib.call is None:
            return f"{stdlib.name} has no call()"
        if not (stdlib.call_passes_args and stdlib.call_returns_result):
            return f"{stdlib.name}.call() takes no arguments and returns no result here"
        return Contender(
            stdlib.name,
            _stdlib_call(stdlib, workers.round_trip, lst, dct),
            expected=expected,
            note="call(id, round_trip, (lst, dct)); pickles the data there and back",
        )

    def public_row(public: ModuleType) -> Contender:
        return Contender(
            PUBLIC_MODULE,
            _public_call(public, workers.round_trip, lst, dct),
            expected=expected,
            note="call(round_trip, lst, dct); pickles the data there and back",
            target_speedup=PICKLE_TARGET_SPEEDUP,
        )

    return Case(
        name="call with containers",
        description="call round_trip(lst, dct) with a 1000-int list and a 100-item str->int "
        "dict; the data is sent there and returned",
        contenders=[
            Contender(BASELINE, ours, expected=expected, note="args there + data back"),
            _stdlib_contender(stdlib, stdlib_row),
            _public_contender(public, public_row),
            Contender(
                "pickle baseline",
                lambda: _ready(_pickle_round_trip),
                expected=expected,
                note="in-process pickle.dumps+loads of the data, there and back "
                "(no interpreter involved)",
                target_speedup=PICKLE_TARGET_SPEEDUP,
            ),
            *_process_contenders(
                lambda method: _pool_apply(method, workers.round_trip, lst, dct),
                expected=expected,
                note="Pool.apply(round_trip, (lst, dct))",
            ),
        ],
    )


# --- the section ----------------------------------------------------------------


@register_section(
    "interpreters",
    "creating subinterpreters and running trivial work in them, vs the stdlib and processes",
)
def build() -> list[Case]:
    """The cases of the section, for what the running Python offers."""
    stdlib, public = detect(), detect_public()
    return [
        # First, though it times its interpreter contenders in fresh processes anyway.
        _create_close_case(stdlib, public),
        _exec_case(stdlib, public, in_thread=False),
        _exec_case(stdlib, public, in_thread=True),
        _call_case(stdlib, public),
        _containers_case(stdlib, public),
    ]
