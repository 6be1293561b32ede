"""The Prometheus backend (``sessionkit[metrics]``: ``prometheus_client``).

One exporter per registry, shared by every engine installed on it, with three families:

- ``sessionkit_events_total{kind}``: a counter, read at scrape time from the core's tally
  of bus events and the local cache's own hit and miss counts;
- ``sessionkit_store_latency_seconds{operation,store}``: a histogram, observed by the
  store wrapper after each store call;
- ``sessionkit_active_sessions{store}``: a gauge, the last background sample.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from sessionkit.metrics import LATENCY_BUCKETS, Exporter, InstrumentedStore, Telemetry, missing

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Histogram
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
except ImportError as exc:  # pragma: no cover - tests/packaging checks the message
    raise missing("prometheus", exc) from exc

EVENTS = "sessionkit_events"
LATENCY = "sessionkit_store_latency_seconds"
ACTIVE = "sessionkit_active_sessions"


class _Families:
    """The collector of the families read at scrape time (events, active sessions)."""

    def __init__(self, exporter: PrometheusExporter) -> None:
        self._exporter = weakref.ref(exporter)

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(EVENTS, "", labels=["kind"])
        yield GaugeMetricFamily(ACTIVE, "", labels=["store"])

    def collect(self) -> Iterator[Metric]:
        exporter = self._exporter()
        events = CounterMetricFamily(
            EVENTS, "Session events by kind (sessionkit's event bus; cache_hit and "
            "cache_miss from a local cache in front of the store)", labels=["kind"],
        )  # fmt: skip
        active = GaugeMetricFamily(
            ACTIVE, "Live sessions in the store at the last background sample",
            labels=["store"],
        )  # fmt: skip
        if exporter is not None:
            for kind, count in exporter.events().items():
                events.add_metric([kind], count)
            for label, count in exporter.active().items():
                active.add_metric([label], count)
        yield events
        yield active


class _Observer:
    """Observes one store's calls into the latency histogram (a child per operation)."""

    around = False

    def __init__(self, histogram: Histogram, label: str) -> None:
        self._histogram = histogram
        self._label = label
        self._children: dict[str, Any] = {}

    def begin(self, store: InstrumentedStore, operation: str) -> None:
        return None

    def end(
        self, token: None, store: InstrumentedStore, operation: str, outcome: str,
        seconds: float, error: BaseException | None,
    ) -> None:  # fmt: skip
        child = self._children.get(operation)
        if child is None:
            child = self._children[operation] = self._histogram.labels(operation, self._label)
        child.observe(seconds)


class PrometheusExporter(Exporter):
    """sessionkit's metrics in one ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self.registry = registry
        self.latency = Histogram(
            LATENCY, "Time taken by each session store call, by operation and store",
            ["operation", "store"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        registry.register(_Families(self))

    def observer_for(self, telemetry: Telemetry) -> _Observer:
        return _Observer(self.latency, telemetry.label)


_exporters: weakref.WeakKeyDictionary[CollectorRegistry, PrometheusExporter] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def exporter_for(registry: CollectorRegistry | None = None) -> PrometheusExporter:
    """The registry's exporter (default: the global ``REGISTRY``), made once."""
    chosen = REGISTRY if registry is None else registry
    with _lock:
        exporter = _exporters.get(chosen)
        if exporter is None:
            exporter = _exporters[chosen] = PrometheusExporter(chosen)
        return exporter


def install(telemetry: Telemetry, registry: CollectorRegistry | None = None) -> None:
    """Export ``telemetry`` to ``registry`` (default: the global ``REGISTRY``)."""
    exporter_for(registry).add(telemetry)
