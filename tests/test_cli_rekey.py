"""``sessionkit rekey STORE``: the command line over a real store (SQLite and a file store),
with the keys from ``SESSIONKIT_SECRET_KEY``, as ``sessionkit export`` takes them (the
framework commands: the app's keys)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sessionkit import SessionConfig, SessionEngine, open_store, sealing
from sessionkit.cli import build_group
from sessionkit.crypto import Keyring
from sessionkit.testing import Browser

OLD_KEY, NEW_KEY = secrets.token_urlsafe(48), secrets.token_urlsafe(48)


@pytest.fixture(params=["sqlite", "file"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    return f"file://{tmp_path / 'sessions'}?fsync=false"


def populate(url: str, count: int, *, keys: Any = OLD_KEY, seal: bool = True) -> list[str]:
    """``count`` sessions of three values each; their digests."""
    store = open_store(url)
    engine = SessionEngine(SessionConfig(secret_key=keys, encrypt_records=seal), store=store)
    digests = []
    for n in range(count):
        browser = Browser(engine)
        browser.visit(lambda s, n=n: s.update(n=n, card=f"card {n}", cart=["book"]))  # type: ignore[misc]
        digests.append(str(engine.digest_of(engine.open(browser.cookie_header))))
    store.close()
    return digests


def stored(url: str, digest: str) -> dict[str, str]:
    store = open_store(url)
    try:
        record = store.load(digest)
        assert record is not None
        return {k: sealing.text_of(v) for k, v in record.items.items()}
    finally:
        store.close()


def rekey(url: str, *args: str, keys: str | None = f"{NEW_KEY},{OLD_KEY}") -> Any:
    env = {"SESSIONKIT_SECRET_KEY": keys} if keys is not None else {"SESSIONKIT_SECRET_KEY": ""}
    return CliRunner().invoke(build_group(), ["rekey", url, *args], env=env)


def test_rekey_reseals_the_store_and_says_what_it_did(url: str) -> None:
    digests = populate(url, 5)
    result = rekey(url, "--chunk", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "5 records seen",
        "15 values re-sealed with the newest key (in 5 records)",
        "0 records changed meanwhile: those values skipped",
    ]
    assert "re-sealing" in result.stderr  # the progress bar's label
    newest = Keyring((NEW_KEY.encode(),))
    for digest in digests:  # every value opens with the new key alone
        plain, stale = sealing.open_items(newest, digest, stored(url, digest), True)
        assert not stale and set(plain) == {"n", "card", "cart"}
    again = rekey(url)
    assert again.exit_code == 0 and "0 values re-sealed" in again.stdout


def test_rekey_plain_turns_encryption_off(url: str) -> None:
    (digest,) = populate(url, 1)
    result = rekey(url, "--plain")
    assert result.exit_code == 0, result.output
    assert "3 values written plain (in 1 record)" in result.stdout
    values = stored(url, digest)
    assert not any(sealing.is_sealed(v) for v in values.values())
    assert values["card"] == '"card 0"'


def test_rekey_without_the_old_key_leaves_those_records_and_fails(url: str) -> None:
    (old,) = populate(url, 1)
    populate(url, 1, keys=NEW_KEY)
    before = stored(url, old)
    result = rekey(url, keys=NEW_KEY)
    assert result.exit_code == 1
    assert "2 records seen" in result.stdout
    assert "1 record left as they were: they hold values no config" in result.stderr
    assert stored(url, old) == before
    assert "Traceback" not in result.output


def test_rekey_needs_the_keys(url: str) -> None:
    populate(url, 1)
    result = rekey(url, keys=None)
    assert result.exit_code == 1
    assert "rekey needs the app's keys: set SESSIONKIT_SECRET_KEY" in result.stderr


def test_rekey_of_a_cookie_store_says_there_is_nothing_to_do() -> None:
    result = rekey("cookie://")
    assert result.exit_code == 1
    assert "a cookie store keeps nothing to re-seal" in result.stderr


def test_the_framework_command_uses_the_apps_keys(url: str) -> None:
    """``flask sessionkit rekey`` and ``manage.py sessionkit rekey`` take the app's keys (its
    SECRET_KEY, then its fallbacks), with no SESSIONKIT_SECRET_KEY set."""
    (digest,) = populate(url, 1)
    app = SessionConfig(secret_key=[NEW_KEY, OLD_KEY], store=url, encrypt_records=True)

    def command(config: SessionConfig) -> Any:
        return build_group(
            lambda: open_store(url), name="flask sessionkit", get_config=lambda: config
        )

    result = CliRunner().invoke(command(app), ["rekey"], env={"SESSIONKIT_SECRET_KEY": ""})
    assert result.exit_code == 0, result.output
    assert "3 values re-sealed with the newest key (in 1 record)" in result.stdout
    newest = Keyring((NEW_KEY.encode(),))
    plain, stale = sealing.open_items(newest, digest, stored(url, digest), True)
    assert not stale and plain["card"] == '"card 0"'
    only_new = app.replace(secret_key=NEW_KEY)
    populate(url, 1)  # sealed with the old key, which the app no longer has
    refused = CliRunner().invoke(command(only_new), ["rekey"], env={"SESSIONKIT_SECRET_KEY": ""})
    assert refused.exit_code == 1
    assert "is their key in the app's key fallbacks?" in refused.stderr
