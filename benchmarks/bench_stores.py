"""Per-request cost of the server-side stores, beside the raw client doing the minimum.

One process, one table. Two request cycles per store, driven through the engine exactly as
an adapter drives it:

- read-only: ``engine.open(cookie)`` → read a key (this loads) → ``commit`` → ``run``;
- changing:  ``engine.open(cookie)`` → ``s["n"] += 1`` → ``commit`` → ``run``.

Each store row names a *floor*: the raw client doing the least a server-side session could
do (for Redis: redis-py ``GET`` for a read, ``GET`` + ``SET EX`` for a change, on a value as
big as our session). The script starts its own ``redis-server`` on a free loopback port.

    python benchmarks/bench_stores.py            # 5 repeats x 2000 cycles per row
    python benchmarks/bench_stores.py --quick    # 3 x 300, a smoke run

Adding a store is one ``StoreCase`` in ``store_cases()`` (and a ``Floor`` if its raw client
is not there yet). Results go to ``benchmarks/results/stores.json``. Speed is measured,
never asserted: the script exits 0 whether the goal is met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import platform
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

import redis  # noqa: E402
import redis.asyncio  # noqa: E402

import sessionkit  # noqa: E402
from sessionkit import SessionConfig, SessionEngine  # noqa: E402
from sessionkit.stores.base import Store  # noqa: E402
from sessionkit.stores.memory import MemoryStore  # noqa: E402
from sessionkit.stores.redis import RedisStore  # noqa: E402
from tests import servers  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "stores.json"
SECRET = secrets.token_urlsafe(36)
PAYLOAD: dict[str, Any] = {
    "user_id": 48213,
    "csrf_token": secrets.token_urlsafe(32),
    "n": 0,
    "recent": ["/", "/products/17", "/cart"],
}
GOAL_RATIO = 1.3
KINDS = ("read", "change")

SyncStep = Callable[[], None]
AsyncStep = Callable[[], Awaitable[None]]


# ==========================================================================================
# resources: servers started on demand, stopped at the end
# ==========================================================================================
class Resources:
    """Servers the rows need, started once and closed when the run ends."""

    def __init__(self) -> None:
        self._redis: servers.Server | None = None
        self._stats: redis.Redis | None = None
        self.loop = asyncio.new_event_loop()

    def redis_port(self) -> int:
        if self._redis is None:
            self._redis = servers.redis_server(name="redis-bench")
        return self._redis.port

    def redis_stats(self) -> redis.Redis:
        """One connection kept for INFO, so counting adds no connection handshakes."""
        if self._stats is None:
            self._stats = redis.Redis(port=self.redis_port())
        return self._stats

    def close(self) -> None:
        self.loop.close()
        if self._stats is not None:
            self._stats.close()
        if self._redis is not None:
            self._redis.close()


# ==========================================================================================
# the table: floors and stores
# ==========================================================================================
@dataclass
class Floor:
    """The raw client doing the minimum: one step per kind, sync and (optionally) async."""

    name: str
    label: str
    make: Callable[[Resources], dict[str, SyncStep]]
    amake: Callable[[Resources], dict[str, AsyncStep]] | None = None


@dataclass
class StoreCase:
    """One store in the table. ``make`` returns a fresh store; ``commands`` (optional)
    returns the server's running command count, for "commands per request"."""

    name: str
    label: str
    make: Callable[[Resources], Store]
    floor: str | None = None
    asynchronous: bool = True
    commands: Callable[[Resources], int] | None = None
    notes: list[str] = field(default_factory=list)


def redis_floor(res: Resources) -> dict[str, SyncStep]:
    client = redis.Redis(port=res.redis_port())
    key, value = "bench:floor:" + secrets.token_hex(8), json.dumps(PAYLOAD)
    client.set(key, value, ex=600)

    def read() -> None:
        client.get(key)

    def change() -> None:
        client.get(key)
        client.set(key, value, ex=600)

    return {"read": read, "change": change}


def redis_afloor(res: Resources) -> dict[str, AsyncStep]:
    client = redis.asyncio.Redis(port=res.redis_port())
    key, value = "bench:afloor:" + secrets.token_hex(8), json.dumps(PAYLOAD)
    res.loop.run_until_complete(client.set(key, value, ex=600))

    async def read() -> None:
        await client.get(key)

    async def change() -> None:
        await client.get(key)
        await client.set(key, value, ex=600)

    return {"read": read, "change": change}


