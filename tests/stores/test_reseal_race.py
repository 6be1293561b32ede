"""``Store.reseal`` racing real writers, on every store that re-seals, against the real
servers: a re-seal never writes over a value a concurrent save put there (the lost update
the compare-and-set exists to prevent)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkit import Store, open_store
from sessionkit.ids import digest
from sessionkit.records import RecordMeta, Write
from tests.conftest import store_url

WRITES = 150


@pytest.fixture(params=["memory", "file", "sqlite", "postgresql", "redis", "memcached"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").url + f"?table=t{secrets.token_hex(6)}"
    else:
        url = store_url(request.param, tmp_path, request)
    opened = open_store(url)
    yield opened
    asyncio.run(opened.aclose())
    opened.close()


def test_a_reseal_racing_saves_never_overwrites_a_newer_value(store: Store) -> None:
    """A writer sets ``k`` to 1, 2, ... WRITES (each a key-level merge); meanwhile a
    re-sealer reads ``k`` and re-seals whatever it read as ``resealed <that value>``. A
    correct compare-and-set only ever replaces the value it read, so the record ends with
    the writer's last value, or that value re-sealed: never an older one re-sealed over it."""
    assert store.supports_reseal
    key = digest(secrets.token_urlsafe(32))
    meta = RecordMeta(created=1, last_seen=1)
    create = Write(key, {"k": '"0"', "other": '"x"'}, frozenset(), meta, 600.0, create=True)
    assert store.save(create)
    done = threading.Event()
    resealed: list[str] = []
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(1, WRITES + 1):
                assert store.save(Write(key, {"k": f'"{n}"'}, frozenset(), meta, 600.0))
                time.sleep(0.0005)  # let the re-sealer in (the memory store needs the GIL)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    def resealer() -> None:
        try:
            while not done.is_set():
                record = store.load(key)
                assert record is not None
                value = record.items["k"]
                if value.startswith('"resealed'):
                    continue
                if store.reseal(key, {"k": (value, f'"resealed {value[1:-1]}"')}):
                    resealed.append(value)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=resealer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    record = store.load(key)
    assert record is not None
    assert record.items["k"] in (f'"{WRITES}"', f'"resealed {WRITES}"'), (
        record.items["k"], len(resealed),
    )  # fmt: skip
    assert record.items["other"] == '"x"'
    assert resealed  # the race did run: some re-seals landed between the writes
