"""The audit trail on the memory store: what each event kind records (handle, user, time,
device, network, actor), what it never records (IDs, digests, anonymous noise), the
rejection rate limit, retention, the log sink, erasure and the settings."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from sessionkit import (
    Caller,
    ClientInfo,
    ConfigError,
    EventBus,
    LockTimeout,
    SessionConfig,
    SessionEngine,
    SessionsAPI,
)
from sessionkit.audit import AuditEntry, RejectionLimit
from sessionkit.ids import digest
from sessionkit.testing import Browser, FakeClock
from tests.conftest import KEY

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
LAPTOP = ClientInfo("203.0.113.77", FIREFOX)
PHONE = ClientInfo(
    "2001:db8:1:2:3:4:5:6",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
)


def make(clock: FakeClock, **settings: object) -> SessionEngine:
    settings.setdefault("audit", "store")
    config = SessionConfig(secret_key=KEY, store="memory://", **settings)  # type: ignore[arg-type]
    engine = SessionEngine(config, clock=clock)
    engine.store._clock = clock  # type: ignore[attr-defined]
    return engine


def login(engine: SessionEngine, user: str = "ann", client: ClientInfo = LAPTOP) -> Browser:
    browser = Browser(engine, client=client)
    browser.visit(lambda s: (s.__setitem__("cart", ["book"]), s.bind_user(user)))
    return browser


def kinds(engine: SessionEngine, user: str | None = "ann") -> list[str]:
    return [e.kind for e in engine.audit_entries(user)]


def test_a_login_records_handle_user_time_device_network_and_actor(clock: FakeClock) -> None:
    engine = make(clock)
    browser = login(engine)
    (entry,) = engine.audit_entries("ann")
    session = browser.visit().session
    assert entry == AuditEntry(
        clock(), "login", session.handle, "ann", "Firefox on Linux", "203.0.113.0/24", "user", ""
    )
    session_id = browser.cookie.partition(".")[0]  # type: ignore[union-attr]
    text = json.dumps(entry.as_dict())
    assert session_id not in text and digest(session_id) not in text  # the handle only
    assert entry.as_dict()["time"].endswith("Z")
    login(engine, "bob", PHONE)
    (other,) = engine.audit_entries("bob")
    assert other.device == "Safari on iOS" and other.network == "2001:db8:1:2::/64"


def test_logout_and_regenerate_of_a_users_session_anonymous_ones_are_not_kept(
    clock: FakeClock,
) -> None:
    engine = make(clock)
    anonymous = Browser(engine, client=LAPTOP)
    anonymous.visit(lambda s: s.__setitem__("a", 1))
    anonymous.visit(lambda s: s.regenerate())
    anonymous.visit(lambda s: s.invalidate())
    assert kinds(engine, None) == []  # an anonymous visitor's housekeeping is no event
    browser = login(engine)
    browser.visit(lambda s: s.regenerate())
    browser.visit(lambda s: s.invalidate())
    assert kinds(engine) == ["login", "regenerate", "logout"]
    assert {e.actor for e in engine.audit_entries("ann")} == {"user"}


def test_expiry_of_a_users_session_where_sessionkit_sees_it(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A server-side store drops an expired record itself (its TTL, the sweep), so the
    engine sees expiry where the record comes back past its deadline: a cookie session,
    here with the log sink (the cookie store keeps no trail of its own)."""
    config = SessionConfig(secret_key=KEY, store="cookie://", audit="log", idle_timeout=60)
    engine = SessionEngine(config, clock=clock)
    browser = login(engine)
    clock.advance(61)
    with caplog.at_level(logging.INFO, logger="sessionkit.audit"):
        assert browser.visit(lambda s: s.get("cart")).result is None
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sessionkit.audit"]
    assert line["kind"] == "expiry" and line["user"] == "ann" and line["actor"] == "sessionkit"


def test_fingerprint_mismatch(clock: FakeClock) -> None:
    engine = make(clock)
    browser = login(engine)
    thief = browser.fork(client=PHONE)
    assert thief.visit(lambda s: s.get("cart")).result is None
    entry = engine.audit_entries("ann")[-1]
    assert entry.kind == "fingerprint_mismatch" and entry.device == "Safari on iOS"
    assert entry.network == "2001:db8:1:2::/64" and "invalidate" in entry.reason


