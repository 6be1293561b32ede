"""sessionkit_asgi uses only the core's public API (issue 13): no underscore attribute of
anything but its own objects (``self``), and no private name imported from the core."""

from __future__ import annotations

import ast
from pathlib import Path

import sessionkit_asgi

PACKAGE = Path(sessionkit_asgi.__file__).parent


def private_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if node.attr.startswith("__") and node.attr.endswith("__"):
                continue  # dunders are public protocol
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue  # the adapter's own state
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sessionkit"):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if a.name.startswith("_")]  # fmt: skip
    return found


def test_the_check_sees_a_private_access() -> None:
    found = private_uses("session._ctx.digest\nfrom sessionkit.engine import _Context")
    assert sorted(found) == ["line 1: session._ctx", "line 2: import _Context"]


def test_the_asgi_adapter_touches_no_private_state_of_the_core() -> None:
    found = {p.name: private_uses(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}
    assert {name: uses for name, uses in found.items() if uses} == {}
