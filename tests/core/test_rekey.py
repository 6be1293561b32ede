"""``engine.rekey()`` on every store with a user index, on the real servers: every record
re-sealed under the newest key (so the old key can be retired), plain records sealed, sealed
ones written plain with ``encrypt_records`` off, and a session changed meanwhile keeps its
change."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from sessionkit import RekeyReport, SessionConfig, SessionEngine, Store, sealing, serialization
from sessionkit.crypto import Keyring
from sessionkit.errors import StoreError
from sessionkit.testing import Browser

OLD_KEY, NEW_KEY = secrets.token_urlsafe(48), secrets.token_urlsafe(48)


def engine_on(store: Store, *, seal: bool = True, keys: Any = OLD_KEY) -> SessionEngine:
    return SessionEngine(SessionConfig(secret_key=keys, encrypt_records=seal), store=store)


@pytest.fixture
def store(user_index_store: Store) -> Store:
    return user_index_store


def raw(engine: SessionEngine, browser: Browser) -> tuple[str, dict[str, str]]:
    digest = engine.digest_of(engine.open(browser.cookie_header, browser.client))
    assert digest is not None
    record = engine.store.load(digest)
    assert record is not None
    return digest, {k: sealing.text_of(v) for k, v in record.items.items()}


def opened_with(keys: list[str], engine: SessionEngine, browser: Browser) -> dict[str, Any]:
    """The stored values, opened with ``keys`` alone (``SealFailed`` if one does not)."""
    digest, items = raw(engine, browser)
    plain, _ = sealing.open_items(Keyring(tuple(k.encode() for k in keys)), digest, items, True)
    return serialization.loads_items(plain)


def sessions(engine: SessionEngine, count: int) -> list[Browser]:
    browsers = [Browser(engine) for _ in range(count)]
    for n, browser in enumerate(browsers):
        browser.visit(lambda s, n=n: s.update(n=n, card=f"card {n}", cart=["book"]))  # type: ignore[misc]
    return browsers


def test_rekey_reseals_every_record_under_the_newest_key(store: Store) -> None:
    browsers = sessions(engine_on(store, keys=OLD_KEY), 7)
    rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])
    seen: list[int] = []
    report = rotated.rekey(progress=lambda r: seen.append(r.seen), chunk=3)
    assert report == RekeyReport(seen=7, resealed=21, records=7)
    assert seen == [3, 6, 7]  # bounded chunks, running totals
    for n, browser in enumerate(browsers):  # the old key is no longer needed
        assert opened_with([NEW_KEY], rotated, browser) == {
            "n": n, "card": f"card {n}", "cart": ["book"],
        }  # fmt: skip
    assert rotated.rekey() == RekeyReport(seen=7)  # nothing left to do
    for browser in browsers:  # a visit re-issues the cookie under the new key: rekey
        browser.engine = rotated  # cannot do that (the cookies are in the browsers)
        browser.visit(lambda s: s["n"])
    retired = engine_on(store, keys=NEW_KEY)
    for browser in browsers:
        browser.engine = retired
    assert [b.visit(lambda s: s["n"]).result for b in browsers] == list(range(7))


def test_rekey_seals_plain_records_and_unseals_them_when_turned_off(store: Store) -> None:
    plain = engine_on(store, seal=False)
    (browser,) = sessions(plain, 1)
    assert not any(sealing.is_sealed(v) for v in raw(plain, browser)[1].values())
    sealed = engine_on(store, seal=True)
    assert sealed.rekey() == RekeyReport(seen=1, resealed=3, records=1)
    assert all(sealing.is_sealed(v) for v in raw(sealed, browser)[1].values())
    assert "card 0" not in str(raw(sealed, browser)[1])
    off = engine_on(store, seal=False)  # turning it off: the keys still configured
    assert off.rekey() == RekeyReport(seen=1, resealed=3, records=1)
    values = raw(off, browser)[1]
    assert not any(sealing.is_sealed(v) for v in values.values())
    assert serialization.loads_items(values) == {"n": 0, "card": "card 0", "cart": ["book"]}


def test_a_session_changed_meanwhile_keeps_its_change(store: Store) -> None:
    """A request that changes a value between rekey's read of the record and its re-seal
    wins: rekey leaves that value and re-seals the rest."""
    browser, other = sessions(engine_on(store, keys=OLD_KEY), 2)
    rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])
    digest, _ = raw(rotated, browser)
    real_reseal = store.reseal
    raced: list[str] = []

    def reseal_after_a_request(target: str, pairs: Any) -> int:
        if target == digest and not raced:  # the request lands between read and write
            raced.append(target)
            racing = Browser(rotated)
            racing.cookie = browser.cookie
            racing.visit(lambda s: s.__setitem__("card", "changed meanwhile"))
        return real_reseal(target, pairs)

    store.reseal = reseal_after_a_request  # type: ignore[method-assign,assignment]
    try:
        report = rotated.rekey()
    finally:
        del store.reseal
    # the request wrote "card" and then re-sealed the session's other values itself
    # (a changing request does, after its save): nothing there matched rekey's read
    assert raced and report == RekeyReport(seen=2, resealed=3, records=1, changed=1)
    assert opened_with([NEW_KEY], rotated, browser) == {
        "n": 0, "card": "changed meanwhile", "cart": ["book"],
    }  # fmt: skip
    assert opened_with([NEW_KEY], rotated, other)["card"] == "card 1"


def test_a_record_no_configured_key_opens_is_left_and_counted(store: Store) -> None:
    (browser,) = sessions(engine_on(store, keys=OLD_KEY), 1)
    sessions(engine_on(store, keys=NEW_KEY), 1)  # one the given key opens
    before = raw(engine_on(store, keys=OLD_KEY), browser)[1]
    report = engine_on(store, keys=NEW_KEY).rekey()  # the old key is not given
    assert report == RekeyReport(seen=2, unreadable=1)
    assert raw(engine_on(store, keys=OLD_KEY), browser)[1] == before


def test_rekey_needs_a_store_that_scans_and_reseals() -> None:
    with pytest.raises(StoreError, match="cookie store"):
        engine_on("cookie://").rekey()  # type: ignore[arg-type]
