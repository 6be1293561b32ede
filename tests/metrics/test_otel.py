"""The OpenTelemetry backend, read with the SDK's in-memory metric reader and span exporter
while requests run through the engine on ``memory://`` and a real Redis: the same numbers
as Prometheus's, and a span per store call that names the store (password masked), the
operation and the outcome, and never a session ID, a digest or a password."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from sessionkit import ClientInfo, MemoryStore, SessionConfig, SessionEngine, StoreUnavailable
from sessionkit.metrics import install, telemetry_of
from sessionkit.testing import Browser, FakeClock
from tests import servers
from tests.metrics.conftest import PASSWORD, Otel, secured_url

KEY = "metrics-tests-key-0123456789-abcdefghijklmnopqrstuvwxyz"
HOUR = 3600.0


def engine_on(store: Any, otel: Otel, clock: FakeClock | None = None, **kw: Any) -> SessionEngine:
    config = SessionConfig(secret_key=KEY, store=store, idle_timeout=HOUR)
    engine = SessionEngine(config, store=store, clock=clock or FakeClock(time.time()))
    install(engine, "otel", meter_provider=otel.meter_provider,
            tracer_provider=otel.tracer_provider, interval=0, **kw)  # fmt: skip
    return engine


def secrets_of(engine: SessionEngine, browsers: list[Browser]) -> list[str]:
    """Every session ID, digest and handle these browsers' sessions had, and the password."""
    found = [PASSWORD]
    for browser in browsers:
        if browser.cookie is None:
            continue
        session = engine.open(browser.cookie_header)
        session_id = browser.cookie.partition(".")[0]
        found += [session_id, browser.cookie, engine.digest_of(session) or "?"]
    return found


def assert_no_secret(otel: Otel, secrets: list[str]) -> None:
    values = []
    for span in otel.finished():
        values += [span.name, *map(str, (span.attributes or {}).values())]
        values.append(span.status.description or "")
    data = otel.reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values += map(str, (point.attributes or {}).values())
    assert values
    for secret in secrets:
        assert not any(secret in value for value in values), secret


def test_events_latency_and_spans_on_memory(otel: Otel) -> None:
    clock = FakeClock(time.time())
    engine = engine_on(MemoryStore(), otel, clock)
    alice = Browser(engine)
    alice.visit(lambda s: s.__setitem__("cart", 1))
    alice.visit(lambda s: s.regenerate())
    seen = secrets_of(engine, [alice])
    alice.visit(lambda s: s.invalidate())
    bob = Browser(engine)
    bob.visit(lambda s: s.__setitem__("n", 1))
    seen += secrets_of(engine, [bob])
    bob.fork(client=ClientInfo("198.51.100.9", "curl/8.0")).visit(lambda s: s.get("n"))
    forged = Browser(engine)
    forged.cookie = "forged"
    forged.visit(lambda s: s.get("n"))

    assert otel.value("sessionkit.events", kind="created") == 3
    assert otel.value("sessionkit.events", kind="regenerated") == 1
    assert otel.value("sessionkit.events", kind="invalidated") == 1
    assert otel.value("sessionkit.events", kind="fingerprint_mismatch") == 1
    assert otel.value("sessionkit.events", kind="cookie_rejected") == 1
    assert otel.value("sessionkit.events", kind="expired") == 0
    saves = otel.value("sessionkit.store.latency", operation="save", store="memory://")
    assert saves.count == 3 and 0 < saves.sum < 1
    assert list(saves.explicit_bounds)[:2] == [0.0001, 0.00025]

    spans = otel.finished()
    names = [s.name for s in spans]
    assert names.count("sessionkit.store.save") == 3
    assert names.count("sessionkit.store.load") == 3
    load = next(s for s in spans if s.name == "sessionkit.store.load")
    assert load.kind is SpanKind.CLIENT
    assert dict(load.attributes or {}) == {
        "sessionkit.store.url": "memory://?max_sessions=10000",
        "sessionkit.store.operation": "load",
        "sessionkit.store.outcome": "ok",
    }
    assert load.status.status_code is StatusCode.UNSET
    assert_no_secret(otel, seen)


def test_the_store_span_is_the_parent_of_spans_made_inside_the_call(otel: Otel) -> None:
    store = MemoryStore()
    tracer = otel.tracer_provider.get_tracer("inner")
    real_save = store.save

    def save(write: Any) -> bool:
        with tracer.start_as_current_span("driver.write"):
            return real_save(write)

    store.save = save  # type: ignore[method-assign]
    engine = engine_on(store, otel)
    with tracer.start_as_current_span("request") as request:
        Browser(engine).visit(lambda s: s.__setitem__("n", 1))
    spans = {s.name: s for s in otel.finished()}
    outer, inner = spans["sessionkit.store.save"], spans["driver.write"]
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id
    assert outer.parent is not None and outer.parent.span_id == request.get_span_context().span_id


