"""Module attributes loaded on first use (a module ``__getattr__``, PEP 562).

Used where importing a name's module up front costs every interpreter that
imports the package: ``interpreters_aio.dask`` (distributed, which
subinterpreters must not import) and the ``uvicorn`` package a serve worker
registers without its ``__init__`` (``serve/worker.py``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def attributes(module_name: str, sources: Mapping[str, str]) -> Callable[[str], Any]:
    """A ``__getattr__`` for the module ``module_name``: each name of
    ``sources`` is imported from its module there (relative to
    ``module_name``'s package if it starts with a dot) on first use, then
    kept on the module, so later lookups are plain attribute reads."""

    def attribute(name: str) -> Any:
        source = sources.get(name)
        if source is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(source, module_name), name)
        setattr(sys.modules[module_name], name, value)
        return value

    return attribute
