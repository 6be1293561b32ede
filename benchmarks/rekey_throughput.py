"""How fast ``sessionkit rekey`` (``engine.rekey()``) re-seals a store after a key rotation.

Fills each store with N sessions of three values sealed under the old key (written with
``Store.save`` directly, untimed), then times ``engine.rekey()`` on an engine whose keys are
``[new, old]``: per record one read (``load_fresh``) and one ``Store.reseal`` (a Lua script
on Redis, a short transaction on SQL, a locked rewrite for files). Starts its own
redis-server and PostgreSQL on free loopback ports (tests/servers.py).

    python benchmarks/rekey_throughput.py                  # 10,000 records per store
    python benchmarks/rekey_throughput.py --records 2000 --only redis,postgresql

Not a ``bench_*.py``: it prints its table and writes no results file (``make bench`` and the
benchmarks page do not include it). Speed is measured, never asserted.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

from sessionkit import SessionConfig, SessionEngine, open_store, sealing  # noqa: E402
from sessionkit.crypto import Keyring  # noqa: E402
from sessionkit.ids import digest, new_id  # noqa: E402
from sessionkit.records import RecordMeta, Write  # noqa: E402
from sessionkit.stores.base import Store  # noqa: E402
from tests import servers  # noqa: E402

OLD, NEW = secrets.token_urlsafe(48), secrets.token_urlsafe(48)
KINDS = ("memory", "file", "sqlite", "postgresql", "redis")


def fill(store: Store, count: int) -> None:
    keyring = Keyring((OLD.encode(),))
    now = int(time.time())
    meta = RecordMeta(created=now, last_seen=now)
    for n in range(count):
        key = digest(new_id())
        plain = {"n": str(n), "card": f'"card {n}"', "cart": '["book"]'}
        items = sealing.seal_items(keyring, key, plain)
        assert store.save(Write(key, items, frozenset(), meta, 3600.0, create=True, replace=True))


def measure(store: Store, count: int) -> tuple[float, int]:
    fill(store, count)
    engine = SessionEngine(SessionConfig(secret_key=[NEW, OLD], encrypt_records=True), store=store)
    started = time.perf_counter()
    report = engine.rekey()
    took = time.perf_counter() - started
    assert report.seen == count and report.resealed == 3 * count, report
    return took, report.resealed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--only", default=",".join(KINDS), help="comma-separated store kinds")
    args = parser.parse_args(argv)
    kinds = [k for k in args.only.split(",") if k]
    redis = servers.redis_server(name="redis-rekey") if "redis" in kinds else None
    postgres = servers.postgres_server() if "postgresql" in kinds else None
    print(f"rekey of {args.records} records (3 values each), keys [new, old]")
    print(f"{'store':<12} {'seconds':>8} {'records/s':>10} {'µs/record':>10}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for kind in kinds:
                url = {
                    "memory": f"memory://?max_sessions={args.records}",
                    "file": f"file://{tmp}/files?fsync=false",
                    "sqlite": f"sqlite:///{tmp}/sessions.sqlite3",
                    "postgresql": f"{postgres.url}?table=rekey" if postgres else "",
                    "redis": f"redis://127.0.0.1:{redis.port}/0" if redis else "",
                }[kind]
                store = open_store(url)
                try:
                    took, _ = measure(store, args.records)
                finally:
                    store.close()
                rate = args.records / took
                print(f"{kind:<12} {took:>8.2f} {rate:>10.0f} {1e6 / rate:>10.0f}")
    finally:
        for server in (redis, postgres):
            if server is not None:
                server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
