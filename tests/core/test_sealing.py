"""Encryption at rest (``encrypt_records=True``) on real stores: what the store holds is
sealed, sessions still merge per key, keys rotate, the setting turns on and off without
logging anyone out, and a value that does not decrypt is no session, never a 500."""

from __future__ import annotations

import asyncio
import functools
import secrets
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest

from sessionkit import (
    EventKind,
    MemoryStore,
    SessionConfig,
    SessionEngine,
    Store,
    sealing,
    serialization,
)
from sessionkit.crypto import Keyring
from sessionkit.errors import StoreUnavailable
from sessionkit.stores.base import Write
from sessionkit.testing import Browser
from sessionkit.testing.browser import Flavour

OLD_KEY, NEW_KEY = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
SECRET = "4111 1111 1111 1111"


def engine_on(store: Store, *, seal: bool = True, keys: Any = OLD_KEY) -> SessionEngine:
    config = SessionConfig(secret_key=keys, encrypt_records=seal)
    return SessionEngine(config, store=store)


@pytest.fixture
def store(user_index_store: Store) -> Store:
    return user_index_store


def stored(engine: SessionEngine, browser: Browser) -> dict[str, str]:
    """What the store itself holds for the browser's session: the raw values."""
    opened = engine.open(browser.cookie_header, browser.client)
    digest = engine.digest_of(opened)
    assert digest is not None
    record = engine.store.load(digest)
    assert record is not None
    return dict(record.items)


def test_the_store_holds_no_readable_value(store: Store) -> None:
    engine = engine_on(store)
    browser = Browser(engine)
    browser.visit(lambda s: s.update(card=SECRET, cart=["book"], n=1))
    raw = stored(engine, browser)
    assert set(raw) == {"card", "cart", "n"}  # key names stay readable (merges need them)
    assert all(v.startswith("~1") for v in raw.values()), raw
    assert not any(SECRET in v or "book" in v for v in raw.values())
    assert browser.visit(lambda s: dict(s)).result == {"card": SECRET, "cart": ["book"], "n": 1}


def test_key_level_merge_still_keeps_both_changes(store: Store) -> None:
    engine = engine_on(store)
    browser = Browser(engine)
    browser.visit(lambda s: s.update(a=1))
    tab_a, tab_b = (
        engine.open(browser.cookie_header, browser.client),
        engine.open(browser.cookie_header, browser.client),
    )
    tab_a.load(), tab_b.load()
    tab_a["x"] = "from a"
    tab_b["y"] = "from b"
    assert engine.run(engine.commit(tab_a)) and engine.run(engine.commit(tab_b))
    assert browser.visit(lambda s: dict(s)).result == {"a": 1, "x": "from a", "y": "from b"}


def test_async_flavour_reads_and_writes_sealed(store: Store) -> None:
    engine = engine_on(store)
    loop = asyncio.new_event_loop()
    try:
        browser = Browser(engine, "async", loop=loop)
        browser.visit(lambda s: s.__setitem__("card", SECRET))
        assert browser.visit(lambda s: s["card"]).result == SECRET
        assert all(v.startswith("~1") for v in stored(engine, browser).values())
    finally:
        loop.run_until_complete(store.aclose())
        loop.close()


def test_a_value_moved_to_another_session_does_not_open(store: Store) -> None:
    engine = engine_on(store)
    victim, attacker = Browser(engine), Browser(engine)
    victim.visit(lambda s: s.__setitem__("role", "admin"))
    attacker.visit(lambda s: s.__setitem__("role", "guest"))
    events: list[Any] = []
    engine.events.subscribe(events.append, [EventKind.RECORD_REJECTED])
    target = engine.digest_of(engine.open(attacker.cookie_header, attacker.client))
    record = store.load(target)  # type: ignore[arg-type]
    assert record is not None
    moved = {"role": stored(engine, victim)["role"]}  # the admin's sealed value
    assert store.save(Write(target, moved, frozenset(), record.meta, 600.0, replace=True))  # type: ignore[arg-type]
    assert attacker.visit(lambda s: dict(s)).result == {}  # no session, no exception
    assert [e.reason for e in events] == [
        "stored record does not decrypt: a sealed value (key 'role') did not open with any "
        "configured key"
    ]


def test_keys_rotate_and_every_value_is_resealed_on_the_next_write(store: Store) -> None:
    old = engine_on(store, keys=OLD_KEY)
    browser = Browser(old)
    browser.visit(lambda s: s.update(kept="unchanged value", n=1))
    rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])  # the new key first, the old kept
    browser.engine = rotated
    assert browser.visit(lambda s: s["kept"]).result == "unchanged value"
    browser.visit(lambda s: s.__setitem__("n", 2))  # a write: "kept" is re-sealed too
    browser.engine = engine_on(store, keys=NEW_KEY)  # the old key retired
    assert browser.visit(lambda s: dict(s)).result == {"kept": "unchanged value", "n": 2}


