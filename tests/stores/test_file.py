"""FileStore: the conformance suite on a temporary directory, plus what only files need."""

from __future__ import annotations

import asyncio
import errno
import logging
import multiprocessing
import os
import signal
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sessionkit import SessionConfig, SessionEngine
from sessionkit.errors import ConfigError, LockTimeout, StoreUnavailable
from sessionkit.ids import digest, handle, new_id
from sessionkit.stores import open_store
from sessionkit.stores.base import Record, RecordMeta, Store, Write
from sessionkit.stores.file import FileStore, decode, encode
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    SweepConformance,
    UserIndexConformance,
)
from sessionkit.testing.browser import DEFAULT_CLIENT as CLIENT


class TestFileStore(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    SweepConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "sessions"

    def make_store(self, clock: FakeClock) -> Store:
        return FileStore(self.directory, clock=clock)


# -- helpers ------------------------------------------------------------------------------
KEY = "file-store-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"


def meta(clock: FakeClock, user: str | None = None) -> RecordMeta:
    return RecordMeta(created=int(clock.now), last_seen=int(clock.now), user=user)


def create(key: str, clock: FakeClock, ttl: float = 600.0, **items: str) -> Write:
    return Write(key, items, frozenset(), meta(clock), ttl, create=True, replace=True)


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> FileStore:
    return FileStore(tmp_path / "store", clock=clock)


def record_path(store: FileStore, key: str) -> Path:
    return store.root / "sessions" / key[:2] / key


# -- URLs ---------------------------------------------------------------------------------
def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    absolute = open_store(f"file://{tmp_path}/a")
    assert isinstance(absolute, FileStore) and absolute.root == tmp_path / "a"
    assert FileStore.from_url(f"file://localhost{tmp_path}/b").root == tmp_path / "b"
    relative = FileStore.from_url("file:rel/dir")
    assert (
        relative.root == tmp_path / "rel" / "dir" and relative.url == f"file://{tmp_path}/rel/dir"
    )
    assert FileStore.from_url(f"file://{tmp_path}/with%20space").root.name == "with space"
    assert FileStore.from_url(f"file://{tmp_path}/c?fsync=false").fsync is False
    assert FileStore.from_url(f"file://{tmp_path}/c").fsync is True


@pytest.mark.parametrize(
    "url",
    ["file://relative/dir", "file://example.com/srv", "file://", "file:///x?fsync=maybe",
     "file:///x?colour=blue"],
)  # fmt: skip
def test_bad_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ConfigError):
        FileStore.from_url(url)


def test_a_path_that_is_a_file_is_refused_at_start_up(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        FileStore(tmp_path / "plain")


# -- no path from user input --------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    ["../../etc/passwd", "", "..", "/etc/passwd", "a" * 64 + "/..", "A" * 64, "g" * 64,
     "0" * 63, "0" * 65, "0" * 63 + "\x00", "../" * 21 + "x"],
)  # fmt: skip
def test_malformed_digests_never_reach_the_file_system(
    store: FileStore, clock: FakeClock, bad: str
) -> None:
    assert store.load(bad) is None
    assert store.touch(bad, int(clock.now), 60.0) is False
    store.delete(bad)
    with pytest.raises(ValueError):
        store.save(create(bad, clock, a="1"))
    with pytest.raises(ValueError):
        store.lock(bad).__enter__()
    assert not store.root.exists()  # not even the directory was created


def test_a_traversing_digest_cannot_read_a_planted_record(
    store: FileStore, clock: FakeClock
) -> None:
    evil = "../../planted"
    naive = Path(os.path.normpath(store.root / "sessions" / evil[:2] / evil))
    naive.parent.mkdir(parents=True, exist_ok=True)
    naive.write_bytes(encode(Record({"a": "1"}, meta(clock)), clock.now + 600))
    assert decode(naive.read_bytes())[0].items == {"a": "1"}  # a valid record sits there...
    assert store.load(evil) is None  # ...and the store never looks


