"""The .pyi stub of the extension matches what the extension exports."""

from __future__ import annotations

import ast
from pathlib import Path

from interpreters_aio import _core


def test_stub_matches_extension():
    stub = ast.parse((Path(_core.__file__).parent / "_core.pyi").read_text())
    declared = {
        node.name for node in stub.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }
    declared |= {
        node.target.id
        for node in stub.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    exported = {name for name in dir(_core) if not name.startswith("__")}
    exported |= {"__version__"} & set(dir(_core))
    declared.discard("ExcInfo")  # a type alias of the stub only
    assert declared == exported
