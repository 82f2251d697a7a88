"""A Starlette app to run in N subinterpreters of one process with ``serve``.

    pip install 'interpreters-aio[serve]' starlette
    python -m interpreters_aio serve starlette_app:app --app-dir examples --workers 2

Then ``curl http://127.0.0.1:8000/`` says which worker interpreter answered,
and ``curl http://127.0.0.1:8000/primes/200000`` does about 50 ms of pure
Python: with N workers, N such requests run at once, each on its own GIL.

Each worker imports this module in its own interpreter, so module globals
(``hits`` below) are per worker: share state through a database, a cache, or
this package's queues, not through globals. The lifespan runs once per worker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from interpreters_aio import get_current

hits = 0  # per worker interpreter


def count_primes(limit: int) -> int:
    """Pure-Python work that holds this interpreter's GIL the whole time."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return sum(sieve)


async def hello(request: Request) -> PlainTextResponse:
    global hits
    hits += 1
    return PlainTextResponse(f"hello from interpreter {get_current().id} (request {hits} here)\n")


async def primes(request: Request) -> JSONResponse:
    limit = min(int(request.path_params["limit"]), 10_000_000)
    found = count_primes(limit)
    return JSONResponse({"limit": limit, "primes": found, "interpreter": get_current().id})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    print(f"worker interpreter {get_current().id}: starting")
    yield
    print(f"worker interpreter {get_current().id}: stopping after {hits} requests")


app = Starlette(
    routes=[Route("/", hello), Route("/primes/{limit:int}", primes)],
    lifespan=lifespan,
)
