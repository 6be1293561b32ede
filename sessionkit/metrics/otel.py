"""The OpenTelemetry backend (``sessionkit[otel]``: ``opentelemetry-api``).

The same measurements as the Prometheus backend, as OpenTelemetry instruments of the meter
``sessionkit``, plus a span around each store call (tracer ``sessionkit``):

- ``sessionkit.events`` (observable counter, attribute ``kind``);
- ``sessionkit.store.latency`` (histogram, seconds; ``operation``, ``store``);
- ``sessionkit.active_sessions`` (observable gauge; ``store``);
- span ``sessionkit.store.<operation>`` (kind CLIENT) with ``sessionkit.store.url`` (the
  URL with its password masked), ``sessionkit.store.operation`` and
  ``sessionkit.store.outcome``; never a session ID, a digest nor a handle.

The API alone records nothing: an application that installs the SDK (or a distribution) and
sets its providers gets the data, through OpenTelemetry's Prometheus exporter too, where the
names read ``sessionkit_events_total``, ``sessionkit_store_latency_seconds`` and
``sessionkit_active_sessions``, as the Prometheus backend's do.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from sessionkit.metrics import LATENCY_BUCKETS, Exporter, InstrumentedStore, Telemetry, missing
from sessionkit.urls import mask_url

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider
except ImportError as exc:  # pragma: no cover - tests/packaging checks the message
    raise missing("otel", exc) from exc

SCOPE = "sessionkit"
EVENTS = "sessionkit.events"
LATENCY = "sessionkit.store.latency"
ACTIVE = "sessionkit.active_sessions"


def _version() -> str:
    from sessionkit import __version__

    return __version__


class OtelExporter(Exporter):
    """sessionkit's instruments on one meter provider."""

    def __init__(self, meter: Meter) -> None:
        super().__init__()
        self.tracers: dict[int, trace.Tracer] = {}
        self.latency = meter.create_histogram(
            LATENCY, unit="s", description="Time taken by each session store call",
            explicit_bucket_boundaries_advisory=LATENCY_BUCKETS,
        )  # fmt: skip
        meter.create_observable_counter(
            EVENTS, [self._events], unit="{event}",
            description="Session events by kind (sessionkit's event bus; cache_hit and "
            "cache_miss from a local cache in front of the store)",
        )  # fmt: skip
        meter.create_observable_gauge(
            ACTIVE, [self._active], unit="{session}",
            description="Live sessions in the store at the last background sample",
        )  # fmt: skip

    def trace(self, telemetry: Telemetry, tracer: trace.Tracer) -> None:
        self.tracers[id(telemetry)] = tracer
        try:
            self.add(telemetry)
        finally:
            del self.tracers[id(telemetry)]

    def observer_for(self, telemetry: Telemetry) -> _Observer:
        return _Observer(self.latency, self.tracers[id(telemetry)], telemetry)

    def _events(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"kind": kind}) for kind, count in self.events().items()]

    def _active(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"store": label}) for label, count in self.active().items()]


class _Observer:
    """A span around each call of one store, and its time into the latency histogram."""

    around = True

    def __init__(self, histogram: Any, tracer: trace.Tracer, telemetry: Telemetry) -> None:
        self._histogram = histogram
        self._tracer = tracer
        self._url = mask_url(telemetry.store.url) or telemetry.label
        self._label = telemetry.label
        self._attributes: dict[str, dict[str, str]] = {}

    def begin(self, store: InstrumentedStore, operation: str) -> tuple[Any, object]:
        span = self._tracer.start_span(
            f"sessionkit.store.{operation}", kind=SpanKind.CLIENT,
            attributes={"sessionkit.store.url": self._url,
                        "sessionkit.store.operation": operation},
        )  # fmt: skip
        return span, otel_context.attach(trace.set_span_in_context(span))

    def end(
        self, token: tuple[Any, object], store: InstrumentedStore, operation: str,
        outcome: str, seconds: float, error: BaseException | None,
    ) -> None:  # fmt: skip
        span, attached = token
        otel_context.detach(attached)  # type: ignore[arg-type]
        span.set_attribute("sessionkit.store.outcome", outcome)
        if error is not None:
            # the type only: a message may quote what the caller passed
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, outcome))
        span.end()
        attributes = self._attributes.get(operation)
        if attributes is None:
            attributes = self._attributes[operation] = {
                "operation": operation, "store": self._label,
            }  # fmt: skip
        self._histogram.record(seconds, attributes)


_exporters: weakref.WeakKeyDictionary[Any, OtelExporter] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def install(
    telemetry: Telemetry,
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> None:
    """Export ``telemetry`` through ``meter_provider`` and trace its store calls with
    ``tracer_provider`` (default: OpenTelemetry's global providers)."""
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    with _lock:
        exporter = _exporters.get(provider)
        if exporter is None:
            meter = provider.get_meter(SCOPE, _version())
            exporter = _exporters[provider] = OtelExporter(meter)
    tracer = trace.get_tracer(SCOPE, _version(), tracer_provider=tracer_provider)
    exporter.trace(telemetry, tracer)
