"""Django's SessionBase contract, sync and async, on every store (adapted from the
expectations of Django's own sessions_tests, rewritten for sessionkit's key format)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.base import CreateError, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from sessionkit_django.engine import SessionStore

from sessionkit import ClientInfo, SessionConfig, SessionEngine, serialization
from sessionkit.ids import digest
from sessionkit.stores.base import RecordMeta
from sessionkit.testing import FakeClock

SERVER_SIDE = ["memory", "file", "sqlite", "redis"]


def record_of(engine: SessionEngine, key: str):
    return engine.store.load(digest(key.partition(".")[0]))


# -- the dict API and flags --------------------------------------------------------------
def test_new_session_is_untouched(sk: SessionEngine) -> None:
    session = SessionStore()
    assert not session.modified
    assert not session.accessed
    assert session.session_key is None
    assert session.is_empty()


def test_reads_mark_accessed_not_modified(sk: SessionEngine) -> None:
    session = SessionStore()
    assert session.get("cat") is None
    assert session.accessed and not session.modified
    assert session.pop("missing", "dflt") == "dflt"
    assert not session.modified
    with pytest.raises(KeyError):
        session.pop("missing")


def test_writes_mark_modified(sk: SessionEngine) -> None:
    session = SessionStore()
    session["cat"] = "dog"
    assert session.modified
    session.modified = session.accessed = False
    assert "cat" in session and session.accessed and not session.modified
    assert session.pop("cat") == "dog" and session.modified
    session.modified = False
    assert session.setdefault("a", 1) == 1 and session.modified
    assert session.setdefault("a", 2) == 1
    session.update({"b": 2})
    assert dict(session.items()) == {"a": 1, "b": 2}
    assert list(session.keys()) == ["a", "b"] and list(session.values()) == [1, 2]
    assert session.has_key("b")
    del session["b"]
    assert "b" not in session
    session.clear()
    assert list(session.items()) == [] and session.modified and session.accessed


def test_test_cookie_helpers(sk: SessionEngine) -> None:
    session = SessionStore()
    session.set_test_cookie()
    assert session.test_cookie_worked()
    session.delete_test_cookie()
    assert not session.test_cookie_worked()


def test_session_key_is_read_only(sk: SessionEngine) -> None:
    session = SessionStore()
    with pytest.raises(AttributeError):
        session.session_key = "x" * 40  # type: ignore[misc]


# -- storage -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_save_exists_delete(make_sk, kind: str) -> None:
    engine = make_sk(kind)
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    assert key is not None and session.exists(key)
    reread = SessionStore(key)
    assert reread["x"] == 1 and reread.session_key == key
    session.delete(key)
    assert not session.exists(key)
    assert record_of(engine, key) is None


def test_cookie_store_key_carries_the_data(make_sk) -> None:
    make_sk("cookie")
    session = SessionStore()
    session["x"] = [1, 2]
    session.save()
    assert not session.exists(session.session_key)  # nothing server-side, as signed_cookies
    assert SessionStore(session.session_key)["x"] == [1, 2]


def test_a_standalone_cookie_save_fits_the_whole_set_cookie_header(make_sk) -> None:
    """Django's own middleware sends what a standalone save seals: the Set-Cookie header
    with its attributes, not only name=value, must fit the limit (browsers drop the rest)."""
    from sessionkit import SessionTooLarge
    from sessionkit.cookies import CookieWriter

    engine = make_sk("cookie")
    writer, limit = CookieWriter(engine.config), engine.config.max_cookie_size
    refused = False
    for size in range(2900, 3100, 4):  # across the limit, in steps smaller than a block
        session = SessionStore()
        session["x"] = "a" * size
        try:
            session.save()
        except SessionTooLarge:
            refused = True
            break
        header = writer.set(session.session_key, session.get_expiry_age(), secure=True)
        assert len(header) <= limit
    assert refused


def test_create_stores_an_empty_record(sk: SessionEngine) -> None:
    session = SessionStore()
    session.create()
    assert session.session_key is not None and session.modified
    again = SessionStore(session.session_key)
    assert again.load() == {} and again.session_key == session.session_key


def test_save_with_no_key_creates(sk: SessionEngine) -> None:
    session = SessionStore()
    session.save()
    assert session.session_key is not None
    session["a"] = 1
    session.save()  # updates the same record: the key the client got stays valid
    assert SessionStore(session.session_key)["a"] == 1  # cookie:// too: the key is the data


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_update_of_a_deleted_session_raises_update_error(make_sk, kind: str) -> None:
    make_sk(kind)
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    SessionStore().delete(key)  # a concurrent logout
    session["x"] = 2
    with pytest.raises(UpdateError):
        session.save()
    assert not session.exists(key)  # not resurrected


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_must_create_on_an_existing_key_raises_create_error(make_sk, kind: str) -> None:
    make_sk(kind)
    session = SessionStore()
    session.save()
    with pytest.raises(CreateError):
        session.save(must_create=True)


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_flush_deletes_and_forgets(make_sk, kind: str) -> None:
    make_sk(kind)
    session = SessionStore()
    session["foo"] = "bar"
    session.save()
    previous = session.session_key
    session.flush()
    assert not session.exists(previous)
    assert session.session_key is None
    assert session.modified and session.accessed
    assert session.get("foo") is None


def test_cycle_key_keeps_data_and_kills_the_old_key(sk: SessionEngine) -> None:
    session = SessionStore()
    session["a"], session["b"] = "c", "d"
    session.save()
    previous = session.session_key
    session.cycle_key()
    assert session.session_key != previous
    assert list(session.items()) == [("a", "c"), ("b", "d")]
    assert SessionStore(session.session_key)["a"] == "c"
    if not sk.store.client_side:
        assert not session.exists(previous)
        assert SessionStore(previous).get("a") is None


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_cycle_key_after_a_concurrent_logout_is_interrupted(make_sk, kind: str) -> None:
    make_sk(kind)
    session = SessionStore()
    session["a"] = 1
    session.save()
    key = session.session_key
    session.load()
    SessionStore().delete(key)
    with pytest.raises(SessionInterrupted):
        session.cycle_key()
    assert session.session_key == key
    assert not session.exists(key)


@pytest.mark.parametrize(
    "bad", ["1", "", "../../etc/passwd", "x" * 10_000, "a\x00b", "' OR 1=1 --", "k;sessionid=x"]
)
def test_invalid_keys_never_reach_the_store(sk: SessionEngine, bad: str) -> None:
    calls: list[str] = []
    original = sk.store.load
    sk.store.load = lambda d: calls.append(d) or original(d)  # type: ignore[method-assign]
    session = SessionStore(bad)
    # Django's contract: any string of 8+ characters is a key until the store says otherwise
    assert session.session_key == (bad if len(bad) >= 8 else None)
    assert session.get("cat") is None
    assert session.session_key is None  # loading it found nothing (without asking the store)
    session.save()
    assert session.session_key not in (None, bad)
    assert calls == []


def test_tampered_key_is_rejected(sk: SessionEngine) -> None:
    session = SessionStore()
    session["x"] = 1
    session.save()
    key = session.session_key
    flipped = key[:-3] + ("A" if key[-3] != "A" else "B") + key[-2:]
    tampered = SessionStore(flipped)
    assert tampered.get("x") is None
    assert tampered.session_key is None and tampered.load() == {}


@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_load_never_creates(make_sk, kind: str) -> None:
    engine = make_sk(kind)
    made = SessionStore()
    made.save()
    made.delete()
    unknown = SessionStore(made.session_key)  # validly signed, never (or no longer) stored
    assert unknown.load() == {}
    assert unknown.session_key is None
    assert record_of(engine, made.session_key) is None


# -- the record is the core's: other adapters read it ------------------------------------
@pytest.mark.parametrize("kind", SERVER_SIDE)
def test_records_use_the_core_format(make_sk, kind: str) -> None:
    engine = make_sk(kind)
    session = SessionStore()
    session["when"] = timezone.now().replace(microsecond=0)
    session["n"] = 3
    session.save()
    record = record_of(engine, session.session_key)
    assert isinstance(record.meta, RecordMeta)
    assert serialization.loads(record.items["n"]) == 3
    # what the Flask or ASGI adapter does with the same cookie and the same store:
    other = SessionEngine(
        SessionConfig(secret_key=engine.config.secret_keys, store=engine.store,
                      cookie_name=engine.config.cookie_name),
        clock=engine.clock,
    )  # fmt: skip
    core = other.open(f"sessionid={session.session_key}")
    assert core["n"] == 3 and core["when"] == session["when"]


def test_a_core_session_reads_in_django(sk: SessionEngine) -> None:
    core = sk.open(None)
    core["from"] = "asgi"
    plan = sk.commit(core)
    sk.run(plan)
    value = plan.set_cookie.split(";")[0].partition("=")[2]
    assert SessionStore(value)["from"] == "asgi"


def test_a_standalone_save_keeps_the_device_label(sk: SessionEngine) -> None:
    """Django's own code paths (``Client.session``, ``update_session_auth_hash`` outside
    the middleware) save with no client in hand: the device list must not lose its label."""
    firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
    client = ClientInfo("192.0.2.1", firefox)
    core = sk.open(None, client)
    core["n"] = 1
    plan = sk.commit(core)
    sk.run(plan)
    value = plan.set_cookie.split(";")[0].partition("=")[2]
    standalone = SessionStore(value)
    standalone["n"] = 2
    standalone.save()
    again = sk.open(f"{sk.config.cookie_name}={standalone.session_key}", client)
    assert again["n"] == 2 and again._meta is not None
    assert again._meta.device == "Firefox on Linux"


# -- expiry ------------------------------------------------------------------------------
def test_default_expiry(sk: SessionEngine) -> None:
    session = SessionStore()
    assert session.get_expiry_age() == 1209600
    session.set_expiry(0)
    assert session.get_expiry_age() == 1209600
    assert session.get_expire_at_browser_close()


@pytest.mark.parametrize(
    "value", [10, timedelta(seconds=10), "datetime"], ids=["seconds", "timedelta", "datetime"]
)
def test_custom_expiry(sk: SessionEngine, value: object, monkeypatch) -> None:
    modification = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: modification)
    session = SessionStore()
    session.set_expiry(modification + timedelta(seconds=10) if value == "datetime" else value)
    assert session.get_expiry_date(modification=modification) == modification + timedelta(
        seconds=10
    )
    assert session.get_expiry_age(modification=modification) == 10
    assert not session.get_expire_at_browser_close()
    session.set_expiry(None)
    assert session.get_expiry_age() == 1209600


def test_expire_at_browser_close_follows_settings(make_sk) -> None:
    for default in (False, True):
        with override_settings(SESSION_EXPIRE_AT_BROWSER_CLOSE=default):
            make_sk("memory")
            session = SessionStore()
            session.set_expiry(10)
            assert not session.get_expire_at_browser_close()
            session.set_expiry(0)
            assert session.get_expire_at_browser_close()
            session.set_expiry(None)
            assert session.get_expire_at_browser_close() is default


def test_expiry_in_the_past_expires_at_once(sk: SessionEngine) -> None:
    session = SessionStore()
    session["foo"] = "bar"
    session.set_expiry(-timedelta(seconds=10))
    session.save()
    assert "foo" not in SessionStore(session.session_key)


def test_expiry_is_enforced_from_the_record(sk: SessionEngine, clock: FakeClock) -> None:
    session = SessionStore()
    session["x"] = 1
    session.set_expiry(60)
    session.save()
    clock.advance(59)
    assert SessionStore(session.session_key).get("x") == 1
    clock.advance(2)
    assert SessionStore(session.session_key).get("x") is None


@pytest.mark.parametrize("kind", ["memory", "file", "sqlite"])
def test_clear_expired_and_clearsessions(make_sk, kind: str, clock: FakeClock) -> None:
    engine = make_sk(kind)
    keep, drop = SessionStore(), SessionStore()
    keep["a"] = drop["a"] = 1
    keep.set_expiry(3600)
    drop.set_expiry(60)
    keep.save()
    drop.save()
    clock.advance(120)
    SessionStore.clear_expired()
    assert record_of(engine, drop.session_key) is None
    assert record_of(engine, keep.session_key) is not None
    clock.advance(7200)
    call_command("clearsessions")
    assert record_of(engine, keep.session_key) is None


# -- async -------------------------------------------------------------------------------
@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
async def test_async_contract(sk: SessionEngine) -> None:
    session = SessionStore()
    assert await session.aget("cat") is None
    await session.aset("cat", "dog")
    assert session.modified
    assert await session.asetdefault("cat", "x") == "dog"
    await session.aupdate({"n": 1})
    assert await session.ahas_key("n")
    assert list(await session.akeys()) == ["cat", "n"]
    assert list(await session.avalues()) == ["dog", 1]
    assert list(await session.aitems()) == [("cat", "dog"), ("n", 1)]
    assert await session.apop("n") == 1
    assert await session.apop("n", "gone") == "gone"
    await session.aset_test_cookie()
    assert await session.atest_cookie_worked()
    await session.adelete_test_cookie()
    await session.aset_expiry(300)
    assert await session.aget_expiry_age() == 300
    assert not await session.aget_expire_at_browser_close()
    assert await session.aget_expiry_date() > timezone.now()
    await session.asave()
    key = session.session_key
    assert key is not None
    assert (await SessionStore(key).aload())["cat"] == "dog"
    await session.acycle_key()
    assert session.session_key != key
    if not sk.store.client_side:
        assert await session.aexists(session.session_key)
        assert not await session.aexists(key)
    new_key = session.session_key
    await session.aflush()
    assert session.session_key is None
    if not sk.store.client_side:
        assert not await session.aexists(new_key)
    await SessionStore.aclear_expired()


@pytest.mark.anyio
@pytest.mark.usefixtures("aclosing")
@pytest.mark.parametrize("kind", SERVER_SIDE)
async def test_async_create_and_update_errors(make_sk, kind: str) -> None:
    make_sk(kind)
    session = SessionStore()
    await session.acreate()
    key = session.session_key
    assert await session.aexists(key)
    with pytest.raises(CreateError):
        await session.asave(must_create=True)
    await SessionStore().adelete(key)
    await session.aset("x", 1)
    with pytest.raises(UpdateError):
        await session.asave()
    with pytest.raises(SessionInterrupted):
        await session.acycle_key()
