"""``fallback=`` on PostgreSQL: a primary and a hot standby of it (streaming replication,
a read replica). The primary is stopped and started again for real, in both flavours, and
the wrapper passes the conformance suite while the primary is up (each deletion confirmed
on the standby)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest

from sessionkit import (
    SessionConfig,
    SessionEngine,
    Store,
    StoreReadOnly,
    StoreUnavailable,
    open_store,
)
from sessionkit.stores.fallback import FallbackStore
from sessionkit.testing import (
    Browser,
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    SweepConformance,
    UserIndexConformance,
)
from tests import servers
from tests.conftest import KEY

INTERVAL = 0.2


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[servers.Postgres, servers.Postgres]]:
    primary = servers.postgres_server()
    standby = servers.postgres_standby(primary)
    yield primary, standby
    standby.close()
    primary.close()


def urls(pair: tuple[servers.Postgres, servers.Postgres]) -> tuple[str, str]:
    table = f"t{secrets.token_hex(4)}"
    primary, standby = pair
    replica = f"postgresql://postgres@127.0.0.1:{standby.port}/postgres"
    options = f"?table={table}&connect_timeout=1"
    return primary.url + options, replica + options


def replayed(engine: SessionEngine, store: Store, digest: str | None) -> None:
    """Wait until the standby has replayed the primary's write of ``digest``."""
    assert digest is not None
    deadline = time.monotonic() + 10
    while True:
        try:
            if store.load(digest) is not None:
                return
        except StoreUnavailable:  # the table itself is not replayed yet
            pass
        assert time.monotonic() < deadline, "the standby did not replay the write"
        time.sleep(0.02)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_stop_and_restart_the_primary(
    pair: tuple[servers.Postgres, servers.Postgres], flavour: str
) -> None:
    primary_url, standby_url = urls(pair)
    open_store(primary_url).create_schema()  # on the primary: a standby creates nothing
    engine = SessionEngine(
        SessionConfig(secret_key=KEY, store=primary_url, fallback=standby_url,
                      fallback_probe_interval=INTERVAL)
    )  # fmt: skip
    store = engine.store
    assert isinstance(store, FallbackStore)
    loop = asyncio.new_event_loop()
    try:
        alice = Browser(engine, flavour, loop=loop)  # type: ignore[arg-type]
        alice.visit(lambda s: s.__setitem__("n", 1))
        replayed(engine, store.fallback, engine.digest_of(alice.begin()))
        mallory = Browser(engine, flavour, loop=loop)  # type: ignore[arg-type]
        mallory.visit(lambda s: s.__setitem__("n", 1))
        stolen = mallory.fork()
        mallory.visit(lambda s: s.invalidate())  # confirmed gone on the standby, too

        pair[0].stop()
        try:
            assert alice.visit(lambda s: dict(s)).result == {"n": 1}  # from the standby
            assert stolen.visit(lambda s: dict(s)).result == {}
            with pytest.raises(StoreReadOnly):
                alice.visit(lambda s: s.__setitem__("n", 2))
            with pytest.raises(StoreReadOnly):
                alice.visit(lambda s: s.invalidate())
            found = engine.health() if flavour == "sync" else loop.run_until_complete(
                engine.ahealth()
            )  # fmt: skip
            assert found.ok and found.mode == "read_only"
            assert found.fallback is not None and found.fallback.server_version
        finally:
            pair[0].start(timeout=60)
        time.sleep(INTERVAL * 1.5)
        alice.visit(lambda s: s.__setitem__("n", 3))
        assert alice.visit(lambda s: dict(s)).result == {"n": 3}
        assert stolen.visit(lambda s: dict(s)).result == {}
        stats = store.stats()
        assert (stats["mode"], stats["to_fallback"], stats["to_primary"]) == ("primary", 1, 1)
        assert stats["refused"] == 2 and stats["unconfirmed"] == 0
    finally:
        loop.run_until_complete(store.aclose())
        store.close()
        loop.close()


def test_a_standby_without_the_table_says_what_to_do(
    pair: tuple[servers.Postgres, servers.Postgres],
) -> None:
    _, standby_url = urls(pair)
    replica = open_store(standby_url)
    try:
        with pytest.raises(Exception, match="does not exist on this read-only server"):
            replica.load("0" * 64)
    finally:
        replica.close()


class TestFallbackOverPostgresWithStandby(
    ServerStoreConformance, UserIndexConformance, LockConformance, SweepConformance,
    ScanConformance, SessionLimitConformance, ResealConformance, ChallengeConformance,
):  # fmt: skip
    @pytest.fixture(autouse=True)
    def _servers(self, pair: tuple[servers.Postgres, servers.Postgres]) -> None:
        self.pair = pair

    def make_store(self, clock: FakeClock) -> Store:
        primary_url, standby_url = urls(self.pair)
        primary = open_store(primary_url, clock=clock)
        primary.create_schema()
        return FallbackStore(primary, open_store(standby_url, clock=clock))