def redis_commands(res: Resources) -> int:
    """Commands the server executed so far (INFO commandstats), scripts' calls included."""
    stats = res.redis_stats().info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values()) - 1  # not this INFO


def floors() -> list[Floor]:
    return [Floor("redis-py", "redis-py GET / GET+SET EX", redis_floor, redis_afloor)]


def store_cases() -> list[StoreCase]:
    return [
        StoreCase("memory", "MemoryStore", lambda res: MemoryStore()),
        StoreCase(
            "redis",
            "RedisStore (redis://)",
            lambda res: RedisStore.from_url(
                f"redis://127.0.0.1:{res.redis_port()}/0", prefix="bench:"
            ),
            floor="redis-py",
            commands=redis_commands,
        ),
    ]


# ==========================================================================================
# request cycles through the engine
# ==========================================================================================
def engine_steps(store: Store) -> tuple[dict[str, SyncStep], dict[str, AsyncStep]]:
    engine = SessionEngine(SessionConfig(secret_key=SECRET), store=store)
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

    async def aread() -> None:
        s = engine.open(cookie)
        await engine.aload(s)
        assert s.get("user_id") == PAYLOAD["user_id"]
        await engine.arun(engine.commit(s, 200))

    async def achange() -> None:
        s = engine.open(cookie)
        await engine.aload(s)
        s["n"] = s.get("n", 0) + 1
        assert await engine.arun(engine.commit(s, 200))

    return {"read": read, "change": change}, {"read": aread, "change": achange}


@dataclass
class Row:
    """One line of the table: a store (or floor), a kind of request, a flavour."""

    name: str
    label: str
    kind: str
    flavour: str
    floor: str | None
    step: SyncStep | None = None
    astep: AsyncStep | None = None
    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    round_trips: float | None = None
    commands: float | None = None

    def run(self, loop: asyncio.AbstractEventLoop, iterations: int) -> tuple[float, float]:
        """Wall-clock and this process's CPU time per cycle, in µs."""
        if self.step is not None:
            step = self.step
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(iterations):
                step()
        else:
            astep = self.astep
            assert astep is not None

            async def cycles() -> None:
                for _ in range(iterations):
                    await astep()

            start, cpu = time.perf_counter(), time.process_time()
            loop.run_until_complete(cycles())
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        return wall / iterations * 1e6, cpu / iterations * 1e6

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


@contextlib.contextmanager
def counting_round_trips() -> Any:
    """Count redis-py packets written (one per round trip) while the block runs."""
    sent = [0]
    sync_cls: Any = redis.connection.AbstractConnection
    async_cls: Any = redis.asyncio.connection.AbstractConnection
    sync_send, async_send = sync_cls.send_packed_command, async_cls.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        sync_send(self, command, check_health)

    async def acounted(self: Any, command: Any, check_health: bool = True) -> None:
        sent[0] += 1
        await async_send(self, command, check_health)

    sync_cls.send_packed_command = counted
    async_cls.send_packed_command = acounted
    try:
        yield sent
    finally:
        sync_cls.send_packed_command = sync_send
        async_cls.send_packed_command = async_send


def build_rows(res: Resources, with_async: bool) -> list[Row]:
    rows: list[Row] = []
    for floor in floors():
        steps = floor.make(res)
        rows += [Row(floor.name, floor.label, k, "sync", None, step=steps[k]) for k in KINDS]
        if with_async and floor.amake is not None:
            asteps = floor.amake(res)
            rows += [Row(floor.name, floor.label, k, "async", None, astep=asteps[k])
                     for k in KINDS]  # fmt: skip
    for case in store_cases():
        sync_steps, async_steps = engine_steps(case.make(res))
        flavours = ("sync", "async") if with_async and case.asynchronous else ("sync",)
        for flavour in flavours:
            for kind in KINDS:
                row = Row(case.name, case.label, kind, flavour, case.floor)
                if flavour == "sync":
                    row.step = sync_steps[kind]
                else:
                    row.astep = async_steps[kind]
                count(row, res, case)
                rows.append(row)
    return rows


