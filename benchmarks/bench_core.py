"""Per-request session cost: sessionkit's core against Flask, Starlette and itsdangerous.

One process, one table. Every contestant runs the same request cycle on the same payload:
read the cookie the previous "request" produced, increment a counter in the session, and
produce the cookie for the next request. Nothing touches the network and no server runs.

    python benchmarks/bench_core.py            # 7 repeats x 20000 cycles per contestant
    python benchmarks/bench_core.py --quick    # ~10x fewer cycles, for CI smoke runs

Results are also written as JSON (``benchmarks/results/core.json`` by default) for the
docs. Speed is measured, never asserted: the script exits 0 whether the goal is met or not.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from base64 import b64decode, b64encode
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cryptography
import flask
import itsdangerous
import starlette
from flask.sessions import SecureCookieSessionInterface
from starlette.middleware.sessions import Session as StarletteSession

import sessionkit
from sessionkit import SessionConfig, SessionEngine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for benchmarks.common, when run as a script

from benchmarks.common import PAYLOAD, SECRET, environment, fresh_payload, write_results  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "core.json"

#: Starlette's default SessionMiddleware max_age (14 days).
STARLETTE_MAX_AGE = 14 * 24 * 60 * 60

#: The project goal: the encrypted cookie cycle costs at most this fraction of
#: itsdangerous's signed-only cycle.
GOAL_RATIO = 0.5


@dataclass
class Contestant:
    key: str
    label: str
    step: Callable[[], None]  # one full request cycle
    counter: Callable[[], int]  # the counter as the *current* cookie carries it


# ==========================================================================================
# contestants
# ==========================================================================================
def sessionkit_contestant(key: str, label: str, store: str, *, sealed: bool = False) -> Contestant:
    """engine.open → read + increment → engine.commit → engine.run → next cookie."""
    engine = SessionEngine(SessionConfig(secret_key=SECRET, store=store, encrypt_records=sealed))
    name = engine.config.cookie_name

    first = engine.open(None)
    first.update(fresh_payload())
    plan = engine.commit(first, 200)
    engine.run(plan)
    assert plan.set_cookie is not None
    cookie = plan.set_cookie.split(";", 1)[0]  # what the browser sends back: name=value

    def step() -> None:
        nonlocal cookie
        s = engine.open(cookie)
        s["n"] = s.get("n", 0) + 1
        plan = engine.commit(s, 200)
        engine.run(plan)
        cookie = plan.set_cookie.split(";", 1)[0]  # type: ignore[union-attr]

    def counter() -> int:
        assert cookie.startswith(name + "=")
        value: int = engine.open(cookie).get("n", -1)
        return value

    return Contestant(key, label, step, counter)


def flask_contestant() -> Contestant:
    """What Flask's SecureCookieSessionInterface does per request (open_session and
    save_session), minus the werkzeug cookie parsing and Set-Cookie formatting."""
    app = flask.Flask("bench")
    app.secret_key = SECRET
    interface = SecureCookieSessionInterface()
    max_age = int(app.permanent_session_lifetime.total_seconds())
    serializer = interface.get_signing_serializer(app)
    assert serializer is not None
    cookie = serializer.dumps(fresh_payload())

    def step() -> None:
        nonlocal cookie
        # open_session: a serializer per call, loads with max_age, wrap in the session class
        s = interface.get_signing_serializer(app)
        session = interface.session_class(s.loads(cookie, max_age=max_age))  # type: ignore[union-attr]
        session["n"] = session.get("n", 0) + 1
        # save_session: a serializer per call again, dumps a plain dict copy
        cookie = interface.get_signing_serializer(app).dumps(dict(session))  # type: ignore[union-attr]

    def counter() -> int:
        value: int = serializer.loads(cookie, max_age=max_age).get("n", -1)
        return value

    return Contestant("flask", "Flask SecureCookieSession", step, counter)


def starlette_contestant() -> Contestant:
    """starlette.middleware.sessions.SessionMiddleware's load and save, written inline."""
    signer = itsdangerous.TimestampSigner(str(SECRET))
    cookie = signer.sign(b64encode(json.dumps(fresh_payload()).encode("utf-8"))).decode("utf-8")

    def step() -> None:
        nonlocal cookie
        # request: connection.cookies[...].encode("utf-8") → unsign → b64decode → json.loads
        data = signer.unsign(cookie.encode("utf-8"), max_age=STARLETTE_MAX_AGE)
        session = StarletteSession(json.loads(b64decode(data)))
        session["n"] = session.get("n", 0) + 1
        # response: json.dumps → b64encode → sign → decode for the header
        data = b64encode(json.dumps(session).encode("utf-8"))
        cookie = signer.sign(data).decode("utf-8")

    def counter() -> int:
        raw = signer.unsign(cookie.encode("utf-8"), max_age=STARLETTE_MAX_AGE)
        value: int = json.loads(b64decode(raw)).get("n", -1)
        return value

    return Contestant("starlette", "Starlette SessionMiddleware", step, counter)