# -- atomic writes and damaged files ------------------------------------------------------
def test_damaged_or_foreign_records_read_as_no_session(
    store: FileStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a="1", b="2"))
    whole = record_path(store, key).read_bytes()
    damaged = [
        whole[: len(whole) // 2], b"", b"\xff\xfe garbage", b"[1, 2, 3]", b'{"format": "x"}',
        whole.replace(b'"v":1', b'"v":2'), whole.replace(b'"version":1', b'"version":"1"'),
        whole.replace(b'"a":"1"', b'"a":1'), b"[" * 100_000,
    ]  # fmt: skip
    for raw in damaged:
        record_path(store, key).write_bytes(raw)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sessionkit.security"):
            assert store.load(key) is None
        assert "record_rejected" in caplog.text and handle(key) in caplog.text
        assert key not in caplog.text  # only the handle is logged
        assert store.save(Write(key, {"c": "3"}, frozenset(), meta(clock), 60.0)) is False
    record_path(store, key).unlink()
    record_path(store, key).mkdir()  # a directory where a record should be
    assert store.load(key) is None


def test_a_stray_temporary_file_is_no_session(store: FileStore, clock: FakeClock) -> None:
    key = digest(new_id())
    shard = store.root / "sessions" / key[:2]
    shard.mkdir(parents=True)
    whole = encode(Record({"a": "1"}, meta(clock)), clock.now + 600)
    (shard / f".tmp-{key}-deadbeef").write_bytes(whole[:20])  # a writer died mid-write
    assert store.load(key) is None
    assert list(store.scan()) == []


def test_a_failed_write_keeps_the_old_record_whole(
    store: FileStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a="1"))

    def crash(*args: object) -> None:
        raise OSError(errno.EIO, "simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreUnavailable, match="simulated crash"):
        store.save(Write(key, {"a": "2", "b": "x" * 100_000}, frozenset(), meta(clock), 60.0))
    monkeypatch.undo()
    record = store.load(key)
    assert record is not None and dict(record.items) == {"a": "1"}
    assert sorted(os.listdir(record_path(store, key).parent)) == [".lock", key]  # no temp left


def test_a_killed_writer_never_leaves_half_a_record(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    key = digest(new_id())
    ctx = multiprocessing.get_context("spawn")
    writer = ctx.Process(target=_write_forever, args=(str(directory), key), daemon=True)
    writer.start()
    store = FileStore(directory)
    deadline = time.monotonic() + 20
    while store.load(key) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    record = store.load(key)
    assert record is not None  # the last complete write, whole
    assert len(record.items) == 1 and len(next(iter(record.items.values()))) == 200_000


def _write_forever(directory: str, key: str) -> None:
    store = FileStore(directory)
    now = int(time.time())
    store.save(Write(key, {"n": "0" * 200_000}, frozenset(), RecordMeta(now, now), 600.0,
                     create=True, replace=True))  # fmt: skip
    n = 0
    while True:
        n += 1
        value = str(n % 10) * 200_000
        store.save(Write(key, {"n": value}, frozenset(), RecordMeta(now, now), 600.0, replace=True))


def test_sweep_removes_stale_temporary_files_and_keeps_fresh_ones(
    store: FileStore, clock: FakeClock
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, a="1"))
    shard = record_path(store, key).parent
    stale, fresh = shard / f".tmp-{key}-00000000", shard / f".tmp-{key}-11111111"
    stale.write_bytes(b"{")
    fresh.write_bytes(b"{")
    old = time.time() - 120
    os.utime(stale, (old, old))
    assert store.delete_expired() == 0
    assert not stale.exists() and fresh.exists() and store.load(key) is not None


# -- permissions and failures -------------------------------------------------------------
def test_directories_are_0700_and_files_0600(store: FileStore, clock: FakeClock) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock)._replace(meta=meta(clock, user="alice")))
    with store.lock(key):
        lock_file = record_path(store, key).with_name(key + ".lock")
        assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
    user_dirs = list((store.root / "users").iterdir())
    for directory in (store.root, store.root / "sessions", record_path(store, key).parent,
                      store.root / "users", *user_dirs):  # fmt: skip
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    for path in (record_path(store, key), record_path(store, key).parent / ".lock",
                 user_dirs[0] / key):  # fmt: skip
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_unusable_directory_raises_store_unavailable(tmp_path: Path, clock: FakeClock) -> None:
    blocker = tmp_path / "blocker"
    store = FileStore(blocker / "store", clock=clock)
    blocker.write_text("a file where a directory should be")
    key = digest(new_id())
    with pytest.raises(StoreUnavailable, match=r"cannot lock .*Not a directory") as caught:
        store.save(create(key, clock, a="1"))
    assert "writable by the user the app runs as" in str(caught.value)
    assert str(blocker) in str(caught.value)


