"""The local cache in front of Redis (``?cache=``): request cost warm and cold, round trips,
hit rate, and the staleness window across processes.

Request cycles are driven through the engine as an adapter drives them (as in
``bench_stores.py``):

- read-only: ``engine.open(cookie)`` → read a key (this loads) → ``commit`` → ``run``;
- changing:  ``engine.open(cookie)`` → ``s["n"] += 1`` → ``commit`` → ``run``.

Rows: ``memory://``, Redis without the cache, Redis with the cache warm, and the bare
redis-py floor (``GET``; ``GET`` + ``SET EX``). Round trips are counted in untimed cycles
(redis-py packets, the invalidation connection's PINGs left out).

Staleness: one writer process (standing in for another host) changes a session ``--trials``
times through its own store; ``--readers`` reader processes, each with a warm cache, read
that session in a tight loop and note when each read started and what it saw. For every
trial the window is *the start of the last read that still returned the old value, minus
the moment the writer's save returned*: negative means the old state was gone everywhere
before the changing request's response existed; positive is a stale read served after it.
All processes share CLOCK_MONOTONIC (Linux: one clock per machine).

    python benchmarks/bench_cache.py            # 5 repeats x 2000 cycles, 1000 trials
    python benchmarks/bench_cache.py --quick    # 3 x 300, 200 trials

The script starts its own redis-server on a free loopback port. Speed is measured, never
asserted: it exits 0 whatever the figures are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

import redis  # noqa: E402
import redis.connection  # noqa: E402

from benchmarks.common import PAYLOAD, SECRET, environment, write_results  # noqa: E402
from sessionkit import SessionConfig, SessionEngine  # noqa: E402
from sessionkit.serialization import dumps_plain  # noqa: E402
from sessionkit.stores import open_store  # noqa: E402
from sessionkit.stores.base import Store  # noqa: E402
from sessionkit.stores.cache import CachingStore  # noqa: E402
from sessionkit.stores.memory import MemoryStore  # noqa: E402
from tests import servers  # noqa: E402

Step = Callable[[], None]


def engine_steps(store: Store) -> tuple[dict[str, Step], SessionEngine]:
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

    return {"read": read, "change": change}, engine


def floor_steps(port: int) -> dict[str, Step]:
    client = redis.Redis(port=port)
    value = dumps_plain(PAYLOAD).encode()
    client.set("floor", value)

    def read() -> None:
        assert client.get("floor") is not None

    def change() -> None:
        client.get("floor")
        client.set("floor", value, ex=3600)

    return {"read": read, "change": change}


@contextlib.contextmanager
def counting() -> Iterator[list[str]]:
    sent: list[str] = []
    cls: Any = redis.connection.AbstractConnection
    original = cls.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> Any:
        first = command if isinstance(command, bytes) else b"".join(command)
        sent.append(first.split(b"\r\n")[2].decode().upper())
        return original(self, command, check_health)

    cls.send_packed_command = counted
    try:
        yield sent
    finally:
        cls.send_packed_command = original


def timed(step: Step, iterations: int, repeats: int) -> float:
    for _ in range(min(iterations, 200)):  # warm up (and fill the cache)
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(iterations):
            step()
        samples.append((time.perf_counter() - start) / iterations * 1e6)
    return statistics.median(samples)


def requests(port: int, iterations: int, repeats: int) -> list[dict[str, Any]]:
    url = f"redis://127.0.0.1:{port}/0?prefix=bench:"
    cached = open_store(url + "&cache=on")
    assert isinstance(cached, CachingStore) and cached.source.wait_live(5.0)
    cold = open_store(url + "&cache=on")
    assert isinstance(cold, CachingStore) and cold.source.wait_live(5.0)
    cold_read = engine_steps(cold)[0]["read"]

    def cold_step() -> None:  # every read a miss: the cache's bookkeeping on top of Redis
        cold.cache.flush("cold row")
        cold_read()

    contestants: list[tuple[str, dict[str, Step], Any]] = [
        ("memory://", engine_steps(MemoryStore())[0], None),
        ("redis://", engine_steps(open_store(url))[0], None),
        ("redis://?cache=on (warm)", engine_steps(cached)[0], cached),
        ("redis://?cache=on (cold)", {"read": cold_step}, cold),
        ("redis-py floor", floor_steps(port), None),
    ]
    rows = []
    for name, steps, store in contestants:
        for kind, step in steps.items():
            before = dict(store.stats()) if store is not None else {}
            micros = timed(step, iterations, repeats)
            with counting() as sent:
                for _ in range(100):
                    step()
            trips = len([s for s in sent if s != "PING"]) / 100
            row: dict[str, Any] = {"name": name, "kind": kind, "us": round(micros, 1),
                                   "round_trips": trips}  # fmt: skip
            if store is not None:
                after = store.stats()
                hits = after["hits"] - before["hits"]
                misses = after["misses"] - before["misses"] + after["bypassed"] - before["bypassed"]
                row["hit_rate"] = round(hits / max(1, hits + misses), 3)
            rows.append(row)
            print(f"{name:28} {kind:7} {micros:8.1f} µs  {trips:4.1f} round trips"
                  + (f"  hit rate {row['hit_rate']:.0%}" if "hit_rate" in row else ""))  # fmt: skip
    return rows


# -- staleness across processes -----------------------------------------------------------
READER = """
import json, sys, time
from sessionkit.stores import open_store
store = open_store(sys.argv[1])
digest, seconds = sys.argv[2], float(sys.argv[3])
assert store.source.wait_live(5.0)
store.load(digest)
print("ready", flush=True)
sys.stdin.readline()
last_start = {}
clock, load = time.monotonic, store.load
end = clock() + seconds
while True:
    start = clock()
    if start > end:
        break
    record = load(digest)
    value = -1 if record is None else int(record.items["n"])
    last_start[value] = start
    if value == -2:
        break