def test_revokes_name_who_did_them(clock: FakeClock) -> None:
    engine = make(clock)
    laptop, phone, tablet = login(engine), login(engine, client=PHONE), login(engine)
    api = SessionsAPI(engine)
    me = laptop.visit().session
    caller = Caller.of(me, engine)
    tablet_handle = tablet.visit().session.handle
    phone_handle = phone.visit().session.handle
    answer = api.dispatch("DELETE", f"/{tablet_handle}", None, caller, trusted_origin=True)
    assert answer.status == 200
    staff = Caller("root", client=PHONE)
    answer = api.dispatch("POST", "/users/ann/revoke-all", None, staff, staff=True,
                          trusted_origin=True)  # fmt: skip
    assert answer.body["revoked"] == 2
    revokes = [e for e in engine.audit_entries("ann") if e.kind == "revoke"]
    assert [(e.handle, e.actor) for e in revokes[:1]] == [(tablet_handle, "user")]
    assert sorted(e.handle for e in revokes[1:]) == sorted([me.handle, phone_handle])
    assert {e.actor for e in revokes[1:]} == {"staff:root"}
    assert {e.device for e in revokes[1:]} == {"Safari on iOS"}  # the staff member's request
    login(engine)
    assert engine.revoke_user("ann", actor="cli") == 1
    assert engine.audit_entries("ann")[-1].actor == "cli"


def test_lock_timeout(clock: FakeClock) -> None:
    engine = make(clock)
    browser = login(engine)
    first = browser.begin()
    with engine.lock(first):
        second = browser.begin()
        with pytest.raises(LockTimeout), engine.lock(second, wait=0.01):
            pass
    entry = engine.audit_entries("ann")[-1]
    assert entry.kind == "lock_timeout" and entry.handle == first.handle
    assert entry.device == "Firefox on Linux"


def test_eviction_by_the_session_limit(clock: FakeClock) -> None:
    engine = make(clock, max_sessions_per_user=1)
    first = login(engine)
    evicted = first.visit().session.handle
    clock.advance(5)
    second = login(engine)
    entry = next(e for e in engine.audit_entries("ann") if e.kind == "eviction")
    assert entry.handle == evicted and entry.actor == "session_limit"
    assert second.visit().session.handle in entry.reason  # the login that made room


def test_cookie_rejections_are_rate_limited(clock: FakeClock) -> None:
    engine = make(clock, audit_rejections_per_minute=5)
    ticks = [1000.0]
    engine.audit.rejections = RejectionLimit(5, clock=lambda: ticks[0])  # type: ignore[union-attr]
    for n in range(200):
        forged = Browser(engine, client=LAPTOP)
        forged.cookie = f"{'A' * 43}.{n:022d}"
        forged.visit(lambda s: s.get("a"))
    entries = engine.audit_entries(None)
    assert len(entries) == 5  # a flood does not fill the trail
    assert {e.kind for e in entries} == {"cookie_rejected"} and entries[0].user is None
    assert entries[0].network == "203.0.113.0/24"
    ticks[0] += 60
    forged = Browser(engine, client=LAPTOP)
    forged.cookie = f"{'A' * 43}.{'B' * 22}"
    forged.visit(lambda s: s.get("a"))
    last = engine.audit_entries(None)[-1]
    assert "195 more rejections were not recorded" in last.reason


