"""Export and erasure of a user's sessions (GDPR articles 15 and 17), on every store with a
user index, against the real servers; and the ``sessionkit export`` / ``erase`` commands."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sessionkit import SessionConfig, SessionEngine, Store, open_store
from sessionkit.testing import Browser

KEY = secrets.token_urlsafe(48)
WHEN = datetime(2026, 12, 3, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(user_index_store: Store) -> Store:
    return user_index_store


def signed_in(engine: SessionEngine, user: str, **data: object) -> Browser:
    browser = Browser(engine)
    browser.visit(lambda s: (s.update(data), s.bind_user(user)))
    return browser


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "encrypt_records"])
def test_export_shows_everything_and_erasure_leaves_nothing(store: Store, sealed: bool) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, encrypt_records=sealed), store=store)
    signed_in(engine, "ann", cart=["book"], since=WHEN)
    signed_in(engine, "ann", theme="dark")
    signed_in(engine, "bob", cart=["pen"])

    document = engine.export_user("ann")
    assert document["format"] == "sessionkit-export/1" and document["user"] == "ann"
    handles = sorted(info.handle for info in store.user_sessions("ann"))
    assert sorted(s["handle"] for s in document["sessions"]) == handles
    data = [s["data"] for s in document["sessions"]]
    assert {"theme": "dark"} in data
    (cart,) = [d for d in data if "cart" in d]
    assert cart["cart"] == ["book"] and "2026-12-03" in json.dumps(cart["since"])
    assert "pen" not in json.dumps(document)  # bob's data is not ann's
    json.dumps(document)  # one JSON document

    assert engine.erase_user("ann") == 2
    assert engine.export_user("ann")["sessions"] == []  # nothing the export would show
    assert store.user_sessions("ann") == []
    assert len(engine.export_user("bob")["sessions"]) == 1  # nobody else touched


def test_an_unknown_user_exports_an_empty_document(store: Store) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store)
    document = engine.export_user("nobody")
    assert document["sessions"] == [] and document["user"] == "nobody"
    assert engine.erase_user("nobody") == 0


def run(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SESSIONKIT_SECRET_KEY"}
    if key is not None:
        env["SESSIONKIT_SECRET_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", *args], capture_output=True, text=True,
        env=env,
    )  # fmt: skip


def test_the_commands_export_to_a_file_and_erase(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    engine = SessionEngine(SessionConfig(secret_key=KEY, encrypt_records=True), store=store)
    signed_in(engine, "ann", cart=["book"])
    store.close()

    refused = run("export", url, "--user", "ann")  # sealed values and no key given
    assert refused.returncode == 1 and "set SESSIONKIT_SECRET_KEY" in refused.stderr
    assert "Traceback" not in refused.stderr
    out = tmp_path / "ann.json"
    done = run("export", url, "--user", "ann", "--out", str(out), key=KEY)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote 1 session of ann to {out}"
    assert json.loads(out.read_text())["sessions"][0]["data"] == {"cart": ["book"]}
    erased = run("erase", url, "--user", "ann", "--yes")
    assert erased.returncode == 0 and erased.stdout.strip() == "erased 1 session of ann"
    after = run("export", url, "--user", "ann", key=KEY)
    assert json.loads(after.stdout)["sessions"] == []