print(json.dumps({"last_start": last_start, "stats": store.stats()}), flush=True)
"""


def staleness(port: int, trials: int, readers: int) -> dict[str, Any]:
    from sessionkit.ids import digest, new_id
    from sessionkit.stores.base import RecordMeta, Write

    url = f"redis://127.0.0.1:{port}/0?prefix=stale:"
    writer = open_store(url)  # another host: no cache of its own
    key = digest(new_id())
    now = int(time.time())
    meta = RecordMeta(now, now)
    writer.save(Write(key, {"n": "0"}, frozenset(), meta, 3600.0, create=True, replace=True))
    pause = 0.002
    seconds = trials * (pause + 0.001) + 3.0
    argv = [sys.executable, "-c", READER, url + "&cache=on", key, str(seconds)]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
    procs = [subprocess.Popen(argv, **pipes) for _ in range(readers)]  # type: ignore[call-overload]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    time.sleep(0.2)
    replied: dict[int, float] = {}
    for n in range(1, trials + 1):
        writer.save(Write(key, {"n": str(n)}, frozenset(), meta, 3600.0))
        replied[n] = time.monotonic()
        time.sleep(pause)
    windows: list[float] = []
    stats = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 30)
        report = json.loads(out.strip().splitlines()[-1])
        last_start = {int(k): v for k, v in report["last_start"].items()}
        stats.append(report["stats"])
        for n in range(1, trials + 1):
            old = last_start.get(n - 1)
            if old is not None:
                windows.append((old - replied[n]) * 1e6)
    windows.sort()

    def pct(p: float) -> float:
        return round(windows[min(len(windows) - 1, int(p * len(windows)))], 1)

    result = {
        "trials": trials, "readers": readers, "observations": len(windows),
        "stale_after_reply": sum(1 for w in windows if w > 0),
        "min_us": pct(0), "p50_us": pct(0.5), "p90_us": pct(0.9), "p99_us": pct(0.99),
        "max_us": round(windows[-1], 1) if windows else None,
        "reader_hit_rate": [round(s["hits"] / max(1, s["hits"] + s["misses"]), 3)
                            for s in stats],
    }  # fmt: skip
    print(
        f"\nstaleness over {trials} trials x {readers} reader processes "
        f"({len(windows)} observations): last stale read started "
        f"min {result['min_us']} / p50 {result['p50_us']} / p90 {result['p90_us']} / "
        f"p99 {result['p99_us']} / max {result['max_us']} µs after the writer's reply; "
        f"{result['stale_after_reply']} stale reads started after the reply; "
        f"reader hit rates {result['reader_hit_rate']}"
    )
    writer.close()
    return result


WORKER = """
import json, random, sys
from sessionkit import SessionConfig, SessionEngine
from sessionkit.stores import open_store
url, secret, mine, count, change, seed = sys.argv[1:7]
cookies = json.loads(sys.stdin.readline())
store = open_store(url)
assert store.source.wait_live(5.0)
engine = SessionEngine(SessionConfig(secret_key=secret), store=store)
pick, rng = [cookies[int(i)] for i in mine.split(",")], random.Random(int(seed))
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(count)):
    s = engine.open(rng.choice(pick))
    if rng.random() < float(change):
        s["n"] = s.get("n", 0) + 1
    else:
        s.get("user_id")
    engine.run(engine.commit(s, 200))