def test_turning_it_on_and_off_logs_nobody_out(store: Store) -> None:
    plain = engine_on(store, seal=False)
    browser = Browser(plain)
    browser.visit(lambda s: s.update(a="plain", b="plain too"))
    assert not any(v.startswith("~1") for v in stored(plain, browser).values())
    sealed = engine_on(store, seal=True)
    browser.engine = sealed
    assert browser.visit(lambda s: s["a"]).result == "plain"  # plain records still read
    browser.visit(lambda s: s.__setitem__("c", 3))  # the next write seals every value
    assert all(v.startswith("~1") for v in stored(sealed, browser).values())
    browser.engine = plain  # turned off again, the keys still configured: still read
    assert browser.visit(lambda s: dict(s)).result == {"a": "plain", "b": "plain too", "c": 3}
    browser.visit(lambda s: s.__setitem__("d", 4))  # and the next write is plain again
    assert not any(v.startswith("~1") for v in stored(plain, browser).values())


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({"keys": OLD_KEY}, {"keys": [NEW_KEY, OLD_KEY]}),  # a key rotation
        ({"seal": False}, {"seal": True}),  # encrypt_records turned on
        ({"seal": True}, {"seal": False}),  # and off again
    ],
    ids=["rotation", "turned-on", "turned-off"],
)
def test_a_concurrent_change_survives_the_reseal_after_a_key_rotation(
    store: Store, before: dict[str, Any], after: dict[str, Any]
) -> None:
    """The lost update the re-seal must not cause: after a key rotation (or the setting
    turned on or off), request A loads the session (every value stale), request B changes
    ``k`` and commits, then A changes only ``j``. A must not write ``k``'s old value
    (re-sealed) over B's: ``k`` is B's."""
    browser = Browser(engine_on(store, **before))
    browser.visit(lambda s: s.update(k="original", j=0))
    rotated = engine_on(store, **after)
    tab_a = rotated.open(browser.cookie_header, browser.client)
    tab_b = rotated.open(browser.cookie_header, browser.client)
    tab_a.load()
    tab_b.load()
    tab_b["k"] = "from b"
    assert rotated.run(rotated.commit(tab_b))
    tab_a["j"] = 1
    assert rotated.run(rotated.commit(tab_a))
    browser.engine = rotated
    assert browser.visit(lambda s: dict(s)).result == {"k": "from b", "j": 1}


def test_the_async_flavour_keeps_a_concurrent_change_too(store: Store) -> None:
    browser = Browser(engine_on(store, keys=OLD_KEY))
    browser.visit(lambda s: s.update(k="original", j=0, kept="kept"))
    rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])

    async def race() -> None:
        tab_a = rotated.open(browser.cookie_header, browser.client)
        tab_b = rotated.open(browser.cookie_header, browser.client)
        await rotated.aload(tab_a)
        await rotated.aload(tab_b)
        tab_b["k"] = "from b"
        assert await rotated.arun(rotated.commit(tab_b))
        tab_a["j"] = 1
        assert await rotated.arun(rotated.commit(tab_a))
        await store.aclose()

    asyncio.run(race())
    browser.engine = rotated
    assert browser.visit(lambda s: dict(s)).result == {"k": "from b", "j": 1, "kept": "kept"}
    assert sealed_under_the_newest_key(rotated, browser) == {"k": "from b", "j": 1, "kept": "kept"}


def sealed_under_the_newest_key(engine: SessionEngine, browser: Browser) -> dict[str, Any]:
    """The stored session, each value opened with the newest key alone (so every value
    was re-sealed under it)."""
    opened = engine.open(browser.cookie_header, browser.client)
    digest = engine.digest_of(opened)
    assert digest is not None
    newest = Keyring(engine.config.secret_keys[:1])
    plain, stale = sealing.open_items(newest, digest, stored(engine, browser), True)
    assert not stale
    return serialization.loads_items(plain)