def test_async_store_calls_get_spans_too(otel: Otel) -> None:
    engine = engine_on(MemoryStore(), otel)
    browser = Browser(engine, "async")
    try:
        browser.visit(lambda s: s.__setitem__("n", 1))
        browser.visit(lambda s: s.__setitem__("n", 2))
    finally:
        browser.loop.close()
    names = [s.name for s in otel.finished()]
    assert names == ["sessionkit.store.save", "sessionkit.store.load", "sessionkit.store.save"]
    assert otel.value("sessionkit.store.latency", operation="save", store="memory://").count == 2


def test_redis_up_then_down_spans_outcomes_and_store_errors(
    otel: Otel, secured_redis: servers.Server
) -> None:
    engine = engine_on(secured_url(secured_redis), otel)
    label = f"redis://:***@127.0.0.1:{secured_redis.port}/0"
    browser = Browser(engine)
    try:
        browser.visit(lambda s: s.__setitem__("n", 1))
        browser.visit(lambda s: s.get("n"))
        stranger = Browser(engine)
        stranger.cookie = engine.sign("A" * 43)  # well signed, never issued: absent
        stranger.visit(lambda s: s.get("n"))
        assert telemetry_of(engine).sample() == 1
        assert otel.value("sessionkit.active_sessions", store=label) == 1
        seen = secrets_of(engine, [browser, stranger])
        secured_redis.stop()
        with pytest.raises(StoreUnavailable):
            browser.visit(lambda s: s.get("n"))
        with pytest.raises(StoreUnavailable):
            asyncio.run(Browser(engine, "async").avisit(lambda s: s.__setitem__("n", 1)))
    finally:
        asyncio.run(engine.store.aclose())
        engine.store.close()
    outcomes = [(s.name, s.attributes["sessionkit.store.outcome"]) for s in otel.finished()]  # type: ignore[index]
    assert outcomes == [
        ("sessionkit.store.save", "ok"),
        ("sessionkit.store.load", "ok"),
        ("sessionkit.store.load", "absent"),
        ("sessionkit.store.load", "unavailable"),
        ("sessionkit.store.save", "unavailable"),
    ]
    failed = otel.finished()[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "StoreUnavailable"  # type: ignore[index]
    assert failed.attributes["sessionkit.store.url"].startswith(  # type: ignore[index, union-attr]
        f"redis://:***@127.0.0.1:{secured_redis.port}/0?"
    )
    assert not failed.events  # no exception event: its message is not ours to vouch for
    assert otel.value("sessionkit.events", kind="store_error") == 2
    assert otel.value("sessionkit.store.latency", operation="load", store=label).count == 3
    assert_no_secret(otel, seen)


def test_cache_hits_and_misses(otel: Otel, redis_server: servers.Server) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix=oc{time.time_ns()}:&cache=on"
    engine = engine_on(url, otel)
    try:
        assert engine.store.store.source.wait_live(5.0)  # type: ignore[attr-defined]
        browser = Browser(engine)
        browser.visit(lambda s: s.__setitem__("n", 1))
        for _ in range(4):
            browser.visit(lambda s: s.get("n"))
    finally:
        engine.store.close()
    assert otel.value("sessionkit.events", kind="cache_miss") == 1
    assert otel.value("sessionkit.events", kind="cache_hit") == 3


def test_both_backends_read_one_source(otel: Otel, registry: CollectorRegistry) -> None:
    engine = SessionEngine(SessionConfig(secret_key=KEY, store="memory://"))
    install(engine, ["prometheus", "opentelemetry"], registry=registry,
            meter_provider=otel.meter_provider, tracer_provider=otel.tracer_provider)  # fmt: skip
    browser = Browser(engine)
    for n in range(3):
        browser.visit(lambda s, n=n: s.__setitem__("n", n))  # type: ignore[misc]
    prom = registry.get_sample_value("sessionkit_events_total", {"kind": "created"})
    assert prom == otel.value("sessionkit.events", kind="created") == 1
    count = registry.get_sample_value(
        "sessionkit_store_latency_seconds_count", {"operation": "save", "store": "memory://"}
    )
    assert count == otel.value("sessionkit.store.latency", operation="save",
                               store="memory://").count == 3  # fmt: skip
    engine.store.close()
