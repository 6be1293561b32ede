"""RedisStore against real servers: one redis-server and a three-master Redis Cluster."""

from __future__ import annotations

import secrets

import pytest

from sessionkit.stores.redis import RedisStore
from sessionkit.testing import (
    FakeClock,
    LockConformance,
    ScanConformance,
    ServerStoreConformance,
    UserIndexConformance,
)
from tests import servers


def unique_prefix() -> str:
    return f"t{secrets.token_hex(4)}:"


class TestRedisConformance(
    ServerStoreConformance, UserIndexConformance, LockConformance, ScanConformance
):
    @pytest.fixture(autouse=True)
    def _server(self, redis_server: servers.Server) -> None:
        self.url = f"redis://127.0.0.1:{redis_server.port}/0"

    def make_store(self, clock: FakeClock) -> RedisStore:
        return RedisStore.from_url(self.url, prefix=unique_prefix(), clock=clock)


class TestRedisClusterConformance(
    ServerStoreConformance, UserIndexConformance, LockConformance, ScanConformance
):
    @pytest.fixture(autouse=True)
    def _server(self, redis_cluster: list[servers.Server]) -> None:
        nodes = ",".join(f"127.0.0.1:{node.port}" for node in redis_cluster)
        self.url = f"redis+cluster://{nodes}"

    def make_store(self, clock: FakeClock) -> RedisStore:
        return RedisStore.from_url(self.url, prefix=unique_prefix(), clock=clock)