class ResealDown(MemoryStore):
    """Its re-seal fails as a store that went down between the save and the re-seal."""

    def reseal(self, digest: str, pairs: Any) -> int:
        raise StoreUnavailable(self.url, "connection reset")

    async def areseal(self, digest: str, pairs: Any) -> int:
        raise StoreUnavailable(self.url, "connection reset")


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_failed_reseal_after_a_landed_save_fails_nothing(flavour: Flavour) -> None:
    """The save landed: the request succeeds, the unchanged values stay readable under the
    old key (re-sealed next time), and the failure is a store_error event."""
    store = ResealDown()
    loop = asyncio.new_event_loop()
    try:
        browser = Browser(engine_on(store, keys=OLD_KEY), loop=loop)
        browser.visit(lambda s: s.update(kept="kept", n=1))
        rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])
        errors: list[Any] = []
        rotated.events.subscribe(errors.append, [EventKind.STORE_ERROR])
        browser.engine, browser.flavour = rotated, flavour
        visit = browser.visit(lambda s: s.__setitem__("n", 2))
        assert visit.saved and visit.plan.reseal is not None
        assert [e.kind for e in errors] == [EventKind.STORE_ERROR]
        assert "connection reset" in errors[0].reason
        assert browser.visit(lambda s: dict(s)).result == {"kept": "kept", "n": 2}
    finally:
        loop.close()


def test_a_rotation_after_loading_stale_values_plans_no_reseal() -> None:
    """regenerate() writes every value afresh under the new ID: when the same session is
    saved again (engine.save, as a framework's session object does), nothing of the old
    record is left to re-seal."""
    store = MemoryStore()
    browser = Browser(engine_on(store, keys=OLD_KEY))
    browser.visit(lambda s: s.update(kept="kept"))
    rotated = engine_on(store, keys=[NEW_KEY, OLD_KEY])
    session = rotated.open(browser.cookie_header, browser.client)
    session.regenerate()
    plan = rotated.save(session)
    assert plan.write is not None and plan.write.create and plan.reseal is None
    session["n"] = 1
    plan = rotated.save(session)
    assert plan.write is not None and not plan.write.create
    assert plan.reseal is None  # the record it wrote holds nothing stale
    browser.cookie = rotated.cookie_of(session)
    assert sealed_under_the_newest_key(rotated, browser) == {"kept": "kept", "n": 1}