def test_a_directory_owned_by_someone_else_raises_store_unavailable(tmp_path: Path) -> None:
    directory = tmp_path / "store"
    owner = FileStore(directory)
    key = digest(new_id())
    now = int(time.time())
    assert owner.save(Write(key, {"a": "1"}, frozenset(), RecordMeta(now, now), 600.0,
                            create=True, replace=True))  # fmt: skip
    ctx = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_as_another_user, args=(str(directory), key, queue))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == "StoreUnavailable: Permission denied"


def _as_another_user(directory: str, key: str, queue: multiprocessing.Queue[str]) -> None:
    if os.geteuid() == 0:
        os.setgid(65534)
        os.setuid(65534)  # nobody: the store directory is 0700 and not theirs
    else:
        os.chmod(directory, 0o000)
    try:
        FileStore(directory).load(key)
        queue.put("loaded")
    except StoreUnavailable as exc:
        denied = "Permission denied" in str(exc) and "writable by the user" in str(exc)
        queue.put("StoreUnavailable: Permission denied" if denied else repr(exc))


# -- expiry, touch, rotation, index -------------------------------------------------------
def test_expiry_comes_from_the_clock_and_touch_extends_it(
    store: FileStore, clock: FakeClock
) -> None:
    key = digest(new_id())
    assert store.save(create(key, clock, ttl=10.0, a="1"))
    clock.advance(9)
    assert store.touch(key, int(clock.now), 10.0) is True
    clock.advance(9)
    record = store.load(key)
    assert record is not None and record.meta.last_seen == int(clock.now) - 9
    clock.advance(2)
    assert store.load(key) is None and store.touch(key, int(clock.now), 10.0) is False
    assert store.save(Write(key, {"b": "2"}, frozenset(), meta(clock), 10.0)) is False
    assert record_path(store, key).exists()  # still on disk until the sweep...
    assert [m.created for m in store.scan()] == [int(clock.now) - 20]
    assert store.delete_expired() == 1
    assert not record_path(store, key).exists() and list(store.scan()) == []


def test_rotation_moves_the_record_and_its_index_entry(store: FileStore, clock: FakeClock) -> None:
    old, new = digest(new_id()), digest(new_id())
    alice = meta(clock, user="alice")
    assert store.save(Write(old, {"a": "1"}, frozenset(), alice, 60.0, create=True, replace=True))
    rotate = Write(new, {"a": "1"}, frozenset(), alice, 60.0, create=True, replace=True,
                   rotated_from=old)  # fmt: skip
    assert store.save(rotate) is True
    assert store.load(old) is None and not record_path(store, old).exists()
    assert [i.handle for i in store.user_sessions("alice")] == [handle(new)]
    assert store.save(rotate._replace(digest=digest(new_id()))) is False  # old is gone now
    markers = list((store.root / "users").rglob("*"))
    assert [m.name for m in markers if m.is_file()] == [new]


def test_changing_user_moves_the_index_entry_and_stale_markers_are_pruned(
    store: FileStore, clock: FakeClock
) -> None:
    key = digest(new_id())
    assert store.save(Write(key, {}, frozenset(), meta(clock, "ann"), 60.0, create=True))
    assert store.save(Write(key, {}, frozenset(), meta(clock, "bob"), 60.0))
    assert store.user_sessions("ann") == [] and len(store.user_sessions("bob")) == 1
    ghost = digest(new_id())
    marker_dir = next(p for p in (store.root / "users").iterdir() if (p / key).exists())
    (marker_dir / ghost).touch()  # a marker whose record never existed (e.g. a crash)
    assert [i.handle for i in store.user_sessions("bob")] == [handle(key)]
    assert not (marker_dir / ghost).exists()
    assert store.revoke_handle("bob", handle(ghost)) is False
    assert store.revoke_user("bob") == 1 and store.load(key) is None
    store.delete_expired()
    assert list((store.root / "users").iterdir()) == []  # empty user directories go too


