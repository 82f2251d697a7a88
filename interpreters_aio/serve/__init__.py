"""``serve``: one asyncio or ASGI app per subinterpreter, as one command.

``python -m interpreters_aio serve MODULE:APP --workers N`` does with
interpreters of one process what ``uvicorn --workers N`` does with
processes: a supervisor in the main interpreter binds the sockets, starts N
worker interpreters (each with its own GIL, thread and event loop), turns
signals into clean stops and rolling restarts, replaces workers that crash
or hang, and prints their logs one whole line at a time.

Two kinds of app:

* an ASGI application (Starlette, Django's ASGI app, a bare ``async def
  app(scope, receive, send)``), served in each worker by uvicorn's server
  machinery with our Rust HTTP/1.1 protocol (``pip install
  'interpreters-aio[serve]'``);
* a plain asyncio app, ``async def main(ctx)``, for services that are not
  HTTP; ``ctx`` is a :class:`Context`.

From Python::

    from interpreters_aio import serve
    serve.run("pkg.app:app", workers=4, port=8000)          # blocks
    await serve.serve("pkg.app:app", workers=4, port=8000)  # from async code

See docs/serving.md for how it works and what cannot run in a subinterpreter.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from .config import STARTUP_FAILURE, ConfigError, ServeConfig, default_workers
from .preflight import ServeError
from .worker import Context

__all__ = [
    "STARTUP_FAILURE",
    "ConfigError",
    "Context",
    "ServeConfig",
    "ServeError",
    "Supervisor",
    "prepare",
    "run",
    "serve",
]


def prepare(app: str | ServeConfig, **options: Any) -> Any:
    """Check, import and bind for ``app``; returns a :class:`Supervisor` ready to ``run()``.

    Raises:
        ConfigError: an option has an unusable value.
        ServeError: this Python cannot serve in interpreters (3.12.0-3.12.3),
            the app does not import, uvicorn is missing for an ASGI app, or
            ``isolation="threads"`` was asked on a build with a GIL.
    """
    from . import preflight, supervisor

    if isinstance(app, ServeConfig):
        config = dataclasses.replace(app, **options) if options else app
    else:
        options.setdefault("workers", default_workers())
        config = ServeConfig(app=app, **options)
    from . import logs

    logs.configure_supervisor(config.log_level)
    supervisor.check_running_in_main_interpreter()
    if config.isolation == "threads":
        _choose(config, None, None)  # refused at once on a build with a GIL
    preflight.apply_environment(config)
    loaded = preflight.import_app(config)
    kind = preflight.kind_of(config, loaded)
    if kind == "asgi":
        preflight.import_server(config)
        if config.tls:
            config.tls_context()  # a bad certificate or password: said once, before any worker
    elif config.tls:
        raise ConfigError(
            "--ssl-certfile: TLS is for ASGI apps (an asyncio app opens its own sockets)"
        )
    unsafe = preflight.interpreters_unsafe()
    refusals = None
    if config.isolation in ("auto", "interpreters") and unsafe is None:
        refusals = preflight.probe_subinterpreter(config.module)
    decisive = refusals.decisive if config.isolation == "auto" and refusals else None
    choice = _choose(config, decisive, unsafe)
    warnings = []
    if choice.isolation.name == "interpreters":
        preflight.check_python()
        for name in refusals.fallbacks if refusals else []:
            warnings.append(
                f"{name} cannot be loaded in a subinterpreter: the app runs without it "
                "(a slower fallback, most likely); --isolation threads or processes would load it"
            )
    config = config.with_defaults(http_app=kind == "asgi")
    return supervisor.Supervisor(
        config, kind=kind, isolation=choice.isolation, reason=choice.reason, warnings=warnings
    )


def _choose(config: ServeConfig, refused: str | None, unsafe: str | None) -> Any:
    from . import isolation

    try:
        return isolation.choose(config.isolation, config.app, refused, unsafe)
    except ValueError as exc:
        raise ServeError(str(exc)) from None


async def serve(app: str | ServeConfig, **options: Any) -> None:
    """Serve ``app`` from async code until stopped (a signal, or ``Supervisor.stop()``).

    Takes :class:`ServeConfig`'s fields as keyword arguments (uvicorn's
    names). Raises ServeError with ``exit_code`` 3 if the workers could not
    start, 1 if they kept crashing; OSError (``serve.sockets.BindError``) if
    the address cannot be listened on; see :func:`prepare` for the other
    errors. Cancelling the awaiting task stops the workers (forced) first.
    """
    code = await prepare(app, **options).run()
    if code:
        raise ServeError(
            "the app could not start" if code == STARTUP_FAILURE else "the workers kept failing",
            exit_code=code,
        )


def run(app: str | ServeConfig, **options: Any) -> None:
    """Blocking :func:`serve`: runs its own event loop until the server stops."""
    asyncio.run(serve(app, **options))


def __getattr__(name: str) -> Any:
    if name == "Supervisor":
        from .supervisor import Supervisor

        return Supervisor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
