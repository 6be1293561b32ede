"""Per-request session overhead in Django: sessionkit against Django's own backends, in one
process, as ratios.

Every contestant is Django's WSGI handler (request_started, the middleware chain, URL
resolution, a view, request_finished on close), called directly with a prebuilt environ (no
HTTP server), with one session setup. The database connection is persistent
(``CONN_MAX_AGE = None``), which spares Django's db backend a reconnect per request. The
view increments a counter in ``request.session``; the ``Set-Cookie`` of one response
becomes the ``Cookie`` of the next.
The same handler with no session middleware and a view that never touches a session is the
baseline, and its cost is subtracted: what is left is what the session costs per request.
redis-server is started on a free loopback port and stopped; SQLite files live in a
temporary directory.

    python benchmarks/bench_django.py            # 7 repeats x 2000 requests per contestant
    python benchmarks/bench_django.py --quick    # 3 x 200, a smoke run

Goals (issue 5): Redis-backed overhead at most 0.35x Django's cache backend on Redis; SQLite
at most 0.5x Django's db backend on SQLite; the cookie store no more than ``signed_cookies``.
Results go to ``benchmarks/results/django.json``. Speed is measured, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "adapters")]

import django  # noqa: E402
from django.conf import settings  # noqa: E402

from benchmarks.common import SECRET, environment, write_results  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "django.json"
GOALS = {  # sessionkit contestant: (Django contestant, largest allowed overhead ratio)
    "sessionkit redis": ("django cache (redis)", 0.35),
    "sessionkit sqlite": ("django db (sqlite)", 0.5),
    "sessionkit cookie": ("django signed_cookies", 1.0),
}
#: Goals from issue 16 (the local cache, warm): (ours, theirs, largest allowed ratio).
CACHE_GOALS = [
    ("sessionkit redis cache warm", "django cache (redis)", 0.35),
    ("sessionkit redis cache warm", "redis-py GET + SET (floor)", 0.6),
    ("sessionkit redis cache warm, read-only", "django cache (redis), read-only", 0.2),
    ("sessionkit redis cache warm, read-only", "sessionkit memory, read-only", 1.5),
]
#: Reported beside the goals, not goals themselves.
EXTRA_RATIOS = {
    "sessionkit redis, read-only": "django cache (redis), read-only",
    "sessionkit redis": "redis-py GET + SET (floor)",
    "sessionkit redis cache cold": "sessionkit redis",
    "sessionkit redis cache cold, read-only": "sessionkit redis, read-only",
}
#: The least a Redis-backed session can cost in this harness: a middleware that does one
#: redis-py GET before the view and one SET EX after it, and nothing else (no signing, no
#: decoding, no session object). A goal below this floor's ratio is out of reach for any
#: session library built on redis-py that reads before the view and writes after it.
FLOOR = "redis-py GET + SET (floor)"
FLOOR_OF = {"sessionkit redis": FLOOR}
_floor_client: Any = None


class FloorMiddleware:
    """The floor: GET before the view, SET EX after it, on one redis-py client."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        global _floor_client
        if _floor_client is None:
            import redis

            location = settings.CACHES["default"]["LOCATION"]
            _floor_client = redis.Redis.from_url(location.rsplit("/", 1)[0] + "/2")
        key = "floor:" + request.COOKIES.get("sessionid", "anonymous")
        raw = _floor_client.get(key)
        request.session = {"n": int(raw or 0)}
        response = self.get_response(request)
        _floor_client.set(key, str(request.session["n"]), ex=1_209_600)
        return response


def _start_response(status: str, headers: Any, exc_info: Any = None) -> None:
    return None


def count(request: Any) -> Any:
    from django.http import HttpResponse

    session = getattr(request, "session", None)
    if session is None:
        return HttpResponse("1")
    value = session.get("n", 0) + 1
    session["n"] = value
    response = HttpResponse(str(value))
    if isinstance(session, dict):  # the floor: keep the counter's cookie going
        response.set_cookie("sessionid", "floor")
    return response


def read(request: Any) -> Any:
    """A read-only request: the session is loaded, never changed (no save for any backend)."""
    from django.http import HttpResponse

    session = getattr(request, "session", None)
    return HttpResponse(str(0 if session is None else session.get("n", 0)))


urlpatterns: list[Any] = []