def test_the_log_sink_writes_json_lines(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    engine = make(clock, audit="log")
    with caplog.at_level(logging.INFO, logger="sessionkit.audit"):
        login(engine)
    (record,) = [r for r in caplog.records if r.name == "sessionkit.audit"]
    line = json.loads(record.getMessage())
    assert line["kind"] == "login" and line["user"] == "ann" and line["actor"] == "user"
    assert record.audit == line  # type: ignore[attr-defined]
    assert engine.audit_entries("ann") == []  # the log is not read back


def test_retention(clock: FakeClock) -> None:
    engine = make(clock, audit_retention=3600)
    login(engine)
    clock.advance(1800)
    login(engine)
    assert len(engine.audit_entries("ann")) == 2
    clock.advance(1801)
    assert len(engine.audit_entries("ann")) == 1  # past the retention: never shown
    sink = engine.store.audit_sink()
    assert sink is not None and sink.trim(clock() - 3600) == 1


@pytest.mark.parametrize("policy", ["pseudonymise", "delete"])
def test_erasure_leaves_nothing_the_export_shows(clock: FakeClock, policy: str) -> None:
    engine = make(clock, audit_erasure=policy)
    login(engine, "ann-42")
    login(engine, "bob")
    document = engine.export_user("ann-42")
    assert [e["kind"] for e in document["audit"]] == ["login"]
    assert engine.erase_user("ann-42") == 1
    after = engine.export_user("ann-42")
    assert after["sessions"] == [] and after["audit"] == []
    sink = engine.store.audit_sink()
    everything = [e for e in sink._entries]  # type: ignore[union-attr]
    assert "ann-42" not in json.dumps([e.as_dict() for e in everything])
    assert "Firefox" not in json.dumps([e.as_dict() for e in everything if e.user != "bob"])
    pseudonym = engine.audit.pseudonym("ann-42")  # type: ignore[union-attr]
    kept = [e.kind for e in sink.entries(pseudonym)]  # type: ignore[union-attr]
    if policy == "pseudonymise":
        assert kept == ["login", "revoke", "erasure"]
    else:
        assert kept == [] and [e.kind for e in sink.entries(None)] == ["erasure"]  # type: ignore[union-attr]
    assert [e.kind for e in engine.audit_entries("bob")] == ["login"]  # nobody else touched


def test_engines_sharing_a_bus_record_each_event_once(clock: FakeClock) -> None:
    bus = EventBus()
    config = SessionConfig(secret_key=KEY, store="memory://", audit="store")
    one = SessionEngine(config, clock=clock, events=bus)
    two = SessionEngine(config.replace(store=one.store), store=one.store, clock=clock, events=bus)
    assert one.audit is two.audit
    login(two)
    assert kinds(one) == ["login"]


def test_the_writer_thread_queues_without_blocking_and_flush_waits(clock: FakeClock) -> None:
    engine = make(clock)
    sink = engine.store.audit_sink()
    gate = threading.Event()
    real = sink.write  # type: ignore[union-attr]

    def slow(*args: object, **kwargs: object) -> None:
        gate.wait(5)
        real(*args, **kwargs)  # type: ignore[arg-type]

    sink.write = slow  # type: ignore[union-attr,method-assign]
    login(engine)  # returns while the store is still busy
    assert list(sink._entries) == []  # type: ignore[union-attr]
    gate.set()
    assert engine.audit.flush(5)  # type: ignore[union-attr]
    assert kinds(engine) == ["login"]


@pytest.mark.parametrize(
    ("settings", "setting"),
    [
        ({"audit": "everything"}, "audit"),
        ({"audit": "store", "audit_retention": 0}, "audit_retention"),
        ({"audit_max_entries": 0}, "audit_max_entries"),
        ({"audit_rejections_per_minute": True}, "audit_rejections_per_minute"),
        ({"audit_erasure": "forget"}, "audit_erasure"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SessionConfig(secret_key=KEY, **settings)  # type: ignore[arg-type]
    assert caught.value.setting == setting


def test_a_store_without_a_trail_is_refused_for_store_but_not_for_log(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="keeps no audit trail"):
        SessionEngine(SessionConfig(secret_key=KEY, store=f"file://{tmp_path}", audit="store"))
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=f"file://{tmp_path}", audit="log"))
    assert engine.audit is not None and engine.audit_entries("ann") == []
    assert SessionConfig(secret_key=KEY, audit="off").audit_sinks == ()
    assert SessionConfig(secret_key=KEY, audit=["log", "store"]).audit_sinks == ("log", "store")


def test_the_writer_stops_when_idle_and_starts_again(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionkit import audit

    monkeypatch.setattr(audit, "IDLE_EXIT", 0.05)
    engine = make(clock)
    trail = engine.audit
    assert trail is not None
    login(engine)
    first = trail._thread
    assert first is not None and trail.flush()
    first.join(2)
    assert not first.is_alive() and trail._thread is None  # no thread left behind
    login(engine, "bob")
    assert kinds(engine, "bob") == ["login"]  # a new writer took it


def test_aaudit_entries_reads_off_the_event_loop(clock: FakeClock) -> None:
    import asyncio

    engine = make(clock)
    login(engine)
    entries = asyncio.run(engine.aaudit_entries("ann"))
    assert [e.kind for e in entries] == ["login"]
