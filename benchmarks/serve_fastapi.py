"""The ``serve`` section's endpoints as a FastAPI app.

Selected with ``SERVE_BENCH_APP=benchmarks.serve_fastapi:app``.

The same paths and bodies as :mod:`benchmarks.serve_apps`, through FastAPI's
routing, dependency and response machinery (and so pydantic-core, which
refuses subinterpreters: ``serve``'s default ``--isolation auto`` runs it on
threads of a free-threaded build, or on processes). Needs ``pip install fastapi``.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from .serve_apps import BODY_16K, CPU_LOOPS, HELLO, _counts, _write_stats, burn, document


@asynccontextmanager
async def _lifespan(app: FastAPI):
    yield
    _write_stats()


app = FastAPI(lifespan=_lifespan)


def _count(path: str) -> None:
    _counts[path] = _counts.get(path, 0) + 1


@app.get("/")
async def hello() -> Response:
    _count("/")
    return PlainTextResponse(HELLO)


@app.get("/cpu")
async def cpu() -> Response:
    _count("/cpu")
    return PlainTextResponse(str(burn(CPU_LOOPS)))


@app.get("/json")
async def json_document() -> Response:
    _count("/json")
    return JSONResponse(document())


@app.get("/16k")
async def body_16k() -> Response:
    _count("/16k")
    return PlainTextResponse(BODY_16K)


@app.post("/upload")
async def upload(request: Request) -> Response:
    _count("/upload")
    return PlainTextResponse(str(len(await request.body())))
