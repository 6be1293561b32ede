"""The typed recipes in docs/ type-check under ``mypy --strict`` (issue 14: "make the
recipes type-check"). A recipe is a Python block that uses an adapter and annotates every
function it defines; blocks written untyped on purpose (Starlette's drop-in quick start,
Django views) are left to tests/test_docs_examples.py. ``app`` and ``SECRET_KEY`` are
given to a block that uses them without defining them, as the page around it does."""

from __future__ import annotations

import ast
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
ADAPTERS = ("sessionkit_asgi", "sessionkit_flask")


def _typed(code: str) -> bool:
    functions = [
        node
        for node in ast.walk(ast.parse(code))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    return bool(functions) and all(
        f.returns is not None and all(a.annotation is not None for a in f.args.args)
        for f in functions
    )


def _prelude(code: str) -> str:
    """What the page around a block has already defined."""
    lines = ['SECRET_KEY = "x" * 48', "SHARED_SECRET = SECRET_KEY", 'SHARED_STORE = "memory://"']
    if re.search(r"^@?app\.", code, re.M) and "app = " not in code:
        if "sessionkit_asgi" in code:
            lines += ["from fastapi import FastAPI", "app = FastAPI()"]
        else:
            lines += ["from flask import Flask", "app = Flask(__name__)"]
    return "\n".join(lines) + "\n"


def recipes() -> dict[str, str]:
    found = {}
    for page in sorted(DOCS.rglob("*.md")):
        for number, code in enumerate(BLOCK.findall(page.read_text())):
            if any(name in code for name in ADAPTERS) and _typed(code):
                found[f"{page.stem}_{number + 1}"] = _prelude(code) + code
    return found


def test_the_typed_recipes_pass_mypy_strict(tmp_path: Path) -> None:
    from mypy import api

    found = recipes()
    assert {"recipes_7", "recipes_8", "asgi_5", "flask_3"} <= set(found), sorted(found)
    for name, code in found.items():
        (tmp_path / f"{name}.py").write_text(code)
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / ".cache"),
         "--follow-imports=silent", str(tmp_path)]
    )  # fmt: skip
    assert status == 0, out + err
