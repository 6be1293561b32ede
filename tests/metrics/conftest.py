"""Fixtures for the metrics tests: a fresh Prometheus registry, OpenTelemetry's SDK with its
in-memory reader and exporter, and a Redis that wants a password (so a test can check that
the password never reaches a label or a span)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from tests import servers

PASSWORD = "s3cret-" + secrets.token_hex(8)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@dataclass
class Otel:
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    meter_provider: MeterProvider
    tracer_provider: TracerProvider

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of the metric ``name`` at a fresh collection."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def value(self, name: str, **attributes: str) -> Any:
        """The value (a sum or gauge) or the histogram point whose attributes match."""
        for point in self.points(name):
            if dict(point.attributes) == attributes:
                return getattr(point, "value", point)
        return None


@pytest.fixture
def otel() -> Iterator[Otel]:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(reader, spans, meter_provider, tracer_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
def secured_redis() -> Iterator[servers.Server]:
    """A Redis of this test's own (a test may stop it) that wants ``PASSWORD``."""
    server = servers.redis_server(None, "--requirepass", PASSWORD, name="redis-metrics")
    yield server
    server.close()


def secured_url(server: servers.Server, options: str = "") -> str:
    return (
        f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0?prefix=m{secrets.token_hex(4)}:"
        f"&socket_timeout=0.5{options}"
    )
