"""``fallback=`` on real servers: a Redis primary (append-only file, so it keeps what it
acknowledged across a restart) and a second redis-server ``replicaof`` it. The primary is
stopped and started again for real, in both flavours of the store."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit import MemoryStore, SessionConfig, SessionEngine, Store, StoreReadOnly
from sessionkit.stores.fallback import FallbackStore
from sessionkit.stores.redis import RedisStore
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
def pair() -> Iterator[tuple[servers.Server, servers.Server]]:
    primary = servers.redis_persistent()
    replica = servers.redis_replica(primary)
    yield primary, replica
    replica.close()
    primary.close()


def replicated(primary: servers.Server) -> None:
    """Wait until the replica has every write the primary acknowledged (``WAIT``)."""
    done = subprocess.run(
        ["redis-cli", "-p", str(primary.port), "wait", "1", "8000"],
        capture_output=True, text=True, timeout=10,
    )  # fmt: skip
    assert done.stdout.strip() == "1", done


def make_engine(pair: tuple[servers.Server, servers.Server]) -> SessionEngine:
    primary, replica = pair
    prefix = f"f{secrets.token_hex(4)}:"
    options = f"socket_timeout=0.5&socket_connect_timeout=0.5&prefix={prefix}"
    config = SessionConfig(
        secret_key=KEY, store=f"redis://127.0.0.1:{primary.port}/0?{options}",
        fallback=f"redis://127.0.0.1:{replica.port}/0?{options}",
        fallback_probe_interval=INTERVAL,
    )  # fmt: skip
    return SessionEngine(config)


def set_(key: str, value: Any) -> Any:
    return lambda session: session.__setitem__(key, value)


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_stop_and_restart_the_primary(
    pair: tuple[servers.Server, servers.Server], flavour: str
) -> None:
    primary = pair[0]
    engine = make_engine(pair)
    loop = asyncio.new_event_loop()
    try:
        alice = Browser(engine, flavour, loop=loop)  # type: ignore[arg-type]
        alice.visit(set_("n", 1))
        mallory = Browser(engine, flavour, loop=loop)  # type: ignore[arg-type]
        mallory.visit(set_("n", 1))
        stolen = mallory.fork()
        mallory.visit(lambda s: s.invalidate())  # logged out before the outage
        replicated(primary)

        primary.stop()
        try:
            assert alice.visit(lambda s: dict(s)).result == {"n": 1}  # from the replica
            assert stolen.visit(lambda s: dict(s)).result == {}  # the logout holds there
            for change in (set_("n", 2), lambda s: s.invalidate(), lambda s: s.regenerate()):
                with pytest.raises(StoreReadOnly):
                    alice.visit(change)
            found = engine.health() if flavour == "sync" else loop.run_until_complete(
                engine.ahealth()
            )  # fmt: skip
            assert found.ok and found.mode == "read_only" and found.error
            assert found.fallback is not None and found.fallback.server_version
            # the interval passes: a probe fails fast (connection refused) and reads go on
            time.sleep(INTERVAL * 1.5)
            assert alice.visit(lambda s: dict(s)).result == {"n": 1}
        finally:
            primary.start()
        time.sleep(INTERVAL * 1.5)
        alice.visit(set_("n", 3))  # the probe finds it back; the save goes there
        assert alice.visit(lambda s: dict(s)).result == {"n": 3}
        assert stolen.visit(lambda s: dict(s)).result == {}  # still logged out
        store = engine.store
        assert isinstance(store, FallbackStore)
        stats = store.stats()
        assert stats["mode"] == "primary"
        assert stats["to_fallback"] == 1 and stats["to_primary"] == 1
        assert stats["refused"] == 3 and stats["probe_failures"] >= 1
    finally:
        loop.run_until_complete(engine.store.aclose())
        engine.store.close()
        loop.close()


# -- with the primary up, the wrapper is the primary: the conformance suite, both flavours --
class TestFallbackOverMemory(
    ServerStoreConformance, UserIndexConformance, LockConformance, SweepConformance,
    ScanConformance, SessionLimitConformance, ResealConformance, ChallengeConformance,
):  # fmt: skip
    def make_store(self, clock: FakeClock) -> Store:
        return FallbackStore(MemoryStore(clock=clock), MemoryStore(clock=clock))


class TestFallbackOverRedisWithReplica(
    ServerStoreConformance, UserIndexConformance, LockConformance, ScanConformance,
    SessionLimitConformance, ResealConformance, ChallengeConformance,
):  # fmt: skip
    """Every deletion here also waits until the real replica has it."""

    @pytest.fixture(autouse=True)
    def _servers(self, pair: tuple[servers.Server, servers.Server]) -> None:
        self.ports = pair[0].port, pair[1].port

    def make_store(self, clock: FakeClock) -> Store:
        prefix = f"c{secrets.token_hex(4)}:"
        primary, replica = (
            RedisStore.from_url(f"redis://127.0.0.1:{port}/0", prefix=prefix) for port in self.ports
        )
        return FallbackStore(primary, replica)
