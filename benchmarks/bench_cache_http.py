"""The local cache over HTTP, across real worker processes: the staleness window and the
hit rate with 4 uvicorn workers plus one more uvicorn process standing in for another host,
all on one Redis, each process with its own cache (``tests/asgi/cache_app.py``).

Each process is reached through its own keep-alive connections (a connection stays with
the worker that accepted it; ``tests/asgi/cache_workers.py``), so every process can be
asked in turn, as a load balancer would.

Staleness: one reader thread per process sends ``GET /read`` in a loop on its own
connection and notes when each request started and which value it saw. The writer changes
the session ``--trials`` times, each time through the next process (``GET /write?n=N``),
and notes when the response was in. For each trial and each *other* process, the window is
*the start of the last request that still returned the old value, minus the moment the
changing request's response was in*: negative means the old state was gone from that
process before the response reached the client; positive is a stale read after it.

Hit rate: ``--sessions`` sessions, ``--requests`` requests over the 4 workers, 10% of them
changing; random dispatch (each request on a random worker) and session affinity (each
session always on the same worker).

    python benchmarks/bench_cache_http.py                  # 1000 trials, 4000 requests
    python benchmarks/bench_cache_http.py --quick          # 100 trials, 800 requests

Writes ``benchmarks/results/cache/http.json``. Measured, never asserted (exits 0).
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import environment, write_results  # noqa: E402
from tests import servers  # noqa: E402
from tests.asgi.cache_workers import Uvicorn, Worker  # noqa: E402

DEFAULT_OUTPUT = HERE / "results" / "cache" / "http.json"


def staleness(readers: list[Worker], writers: list[Worker], trials: int) -> dict[str, Any]:
    cookie = writers[0].get("/write?n=0", None)["cookie"]
    for reader in readers:  # warm every process
        for _ in range(5):
            assert reader.get("/read", cookie)["n"] == 0
    done = threading.Event()
    seen: list[list[tuple[float, int]]] = [[] for _ in readers]

    def read_loop(index: int) -> None:
        reader, log, clock = readers[index], seen[index], time.monotonic
        while not done.is_set():
            start = clock()
            log.append((start, reader.get("/read", cookie)["n"]))

    threads = [threading.Thread(target=read_loop, args=(i,)) for i in range(len(readers))]
    for thread in threads:
        thread.start()
    replied: dict[int, tuple[float, int]] = {}
    try:
        for n in range(1, trials + 1):
            by = n % len(writers)
            writers[by].get(f"/write?n={n}", cookie)
            replied[n] = (time.monotonic(), by)
            time.sleep(0.004)
        time.sleep(0.05)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    windows: list[float] = []
    per_trial: dict[int, float] = {}
    for index, log in enumerate(seen):
        last_start: dict[int, float] = {}
        for start, value in log:
            last_start[value] = start
        for n, (at, by) in replied.items():
            old = last_start.get(n - 1)
            if by == index or old is None:
                continue
            window = (old - at) * 1e6
            windows.append(window)
            per_trial[n] = max(per_trial.get(n, window), window)
    windows.sort()
    worst = sorted(per_trial.values())

    def pct(values: list[float], p: float) -> float:
        return round(values[min(len(values) - 1, int(p * len(values)))], 1)

    result = {
        "trials": trials, "processes": len(readers), "observations": len(windows),
        "reads": sum(len(log) for log in seen),
        "stale_after_response": sum(1 for w in windows if w > 0),
        "trials_with_a_stale_read_after_response": sum(1 for w in worst if w > 0),
        "window_us": {p: pct(windows, q) for p, q in
                      (("min", 0), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
        "worst_process_per_trial_us": {p: pct(worst, q) for p, q in
                                       (("p50", 0.5), ("p99", 0.99), ("max", 1.0))},
    }  # fmt: skip
    print(f"staleness, {trials} trials x {len(readers) - 1} other processes "
          f"({len(windows)} observations, {result['reads']} reads): last old read started "
          f"{result['window_us']} µs after the changing response; "
          f"{result['stale_after_response']} stale reads after the response")  # fmt: skip
    return result


def hit_rates(workers: list[Worker], host: Worker, sessions: int, requests: int) -> dict[str, Any]:
    rng = random.Random(16)
    cookies = [host.get("/write?n=0", None)["cookie"] for _ in range(sessions)]
    result: dict[str, Any] = {"sessions": sessions, "requests": requests, "change": 0.1}
    for mode in ("random", "affinity"):
        before = [w.get("/stats", None) for w in workers]
        for _ in range(requests):
            i = rng.randrange(sessions)
            worker = workers[i % len(workers)] if mode == "affinity" else rng.choice(workers)
            if rng.random() < 0.1:
                worker.get(f"/write?n={rng.randrange(1000)}", cookies[i])
            else:
                worker.get("/read", cookies[i])
        after = [w.get("/stats", None) for w in workers]
        hits = sum(a["hits"] - b["hits"] for a, b in zip(after, before, strict=True))
        misses = sum(a["misses"] + a["bypassed"] - b["misses"] - b["bypassed"]
                     for a, b in zip(after, before, strict=True))  # fmt: skip
        result[mode] = round(hits / max(1, hits + misses), 3)
        cookies = [host.get("/write?n=0", None)["cookie"] for _ in range(sessions)]  # fresh
    print(f"hit rate, {len(workers)} uvicorn workers, {sessions} sessions, {requests} "
          f"requests, 10% changing: random dispatch {result['random']:.1%}, session "
          f"affinity {result['affinity']:.1%}")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--requests", type=int)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--no-json", action="store_true")
    args = parser.parse_args(argv)
    trials = args.trials or (100 if args.quick else 1000)
    requests = args.requests or (800 if args.quick else 4000)
    redis = servers.redis_server(name="redis-bench-cache-http")
    url = f"redis://127.0.0.1:{redis.port}/0?prefix=http:&cache=on"
    pool: list[Uvicorn] = []
    try:
        pool.append(Uvicorn(url, 4, connections=2))
        pool.append(Uvicorn(url, 1, connections=2))
        held = [c for server in pool for c in server.connections.values()]
        stale = staleness([c[0] for c in held], [c[1] for c in held], trials)
        hits = hit_rates([c[1] for c in pool[0].connections.values()], held[-1][1],
                         args.sessions, requests)  # fmt: skip
    finally:
        for server in pool:
            server.stop()
        redis.close()
    if not args.no_json:
        document = {
            "benchmark": "the local cache over HTTP: 4 uvicorn workers + another host",
            "environment": environment(), "settings": {"trials": trials, "quick": args.quick},
            "staleness": stale, "hit_rates": hits,
        }  # fmt: skip
        write_results(document, args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