def itsdangerous_contestant() -> Contestant:
    """The baseline the project goal names: URLSafeTimedSerializer loads → dumps."""
    serializer = itsdangerous.URLSafeTimedSerializer(SECRET)
    cookie = serializer.dumps(fresh_payload())

    def step() -> None:
        nonlocal cookie
        data = serializer.loads(cookie)
        data["n"] = data.get("n", 0) + 1
        cookie = serializer.dumps(data)

    def counter() -> int:
        value: int = serializer.loads(cookie).get("n", -1)
        return value

    return Contestant("itsdangerous", "itsdangerous URLSafeTimedSerializer", step, counter)


def contestants() -> list[Contestant]:
    return [
        sessionkit_contestant("sessionkit_cookie", "sessionkit cookie:// (AES-GCM)", "cookie://"),
        sessionkit_contestant("sessionkit_memory", "sessionkit memory://", "memory://"),
        sessionkit_contestant(
            "sessionkit_sealed", "sessionkit memory:// + encrypt_records", "memory://", sealed=True
        ),
        flask_contestant(),
        starlette_contestant(),
        itsdangerous_contestant(),
    ]


# ==========================================================================================
# measuring
# ==========================================================================================
def run_cycles(step: Callable[[], None], iterations: int) -> float:
    """Microseconds per cycle over ``iterations`` back-to-back cycles."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        step()
    return (time.perf_counter_ns() - start) / iterations / 1000.0


def check_chain(contestant: Contestant, cycles: int) -> None:
    """Each cycle must really read the previous cookie: the counter goes up by exactly one
    per cycle. Guards against benchmarking a rejected-cookie fast path."""
    before = contestant.counter()
    for _ in range(cycles):
        contestant.step()
    after = contestant.counter()
    if after != before + cycles:
        raise SystemExit(
            f"{contestant.label}: counter went {before} -> {after} over {cycles} cycles; "
            "the cookie chain is broken, so the numbers would be meaningless"
        )


def measure(
    field: list[Contestant], repeats: int, iterations: int, warmup: int, collect_gc: bool
) -> dict[str, list[float]]:
    for contestant in field:
        check_chain(contestant, warmup)
    samples: dict[str, list[float]] = {c.key: [] for c in field}
    for repeat in range(repeats):
        # Rotate the order each repeat so slow drift (thermal, other load) is spread evenly.
        shift = repeat % len(field)
        for contestant in field[shift:] + field[:shift]:
            gc.collect()
            if not collect_gc:
                gc.disable()
            try:
                samples[contestant.key].append(run_cycles(contestant.step, iterations))
            finally:
                gc.enable()
    for contestant in field:
        check_chain(contestant, 10)
    return samples


# ==========================================================================================
# reporting
# ==========================================================================================
RATIOS = [
    ("sessionkit cookie / itsdangerous", "sessionkit_cookie", "itsdangerous"),
    ("sessionkit cookie / Flask", "sessionkit_cookie", "flask"),
    ("sessionkit cookie / Starlette", "sessionkit_cookie", "starlette"),
    ("sessionkit memory / Starlette", "sessionkit_memory", "starlette"),
    ("sessionkit encrypt_records / memory", "sessionkit_sealed", "sessionkit_memory"),
]


def report(
    field: list[Contestant],
    samples: dict[str, list[float]],
    args: argparse.Namespace,
    output: Path | None,
) -> None:
    median = {key: statistics.median(values) for key, values in samples.items()}
    best = {key: min(values) for key, values in samples.items()}
    base = median["itsdangerous"]

    print(
        f"sessionkit {sessionkit.__version__} | Python {platform.python_version()} "
        f"({platform.python_implementation()}) on {platform.machine()} | "
        f"flask {_version('flask')}, "
        f"starlette {starlette.__version__}, itsdangerous {_version('itsdangerous')}, "
        f"cryptography {cryptography.__version__}"
    )
    print(
        f"{args.repeats} repeats x {args.iterations} cycles each (median of repeats; "
        f"best shown for reference), GC {'enabled' if args.gc else 'disabled'} while timing\n"
    )
    width = max(len(c.label) for c in field)
    header = f"{'contestant':<{width}}  {'µs/cycle':>9}  {'best':>8}  {'vs itsdangerous':>15}"
    print(header)
    print("-" * len(header))
    for c in field:
        print(
            f"{c.label:<{width}}  {median[c.key]:>9.2f}  {best[c.key]:>8.2f}  "
            f"{median[c.key] / base:>14.2f}x"
        )
    print()

    ratios: dict[str, float] = {}
    for label, top, bottom in RATIOS:
        ratios[label] = median[top] / median[bottom]
        print(f"{label:<34} {ratios[label]:6.2f}x")

    goal_ratio = ratios["sessionkit cookie / itsdangerous"]
    met = goal_ratio <= GOAL_RATIO
    print(
        f"\nGoal (encrypted cookie cycle <= {GOAL_RATIO:g} x itsdangerous signed-only cycle): "
        f"{'MET' if met else 'NOT MET'} ({goal_ratio:.2f}x; "
        f"{median['sessionkit_cookie']:.2f} µs vs a target of "
        f"{GOAL_RATIO * base:.2f} µs)"
    )

    more = median["sessionkit_sealed"] - median["sessionkit_memory"]
    print(
        f"encrypt_records: {more:+.2f} µs per cycle over memory:// (issue 17 goal: <= 5 µs): "
        f"{'MET' if more <= 5 else 'NOT MET'}"
    )

    if output is None:
        return
    document = {
        "benchmark": "core request cycle",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(
            flask=_version("flask"),
            starlette=starlette.__version__,
            itsdangerous=_version("itsdangerous"),
            cryptography=cryptography.__version__,
        ),
        "settings": {
            "repeats": args.repeats,
            "iterations": args.iterations,
            "quick": args.quick,
            "gc_enabled": args.gc,
            "statistic": "median of repeats",
            "payload": PAYLOAD | {"csrf_token": "<43 random characters>"},
        },
        "results": [
            {
                "name": c.key,
                "label": c.label,
                "us_per_cycle": round(median[c.key], 3),
                "best_us_per_cycle": round(best[c.key], 3),
                "repeats_us_per_cycle": [round(v, 3) for v in samples[c.key]],
                "vs_itsdangerous": round(median[c.key] / base, 3),
            }
            for c in field
        ],
        "ratios": [{"name": label, "value": round(value, 3)} for label, value in ratios.items()],
        "goal": {
            "description": "sessionkit cookie cycle <= 0.5 x itsdangerous signed-only cycle",
            "target_ratio": GOAL_RATIO,
            "ratio": round(goal_ratio, 3),
            "met": met,
        },
    }
    write_results(document, output)


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="~10x fewer cycles (CI smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7)")
    parser.add_argument(
        "--iterations", type=int, default=None,
        help="cycles per repeat (default 20000, 2000 with --quick)",
    )  # fmt: skip
    parser.add_argument(
        "--no-gc", dest="gc", action="store_false",
        help="disable the garbage collector while timing (timeit style); default: enabled, "
        "as in a real server",
    )  # fmt: skip
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT,
        help=f"JSON results file (default: {_shown(DEFAULT_OUTPUT)})",
    )  # fmt: skip
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 7
    if args.iterations is None:
        args.iterations = 2_000 if args.quick else 20_000
    if args.repeats < 1 or args.iterations < 1:
        parser.error("--repeats and --iterations must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    field = contestants()
    warmup = max(200, args.iterations // 10)
    samples = measure(field, args.repeats, args.iterations, warmup, args.gc)
    report(field, samples, args, None if args.no_json else args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
