"""Per-request session overhead in Flask: sessionkit against Flask's own session and
Flask-Session on Redis, in one process, as ratios.

Every contestant is a tiny Flask app whose view increments a counter in the session. The
WSGI app is called directly with a prebuilt environ (no HTTP server, no test client), the
``Set-Cookie`` of one response becomes the ``Cookie`` of the next, and the cost of the same
app with a view that never touches the session is subtracted: what is left is what the
session costs per request. redis-server is started on a free loopback port and stopped.

    python benchmarks/bench_flask.py            # 7 repeats x 5000 requests per contestant
    python benchmarks/bench_flask.py --quick    # 5 x 500, a smoke run

Results go to ``benchmarks/results/flask.json``. Speed is measured, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `tests.servers` starts redis-server
import flask  # noqa: E402
import redis  # noqa: E402
from sessionkit_flask import SessionKit  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

import sessionkit  # noqa: E402
from benchmarks.common import SECRET, environment, write_results  # noqa: E402
from tests import servers  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "flask.json"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36"
)
#: Goals from issue 6: sessionkit's Redis overhead at most this fraction of Flask-Session's;
#: the encrypted cookie's overhead no more than Flask's signed cookie.
REDIS_GOAL = 0.5
COOKIE_GOAL = 1.0
#: Goals from issue 16 (the local cache, warm): ratio label -> (description, target).
CACHE_GOALS = {
    "cache_change": ("sessionkit redis cache warm / Flask-Session redis (overhead)", 0.5),
    "cache_change_floor": ("sessionkit redis cache warm / GET+SET floor (overhead)", 0.6),
    "cache_read": ("sessionkit redis cache warm / Flask-Session redis, read-only requests "
                   "(overhead)", 0.2),
    "cache_read_memory": ("sessionkit redis cache warm / sessionkit memory, read-only "
                          "requests (overhead)", 1.5),
}  # fmt: skip


@dataclass
class Contestant:
    key: str
    label: str
    step: Callable[[], int]  # one request; returns the counter the view saw (-1: none)


def wsgi_contestant(key: str, label: str, app: flask.Flask, read_only: bool = False) -> Contestant:
    """Call ``app`` as a server would, carrying the session cookie between requests.

    ``read_only``: one request to ``/`` writes the counter, then every measured request goes
    to ``/read``, whose view only reads it; each one checks that it still sees that value."""
    name = app.config["SESSION_COOKIE_NAME"]
    prefix = name + "="
    cookie = ""
    headers: list[tuple[str, str]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        headers[:] = response_headers

    def request(environ: dict[str, Any]) -> int:
        nonlocal cookie
        env = environ.copy()
        if cookie:
            env["HTTP_COOKIE"] = cookie
        body = app(env, start_response)
        text = b"".join(body)
        for header, value in headers:
            if header == "Set-Cookie" and value.startswith(prefix):
                cookie = value.split(";", 1)[0]
        return int(text)

    write_environ = _environ("/")
    if not read_only:
        return Contestant(key, label, lambda: request(write_environ))
    seen = request(write_environ)
    read_environ = _environ("/read")

    def read() -> int:
        if request(read_environ) != seen:
            raise SystemExit(f"{label}: a read-only request lost the session")
        return -1  # the counter does not move; check_chain accepts -1

    return Contestant(key, label, read)


def _environ(path: str) -> dict[str, Any]:
    return EnvironBuilder(
        path=path, headers={"User-Agent": USER_AGENT}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    ).get_environ()


def counter_app(name: str, **config: Any) -> flask.Flask:
    app = flask.Flask(name)
    app.config.update(config)

    @app.get("/")
    def view() -> str:
        if "SECRET_KEY" not in config:
            return "-1"  # the baseline: the same app, the session never touched
        n = flask.session.get("n", 0) + 1
        flask.session["n"] = n
        return str(n)

    @app.get("/read")
    def read() -> str:  # a read-only request: the session is loaded, never changed
        return str(flask.session.get("n", 0))

    return app


def floor_app(redis_url: str) -> flask.Flask:
    """No session at all: the view does the two round trips any Redis-backed session needs
    for a request that reads and writes (redis-py GET, then SET with a TTL)."""
    app = flask.Flask("floor")
    client = redis.Redis.from_url(redis_url)

    @app.get("/")
    def view() -> str:
        n = int(client.get("bench-floor") or 0) + 1
        client.set("bench-floor", n, ex=3600)
        return str(n)

    return app


def contestants(redis_port: int) -> list[Contestant]:
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    field = [wsgi_contestant("none", "Flask, view without session", counter_app("none"))]
    field.append(
        wsgi_contestant("flask", "Flask signed cookie", counter_app("flask", SECRET_KEY=SECRET))
    )

    from flask_session import Session as FlaskSessionExtension

    app = counter_app(
        "flask_session",
        SECRET_KEY=SECRET,
        SESSION_TYPE="redis",
        SESSION_REDIS=redis.Redis.from_url(redis_url),
        SESSION_KEY_PREFIX="bench-fs:",
    )
    FlaskSessionExtension(app)
    field.append(wsgi_contestant("flask_session_redis", "Flask-Session 0.8, Redis", app))
    # Flask-Session writes on every request (SESSION_REFRESH_EACH_REQUEST, its default), so
    # a request that only reads is a second, separately reported shape.
    field.append(
        wsgi_contestant(
            "flask_session_redis_read", "Flask-Session 0.8, Redis, read-only", app, read_only=True
        )
    )
    field.append(
        wsgi_contestant("redis_floor", "floor: bare redis-py GET + SET", floor_app(redis_url))
    )

    for key, label, store in [
        ("sessionkit_cookie", "sessionkit cookie:// (AES-GCM)", "cookie://"),
        ("sessionkit_redis", "sessionkit redis://", redis_url + "?prefix=bench-sk:"),
        ("sessionkit_memory", "sessionkit memory://", "memory://"),
    ]:
        app = counter_app(key, SECRET_KEY=SECRET, SESSIONKIT_STORE=store)
        SessionKit(app)
        field.append(wsgi_contestant(key, label, app))
        if key in ("sessionkit_redis", "sessionkit_memory"):
            read_label = label + ", read-only"
            field.append(wsgi_contestant(key + "_read", read_label, app, read_only=True))
    field.extend(cached_contestants(redis_url))
    return field


#: The local cache (issue 16): its stores, for the hit rates the report shows.
CACHED: dict[str, Any] = {}


def cached_contestants(redis_url: str) -> list[Contestant]:
    """sessionkit on ``redis://?cache=on``: warm (every load a hit, every change written
    through: one round trip) and cold (the cache flushed before every request: each load
    a miss, the cache's bookkeeping on top of the plain Redis row)."""
    from sessionkit.stores import open_store

    field = []
    for temperature in ("warm", "cold"):
        store = open_store(f"{redis_url}?prefix=bench-skc-{temperature}:&cache=on")
        assert store.source.wait_live(5.0)  # type: ignore[attr-defined]
        app = counter_app("cache_" + temperature, SECRET_KEY=SECRET, SESSIONKIT_STORE=store)
        SessionKit(app)
        key, label = (
            f"sessionkit_redis_cache_{temperature}",
            f"sessionkit redis://?cache=on, {temperature}",
        )
        for suffix, read_only in (("", False), ("_read", True)):
            contestant = wsgi_contestant(key + suffix, label + (", read-only" if read_only else ""),
                                         app, read_only=read_only)  # fmt: skip
            if temperature == "cold":
                contestant.step = _flushing(store, contestant.step)
            CACHED[key + suffix] = store
            field.append(contestant)
    return field


def _flushing(store: Any, step: Callable[[], int]) -> Callable[[], int]:
    flush = store.cache.flush

    def cold() -> int:
        flush("cold row")
        return step()

    return cold


# ==========================================================================================
def run(step: Callable[[], int], iterations: int) -> tuple[float, float]:
    """Wall-clock and this process's CPU time, in µs per request. CPU time leaves out the
    waits for redis-server, so it shows the code's own cost even on a busy machine."""
    start, cpu = time.perf_counter_ns(), time.process_time_ns()
    for _ in range(iterations):
        step()
    wall = (time.perf_counter_ns() - start) / iterations / 1000.0
    return wall, (time.process_time_ns() - cpu) / iterations / 1000.0


def check_chain(contestant: Contestant, cycles: int) -> None:
    """Each request must really carry the session on: the counter rises by one each time."""
    first = contestant.step()
    last = first
    for _ in range(cycles):
        last = contestant.step()
    if first != -1 and last != first + cycles:
        raise SystemExit(f"{contestant.label}: counter went {first} -> {last}; broken chain")


Samples = dict[str, list[tuple[float, float]]]


def measure(field: list[Contestant], repeats: int, iterations: int) -> Samples:
    for contestant in field:
        check_chain(contestant, max(100, iterations // 10))
    samples: Samples = {c.key: [] for c in field}
    for repeat in range(repeats):
        shift = repeat % len(field)  # rotate the order so drift is spread evenly
        for contestant in field[shift:] + field[:shift]:
            gc.collect()
            samples[contestant.key].append(run(contestant.step, iterations))
    for contestant in field:
        check_chain(contestant, 10)
    return samples


def report(field: list[Contestant], samples: Samples, args: argparse.Namespace) -> dict[str, Any]:
    median = {key: statistics.median(w for w, _ in values) for key, values in samples.items()}
    cpu = {key: statistics.median(c for _, c in values) for key, values in samples.items()}
    overhead = {key: value - median["none"] for key, value in median.items()}
    cpu_overhead = {key: value - cpu["none"] for key, value in cpu.items()}
    print(
        f"sessionkit {sessionkit.__version__} | Python {platform.python_version()} | "
        f"flask {version('flask')}, flask-session {version('flask-session')}, "
        f"redis-py {version('redis')}\n{args.repeats} repeats x {args.iterations} requests "
        "(median of repeats), WSGI app called directly, redis-server on loopback\n"
    )
    width = max(len(c.label) for c in field)
    header = (
        f"{'contestant':<{width}}  {'µs/request':>10}  {'overhead µs':>11}  "
        f"{'CPU µs':>7}  {'CPU overhead':>12}"
    )
    print(header + "\n" + "-" * len(header))
    for c in field:
        print(
            f"{c.label:<{width}}  {median[c.key]:>10.1f}  {overhead[c.key]:>11.1f}  "
            f"{cpu[c.key]:>7.1f}  {cpu_overhead[c.key]:>12.1f}"
        )
    pairs = [
        ("sessionkit redis / Flask-Session redis", "sessionkit_redis", "flask_session_redis"),
        (
            "sessionkit redis / Flask-Session redis, read-only requests",
            "sessionkit_redis_read",
            "flask_session_redis_read",
        ),
        ("sessionkit cookie / Flask signed cookie", "sessionkit_cookie", "flask"),
        ("sessionkit memory / Flask signed cookie", "sessionkit_memory", "flask"),
    ]
    pairs += [  # issue 16: the local cache, warm
        ("sessionkit redis cache warm / Flask-Session redis", "sessionkit_redis_cache_warm",
         "flask_session_redis"),
        ("sessionkit redis cache warm / Flask-Session redis, read-only requests",
         "sessionkit_redis_cache_warm_read", "flask_session_redis_read"),
        ("sessionkit redis cache warm / GET+SET floor", "sessionkit_redis_cache_warm",
         "redis_floor"),
        ("sessionkit redis cache warm / sessionkit memory, read-only requests",
         "sessionkit_redis_cache_warm_read", "sessionkit_memory_read"),
        ("sessionkit redis cache cold / sessionkit redis", "sessionkit_redis_cache_cold",
         "sessionkit_redis"),
        ("sessionkit redis cache cold / sessionkit redis, read-only requests",
         "sessionkit_redis_cache_cold_read", "sessionkit_redis_read"),
    ]  # fmt: skip
    ratios = {f"{label} (overhead)": overhead[a] / overhead[b] for label, a, b in pairs}
    for label, a, b in pairs:
        ratios[f"{label} (CPU overhead)"] = cpu_overhead[a] / cpu_overhead[b]
    # Above the floor: what each Redis session costs beyond the two round trips themselves.
    floor = overhead["redis_floor"]
    ratios["sessionkit redis / Flask-Session redis (overhead above the GET+SET floor)"] = (
        overhead["sessionkit_redis"] - floor
    ) / (overhead["flask_session_redis"] - floor)
    print()
    for label, value in ratios.items():
        print(f"{label:<75} {value:5.2f}x")
    goals = {
        "redis": {
            "description": "sessionkit Redis overhead <= 0.5 x Flask-Session Redis overhead",
            "target_ratio": REDIS_GOAL,
            "ratio": round(ratios["sessionkit redis / Flask-Session redis (overhead)"], 3),
        },
        "cookie": {
            "description": "sessionkit cookie overhead <= Flask signed cookie overhead",
            "target_ratio": COOKIE_GOAL,
            "ratio": round(ratios["sessionkit cookie / Flask signed cookie (overhead)"], 3),
        },
    }
    for name, (label, target) in CACHE_GOALS.items():
        goals[name] = {
            "description": label, "target_ratio": target, "ratio": round(ratios[label], 3),
        }  # fmt: skip
    print()
    for goal in goals.values():
        goal["met"] = goal["ratio"] <= goal["target_ratio"]
        verdict = "MET" if goal["met"] else "NOT MET"
        print(f"Goal ({goal['description']}): {verdict} ({goal['ratio']:.2f}x)")
    return {
        "benchmark": "Flask per-request session overhead",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(
            **{name: version(name) for name in ("flask", "flask-session", "redis")}
        ),
        "settings": {
            "repeats": args.repeats,
            "iterations": args.iterations,
            "statistic": "median of repeats; overhead = contestant - view without session; "
            "CPU = this process's CPU time (excludes redis-server and waits)",
        },
        "results": [
            {
                "name": c.key,
                "label": c.label,
                "us_per_request": round(median[c.key], 2),
                "overhead_us": round(overhead[c.key], 2),
                "cpu_us_per_request": round(cpu[c.key], 2),
                "cpu_overhead_us": round(cpu_overhead[c.key], 2),
                "repeats_us_per_request": [round(w, 2) for w, _ in samples[c.key]],
            }
            for c in field
        ],
        "ratios": [{"name": label, "value": round(value, 3)} for label, value in ratios.items()],
        "goals": goals,
        "hit_rates": {key: hit_rate(store) for key, store in CACHED.items()},
    }


def hit_rate(store: Any) -> float:
    stats = store.stats()
    hits, misses = stats["hits"], stats["misses"] + stats["bypassed"]
    return round(hits / max(1, hits + misses), 3)


@contextmanager
def redis_server() -> Iterator[int]:
    server = servers.redis_server()
    try:
        yield server.port
    finally:
        server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 x 500 requests")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (5 if args.quick else 7)
    args.iterations = args.iterations or (500 if args.quick else 5000)
    with redis_server() as port:
        field = contestants(port)
        samples = measure(field, args.repeats, args.iterations)
    document = report(field, samples, args)
    if not args.no_json:
        write_results(document, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
