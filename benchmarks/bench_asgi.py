"""Per-request overhead of session middleware in an ASGI app, in one process, side by side.

A tiny Starlette app whose view reads one key and writes it back incremented is driven by
calling the ASGI app directly with a pre-built scope and minimal receive/send callables, so
no HTTP client or server cost is measured. Each contestant's time minus the same app with no
session middleware is its overhead. Contestants: Starlette's SessionMiddleware (signed
cookie), starsessions (cookie, memory, Redis) and sessionkit_asgi (cookie, memory, Redis).
The Redis contestants use one real redis-server started on a free loopback port.

    python benchmarks/bench_asgi.py            # 7 repeats x 5000 requests per contestant
    python benchmarks/bench_asgi.py --quick    # a smoke run

Results go to ``benchmarks/results/asgi.json``. Speed is measured, never asserted: the
script exits 0 whether the goals are met or not (--profile NAME prints a cProfile instead).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import starlette
import starsessions
from sessionkit_asgi import SessionMiddleware
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware as StarletteSessions
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starsessions import CookieStore as StarCookie
from starsessions import InMemoryStore as StarMemory
from starsessions import SessionAutoloadMiddleware
from starsessions import SessionMiddleware as StarSessions
from starsessions.stores.redis import RedisStore as StarRedis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from benchmarks.common import SECRET, environment, write_results  # noqa: E402
from tests import servers  # noqa: E402  (the test suite's real-server helper)

DEFAULT_OUTPUT = HERE / "results" / "asgi.json"
UA = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0.0.0 Safari/537.36"
#: Goals from issue 4: overhead ratios (ours / theirs) not to exceed these.
GOALS = {
    "sessionkit_redis / starsessions_redis": 0.5,
    "sessionkit_memory / starlette": 1.0,
    "sessionkit_cookie / starlette": 1.0,
    # issue 16: the local cache, warm
    "sessionkit_redis_cache_warm / starsessions_redis": 0.5,
    "sessionkit_redis_cache_warm_read / starsessions_redis_read": 0.2,
    "sessionkit_redis_cache_warm_read / sessionkit_memory_read": 1.5,
}


async def view(request: Request) -> Response:
    session = request.session
    session["n"] = session.get("n", 0) + 1
    return PlainTextResponse("ok")


_plain: dict[str, int] = {}


async def plain_view(request: Request) -> Response:
    _plain["n"] = _plain.get("n", 0) + 1  # the same work on a dict, no session
    return PlainTextResponse("ok")


async def read_view(request: Request) -> Response:
    request.session.get("n")
    return PlainTextResponse("ok")


def app_with(*middleware: Middleware) -> Starlette:
    routes = [Route("/", view), Route("/read", read_view)]
    return Starlette(routes=routes, middleware=list(middleware))


@dataclass
class Contestant:
    key: str
    label: str
    app: Any
    path: str = "/"  # "/read": a read-only view (the session is created by the warm-up)
    cookie_name: str = "session"
    cookie: bytes | None = None
    flush: Any = None  # a cold cache row: called before every request

    async def run(self, count: int) -> float:
        """``count`` requests carrying the cookie the previous one set; seconds taken."""
        base_headers = [(b"host", b"bench"), (b"user-agent", UA), (b"accept", b"*/*")]
        request_message = {"type": "http.request", "body": b"", "more_body": False}
        marker = self.cookie_name.encode() + b"="
        cookie = self.cookie

        async def receive() -> dict[str, Any]:
            return request_message

        async def send(message: dict[str, Any]) -> None:
            nonlocal cookie
            if message["type"] == "http.response.start":
                for name, value in message["headers"]:
                    if name == b"set-cookie" and value.startswith(marker):
                        cookie = value.split(b";", 1)[0]

        app, path, raw_path = self.app, self.path, self.path.encode()
        if cookie is None and path != "/":
            path, raw_path = "/", b"/"  # the first request creates the session to read
        flush = self.flush
        started = time.perf_counter()
        for _ in range(count):
            if flush is not None:
                flush("cold row")
            headers = base_headers if cookie is None else [*base_headers, (b"cookie", cookie)]
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": raw_path,
                "root_path": "", "query_string": b"", "headers": headers,
                "client": ("127.0.0.1", 50000), "server": ("bench", 80),
            }  # fmt: skip
            await app(scope, receive, send)
            path, raw_path = self.path, self.path.encode()
        elapsed = time.perf_counter() - started
        self.cookie = cookie
        return elapsed


#: The local cache's stores (issue 16), for the hit rates.
CACHED: dict[str, Any] = {}


def cached_contestants(redis_url: str) -> list[Contestant]:
    """sessionkit_asgi on ``redis://?cache=on``: warm (loads hit, changes written through)
    and cold (the cache flushed before every request)."""
    from sessionkit.stores import open_store

    field = []
    for temperature in ("warm", "cold"):
        for path, suffix in (("/", ""), ("/read", "_read")):
            store = open_store(f"{redis_url}?prefix=skc-{temperature}{suffix}:&cache=on")
            assert store.source.wait_live(5.0)  # type: ignore[attr-defined]
            key = f"sessionkit_redis_cache_{temperature}{suffix}"
            label = f"sessionkit_asgi, redis://?cache=on, {temperature}" + (
                ", read-only view" if suffix else ""
            )
            app = app_with(Middleware(SessionMiddleware, store=store, secret_key=SECRET))
            flush = store.cache.flush if temperature == "cold" else None  # type: ignore[attr-defined]
            field.append(Contestant(key, label, app, path=path, flush=flush))
            CACHED[key] = store
    return field


def contestants(redis_url: str) -> list[Contestant]:
    ours: dict[str, Any] = {"secret_key": SECRET}
    return [
        *cached_contestants(redis_url),
        Contestant("sessionkit_memory_read", "sessionkit_asgi, memory://, read-only view",
                   app_with(Middleware(SessionMiddleware, store="memory://", **ours)),
                   path="/read"),
        Contestant("baseline", "no session middleware", Starlette(routes=[Route("/", plain_view)])),
        Contestant("starlette", "Starlette SessionMiddleware (signed cookie)",
                   app_with(Middleware(StarletteSessions, secret_key=SECRET))),
        Contestant("starsessions_cookie", "starsessions, CookieStore",
                   app_with(Middleware(StarSessions, store=StarCookie(SECRET),
                                       cookie_https_only=False, lifetime=14 * 86400),
                            Middleware(SessionAutoloadMiddleware))),
        Contestant("starsessions_memory", "starsessions, InMemoryStore",
                   app_with(Middleware(StarSessions, store=StarMemory(),
                                       cookie_https_only=False, lifetime=14 * 86400),
                            Middleware(SessionAutoloadMiddleware))),
        Contestant("starsessions_redis", "starsessions, RedisStore",
                   app_with(Middleware(StarSessions, store=StarRedis(redis_url),
                                       cookie_https_only=False, lifetime=14 * 86400),
                            Middleware(SessionAutoloadMiddleware))),
        Contestant("sessionkit_cookie", "sessionkit_asgi, cookie:// (AES-GCM)",
                   app_with(Middleware(SessionMiddleware, **ours))),
        Contestant("sessionkit_memory", "sessionkit_asgi, memory://",
                   app_with(Middleware(SessionMiddleware, store="memory://", **ours))),
        Contestant("sessionkit_redis", "sessionkit_asgi, redis://",
                   app_with(Middleware(SessionMiddleware, store=redis_url, **ours))),
        Contestant("starsessions_redis_read", "starsessions, RedisStore, read-only view",
                   app_with(Middleware(StarSessions, store=StarRedis(redis_url),
                                       cookie_https_only=False, lifetime=14 * 86400),
                            Middleware(SessionAutoloadMiddleware)), path="/read"),
        Contestant("sessionkit_redis_read", "sessionkit_asgi, redis://, read-only view",
                   app_with(Middleware(SessionMiddleware, store=redis_url, **ours)),
                   path="/read"),
    ]  # fmt: skip


async def measure(repeats: int, count: int, redis_url: str) -> dict[str, list[float]]:
    field = contestants(redis_url)
    for contestant in field:  # warm up: build middleware stacks, open connections
        await contestant.run(200)
    times: dict[str, list[float]] = {c.key: [] for c in field}
    for repeat in range(repeats):
        shift = repeat % len(field)
        for contestant in field[shift:] + field[:shift]:
            times[contestant.key].append(await contestant.run(count) / count * 1e6)
    for contestant in field:  # every cookie must still be live: no rejected-cookie path
        if contestant.key != "baseline":
            assert contestant.cookie is not None, contestant.key
    return times


async def profile(name: str, count: int, redis_url: str) -> None:
    (contestant,) = [c for c in contestants(redis_url) if c.key == name]
    await contestant.run(200)
    profiler = cProfile.Profile()
    profiler.enable()
    await contestant.run(count)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def report(times: dict[str, list[float]], args: argparse.Namespace) -> dict[str, Any]:
    median = {k: statistics.median(v) for k, v in times.items()}
    base = median["baseline"]
    overhead = {k: max(v - base, 0.01) for k, v in median.items() if k != "baseline"}
    pairs = {
        "sessionkit_cookie / starlette": ("sessionkit_cookie", "starlette"),
        "sessionkit_memory / starlette": ("sessionkit_memory", "starlette"),
        "sessionkit_cookie / starsessions_cookie": ("sessionkit_cookie", "starsessions_cookie"),
        "sessionkit_memory / starsessions_memory": ("sessionkit_memory", "starsessions_memory"),
        "sessionkit_redis / starsessions_redis": ("sessionkit_redis", "starsessions_redis"),
        "sessionkit_redis_read / starsessions_redis_read": (
            "sessionkit_redis_read", "starsessions_redis_read",
        ),
        # issue 16: the local cache
        "sessionkit_redis_cache_warm / starsessions_redis": (
            "sessionkit_redis_cache_warm", "starsessions_redis",
        ),
        "sessionkit_redis_cache_warm_read / starsessions_redis_read": (
            "sessionkit_redis_cache_warm_read", "starsessions_redis_read",
        ),
        "sessionkit_redis_cache_warm_read / sessionkit_memory_read": (
            "sessionkit_redis_cache_warm_read", "sessionkit_memory_read",
        ),
        "sessionkit_redis_cache_cold / sessionkit_redis": (
            "sessionkit_redis_cache_cold", "sessionkit_redis",
        ),
        "sessionkit_redis_cache_cold_read / sessionkit_redis_read": (
            "sessionkit_redis_cache_cold_read", "sessionkit_redis_read",
        ),
    }  # fmt: skip
    ratios = {name: round(overhead[a] / overhead[b], 3) for name, (a, b) in pairs.items()}
    # Best-of-repeats is steadier than the median on a machine that other work shares.
    best = {k: min(v) for k, v in times.items()}
    best_overhead = {k: max(v - best["baseline"], 0.01) for k, v in best.items()}
    best_ratios = {
        name: round(best_overhead[a] / best_overhead[b], 3) for name, (a, b) in pairs.items()
    }
    print(f"{'contestant':<26}{'µs/request':>12}{'overhead µs':>13}")
    print(f"{'baseline':<26}{base:>12.1f}{0:>13.1f}")
    for key, value in overhead.items():
        print(f"{key:<26}{median[key]:>12.1f}{value:>13.1f}")
    print("\noverhead ratios (ours / theirs; below 1 means sessionkit adds less)")
    print(f"  {'':<50}{'median':>8}{'best':>8}")
    for name, ratio in ratios.items():
        goal = GOALS.get(name)
        verdict = "" if goal is None else ("  goal met" if ratio <= goal else "  GOAL MISSED")
        target = "" if goal is None else f"  (goal <= {goal})"
        print(f"  {name:<50}{ratio:>8.3f}{best_ratios[name]:>8.3f}{target}{verdict}")
    return {
        "benchmark": "ASGI middleware per-request overhead",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(
            starlette=starlette.__version__,
            starsessions=getattr(starsessions, "__version__", "2.x"),
        ),
        "settings": {
            "repeats": args.repeats,
            "requests": args.requests,
            "quick": args.quick,
            "statistic": "median of repeats",
            "driver": "ASGI app called directly",
        },
        "results": [
            {
                "name": k,
                "us_per_request": round(median[k], 2),
                "overhead_us": round(overhead.get(k, 0.0), 2),
                "best_us_per_request": round(best[k], 2),
                "repeats_us": [round(t, 2) for t in times[k]],
            }
            for k in times
        ],
        "ratios": ratios,
        "best_ratios": best_ratios,
        "goals": GOALS,
        "hit_rates": {key: _hit_rate(store) for key, store in CACHED.items()},
    }


def _hit_rate(store: Any) -> float:
    stats = store.stats()
    hits, misses = stats["hits"], stats["misses"] + stats["bypassed"]
    return round(hits / max(1, hits + misses), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="3 repeats x 500 requests")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--profile", metavar="NAME", help="cProfile one contestant instead")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.requests = 3, 500
    redis = servers.redis_server()
    url = f"redis://127.0.0.1:{redis.port}/0"
    try:
        if args.profile:
            asyncio.run(profile(args.profile, args.requests, url))
            return 0
        times = asyncio.run(measure(args.repeats, args.requests, url))
    finally:
        redis.close()
    result = report(times, args)
    if not args.no_json:
        write_results(result, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
