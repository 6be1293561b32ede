"""``sessionkit_django`` reads and changes sessions only through the core's public API: no
attribute access in the adapter names a private attribute of a core object (issue 13)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import sessionkit_django

from sessionkit import CommitPlan, Session, SessionConfig, SessionEngine
from sessionkit import engine as core_engine
from sessionkit.crypto import Keyring
from sessionkit.stores.base import RecordMeta, Store
from tests.conftest import KEY

#: Attribute accesses that look private but are not on core objects, each with its reason.
ALLOWED = {
    ("self.model", "_meta"): "a Django model's options (the admin)",
    ("Morsel", "_reserved"): "the standard library's list of cookie attributes",
    ("self", "_key"): "http.cookies.Morsel's own fields, set by our Morsel subclass",
    ("self", "_value"): "http.cookies.Morsel's own fields, set by our Morsel subclass",
    ("self", "_coded_value"): "http.cookies.Morsel's own fields, set by our Morsel subclass",
}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def core_private_names() -> set[str]:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store="memory://"))
    session = engine.open(None)
    names: set[str] = set()
    classes = (Session, SessionEngine, CommitPlan, core_engine._Context, RecordMeta, Store, Keyring)
    for thing in (*classes, engine, session, session._ctx, engine.store, engine.keyring):
        names.update(n for n in dir(thing) if _private(n))
        names.update(n for n in getattr(thing, "__dict__", {}) if _private(n))
    return names


def test_the_adapter_touches_no_private_attribute_of_core_objects() -> None:
    private = core_private_names()
    assert {"_ctx", "_meta", "_loader", "_browser", "_changed"} <= private  # the check can fail
    found = []
    for path in Path(inspect.getfile(sessionkit_django)).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in private:
                receiver = ast.unparse(node.value)
                if (receiver, node.attr) not in ALLOWED:
                    found.append(f"{path.name}:{node.lineno} {receiver}.{node.attr}")
    assert found == []
