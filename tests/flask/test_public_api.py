"""What the Flask adapter offers beyond ``flask.session``, and what it may touch of the core.

- ``flask sessionkit keygen`` works for an app whose key is missing or weak (Flask's
  tutorial ``SECRET_KEY = "dev"``), through the ``flask.commands`` entry point.
- ``sessionkit_flask.session`` is typed, so ``handle`` and ``bind_user`` type-check.
- ``sessionkit_flask`` reads no underscore attribute of core objects (issue 13).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import flask
import pytest
import sessionkit_flask
from click.testing import CliRunner
from flask.cli import FlaskGroup

from tests.flask.conftest import AppFactory

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = ROOT / "adapters" / "sessionkit_flask"

TUTORIAL_APP = """
from flask import Flask
from sessionkit_flask import SessionKit

app = Flask(__name__)
app.config.from_mapping(SECRET_KEY="dev")  # Flask's tutorial key
SessionKit(app)
"""


def declared_flask_commands() -> list[importlib.metadata.EntryPoint]:
    """The ``flask.commands`` entry points pyproject.toml declares (the installed metadata
    of an editable install may predate them)."""
    text = (ROOT / "pyproject.toml").read_text()
    section = re.search(r'^\[project\.entry-points\."flask\.commands"\]\n(.*?)(?:^\[|\Z)',
                        text, re.M | re.S)  # fmt: skip
    assert section is not None, "pyproject.toml declares no flask.commands entry point"
    pairs = re.findall(r'^(\w+) = "([^"]+)"', section.group(1), re.M)
    return [importlib.metadata.EntryPoint(n, v, "flask.commands") for n, v in pairs]


@pytest.mark.parametrize("key", ["dev", None])
def test_keygen_works_for_an_app_that_refuses_its_key(
    key: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = TUTORIAL_APP if key else TUTORIAL_APP.replace('SECRET_KEY="dev"', "")
    (tmp_path / "tutorial.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "tutorial", raising=False)
    import flask.cli

    def entry_points(**query: Any) -> list[importlib.metadata.EntryPoint]:
        return declared_flask_commands() if query.get("group") == "flask.commands" else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    runner = CliRunner()
    result = runner.invoke(FlaskGroup(), ["--app", "tutorial", "sessionkit", "keygen"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip()) >= 64  # 48 random bytes, base64url
    if key:  # the app itself still refuses to start with that key
        stats = runner.invoke(FlaskGroup(), ["--app", "tutorial", "sessionkit", "stats"])
        assert stats.exit_code != 0
        assert "the secret key is 3 bytes" in stats.output + str(stats.exception)
    assert flask.cli  # the module whose entry points were looked up


def test_the_store_commands_still_use_the_apps_store(make_app: AppFactory, tmp_path: Path) -> None:
    app = make_app(f"sqlite:///{tmp_path / 's.db'}")
    app.test_client().get("/login/alice")
    result = app.test_cli_runner().invoke(args=["sessionkit", "list", "--user", "alice"])
    assert result.exit_code == 0, result.output
    assert "1 session" in result.output or "created" in result.output


def test_typed_session_accessor(make_app: AppFactory) -> None:
    app = make_app("memory://")
    with app.test_request_context():
        assert sessionkit_flask.session.handle is None
        sessionkit_flask.session["a"] = 1
        assert flask.session["a"] == 1
        assert isinstance(sessionkit_flask.session, sessionkit_flask.FlaskSession)
    with pytest.raises(RuntimeError, match="only available in a request"):
        sessionkit_flask.session.get("a")


RECIPE = """
from flask import Flask
from sessionkit_flask import SessionKit, session

app = Flask(__name__)
SessionKit(app)


@app.post("/login")
def login() -> str:
    session.bind_user("42")
    handle: str | None = session.handle
    session.regenerate()
    return handle or ""
"""


def test_the_typed_accessor_type_checks_under_mypy_strict(tmp_path: Path) -> None:
    from mypy import api

    recipe = tmp_path / "recipe.py"
    recipe.write_text(textwrap.dedent(RECIPE))
    out, err, status = api.run(
        ["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(recipe)]
    )
    assert status == 0, out + err


def _private_reads(tree: ast.AST) -> list[str]:
    """``x._name`` where ``x`` is not ``self``, or ``self._name`` not declared in the
    adapter class's own ``__slots__``: the adapter's state is its own, the core's is not."""
    found = []
    for cls in [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)] + [tree]:
        own: set[str] = set()
        for stmt in getattr(cls, "body", []):
            if isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in stmt.targets
            ):
                own |= {e.value for e in ast.walk(stmt.value) if isinstance(e, ast.Constant)}  # type: ignore[misc]
            if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                own.add(stmt.target.id)
            if isinstance(stmt, ast.FunctionDef):
                own.add(stmt.name)
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                own |= {
                    t.attr for t in ast.walk(stmt)
                    if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                }  # fmt: skip
        nodes = ast.walk(cls) if isinstance(cls, ast.ClassDef) else ast.walk(tree)
        for node in nodes:
            if not isinstance(node, ast.Attribute):
                continue
            name = node.attr
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                continue
            is_self = isinstance(node.value, ast.Name) and node.value.id == "self"
            if is_self and isinstance(cls, ast.ClassDef) and name in own:
                continue
            if is_self and not isinstance(cls, ast.ClassDef):
                continue  # judged within its class
            found.append(f"line {node.lineno}: .{name}")
    return sorted(set(found))


def test_the_adapter_reads_no_private_attribute_of_core_objects() -> None:
    offenders = {
        path.name: reads
        for path in sorted(ADAPTER.glob("*.py"))
        if (reads := _private_reads(ast.parse(path.read_text())))
    }
    assert offenders == {}


def test_the_private_read_check_catches_one() -> None:
    code = "class A:\n  __slots__ = ('_x',)\n  def f(self, s):\n    return self._x, s._ctx\n"
    assert _private_reads(ast.parse(code)) == ["line 4: ._ctx"]
