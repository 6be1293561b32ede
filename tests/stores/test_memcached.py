"""MemcachedStore against a real memcached: the conformance suite, plus what only it needs."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from pymemcache.client.base import Client  # type: ignore[import-untyped]
from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped]

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError, StoreUnavailable
from sessionkit.ids import digest, handle, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import Record, RecordMeta, Store, Write
from sessionkit.stores.memcached import THIRTY_DAYS, MemcachedStore, encode, expire_for
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ServerStoreConformance,
)
from tests import servers

KEY = "memcached-store-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"


class TestMemcachedStore(
    ServerStoreConformance, ChallengeConformance, LockConformance, ResealConformance
):
    @pytest.fixture(autouse=True)
    def _server(self, memcached_server: servers.Server) -> None:
        self.port = memcached_server.port

    def make_store(self, clock: FakeClock) -> Store:
        return MemcachedStore.from_url(
            f"memcached://127.0.0.1:{self.port}?prefix=t{uuid.uuid4().hex}:", clock=clock
        )


# -- helpers ------------------------------------------------------------------------------
@pytest.fixture
def url(memcached_server: servers.Server) -> str:
    return f"memcached://127.0.0.1:{memcached_server.port}?prefix=t{uuid.uuid4().hex}:"


@pytest.fixture
def store(url: str, clock: FakeClock) -> Iterator[MemcachedStore]:
    store = MemcachedStore.from_url(url, clock=clock)
    yield store
    store.close()


@pytest.fixture
def raw(memcached_server: servers.Server) -> Iterator[Client]:
    client = Client(("127.0.0.1", memcached_server.port), default_noreply=False)
    yield client
    client.close()


def meta(clock: FakeClock) -> RecordMeta:
    return RecordMeta(created=int(clock.now), last_seen=int(clock.now))


def create(key: str, clock: FakeClock, ttl: float = 600.0, **items: str) -> Write:
    return Write(key, items, frozenset(), meta(clock), ttl, create=True, replace=True)


def items_in(raw: Client) -> int:
    return int(raw.stats()[b"curr_items"])


# -- URLs ---------------------------------------------------------------------------------
def test_url_forms() -> None:
    one = open_store("memcached://cache.internal")
    assert isinstance(one, MemcachedStore) and list(one._clients) == ["cache.internal:11211"]
    many = MemcachedStore.from_url(
        "memcached://10.0.0.1:11311,[::1]:11212,h3?prefix=app:&timeout=0.5&max_pool_size=8"
    )
    assert list(many._clients) == ["10.0.0.1:11311", "::1:11212", "h3:11211"]
    assert many.prefix == "app:"
    sock = MemcachedStore.from_url("memcached:///run/memcached/memcached.sock")
    assert list(sock._clients) == ["/run/memcached/memcached.sock"]


@pytest.mark.parametrize(
    "bad",
    ["memcached://", "memcached://user:pw@h", "memcached://h:0", "memcached://h:x",
     "memcached://::1", "memcached://h?prefix=a%20b", "memcached://h?colour=1",
     "memcached://h?timeout=soon", "memcached://h?max_retries=0", "memcached://:11211"],
)  # fmt: skip
def test_bad_urls_are_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ConfigError):
        MemcachedStore.from_url(bad)


def test_expiry_over_thirty_days_is_an_absolute_time() -> None:
    assert expire_for(0.2) == 1 and expire_for(600.0) == 600 and expire_for(600.1) == 601
    assert expire_for(THIRTY_DAYS) == THIRTY_DAYS
    assert expire_for(THIRTY_DAYS + 1, now=1_000_000_000) == 1_000_000_000 + THIRTY_DAYS + 1
    assert expire_for(float("inf")) == 0


def test_a_forty_day_session_is_really_kept(store: MemcachedStore, clock: FakeClock) -> None:
    key = digest(new_id())
    # sent as a relative 3,456,000 s, memcached would read a moment in 1970: gone at once
    assert store.save(create(key, clock, ttl=40 * 86400.0, a="1"))
    assert store.load(key) is not None
    assert store.touch(key, int(clock.now), 40 * 86400.0)
    assert store.load(key) is not None


def test_native_expiry_drops_the_item(store: MemcachedStore, clock: FakeClock, raw: Client) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, ttl=1.0, a="1"))
    assert raw.get(store.prefix + key) is not None
    time.sleep(2.1)
    assert raw.get(store.prefix + key) is None  # memcached's TTL cleaned up by itself


# -- conditional writes, merge, rotation --------------------------------------------------
def test_concurrent_merges_all_survive(store: MemcachedStore, clock: FakeClock) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock))

    def change(n: int) -> None:
        for i in range(5):
            write = Write(key, {f"k{n}-{i}": str(i)}, frozenset(), meta(clock), 600.0)
            assert store.save(write)

    threads = [threading.Thread(target=change, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    record = store.load(key)
    assert record is not None and len(record.items) == 40 and record.version == 41


def test_rotation_replaces_the_old_key_and_blocks_its_writers(
    store: MemcachedStore, clock: FakeClock, raw: Client
) -> None:
    old, new = digest(new_id()), digest(new_id())
    assert store.save(create(old, clock, a="1"))
    rotate = Write(new, {"a": "1"}, frozenset(), meta(clock), 600.0, create=True, replace=True,
                   rotated_from=old)  # fmt: skip
    assert store.save(rotate)
    assert raw.get(store.prefix + old) is None and store.load(new) is not None
    assert store.save(rotate._replace(digest=digest(new_id()))) is False  # old is gone
    raw.set(store.prefix + old, b"-")  # the tombstone a rotation leaves while it works
    assert store.load(old) is None
    assert store.save(Write(old, {"b": "2"}, frozenset(), meta(clock), 600.0)) is False
    assert raw.get(store.prefix + old) == b"-"  # nothing written back


def test_malformed_digests_are_refused(store: MemcachedStore, clock: FakeClock) -> None:
    for bad in ("../../etc/passwd", "a b", "x" * 300, "", "A" * 64):
        assert store.load(bad) is None and store.touch(bad, 0, 60.0) is False
        store.delete(bad)
        with pytest.raises(ValueError):
            store.save(create(bad, clock, a="1"))


# -- corrupted values, flooding -----------------------------------------------------------
def test_corrupted_values_read_as_no_session(
    store: MemcachedStore, clock: FakeClock, raw: Client, caplog: pytest.LogCaptureFixture
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a="1"))
    whole = raw.get(store.prefix + key)
    garbage = [whole[: len(whole) // 2], b"\x80\x04\x95pickle", b"{}", b"[1]", b"null",
               whole.replace(b'"v":1', b'"v":9'), b"[" * 100_000]  # fmt: skip
    for value in garbage:
        raw.set(store.prefix + key, value)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
            assert store.load(key) is None
        assert "record_rejected" in caplog.text and handle(key) in caplog.text
        assert store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 60.0)) is False
        assert store.touch(key, int(clock.now), 60.0) is False
        assert raw.get(store.prefix + key) == value  # never overwritten or "repaired"


def test_random_cookies_create_no_keys(
    store: MemcachedStore, clock: FakeClock, raw: Client
) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=clock)
    signer = SessionEngine(SessionConfig(secret_key=KEY, store="memory://"), clock=clock)
    before = items_in(raw)
    for n in range(2000):
        browser = Browser(engine)
        if n % 2:
            browser.cookie = new_id() + "." + new_id()[:22]  # forged: never reaches the store
        else:  # properly signed, but for an ID this store never issued
            ghost = Browser(signer)
            ghost.visit(lambda s: s.__setitem__("a", 1))
            browser.cookie = ghost.cookie
        assert browser.visit(lambda s: dict(s)).result == {}
    assert items_in(raw) == before


# -- failure and recovery -----------------------------------------------------------------
def test_down_server_raises_and_the_same_store_recovers(
    memcached_server: servers.Server, store: MemcachedStore, clock: FakeClock
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a="1"))
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store), clock=clock)
    memcached_server.stop()
    try:
        for attempt in (
            lambda: store.load(key),
            lambda: store.save(create(digest(new_id()), clock, a="1")),
            lambda: store.touch(key, int(clock.now), 60.0),
            lambda: store.delete(key),
            lambda: store.lock(key, wait=0.1).__enter__(),
        ):
            with pytest.raises(StoreUnavailable) as caught:
                attempt()
            message = str(caught.value)
            assert (
                f"127.0.0.1:{memcached_server.port}" in message and "unavailable: ." not in message
            )
            assert isinstance(caught.value.__cause__, (OSError, MemcacheError))
        with pytest.raises(StoreUnavailable):
            Browser(engine).visit(lambda s: s.__setitem__("a", 1))
    finally:
        memcached_server.start()
    assert store.load(key) is None  # memcached forgets everything on restart: say so
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("a", 1))
    assert browser.visit(lambda s: dict(s)).result == {"a": 1}


def test_several_servers_share_keys_and_a_dead_one_fails_loudly(
    memcached_server: servers.Server, clock: FakeClock
) -> None:
    second = servers.memcached_server()
    url = f"memcached://127.0.0.1:{memcached_server.port},127.0.0.1:{second.port}"
    store = MemcachedStore.from_url(f"{url}?prefix=t{uuid.uuid4().hex}:", clock=clock)
    peek = Client(("127.0.0.1", second.port))
    try:
        keys = [digest(new_id()) for _ in range(40)]
        for key in keys:
            assert store.save(create(key, clock, a=key[:4]))
        on_second = {k for k in keys if peek.get(store.prefix + k)}
        peek.close()
        assert 0 < len(on_second) < len(keys)  # spread over both
        second.stop()
        for key in keys:
            if key in on_second:
                with pytest.raises(StoreUnavailable):
                    store.load(key)
            else:
                record = store.load(key)  # the live server's sessions are unaffected
                assert record is not None and record.items == {"a": key[:4]}
    finally:
        peek.close()
        store.close()
        second.close()


def test_value_codec_is_versioned_json(clock: FakeClock) -> None:
    value = encode(Record({"a": "1"}, meta(clock), 3), clock.now + 60)
    assert value.startswith(b'{"format":"sessionkit.memcached","v":1,"meta":[1,')


# -- a change in two round trips: the cas token from the load ------------------------------
def stats(raw: Client) -> dict[str, int]:
    wanted = (b"cmd_get", b"cmd_set", b"cas_hits", b"cas_badval", b"cas_misses")
    values = raw.stats()
    return {name.decode(): int(values[name]) for name in wanted}


def delta(raw: Client, before: dict[str, int]) -> dict[str, int]:
    after = stats(raw)
    return {name: after[name] - before[name] for name in after if after[name] != before[name]}


def change(key: str, clock: FakeClock, **items: str) -> Write:
    return Write(key, items, frozenset(), meta(clock), 600.0)


def test_load_then_save_is_one_gets_and_one_cas(
    store: MemcachedStore, clock: FakeClock, raw: Client
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a='"1"'))
    before = stats(raw)
    record = store.load(key)
    assert record is not None
    assert store.save(change(key, clock, b='"2"'))
    # cmd_set counts the cas too: one read, one conditional write, nothing else
    assert delta(raw, before) == {"cmd_get": 1, "cmd_set": 1, "cas_hits": 1}
    again = store.load(key)
    assert again is not None and dict(again.items) == {"a": '"1"', "b": '"2"'}
    assert again.version == 2


def test_a_stale_token_rereads_and_merges(
    store: MemcachedStore, url: str, clock: FakeClock, raw: Client
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a='"1"'))
    assert store.load(key) is not None
    other = MemcachedStore.from_url(url, clock=clock)  # another process, in effect
    assert other.save(change(key, clock, theirs='"x"'))
    before = stats(raw)
    assert store.save(change(key, clock, mine='"y"'))
    assert delta(raw, before) == {"cmd_get": 1, "cmd_set": 2, "cas_badval": 1, "cas_hits": 1}
    record = store.load(key)
    assert record is not None
    assert dict(record.items) == {"a": '"1"', "theirs": '"x"', "mine": '"y"'}
    other.close()


def test_a_token_never_brings_a_deleted_session_back(
    store: MemcachedStore, url: str, clock: FakeClock, raw: Client
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a='"1"'))
    assert store.load(key) is not None
    other = MemcachedStore.from_url(url, clock=clock)
    other.delete(key)  # a logout elsewhere, between this request's load and its save
    assert not store.save(change(key, clock, b='"2"'))
    assert store.load(key) is None and raw.get(store.prefix + key) is None
    other.close()


def test_a_token_is_used_once_and_tracks_only_the_loaded_value(
    store: MemcachedStore, clock: FakeClock
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a='"1"'))
    record = store.load(key)
    assert record is not None
    record.items["injected"] = '"no"'  # type: ignore[index]  # a caller scribbling on it
    assert store.save(change(key, clock, b='"2"'))
    assert store.save(change(key, clock, c='"3"'))  # no token left: gets + cas
    stored = store.load(key)
    assert stored is not None and dict(stored.items) == {"a": '"1"', "b": '"2"', "c": '"3"'}


def test_the_token_table_is_bounded(
    store: MemcachedStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sessionkit.stores.memcached.TOKENS", 3)
    keys = [digest(new_id()) for _ in range(5)]
    for key in keys:
        assert store.save(create(key, clock, a='"1"'))
        assert store.load(key) is not None
    assert list(store._tokens) == keys[2:]  # the oldest were dropped
    assert store.save(change(keys[0], clock, b='"2"'))  # no token: still exact
    first = store.load(keys[0])
    assert first is not None and dict(first.items) == {"a": '"1"', "b": '"2"'}


def test_delete_and_rotation_drop_the_token(store: MemcachedStore, clock: FakeClock) -> None:
    gone, old, new = (digest(new_id()) for _ in range(3))
    for key in (gone, old):
        assert store.save(create(key, clock, a='"1"'))
        assert store.load(key) is not None
    store.delete(gone)
    rotate = Write(
        new, {"a": '"1"'}, frozenset(), meta(clock), 600.0, create=True, rotated_from=old
    )
    assert store.save(rotate)
    assert gone not in store._tokens and old not in store._tokens  # no copies left behind
    assert store.load(old) is None and store.load(gone) is None


def test_a_session_over_the_item_limit_is_too_large_not_an_outage(
    url: str, clock: FakeClock
) -> None:
    from sessionkit import Failure, SessionTooLarge

    engine = SessionEngine(
        SessionConfig(secret_key="memcached-limit-key-0123456789abcdefghijklmn", store=url),
        clock=clock,
    )
    browser = Browser(engine)
    with pytest.raises(SessionTooLarge, match="item size limit") as caught:
        browser.visit(lambda s: s.__setitem__("blob", "x" * (2 * 1024 * 1024)))
    assert engine.refuse(caught.value) is engine.policy(Failure.TOO_LARGE)  # 500, no Retry-After
    browser.visit(lambda s: s.__setitem__("small", 1))  # the server is up all along
    assert browser.visit(lambda s: dict(s)).result == {"small": 1}
    engine.store.close()


def test_a_lost_write_reply_is_not_logged_as_unchanged(clock: FakeClock) -> None:
    """A server that takes the write and never answers: the write may have been applied,
    so the error must not claim that nothing was changed."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    accepter = threading.Thread(target=lambda: held.append(listener.accept()[0]), daemon=True)
    accepter.start()
    store = MemcachedStore.from_url(f"memcached://127.0.0.1:{port}?timeout=0.2", clock=clock)
    meta = RecordMeta(created=int(clock()), last_seen=int(clock()))
    write = Write(digest(new_id()), {"a": "1"}, frozenset(), meta, 60.0, create=True)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.save(write)
        assert caught.value.ambiguous
        assert "nothing was changed" not in str(caught.value)
        assert "may or may not have been applied" in str(caught.value)
    finally:
        store.close()
        for conn in held:
            conn.close()
        listener.close()
