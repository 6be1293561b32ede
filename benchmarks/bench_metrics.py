"""What metrics and traces cost per request (docs/metrics.md): a request cycle through the
engine with metrics off, then on with each backend, on ``memory://`` and on Redis.

One request cycle is what an adapter drives (as in ``bench_cache.py``):

- read:   ``engine.open(cookie)`` → read a key (this loads) → ``commit`` → ``run``;
- change: ``engine.open(cookie)`` → ``s["n"] += 1`` → ``commit`` → ``run``.

Contestants, each its own engine and store:

- ``off``: no ``metrics`` setting (the engine's store is the store itself);
- ``prometheus``: ``metrics="prometheus"`` on a fresh ``CollectorRegistry``;
- ``otel (API only)``: ``metrics="otel"`` with OpenTelemetry's API and no SDK (no-op);
- ``otel (SDK)``: the SDK's ``MeterProvider`` (an in-memory reader) and ``TracerProvider``
  with a ``BatchSpanProcessor`` into an exporter that drops the spans: what an app that
  exports spans pays in its request thread;
- ``otel (SDK, sampled out)``: the same SDK with the ``ALWAYS_OFF`` sampler (a span is
  decided against and never recorded: what most requests pay under a ratio sampler);
- ``prometheus + otel (SDK)``: both.

The contestants take turns within each repeat (so drift hits all alike); the figure is the
best over repeats of the mean µs per cycle (as ``timeit`` advises: on a shared machine the
slower repeats measure the neighbours), and the ratio is to ``off`` on the same store.

    python benchmarks/bench_metrics.py            # 11 repeats x 2000 cycles
    python benchmarks/bench_metrics.py --quick    # 3 x 300

The script starts its own redis-server on a free loopback port. Speed is measured, never
asserted: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from benchmarks.common import PAYLOAD, SECRET, environment, write_results  # noqa: E402
from sessionkit import SessionConfig, SessionEngine  # noqa: E402
from sessionkit.metrics import install  # noqa: E402
from tests import servers  # noqa: E402

Step = Callable[[], None]


class Dropped(SpanExporter):
    """Takes every batch and keeps nothing (the network is not what is measured)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk(sampled: bool = True) -> tuple[MeterProvider, TracerProvider]:
    tracer_provider = TracerProvider() if sampled else TracerProvider(sampler=ALWAYS_OFF)
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropped()))
    return MeterProvider(metric_readers=[InMemoryMetricReader()]), tracer_provider


def engine_for(url: str, how: str) -> SessionEngine:
    engine = SessionEngine(SessionConfig(secret_key=SECRET, store=url))
    if how == "prometheus":
        install(engine, "prometheus", registry=CollectorRegistry(), interval=0)
    elif how == "otel (API only)":
        install(engine, "otel", interval=0)  # the global providers: no SDK, no-op
    elif how == "otel (SDK)":
        meters, tracers = sdk()
        install(engine, "otel", meter_provider=meters, tracer_provider=tracers, interval=0)
    elif how == "otel (SDK, sampled out)":
        meters, tracers = sdk(sampled=False)
        install(engine, "otel", meter_provider=meters, tracer_provider=tracers, interval=0)
    elif how == "prometheus + otel (SDK)":
        meters, tracers = sdk()
        install(engine, ["prometheus", "otel"], registry=CollectorRegistry(),
                meter_provider=meters, tracer_provider=tracers, interval=0)  # fmt: skip
    return engine


def steps(engine: SessionEngine) -> dict[str, Step]:
    first = engine.open(None)
    first.update(PAYLOAD)
    plan = engine.commit(first, 200)
    engine.run(plan)
    assert plan.set_cookie is not None
    cookie = plan.set_cookie.split(";", 1)[0]

    def read() -> None:
        s = engine.open(cookie)
        assert s.get("user_id") == PAYLOAD["user_id"]
        engine.run(engine.commit(s, 200))

    def change() -> None:
        s = engine.open(cookie)
        s["n"] = s.get("n", 0) + 1
        assert engine.run(engine.commit(s, 200))

    return {"read": read, "change": change}


CONTESTANTS = [
    "off", "prometheus", "otel (API only)", "otel (SDK)", "otel (SDK, sampled out)",
    "prometheus + otel (SDK)",
]  # fmt: skip


def measure(url: str, iterations: int, repeats: int) -> list[dict[str, Any]]:
    engines = {how: engine_for(url, how) for how in CONTESTANTS}
    cycles = {how: steps(engine) for how, engine in engines.items()}
    samples: dict[tuple[str, str], list[float]] = {}
    for kind in ("read", "change"):
        for how in CONTESTANTS:  # warm up
            for _ in range(min(iterations, 200)):
                cycles[how][kind]()
        for _ in range(repeats):
            for how in CONTESTANTS:
                step = cycles[how][kind]
                start = time.perf_counter()
                for _ in range(iterations):
                    step()
                elapsed = (time.perf_counter() - start) / iterations * 1e6
                samples.setdefault((how, kind), []).append(elapsed)
    for engine in engines.values():
        engine.store.close()
    rows = []
    for kind in ("read", "change"):
        base = min(samples[("off", kind)])
        for how in CONTESTANTS:
            us = min(samples[(how, kind)])
            median = statistics.median(samples[(how, kind)])
            rows.append({"store": url.partition("?")[0], "cycle": kind, "metrics": how,
                         "us": round(us, 2), "added_us": round(us - base, 2),
                         "ratio": round(us / base, 3),
                         "median_us": round(median, 2)})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    iterations, repeats = (300, 3) if args.quick else (2000, 11)
    server = servers.redis_server(name="redis-bench-metrics")
    try:
        rows = measure("memory://", iterations, repeats)
        rows += measure(f"redis://127.0.0.1:{server.port}/0?prefix=bench:", iterations, repeats)
    finally:
        server.close()
    print(f"{'store':<28} {'cycle':<7} {'metrics':<25} {'µs':>8} {'added':>8} {'ratio':>7}")
    for row in rows:
        print(f"{row['store']:<28} {row['cycle']:<7} {row['metrics']:<25} {row['us']:>8.1f} "
              f"{row['added_us']:>+8.1f} {row['ratio']:>7.3f}")  # fmt: skip
    if args.json is not None:
        import opentelemetry.version
        import prometheus_client

        versions = {"prometheus_client": getattr(prometheus_client, "__version__", "?"),
                    "opentelemetry": opentelemetry.version.__version__}  # fmt: skip
        write_results({"environment": environment(**versions), "rows": rows}, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
