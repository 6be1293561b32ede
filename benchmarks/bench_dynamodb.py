"""The DynamoDB store's async flavour: aiobotocore, or boto3's sync client in a worker thread?

Both clients do one request cycle a session change costs, a ``GetItem`` (consistent) and an
``UpdateItem`` (conditional, ``SET`` on a map path), against moto's emulator in server mode
(its own process, on a free loopback port, as the tests start it). Three contestants:

- ``boto3 sync``: the plain sync client, the floor of the sync flavour;
- ``boto3 in a thread``: ``await asyncio.to_thread(client.get_item, ...)``, the base
  ``Store``'s async default;
- ``aiobotocore``: ``await client.get_item(...)`` on aiobotocore's native client.

Each is timed one cycle at a time (latency) and with 16 cycles in flight (throughput), and
the client process's own CPU time per cycle is taken beside the wall time: moto answers
slowly (milliseconds per request, far above DynamoDB's own), so wall time is mostly the
emulator's, while CPU time is what the client costs the application's process.

    python benchmarks/bench_dynamodb.py            # 400 cycles per row, 3 repeats
    python benchmarks/bench_dynamodb.py --quick    # 60 cycles, 1 repeat

The figures are printed; ``--json PATH`` also writes them there (not to ``results/``, whose
files ``report.py`` turns into the benchmarks page: these are on docs/stores/dynamodb.md).
Speed is measured, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.servers, when run as a script

import boto3  # type: ignore[import-untyped]  # noqa: E402
import botocore  # type: ignore[import-untyped]  # noqa: E402

from benchmarks.common import environment  # noqa: E402
from tests import servers  # noqa: E402

TABLE = "bench"
REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
CONCURRENCY = 16
KEY = {"digest": {"S": "a" * 64}}
UPDATE = {
    "TableName": TABLE, "Key": KEY, "UpdateExpression": "SET #v = #v + :one, #d.#k = :n",
    "ConditionExpression": "attribute_exists(#v)",
    "ExpressionAttributeNames": {"#v": "version", "#d": "data", "#k": "kn"},
    "ExpressionAttributeValues": {":one": {"N": "1"}, ":n": {"S": "1"}},
}  # fmt: skip


def prepare(endpoint: str) -> None:
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint, **CREDENTIALS)
    client.create_table(
        TableName=TABLE, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "digest", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "digest", "KeyType": "HASH"}],
    )  # fmt: skip
    client.put_item(
        TableName=TABLE,
        Item={**KEY, "version": {"N": "1"}, "data": {"M": {"kn": {"S": "0"}}}},
    )
    client.close()


def timed(cycles: int, run: Callable[[], None]) -> tuple[float, float]:
    """(wall µs, client CPU µs) per cycle."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (
        (time.perf_counter() - wall) / cycles * 1e6,
        (time.process_time() - cpu) / cycles * 1e6,
    )


def sync_rows(endpoint: str, cycles: int) -> dict[str, tuple[float, float]]:
    client = boto3.client(
        "dynamodb", region_name=REGION, endpoint_url=endpoint, **CREDENTIALS,
        config=botocore.config.Config(max_pool_connections=CONCURRENCY * 2),
    )  # fmt: skip

    def cycle() -> None:
        client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)
        client.update_item(**UPDATE)

    async def threaded_cycle() -> None:
        await asyncio.to_thread(client.get_item, TableName=TABLE, Key=KEY, ConsistentRead=True)
        await asyncio.to_thread(lambda: client.update_item(**UPDATE))

    cycle()  # warm the connection pool

    def one_at_a_time() -> None:
        for _ in range(cycles):
            cycle()

    rows = {"boto3 sync, one at a time": timed(cycles, one_at_a_time)}
    rows.update(async_rows("boto3 in a thread", threaded_cycle, cycles))
    client.close()
    return rows


