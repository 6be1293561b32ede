"""Every Python example in docs/ runs against the real API.

Pages are run block by block in one namespace per page, seeded with what a reader already
has at hand (a secret key, an engine, a loaded session). Blocks that name an adapter or a
package of the reader's own are checked for syntax only here; the adapters' blocks run in
their framework's docs tests (tests/django/test_docs_*.py, tests/asgi/test_docs*.py,
tests/flask/test_docs_*.py).
"""

from __future__ import annotations

import ast
import logging
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.testing import FakeClock

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)
SYNTAX_ONLY = ("mypackage", "sessionkit_asgi", "sessionkit_django", "sessionkit_flask")
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text()))


def seed() -> dict[str, Any]:
    key = secrets.token_urlsafe(48)
    engine = SessionEngine(SessionConfig(secret_key=key, store="memory://"), clock=FakeClock())
    session = engine.open(None)
    return {"SECRET_KEY": key, "engine": engine, "session": session, "__name__": "docs"}


def sessionkit_loggers() -> list[logging.Logger]:
    known = logging.root.manager.loggerDict
    return [logging.getLogger(n) for n in known if n.split(".")[0] == "sessionkit"]


@pytest.fixture
def loggers() -> Iterator[None]:
    """A page may set up logging (docs/audit.md): sessionkit's loggers are put back after it."""
    saved = {log.name: (log.level, list(log.handlers)) for log in sessionkit_loggers()}
    yield
    for log in sessionkit_loggers():
        level, log.handlers[:] = saved.get(log.name, (logging.NOTSET, []))
        log.setLevel(level)  # setLevel, not .level: it clears the loggers' cached levels


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
@pytest.mark.usefixtures("loggers")
def test_examples_run(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONKIT_SECRET_KEY", secrets.token_urlsafe(48))
    namespace = seed()
    blocks = BLOCK.findall(page.read_text())
    for number, code in enumerate(blocks):
        where = f"{page.name} example {number + 1}"
        if any(name in code for name in SYNTAX_ONLY):
            ast.parse(code, where)
            continue
        exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own docs
    assert os.environ["SESSIONKIT_SECRET_KEY"]