def configure(workdir: Path, redis_port: int) -> None:
    from django.urls import path

    settings.configure(
        SECRET_KEY=SECRET,
        DEBUG=False,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=["django.contrib.sessions", "sessionkit_django"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(workdir / "db.sqlite3"),
                "CONN_MAX_AGE": None,
            }
        },
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://127.0.0.1:{redis_port}/1",
            }
        },
        USE_TZ=True,
        SESSIONKIT={"STORE": "memory://"},
    )
    django.setup()
    urlpatterns.append(path("count/", count))
    urlpatterns.append(path("read/", read))
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass
class Contestant:
    name: str
    middleware: list[str]
    engine: str | None = None  # SESSION_ENGINE for Django's middleware
    store: str | None = None  # SESSIONKIT STORE for ours
    read_only: bool = False  # measure GET /read/ (the session only read) after one write
    cold: bool = False  # a cached store, flushed before every request (every load a miss)
    handler: Any = None
    sk_engine: Any = None
    cookie: str = ""
    last: int = 0

    def setup(self) -> None:
        from django.core.handlers.wsgi import WSGIHandler
        from django.test.utils import override_settings
        from sessionkit_django import conf

        overrides: dict[str, Any] = {"MIDDLEWARE": self.middleware}
        if self.engine is not None:
            overrides["SESSION_ENGINE"] = self.engine
        if self.store is not None:
            overrides["SESSIONKIT"] = {"STORE": self.store}
        with override_settings(**overrides):
            self.handler = WSGIHandler()
            self.sk_engine = conf.get_engine() if self.store is not None else None
        if self.sk_engine is not None:
            self.sk_engine.store.create_schema()

    def run(self, environ: dict[str, Any], requests: int) -> float:
        """Seconds for ``requests`` request cycles."""
        from django.test.utils import override_settings
        from sessionkit_django import conf

        overrides: dict[str, Any] = {}
        if self.engine is not None:
            overrides["SESSION_ENGINE"] = self.engine
        with override_settings(**overrides):
            context = conf.use_engine(self.sk_engine) if self.sk_engine is not None else None
            if context is not None:
                context.__enter__()
            try:
                return self._loop(environ, requests)
            finally:
                if context is not None:
                    context.__exit__(None, None, None)

    def _loop(self, environ: dict[str, Any], requests: int) -> float:
        from django.test.client import FakePayload

        handler = self.handler
        cookie = self.cookie
        flush = self.sk_engine.store.cache.flush if self.cold else None
        start = time.perf_counter()
        for _ in range(requests):
            if flush is not None:
                flush("cold row")
            request = dict(environ, HTTP_COOKIE=cookie)
            request["wsgi.input"] = FakePayload(b"")
            response = handler(request, _start_response)
            morsel = response.cookies.get("sessionid")
            if morsel is not None:
                cookie = f"sessionid={morsel.value}"
            response.close()
        elapsed = time.perf_counter() - start
        self.cookie = cookie
        self.last = int(response.content)
        return elapsed

    def counter(self, environ: dict[str, Any]) -> int:
        """The counter after one more request (to check that sessions really persist)."""
        self.run(environ, 1)
        return self.last


DJANGO_MW = ["django.contrib.sessions.middleware.SessionMiddleware"]
OUR_MW = ["sessionkit_django.middleware.SessionMiddleware"]


def contestants(workdir: Path, redis_port: int) -> list[Contestant]:
    return [
        Contestant("no session (baseline)", []),
        Contestant("django signed_cookies", DJANGO_MW,
                   "django.contrib.sessions.backends.signed_cookies"),
        Contestant("django cache (redis)", DJANGO_MW, "django.contrib.sessions.backends.cache"),
        Contestant("django db (sqlite)", DJANGO_MW, "django.contrib.sessions.backends.db"),
        Contestant("sessionkit cookie", OUR_MW, store="cookie://"),
        Contestant("sessionkit memory", OUR_MW, store="memory://"),
        Contestant("sessionkit redis", OUR_MW, store=f"redis://127.0.0.1:{redis_port}/0"),
        Contestant("sessionkit sqlite", OUR_MW,
                   store=f"sqlite:///{workdir / 'sessionkit.sqlite3'}"),
        # Read-only requests: neither middleware saves, so both make one round trip.
        Contestant("django cache (redis), read-only", DJANGO_MW,
                   "django.contrib.sessions.backends.cache", read_only=True),
        Contestant("sessionkit redis, read-only", OUR_MW,
                   store=f"redis://127.0.0.1:{redis_port}/0", read_only=True),
        Contestant(FLOOR, [f"{__name__}.FloorMiddleware"]),
        Contestant("sessionkit memory, read-only", OUR_MW, store="memory://", read_only=True),
        # issue 16: the local cache, warm (loads hit, changes written through) and cold
        *(Contestant(f"sessionkit redis cache {temperature}{kind}", OUR_MW,
                     store=f"redis://127.0.0.1:{redis_port}/0?prefix=skc-{temperature}:"
                           "&cache=on",
                     read_only=bool(kind), cold=temperature == "cold")
          for temperature in ("warm", "cold") for kind in ("", ", read-only")),
    ]  # fmt: skip