def async_rows(
    name: str, cycle: Callable[[], Awaitable[None]], cycles: int
) -> dict[str, tuple[float, float]]:
    async def one_at_a_time() -> None:
        for _ in range(cycles):
            await cycle()

    async def in_flight() -> None:
        async def worker(share: int) -> None:
            for _ in range(share):
                await cycle()

        await asyncio.gather(*(worker(cycles // CONCURRENCY) for _ in range(CONCURRENCY)))

    return {
        f"{name}, one at a time": timed(cycles, lambda: asyncio.run(one_at_a_time())),
        f"{name}, {CONCURRENCY} in flight": timed(
            cycles // CONCURRENCY * CONCURRENCY, lambda: asyncio.run(in_flight())
        ),
    }


def aiobotocore_rows(endpoint: str, cycles: int) -> dict[str, tuple[float, float]]:
    """One client per event loop (aiobotocore's clients belong to the loop they open on)."""
    import aiobotocore.config  # type: ignore[import-untyped]
    import aiobotocore.session  # type: ignore[import-untyped]

    session = aiobotocore.session.get_session()
    holder: dict[str, Any] = {}

    async def cycle() -> None:
        client = holder["client"]
        await client.get_item(TableName=TABLE, Key=KEY, ConsistentRead=True)
        await client.update_item(**UPDATE)

    def rows_for(label: str, body: Callable[[], Awaitable[None]]) -> tuple[float, float]:
        async def main() -> None:
            config = aiobotocore.config.AioConfig(max_pool_connections=CONCURRENCY * 2)
            async with session.create_client(
                "dynamodb", region_name=REGION, endpoint_url=endpoint, config=config,
                **CREDENTIALS,
            ) as client:  # fmt: skip
                holder["client"] = client
                await cycle()  # warm the connection pool, untimed
                start_wall, start_cpu = time.perf_counter(), time.process_time()
                await body()
                holder["times"] = (
                    time.perf_counter() - start_wall,
                    time.process_time() - start_cpu,
                )

        asyncio.run(main())
        wall, cpu = holder["times"]
        n = cycles if "one" in label else cycles // CONCURRENCY * CONCURRENCY
        return wall / n * 1e6, cpu / n * 1e6

    async def one_at_a_time() -> None:
        for _ in range(cycles):
            await cycle()

    async def in_flight() -> None:
        async def worker(share: int) -> None:
            for _ in range(share):
                await cycle()

        await asyncio.gather(*(worker(cycles // CONCURRENCY) for _ in range(CONCURRENCY)))

    return {
        "aiobotocore, one at a time": rows_for("one", one_at_a_time),
        f"aiobotocore, {CONCURRENCY} in flight": rows_for("flight", in_flight),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    cycles, repeats = (64, 1) if args.quick else (400, 3)
    server = servers.moto_server()
    try:
        endpoint = f"http://127.0.0.1:{server.port}"
        prepare(endpoint)
        runs: dict[str, list[tuple[float, float]]] = {}
        contestants = [sync_rows]
        if importlib.util.find_spec("aiobotocore") is None:
            print("aiobotocore is not installed (pip install aiobotocore): its rows are left out")
        else:
            contestants.append(aiobotocore_rows)
        for _ in range(repeats):
            for rows in (measure(endpoint, cycles) for measure in contestants):
                for name, figures in rows.items():
                    runs.setdefault(name, []).append(figures)
    finally:
        server.close()
    results = {}
    print(f"{'GetItem + UpdateItem against moto_server':44} {'wall µs':>9} {'client CPU µs':>14}")
    for name, measured in runs.items():
        wall = statistics.median(f[0] for f in measured)
        cpu = statistics.median(f[1] for f in measured)
        results[name] = {"wall_us": round(wall, 1), "client_cpu_us": round(cpu, 1)}
        print(f"{name:44} {wall:9.0f} {cpu:14.0f}")
    if args.json is not None:
        out: Path = args.json
        versions = {"boto3": boto3.__version__, "botocore": botocore.__version__}
        if aiobotocore_rows in contestants:
            import aiobotocore

            versions["aiobotocore"] = aiobotocore.__version__
        document = {
            "environment": environment(**versions),
            "cycles": cycles, "repeats": repeats, "concurrency": CONCURRENCY, "rows": results,
        }  # fmt: skip
        out.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
