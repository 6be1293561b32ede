"""The adapters use the core's public API only (DESIGN.md: "Adapters use the public API").

An ``ast`` walk over ``sessionkit_asgi``, ``sessionkit_django`` and ``sessionkit_flask``:
no attribute access to a private name the core defines (``session._ctx``, ``._loader``,
``._meta``...), and no import of a private name from a ``sessionkit`` module. Private
names an adapter defines for its own classes (Flask's ``FlaskSession._engine``) are its
own business, unless the core uses the same name, which would make a slip invisible.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "sessionkit"
ADAPTERS = ("sessionkit_asgi", "sessionkit_django", "sessionkit_flask")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _on_self(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("self", "cls")
    )


def _files(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.py"))


#: The core's objects an adapter holds: sessions, the engine, plans, config, events and
#: the store protocol. (A store's own plumbing, e.g. ``SQLStore._engine``, is not among
#: them: adapters never hold it, and its names would shadow the adapters' own.)
CORE_FILES = [*sorted(CORE.glob("*.py")), CORE / "stores" / "base.py"]
#: Private names of other libraries that an adapter may use: (name, what it is read from).
FOREIGN = {("_meta", "model")}  # Django's ``Model._meta`` (``self.model._meta`` in admin)


def _defined(paths: list[Path]) -> set[str]:
    """Private attribute names these files define: methods and class attributes, slots,
    and ``self._x = ...`` assignments."""
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    targets = (
                        item.targets if isinstance(item, ast.Assign)
                        else [item.target] if isinstance(item, ast.AnnAssign) else []
                    )  # fmt: skip
                    for target in targets:
                        if isinstance(target, ast.Name):
                            names.add(target.id)
                            if target.id == "__slots__" and item.value is not None:
                                names.update(
                                    c.value for c in ast.walk(item.value)
                                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                                )  # fmt: skip
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if _on_self(target):
                        names.add(target.attr)  # type: ignore[attr-defined]
    return {n for n in names if _private(n)}


CORE_PRIVATE = _defined(CORE_FILES)


def _foreign(node: ast.Attribute) -> bool:
    receiver = node.value
    name = (
        receiver.attr if isinstance(receiver, ast.Attribute)
        else receiver.id if isinstance(receiver, ast.Name) else ""
    )  # fmt: skip
    return (node.attr, name) in FOREIGN


def _uses(package: str) -> list[str]:
    root = ROOT / "adapters" / package
    own = _defined(list(_files(root))) - CORE_PRIVATE  # a name both define is the core's
    found = []
    for path in _files(root):
        where = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and _private(node.attr) and not _on_self(node):
                if node.attr in CORE_PRIVATE and node.attr not in own and not _foreign(node):
                    found.append(f"{where}:{node.lineno}: .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "sessionkit."
            ) | (node.module == "sessionkit"):
                for alias in node.names:
                    if _private(alias.name):
                        found.append(f"{where}:{node.lineno}: import {node.module}.{alias.name}")
    return found


def test_the_core_private_names_are_found() -> None:
    """The walk sees what it must (else the test below would pass vacuously)."""
    assert {"_ctx", "_loader", "_meta", "_idle", "_browser", "_changed"} <= CORE_PRIVATE


@pytest.mark.parametrize("package", ADAPTERS)
def test_adapter_touches_no_private_core_attribute(package: str) -> None:
    found = _uses(package)
    assert not found, "private core names used; add a public method to the core:\n" + "\n".join(
        found
    )


def test_the_test_helpers_import_without_pytest() -> None:
    """``Browser`` and ``FakeClock`` serve Django's ``manage.py test`` and plain unittest,
    where pytest is not installed; only the conformance suite needs it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from sessionkit.testing import Browser, FakeClock\n"
        "try:\n    from sessionkit.testing import StoreConformance\n"
        "except ImportError:\n    print('conformance needs pytest')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "conformance needs pytest"
