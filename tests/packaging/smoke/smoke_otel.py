"""``sessionkit[otel]``: with OpenTelemetry's API alone (no SDK), the ``metrics="otel"``
setting runs requests (sync and async) with a span around each store call, made through
the global tracer provider: here a small recording one written against the API, since
the SDK is not installed. ``"prometheus"`` without its extra names that extra."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from smokelib import KEY, acore_roundtrip, core_roundtrip, main


def check() -> None:
    from opentelemetry import trace

    from sessionkit import ConfigError, SessionConfig, SessionEngine

    class Recorded(trace.NonRecordingSpan):
        def __init__(self, name: str, attributes: Any) -> None:
            super().__init__(trace.INVALID_SPAN_CONTEXT)
            self.name, self.attributes, self.ended = name, dict(attributes or {}), False

        def set_attribute(self, key: str, value: Any) -> None:
            self.attributes[key] = value

        def end(self, end_time: int | None = None) -> None:
            self.ended = True

    spans: list[Recorded] = []

    class Tracer(trace.Tracer):
        def start_span(self, name: str, *args: Any, **kwargs: Any) -> Recorded:
            spans.append(Recorded(name, kwargs.get("attributes")))
            return spans[-1]

        @contextlib.contextmanager
        def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
            yield self.start_span(name, *args, **kwargs)

    class Provider(trace.TracerProvider):
        def get_tracer(self, *args: Any, **kwargs: Any) -> Tracer:
            return Tracer()

    trace.set_tracer_provider(Provider())
    config = SessionConfig(secret_key=KEY, store="memory://", metrics="otel", metrics_interval=0)
    engine = SessionEngine(config)
    core_roundtrip(engine)
    asyncio.run(acore_roundtrip(engine))
    names = [span.name for span in spans]
    assert names.count("sessionkit.store.save") >= 4 and "sessionkit.store.load" in names, names
    assert all(span.ended for span in spans)
    first = spans[0].attributes
    assert first == {"sessionkit.store.url": "memory://?max_sessions=10000",
                     "sessionkit.store.operation": "save",
                     "sessionkit.store.outcome": "ok"}, first  # fmt: skip
    try:
        SessionEngine(SessionConfig(secret_key=KEY, store="memory://", metrics="prometheus"))
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError("metrics='prometheus' worked without prometheus_client")
    assert "sessionkit[metrics]" in message, message


if __name__ == "__main__":
    main(check)