def test_user_names_never_become_paths(store: FileStore, clock: FakeClock) -> None:
    for user in ("../../etc", "/", "a/b", "\x00", "é" * 300):
        key = digest(new_id())
        assert store.save(Write(key, {}, frozenset(), meta(clock, user), 60.0, create=True))
        assert [i.handle for i in store.user_sessions(user)] == [handle(key)]
    assert {p.parent.parent for p in store.root.rglob("*") if p.is_file()} <= {
        store.root / "sessions",
        store.root / "users",
    }


def test_lock_times_out_with_lock_timeout(store: FileStore) -> None:
    key = digest(new_id())

    async def contend() -> None:
        async with store.alock(key, ttl=5, wait=1):
            with pytest.raises(LockTimeout):
                async with store.alock(key, ttl=5, wait=0.05):
                    pass  # pragma: no cover

    asyncio.run(contend())
    with store.lock(key, wait=0.05):
        pass


# -- several processes sharing one directory ----------------------------------------------
def test_five_processes_fifty_locked_increments(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    browser = Browser(SessionEngine(SessionConfig(secret_key=KEY, store=url)))
    browser.visit(lambda s: s.__setitem__("n", 0))
    assert browser.cookie is not None
    run_processes(_locked_increments, url, browser.cookie)
    assert browser.visit(lambda s: s["n"]).result == 50


def test_five_processes_changing_different_keys_all_survive(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    browser = Browser(SessionEngine(SessionConfig(secret_key=KEY, store=url)))
    browser.visit(lambda s: s.__setitem__("start", True))
    assert browser.cookie is not None
    run_processes(_different_keys, url, browser.cookie)
    data = browser.visit(lambda s: dict(s)).result
    assert data == {"start": True, **{f"p{p}-{i}": i for p in range(5) for i in range(10)}}


def run_processes(target: Callable[..., None], url: str, cookie: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    workers = [ctx.Process(target=target, args=(url, cookie, number, start)) for number in range(5)]
    for worker in workers:
        worker.start()
    start.set()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0] * 5


def _locked_increments(url: str, cookie: str, number: int, start: object) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))
    start.wait()  # type: ignore[attr-defined]
    for _ in range(10):
        session = engine.open(f"{engine.config.cookie_name}={cookie}", CLIENT)
        with engine.lock(session, ttl=10, wait=30):
            n = session["n"]
            time.sleep(0.001)  # widen the window a lost update would need
            session["n"] = n + 1
            assert engine.run(engine.commit(session, 200))


def _different_keys(url: str, cookie: str, number: int, start: object) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))
    start.wait()  # type: ignore[attr-defined]
    for i in range(10):
        session = engine.open(f"{engine.config.cookie_name}={cookie}", CLIENT)
        session[f"p{number}-{i}"] = i
        assert engine.run(engine.commit(session, 200))


# -- the document codec: orjson when installed, the standard library's answers always ------
@pytest.mark.parametrize("with_orjson", [True, False])
def test_documents_read_the_same_with_or_without_orjson(
    store: FileStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, with_orjson: bool
) -> None:
    import sessionkit.serialization as codec  # where the orjson handle lives

    if not with_orjson:
        monkeypatch.setattr(codec, "_orjson", None)
    assert codec._orjson is not None or not with_orjson  # orjson is installed in the dev env
    key = digest(new_id())
    items = {
        " t": '"a session key that looks like a tag"',  # data keys are never untagged
        "lone": '"\\ud800"',  # a lone surrogate, escaped as the tagged JSON text has it
        "big": str(2**70),
    }
    assert store.save(Write(key, items, frozenset(), meta(clock), 600.0, create=True))
    record = store.load(key)
    assert record is not None and dict(record.items) == items
    # a version past 64 bits: orjson would read a float; the record still loads exactly
    record_path(store, key).write_bytes(encode(Record(items, meta(clock), 2**70), clock.now + 60))
    again = store.load(key)
    assert again is not None and again.version == 2**70 and dict(again.items) == items
    for bad in (b'{"format": "sessionkit.file", "v": 1, "meta": NaN}', b"\xff", b"[1]"):
        with pytest.raises(ValueError):
            decode(bad)


def test_a_large_record_reads_whole(store: FileStore, clock: FakeClock) -> None:
    key = digest(new_id())
    items = {f"k{i}": '"' + "x" * 1000 + '"' for i in range(200)}  # ~200 KB: several reads
    assert store.save(Write(key, items, frozenset(), meta(clock), 600.0, create=True))
    record = store.load(key)
    assert record is not None and dict(record.items) == items
