"""The Prometheus backend, read from a real ``prometheus_client`` registry while requests run
through the engine: on ``memory://``, and on a real Redis (up, down, and with its local
cache). Every count comes from the core (the event bus and the store wrapper)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from sessionkit import (
    ClientInfo,
    ConfigError,
    LockTimeout,
    MemoryStore,
    SessionConfig,
    SessionEngine,
    StoreUnavailable,
)
from sessionkit.metrics import InstrumentedStore, install, telemetry_of
from sessionkit.stores.cache import CachingStore
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.metrics.conftest import PASSWORD, secured_url

KEY = "metrics-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"
HOUR = 3600.0


def engine_on(store: Any, registry: CollectorRegistry, clock: FakeClock | None = None,
              **settings: Any) -> SessionEngine:  # fmt: skip
    config = SessionConfig(secret_key=KEY, store=store, idle_timeout=HOUR, **settings)
    engine = SessionEngine(config, store=store, clock=clock or FakeClock(time.time()))
    install(engine, "prometheus", registry=registry, interval=0)
    return engine


def events(registry: CollectorRegistry, kind: str) -> float | None:
    return registry.get_sample_value("sessionkit_events_total", {"kind": kind})


def calls(registry: CollectorRegistry, operation: str, store: str) -> float:
    found = registry.get_sample_value(
        "sessionkit_store_latency_seconds_count", {"operation": operation, "store": store}
    )
    return found or 0.0


def test_events_by_kind_from_real_requests_on_memory(registry: CollectorRegistry) -> None:
    clock = FakeClock(time.time())
    engine = engine_on(MemoryStore(), registry, clock)  # the store keeps real time
    assert isinstance(engine.store, InstrumentedStore)
    alice = Browser(engine)
    alice.visit(lambda s: s.__setitem__("cart", 1))  # created
    alice.visit(lambda s: s.regenerate())  # regenerated (+ created under the new ID)
    alice.visit(lambda s: s.invalidate())  # invalidated
    bob = Browser(engine)
    bob.visit(lambda s: s.__setitem__("n", 1))  # created
    thief = bob.fork(client=ClientInfo("198.51.100.9", "curl/8.0"))
    thief.visit(lambda s: s.get("n"))  # fingerprint_mismatch (invalidate)
    carol = Browser(engine)
    carol.visit(lambda s: s.__setitem__("n", 1))  # created
    clock.advance(HOUR + 1)
    carol.visit(lambda s: s.get("n"))  # expired
    forged = Browser(engine)
    forged.cookie = "not-a-signed-cookie"
    forged.visit(lambda s: s.get("n"))  # cookie_rejected

    assert events(registry, "created") == 4
    assert events(registry, "regenerated") == 1
    assert events(registry, "invalidated") == 1
    assert events(registry, "fingerprint_mismatch") == 1
    assert events(registry, "expired") == 1
    assert events(registry, "cookie_rejected") == 1
    assert events(registry, "store_error") == 0
    assert events(registry, "loaded") is None  # not counted: the histogram counts loads
    label = "memory://"
    assert calls(registry, "save", label) == 4
    assert calls(registry, "load", label) == 4  # each request that presented a valid cookie
    assert calls(registry, "delete", label) >= 2  # the invalidated and the mismatched one
    text = generate_latest(registry).decode()
    assert 'sessionkit_store_latency_seconds_bucket{le="0.0001",operation="save"' in text


def test_the_async_executors_are_measured_alike(registry: CollectorRegistry) -> None:
    engine = engine_on(MemoryStore(), registry)
    browser = Browser(engine, "async")
    try:
        browser.visit(lambda s: s.__setitem__("n", 1))
        browser.visit(lambda s: s.__setitem__("n", 2))
    finally:
        browser.loop.close()
    assert calls(registry, "save", "memory://") == 2
    assert calls(registry, "load", "memory://") == 1
    assert events(registry, "created") == 1


def test_a_lock_timeout_is_counted(registry: CollectorRegistry) -> None:
    engine = engine_on(MemoryStore(), registry)
    browser = Browser(engine)
    browser.visit(lambda s: s.__setitem__("n", 1))
    first, second = browser.begin(), browser.fork().begin()
    with engine.lock(first), pytest.raises(LockTimeout), engine.lock(second, wait=0.02):
        pass
    assert events(registry, "lock_timeout") == 1


def test_nothing_is_measured_when_off() -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store="memory://"))
    assert not isinstance(engine.store, InstrumentedStore)
    assert not engine.events.active  # no subscriber: the request path builds no event
    assert engine.config.metrics == ()


def test_install_is_idempotent_and_engines_sharing_store_and_bus_count_once(
    registry: CollectorRegistry,
) -> None:
    engine = engine_on(MemoryStore(), registry)
    # what Django does: a second engine on the first one's store and bus
    twin = SessionEngine(engine.config, store=engine.store, events=engine.events)
    assert install(twin, "prometheus", registry=registry) is telemetry_of(engine)
    install(engine, "prometheus", registry=registry)
    Browser(twin).visit(lambda s: s.__setitem__("n", 1))
    assert events(registry, "created") == 1
    assert calls(registry, "save", "memory://") == 1


def test_the_setting_installs_on_the_global_registry() -> None:
    before = REGISTRY.get_sample_value("sessionkit_events_total", {"kind": "created"}) or 0
    config = SessionConfig(secret_key=KEY, store="memory://", metrics="prometheus",
                           metrics_interval=0)  # fmt: skip
    engine = SessionEngine(config)
    assert isinstance(engine.store, InstrumentedStore)
    Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    after = REGISTRY.get_sample_value("sessionkit_events_total", {"kind": "created"})
    assert after == before + 1


@pytest.mark.parametrize("value", ["statsd", "prometheus,graphite", 3])
def test_an_unknown_backend_is_refused_at_start_up(value: Any) -> None:
    with pytest.raises(ConfigError, match="metrics"):
        SessionConfig(secret_key=KEY, store="memory://", metrics=value)


def test_metrics_on_the_cookie_store_are_refused() -> None:
    with pytest.raises(ConfigError, match="cookie store"):
        SessionEngine(SessionConfig(secret_key=KEY, store="cookie://", metrics="prometheus"))


def test_active_sessions_are_sampled_in_the_background_never_on_a_request(
    registry: CollectorRegistry,
) -> None:
    clock = FakeClock(time.time())
    store = MemoryStore()
    scans: list[str] = []
    real_scan = store.scan

    def scan() -> Any:
        scans.append(threading.current_thread().name)
        return real_scan()

    store.scan = scan  # type: ignore[method-assign]
    config = SessionConfig(secret_key=KEY, store=store, idle_timeout=HOUR)
    engine = SessionEngine(config, store=store, clock=clock)
    for _ in range(3):
        Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    telemetry = install(engine, "prometheus", registry=registry, interval=0.05)
    deadline = time.monotonic() + 5
    while registry.get_sample_value("sessionkit_active_sessions", {"store": "memory://"}) != 3:
        assert time.monotonic() < deadline, generate_latest(registry).decode()
        time.sleep(0.01)
    Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    Browser(engine).visit()  # a request that touches nothing
    assert scans and all(name.startswith("sessionkit-metrics") for name in scans)
    clock.advance(HOUR + 1)  # all past their idle timeout: stored, but not live
    assert telemetry.sample() == 0
    engine.store.close()  # stops the sampler
    count = len(scans)
    time.sleep(0.2)
    assert len(scans) <= count + 1


def test_a_redis_that_is_down_counts_store_errors(
    registry: CollectorRegistry, secured_redis: servers.Server
) -> None:
    url = secured_url(secured_redis)
    engine = engine_on(url, registry)
    label = f"redis://:***@127.0.0.1:{secured_redis.port}/0"
    browser = Browser(engine)
    try:
        browser.visit(lambda s: s.__setitem__("n", 1))
        assert telemetry_of(engine).sample() == 1
        secured_redis.stop()
        with pytest.raises(StoreUnavailable):
            browser.visit(lambda s: s.get("n"))
        with pytest.raises(StoreUnavailable):
            asyncio.run(Browser(engine, "async").avisit(lambda s: s.__setitem__("n", 1)))
        assert telemetry_of(engine).sample() is None  # no number rather than an old one
    finally:
        asyncio.run(engine.store.aclose())
        engine.store.close()
    assert events(registry, "store_error") == 2
    assert calls(registry, "save", label) == 2
    assert calls(registry, "load", label) == 1
    text = generate_latest(registry).decode()
    assert PASSWORD not in text and label in text
    assert "sessionkit_active_sessions{" not in text


def test_the_local_cache_reports_hits_and_misses(
    registry: CollectorRegistry, redis_server: servers.Server
) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix=mc{time.time_ns()}:&cache=on"
    engine = engine_on(url, registry)
    try:
        cached = engine.store.store  # type: ignore[attr-defined]
        assert isinstance(cached, CachingStore) and cached.source.wait_live(5.0)
        browser = Browser(engine)
        browser.visit(lambda s: s.__setitem__("n", 1))
        for _ in range(3):
            browser.visit(lambda s: s.get("n"))  # a miss (fills the cache), then hits
        assert events(registry, "cache_miss") == 1
        assert events(registry, "cache_hit") == 2
        assert engine.store.stats()["hits"] == 2  # type: ignore[attr-defined]
    finally:
        engine.store.close()
    label = f"redis://127.0.0.1:{redis_server.port}/0"
    assert calls(registry, "load", label) == 3


def test_a_count_never_goes_down_when_an_engine_is_dropped(registry: CollectorRegistry) -> None:
    engine = engine_on(MemoryStore(), registry)
    Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    engine.store.close()
    del engine
    gc.collect()
    assert events(registry, "created") == 1
    again = engine_on(MemoryStore(), registry)
    Browser(again).visit(lambda s: s.__setitem__("n", 1))
    assert events(registry, "created") == 2


def test_an_engine_on_an_instrumented_store_with_a_bus_of_its_own_is_counted_too(
    registry: CollectorRegistry,
) -> None:
    first = engine_on(MemoryStore(), registry)
    second = SessionEngine(first.config, store=first.store)  # its own EventBus
    install(second, "prometheus", registry=registry, interval=0)
    assert second.store is first.store
    Browser(first).visit(lambda s: s.__setitem__("n", 1))
    Browser(second).visit(lambda s: s.__setitem__("n", 1))
    assert events(registry, "created") == 2
    assert calls(registry, "save", "memory://") == 2


def test_a_kept_tally_keeps_no_bus_alive(registry: CollectorRegistry) -> None:
    engine = engine_on(MemoryStore(), registry)
    bus = weakref.ref(engine.events)
    Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    engine.store.close()
    del engine
    gc.collect()
    assert bus() is None  # the exporter keeps the counts, not the bus and its subscribers
    assert events(registry, "created") == 1
