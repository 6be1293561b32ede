"""``sessionkit[metrics]``: the ``metrics="prometheus"`` setting exports, on the global
registry, what sync and async requests did (events, store latency, active sessions), and
a WSGI ``/metrics`` app serves it; ``"otel"`` without its extra names that extra."""

from __future__ import annotations

import asyncio

from smokelib import KEY, TMP, acore_roundtrip, core_roundtrip, main


def check() -> None:
    from prometheus_client import REGISTRY, make_wsgi_app

    from sessionkit import ConfigError, SessionConfig, SessionEngine

    for url in ("memory://", f"file://{TMP / 'sessions'}"):
        config = SessionConfig(secret_key=KEY, store=url, metrics="prometheus",
                               metrics_interval=0)  # fmt: skip
        engine = SessionEngine(config)
        core_roundtrip(engine)
        asyncio.run(acore_roundtrip(engine))
        assert type(engine.store).__name__ == "InstrumentedStore", engine.store
    created = REGISTRY.get_sample_value("sessionkit_events_total", {"kind": "created"})
    assert created == 4, created  # one per round trip (sync and async, on two stores)
    assert REGISTRY.get_sample_value("sessionkit_events_total", {"kind": "invalidated"}) == 4
    saves = REGISTRY.get_sample_value(
        "sessionkit_store_latency_seconds_count", {"operation": "save", "store": "memory://"}
    )
    assert saves is not None and saves >= 4, saves

    answered: list[str] = []
    body = b"".join(make_wsgi_app()({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics",
                                     "QUERY_STRING": ""},
                                    lambda status, headers: answered.append(status)))  # fmt: skip
    assert answered == ["200 OK"], answered
    assert b'sessionkit_events_total{kind="created"} 4.0' in body, body[:2000]
    assert b"sessionkit_store_latency_seconds_bucket" in body
    try:
        SessionEngine(SessionConfig(secret_key=KEY, store="memory://", metrics="otel"))
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError("metrics='otel' worked without opentelemetry-api")
    assert "sessionkit[otel]" in message, message


if __name__ == "__main__":
    main(check)