print(json.dumps(store.stats()), flush=True)
"""


def hit_rates(port: int, workers: int, sessions: int, count: int, change: float) -> dict[str, Any]:
    """``workers`` processes share ``sessions`` sessions; each serves ``count`` requests, a
    fraction ``change`` of them changing. Random dispatch: every worker sees every session;
    affinity: each session is served by one worker (``i % workers``)."""
    url = f"redis://127.0.0.1:{port}/0?prefix=hits:"
    plain = open_store(url)
    engine = SessionEngine(SessionConfig(secret_key=SECRET), store=plain)
    cookies = []
    for _ in range(sessions):
        first = engine.open(None)
        first.update(PAYLOAD)
        plan = engine.commit(first, 200)
        engine.run(plan)
        assert plan.set_cookie is not None
        cookies.append(plan.set_cookie.split(";", 1)[0])
    plain.close()
    result: dict[str, Any] = {}
    for mode in ("random", "affinity"):
        procs = []
        for w in range(workers):
            mine = range(sessions) if mode == "random" else range(w, sessions, workers)
            argv = [sys.executable, "-c", WORKER, url + "&cache=on", SECRET,
                    ",".join(map(str, mine)), str(count), str(change), str(w)]  # fmt: skip
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
            proc = subprocess.Popen(argv, **pipes)  # type: ignore[call-overload]
            proc.stdin.write(json.dumps(cookies) + "\n")
            proc.stdin.flush()
            procs.append(proc)
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        hits = misses = 0
        for proc in procs:
            out, _ = proc.communicate(timeout=600)
            stats = json.loads(out.strip().splitlines()[-1])
            hits += stats["hits"]
            misses += stats["misses"] + stats["bypassed"]
        result[mode] = round(hits / max(1, hits + misses), 3)
    print(f"\nhit rate, {workers} worker processes, {sessions} sessions, {count} requests "
          f"each, {change:.0%} changing: random dispatch {result['random']:.1%}, "
          f"session affinity {result['affinity']:.1%}")  # fmt: skip
    return {"workers": workers, "sessions": sessions, "requests": count, "change": change,
            **result}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    iterations, repeats = (300, 3) if args.quick else (2000, 5)
    trials = args.trials or (200 if args.quick else 1000)
    server = servers.redis_server(name="redis-bench-cache")
    try:
        rows = requests(server.port, iterations, repeats)
        stale = staleness(server.port, trials, args.readers)
        hits = hit_rates(server.port, 4, 200, 500 if args.quick else 2000, 0.1)
    finally:
        server.close()
    if args.json is not None:
        document = {"environment": environment(redis=redis.__version__), "rows": rows,
                    "staleness": stale, "hit_rates": hits}  # fmt: skip
        write_results(document, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