def measure(field: list[Contestant], repeats: int, requests: int) -> dict[str, list[float]]:
    from django.test import RequestFactory

    factory = RequestFactory()
    write = factory._base_environ(PATH_INFO="/count/", REQUEST_METHOD="GET")
    reading = factory._base_environ(PATH_INFO="/read/", REQUEST_METHOD="GET")
    environs = {c.name: reading if c.read_only else write for c in field}
    for contestant in field:
        environ = environs[contestant.name]
        contestant.setup()
        contestant.run(write, max(requests // 10, 20))  # warm up, get a cookie
        contestant.run(environ, max(requests // 10, 20))
        before = contestant.counter(environ)
        contestant.run(environ, 10)
        after = contestant.counter(environ)
        expected = 0 if contestant.read_only else 11
        if contestant.middleware and (after - before != expected or after < 1):
            raise SystemExit(f"{contestant.name}: the counter did not follow ({before}→{after})")
    timings: dict[str, list[float]] = {c.name: [] for c in field}
    for repeat in range(repeats):
        shift = repeat % len(field)
        for contestant in field[shift:] + field[:shift]:
            gc.collect()
            seconds = contestant.run(environs[contestant.name], requests)
            timings[contestant.name].append(seconds / requests * 1e6)
    for contestant in field:
        store = contestant.sk_engine.store if contestant.sk_engine is not None else None
        if store is not None and hasattr(store, "cache"):
            stats = store.stats()
            hits, misses = stats["hits"], stats["misses"] + stats["bypassed"]
            HIT_RATES[contestant.name] = round(hits / max(1, hits + misses), 3)
    return timings


HIT_RATES: dict[str, float] = {}  # the cached contestants' (warm and read-only share none)


def report(timings: dict[str, list[float]], output: Path | None) -> None:
    medians = {name: statistics.median(values) for name, values in timings.items()}
    base = medians["no session (baseline)"]
    overhead = {name: max(value - base, 0.01) for name, value in medians.items()}
    print(f"Django {django.get_version()} | Python {platform.python_version()} | "
          f"{platform.machine()}")  # fmt: skip
    print(f"{'contestant':<34} {'µs/request':>11} {'overhead µs':>12} {'best':>8}")
    for name, values in timings.items():
        print(f"{name:<34} {medians[name]:>11.1f} {medians[name] - base:>12.1f} "
              f"{min(values):>8.1f}")  # fmt: skip
    goals = []
    print()
    for ours, (theirs, limit) in GOALS.items():
        ratio = overhead[ours] / overhead[theirs]
        met = ratio <= limit
        entry: dict[str, Any] = {"ours": ours, "theirs": theirs, "ratio": round(ratio, 3),
                                 "goal": limit, "met": met}  # fmt: skip
        floor = FLOOR_OF.get(ours)
        line = f"{ours} / {theirs}: {ratio:.2f}x overhead (goal ≤ {limit}x) " + (
            "met" if met else "MISSED"
        )
        if floor is not None and floor in overhead:
            entry["floor_ratio"] = round(overhead[floor] / overhead[theirs], 3)
            line += f"; the {floor} alone is {entry['floor_ratio']:.2f}x" + (
                " (the goal is below it)" if entry["floor_ratio"] > limit else ""
            )
        goals.append(entry)
        print(line)
    for ours, theirs, limit in CACHE_GOALS:
        ratio = overhead[ours] / overhead[theirs]
        goals.append({"ours": ours, "theirs": theirs, "ratio": round(ratio, 3), "goal": limit,
                      "met": ratio <= limit, "issue": 16})  # fmt: skip
        print(f"{ours} / {theirs}: {ratio:.2f}x overhead (goal ≤ {limit}x) "
              + ("met" if ratio <= limit else "MISSED"))  # fmt: skip
    for ours, theirs in EXTRA_RATIOS.items():
        print(f"{ours} / {theirs}: {overhead[ours] / overhead[theirs]:.2f}x overhead")
    hit_rates = {name: rate for name, rate in HIT_RATES.items()}
    print("hit rates:", hit_rates)
    if output is None:
        return
    document = {
        "benchmark": "django per-request session overhead",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "results": [
            {
                "name": name,
                "us_per_request": round(medians[name], 2),
                "overhead_us": round(medians[name] - base, 2),
                "best_us": round(min(values), 2),
            }
            for name, values in timings.items()
        ],
        "goals": goals,
        "hit_rates": hit_rates,
        "environment": environment(
            django=django.get_version(),
            **{"redis-py": version("redis")},
            sqlalchemy=version("sqlalchemy"),
        ),
    }
    write_results(document, output)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 repeats x 200 requests")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    repeats, requests = (3, 200) if args.quick else (args.repeats, args.requests)
    from tests import servers

    redis_server = servers.redis_server()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-django-") as tmp:
            workdir = Path(tmp)
            configure(workdir, redis_server.port)
            timings = measure(contestants(workdir, redis_server.port), repeats, requests)
            report(timings, None if args.no_json else args.output)
    finally:
        redis_server.close()


if __name__ == "__main__":
    main()
