"""RedisStore's record layouts on a real server: layout 2 keeps the key order (and the
CREATE nonce); layout 1, what sessionkit wrote before, is still read and merged into, and
``?record_format=1`` keeps writing it for a rolling deploy whose old workers still run."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import redis

from sessionkit import SessionConfig, SessionEngine, serialization
from sessionkit.ids import digest, new_id
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.stores.test_redis import unique_prefix

KEY = "redis-layout-key-0123456789-abcdefghijklmnopqrstuvwxyz"
#: every field the layout-1 reader accepts, besides "d:<key>"
LAYOUT_1_FIELDS = {b"m", b"v", b"t", b"u", b"x"}


@pytest.fixture
def url(redis_server: servers.Server) -> str:
    return f"redis://127.0.0.1:{redis_server.port}/0"


@pytest.fixture
def raw(redis_server: servers.Server) -> Iterator[redis.Redis]:
    client = redis.Redis(port=redis_server.port)
    yield client
    client.close()


def meta(clock: FakeClock) -> RecordMeta:
    return RecordMeta(created=int(clock.now), last_seen=int(clock.now))


def test_a_layout_1_record_is_read_and_merged_into(
    url: str, raw: redis.Redis, clock: FakeClock
) -> None:
    """A HASH exactly as the release before layout 2 wrote it (no f, o, n)."""
    store = RedisStore.from_url(url, prefix=unique_prefix())
    key = digest(new_id())
    big = '"' + "b" * 100 + '"'  # a table-encoded hash: HGETALL order is the hash's
    raw.hset(store.key(key), mapping={
        "v": 3, "m": serialization.dumps_plain(meta(clock).to_list()),
        "d:a": "1", "d:big": big,
    })  # fmt: skip
    raw.pexpire(store.key(key), 60_000)
    record = store.load(key)
    assert record is not None and dict(record.items) == {"a": "1", "big": big}
    assert record.version == 3
    assert store.save(Write(key, {"c": "3"}, frozenset({"a"}), meta(clock), 60.0))
    record = store.load(key)
    assert record is not None and dict(record.items) == {"big": big, "c": "3"}
    assert raw.hexists(store.key(key), "o") == 0  # a merge leaves it a layout-1 record
    replace = Write(key, {"z": "1", "big": big}, frozenset(), meta(clock), 60.0, replace=True)
    assert store.save(replace)  # a whole-record write brings it to layout 2
    assert raw.hget(store.key(key), "f") == b"2"
    record = store.load(key)
    assert record is not None and list(record.items) == ["z", "big"]
    store.close()


def test_record_format_1_writes_what_the_previous_release_reads(
    url: str, raw: redis.Redis, clock: FakeClock
) -> None:
    store = RedisStore.from_url(f"{url}?record_format=1", prefix=unique_prefix())
    engine = SessionEngine(SessionConfig(secret_key=KEY), store=store, clock=clock)
    browser = Browser(engine)
    browser.visit(lambda s: s.update({"a": 1, "b": 2}))
    browser.visit(lambda s: s.bind_user("ann"))
    browser.visit(lambda s: s.__setitem__("c", 3))
    (name,) = raw.keys(f"{store.prefix}{{*}}")
    fields: set[bytes] = set(raw.hkeys(name))  # type: ignore[arg-type]  # raw bytes
    assert {f for f in fields if not f.startswith(b"d:")} <= LAYOUT_1_FIELDS
    assert browser.visit(lambda s: dict(s)).result == {"a": 1, "b": 2, "c": 3}
    store.close()


def test_an_unknown_layout_is_rejected(
    url: str, raw: redis.Redis, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisStore.from_url(url, prefix=unique_prefix())
    key = digest(new_id())
    assert store.save(Write(key, {"a": "1"}, frozenset(), meta(clock), 60.0, create=True,
                            replace=True))  # fmt: skip
    raw.hset(store.key(key), "f", "3")  # written by a future release
    with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
        assert store.load(key) is None
    assert "record_rejected" in caplog.text and "layout" in caplog.text
    store.close()


ODD_NAMES = ['a","b', 'q"uote', "back\\", "\\", ",", "[", "]", '"', "ünï", "日本", "", "x y"]


def test_the_key_order_survives_any_key_name(url: str, clock: FakeClock) -> None:
    """The order field is edited as text by the scripts: names made of its own syntax
    (quotes, commas, brackets, backslashes, the separator itself) must not confuse it."""
    store = RedisStore.from_url(url, prefix=unique_prefix())
    key = digest(new_id())
    first = {name: json.dumps(n) for n, name in enumerate(ODD_NAMES)}
    assert store.save(Write(key, first, frozenset(), meta(clock), 60.0, create=True,
                            replace=True))  # fmt: skip
    record = store.load(key)
    assert record is not None and list(record.items) == ODD_NAMES
    gone = frozenset({'a","b', "\\", "["})
    added = {"b": "1", '"': "2", 'a","b2': "3"}  # '"' is listed already: keeps its place
    assert store.save(Write(key, added, gone, meta(clock), 60.0))
    expected = [n for n in ODD_NAMES if n not in gone] + ["b", 'a","b2']
    record = store.load(key)
    assert record is not None and list(record.items) == expected
    assert record.items['"'] == "2"
    store.close()