# -- the opened-values memo: unchanged values are not decrypted again ---------------------
def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per AES-GCM open of a record value, from now on."""
    opens: list[int] = []
    unseal = Keyring.unseal_record

    def counted(self: Keyring, sealed: bytes, associated: bytes) -> Any:
        opens.append(1)
        return unseal(self, sealed, associated)

    monkeypatch.setattr(Keyring, "unseal_record", counted)
    return opens


def test_an_unchanged_value_is_decrypted_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_on(store)
    browser = Browser(engine)
    browser.visit(lambda s: s.update(card=SECRET, cart=["book"], n=1))
    opens = count_opens(monkeypatch)
    for n in range(2, 5):  # values this process sealed: read back with nothing to open
        browser.visit(lambda s, n=n: s.__setitem__("n", s["n"] + 1))
    assert browser.visit(lambda s: dict(s)).result == {"card": SECRET, "cart": ["book"], "n": 4}
    assert opens == []
    other = engine_on(store, keys=[OLD_KEY])  # another process: opens each value once
    browser.engine = other
    for _ in range(3):
        assert browser.visit(lambda s: s["card"]).result == SECRET
    assert len(opens) == 3  # card, cart, n: the first read only


def test_a_remembered_value_changed_behind_our_back_is_opened_again(store: Store) -> None:
    engine = engine_on(store)
    browser = Browser(engine)
    browser.visit(lambda s: s.update(role="guest", other="x"))
    assert browser.visit(lambda s: s["role"]).result == "guest"  # remembered now
    events: list[Any] = []
    engine.events.subscribe(events.append, [EventKind.RECORD_REJECTED])
    digest = engine.digest_of(engine.open(browser.cookie_header, browser.client))
    record = store.load(digest)  # type: ignore[arg-type]
    assert record is not None
    swapped = {"role": stored(engine, browser)["other"]}  # the session's own, another key's
    assert store.save(Write(digest, swapped, frozenset(), record.meta, 600.0))  # type: ignore[arg-type]
    assert browser.visit(lambda s: dict(s)).result == {}  # refused, as without the memo
    assert len(events) == 1 and "key 'role'" in events[0].reason


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = Keyring([b"k" * 32])
    many = {f"k{i}": "1" for i in range(sealing.MEMO_VALUES + 5)}
    for i in range(sealing.MEMO_RECORDS + 50):
        sealing.seal_items(keyring, f"digest-{i}", many)
    memo = keyring.opened_records
    assert len(memo) == sealing.MEMO_RECORDS  # the oldest records went
    assert "digest-0" not in memo and f"digest-{sealing.MEMO_RECORDS + 49}" in memo
    assert {len(values) for values in memo.values()} == {sealing.MEMO_VALUES}
    big = "x" * sealing.MEMO_VALUE_CHARS
    sealed = sealing.seal_items(keyring, "digest-big", {"big": f'"{big}"'})
    assert "big" not in memo["digest-big"]  # big values are left out
    opens = count_opens(monkeypatch)
    for _ in range(2):
        plain, _ = sealing.open_items(keyring, "digest-big", sealed, True)
        assert plain == {"big": f'"{big}"'}
    assert len(opens) == 2  # opened each time, never kept


def test_a_value_under_an_older_key_stays_stale_when_remembered() -> None:
    old, rotated = Keyring([OLD_KEY.encode()]), Keyring([NEW_KEY.encode(), OLD_KEY.encode()])
    sealed = sealing.seal_items(old, "digest", {"kept": '"v"'})
    for _ in range(2):  # opened, then remembered: re-sealed under the newest key either way
        plain, stale = sealing.open_items(rotated, "digest", sealed, True)
        assert plain == {"kept": '"v"'} and stale == {"kept"}
    assert sealing.open_items(rotated, "digest", {"kept": sealed["kept"]}, False)[1] == {"kept"}


def test_a_remembered_value_moved_to_another_session_does_not_open(store: Store) -> None:
    engine = engine_on(store)
    victim, attacker = Browser(engine), Browser(engine)
    attacker.visit(lambda s: s.__setitem__("role", "guest"))
    victim.visit(lambda s: s.__setitem__("role", "admin"))
    assert victim.visit(lambda s: s["role"]).result == "admin"  # the last value remembered
    target = engine.digest_of(engine.open(attacker.cookie_header, attacker.client))
    record = store.load(target)  # type: ignore[arg-type]
    assert record is not None
    moved = {"role": stored(engine, victim)["role"]}
    assert store.save(Write(target, moved, frozenset(), record.meta, 600.0, replace=True))  # type: ignore[arg-type]
    assert attacker.visit(lambda s: dict(s)).result == {}


def test_a_logged_out_session_leaves_the_memo(store: Store) -> None:
    engine = engine_on(store)
    browser = Browser(engine)
    browser.visit(lambda s: s.update(card=SECRET))
    first = engine.digest_of(engine.open(browser.cookie_header, browser.client))
    browser.visit(lambda s: s.regenerate())  # rotated away: the old record's text goes
    second = engine.digest_of(engine.open(browser.cookie_header, browser.client))
    assert browser.visit(lambda s: s["card"]).result == SECRET
    assert first not in engine.keyring.opened_records
    assert second in engine.keyring.opened_records
    browser.visit(lambda s: s.invalidate())  # logged out: nothing of it is kept
    assert second not in engine.keyring.opened_records


def racing(*workers: Callable[[], object]) -> list[BaseException]:
    """Run each worker in a thread of its own, all started together and switching every
    microsecond (every race gets its chance); what they raised."""
    start, errors = threading.Barrier(len(workers)), []

    def run(work: Callable[[], object]) -> None:
        start.wait()
        try:
            work()
        except BaseException as exc:  # what a request would raise
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    return errors


def test_the_memo_stays_bounded_under_threads() -> None:
    keyring = Keyring([b"k" * 32])

    def work(n: int) -> None:
        for i in range(2000):
            sealing.seal_items(keyring, f"digest-{n}-{i}", {"a": "1"})

    assert racing(*(functools.partial(work, n) for n in range(16))) == []
    assert len(keyring.opened_records) == sealing.MEMO_RECORDS


def test_forgetting_records_while_others_fill_the_memo_raises_nothing() -> None:
    keyring = Keyring([b"k" * 32])
    for i in range(sealing.MEMO_RECORDS):  # full: every new record evicts one
        sealing.seal_items(keyring, f"old-{i}", {"a": "1"})

    def fill(n: int) -> None:
        for i in range(6000):
            sealing.seal_items(keyring, f"new-{n}-{i}", {"a": "1"})

    def forget() -> None:  # logouts: the oldest records go as the others evict them
        for _ in range(6000):
            sealing.forget(keyring, list(keyring.opened_records)[:2])

    errors = racing(*(functools.partial(fill, n) if n % 2 else forget for n in range(8)))
    assert errors == []
    assert len(keyring.opened_records) <= sealing.MEMO_RECORDS


def test_a_logout_with_sealing_turned_off_leaves_the_memo_too(store: Store) -> None:
    browser = Browser(engine_on(store))
    browser.visit(lambda s: s.update(card=SECRET))  # sealed while the setting was on
    plain = engine_on(store, seal=False)
    browser.engine = plain
    assert browser.visit(lambda s: s["card"]).result == SECRET  # opened, so remembered
    digest = plain.digest_of(plain.open(browser.cookie_header, browser.client))
    assert digest in plain.keyring.opened_records
    browser.visit(lambda s: s.invalidate())
    assert digest not in plain.keyring.opened_records
