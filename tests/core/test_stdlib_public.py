"""The core uses only documented standard-library APIs (no CPython internals such as
``json.encoder.c_make_encoder`` or ``json.scanner``), so it runs on any interpreter."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "sessionkit"
INTERNAL = {"c_make_encoder", "make_scanner", "scanner", "encoder", "decoder"}


def test_no_json_internals() -> None:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            name = (
                node.attr if isinstance(node, ast.Attribute)
                else node.value if isinstance(node, ast.Constant) else None
            )  # fmt: skip
            if name == "c_make_encoder" or (
                isinstance(node, ast.Attribute)
                and name in INTERNAL
                and isinstance(node.value, ast.Name)
                and node.value.id == "json"
            ):
                found.append(f"{path.relative_to(CORE)}:{node.lineno}: {name}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("json."):
                found.append(f"{path.relative_to(CORE)}:{node.lineno}: {node.module}")
    assert found == []
