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

from sessionkit.metrics import (
    CACHE_KINDS,
    COUNTED,
    LATENCY_BUCKETS,
    InstrumentedStore,
    Telemetry,
    active_by_store,
    missing,
    totals,
)

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
        telemetries = exporter.telemetries() if exporter is not None else []
        events = CounterMetricFamily(
            EVENTS, "Session events by kind (sessionkit's event bus; cache_hit and "
            "cache_miss from a local cache in front of the store)", labels=["kind"],
        )  # fmt: skip
        counts = dict.fromkeys((k.value for k in COUNTED), 0)
        if any(t.cache_counts() for t in telemetries):
            counts.update(dict.fromkeys(CACHE_KINDS, 0))
        counts.update(totals(telemetries))
        for kind, count in counts.items():
            events.add_metric([kind], count)
        yield events
        active = GaugeMetricFamily(
            ACTIVE, "Live sessions in the store at the last background sample",
            labels=["store"],
        )  # fmt: skip
        for label, count in active_by_store(telemetries).items():
            active.add_metric([label], count)
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


class PrometheusExporter:
    """sessionkit's metrics in one ``CollectorRegistry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.latency = Histogram(
            LATENCY, "Time taken by each session store call, by operation and store",
            ["operation", "store"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self._telemetries: list[weakref.ReferenceType[Telemetry]] = []
        self._lock = threading.Lock()
        registry.register(_Families(self))

    def add(self, telemetry: Telemetry) -> None:
        if telemetry.attach(self, _Observer(self.latency, telemetry.label)):
            with self._lock:
                self._telemetries.append(weakref.ref(telemetry))

    def telemetries(self) -> list[Telemetry]:
        with self._lock:
            alive = [t for t in (ref() for ref in self._telemetries) if t is not None]
            self._telemetries = [weakref.ref(t) for t in alive]
        return alive


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