def count(row: Row, res: Resources, case: StoreCase, cycles: int = 50) -> None:
    """Round trips and server commands per request, measured outside the timed runs."""
    row.run(res.loop, 5)  # warm up: connections, script cache
    before = case.commands(res) if case.commands else 0
    with counting_round_trips() as sent:
        row.run(res.loop, cycles)
    if case.commands is not None:
        row.commands = (case.commands(res) - before) / cycles
        row.round_trips = sent[0] / cycles


# ==========================================================================================
# running and reporting
# ==========================================================================================
def measure(
    rows: list[Row], loop: asyncio.AbstractEventLoop, repeats: int, iterations: int
) -> None:
    for row in rows:
        row.run(loop, max(iterations // 10, 10))  # warm up
    for repeat in range(repeats):
        shift = repeat % len(rows)
        for row in rows[shift:] + rows[:shift]:  # rotate the order to spread drift
            wall, cpu = row.run(loop, iterations)
            row.samples.append(wall)
            row.cpu.append(cpu)


def ratio(row: Row, rows: list[Row]) -> float | None:
    if row.floor is None:
        return None
    for other in rows:
        if (other.name, other.kind, other.flavour) == (row.floor, row.kind, row.flavour):
            return row.median / other.median
    return None


def report(rows: list[Row], args: argparse.Namespace) -> dict[str, Any]:
    print(
        f"sessionkit {sessionkit.__version__} | Python {platform.python_version()} | "
        f"redis-py {redis.__version__} | {args.repeats} repeats x {args.iterations} cycles"
    )
    header = f"{'store':<26} {'request':<8} {'flavour':<7} {'µs/req':>8} {'best':>8} " \
             f"{'cpu µs':>8} {'x floor':>8} {'trips':>6} {'cmds':>6}"  # fmt: skip
    print(header)
    print("-" * len(header))
    results = []
    for row in rows:
        r = ratio(row, rows)
        trips = f"{row.round_trips:.2f}" if row.round_trips is not None else "-"
        cmds = f"{row.commands:.2f}" if row.commands is not None else "-"
        shown = f"{r:.2f}" if r is not None else "-"
        cpu = statistics.median(row.cpu)
        print(f"{row.label:<26} {row.kind:<8} {row.flavour:<7} {row.median:>8.1f} "
              f"{min(row.samples):>8.1f} {cpu:>8.1f} {shown:>8} {trips:>6} {cmds:>6}")  # fmt: skip
        results.append({
            "name": row.name, "label": row.label, "request": row.kind, "flavour": row.flavour,
            "us_per_request": round(row.median, 2), "best_us": round(min(row.samples), 2),
            "client_cpu_us": round(cpu, 2),
            "floor": row.floor, "ratio_to_floor": round(r, 3) if r is not None else None,
            "round_trips_per_request": row.round_trips, "commands_per_request": row.commands,
        })  # fmt: skip
    judged = [r for r in (ratio(row, rows) for row in rows) if r is not None]
    met = all(r <= GOAL_RATIO for r in judged)
    print(f"\ngoal: every store within {GOAL_RATIO}x of its raw client's floor: "
          f"{'met' if met else 'NOT met'}")  # fmt: skip
    print(
        "trips: round trips to Redis per request (packets redis-py sent); cmds: commands "
        "Redis executed per request (INFO commandstats; a script's own calls included)"
    )
    return {
        "benchmark": "store request cycle",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "environment": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "platform": platform.platform(),
            "sessionkit": sessionkit.__version__,
            "redis-py": redis.__version__,
        },
        "repeats": args.repeats,
        "iterations": args.iterations,
        "goal": {"ratio": GOAL_RATIO, "met": met},
        "results": results,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3 x 300 cycles (smoke run)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats (default 5)")
    parser.add_argument("--iterations", type=int, default=None, help="cycles per repeat")
    parser.add_argument("--no-async", action="store_true", help="sync rows only")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON file")
    parser.add_argument("--no-json", action="store_true", help="do not write the JSON file")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.iterations = args.iterations or (300 if args.quick else 2000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    res = Resources()
    try:
        rows = build_rows(res, with_async=not args.no_async)
        measure(rows, res.loop, args.repeats, args.iterations)
        document = report(rows, args)
    finally:
        res.close()
    if not args.no_json:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(document, indent=2) + "\n", "utf-8")
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
