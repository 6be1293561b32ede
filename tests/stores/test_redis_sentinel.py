"""RedisStore through ``redis+sentinel://``: a real Sentinel monitoring the test server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionkit.ids import digest, new_id
from sessionkit.stores.base import RecordMeta, Write
from sessionkit.stores.redis import RedisStore
from sessionkit.testing import (
    ChallengeConformance,
    FakeClock,
    LockConformance,
    ResealConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    UserIndexConformance,
)
from tests import servers
from tests.stores.test_redis import unique_prefix


def sentinel_server(master_port: int, service: str = "sessions") -> servers.Server:
    """``redis-server --sentinel`` on a free port, watching the master on ``master_port``.
    Sentinel rewrites its config file, so it lives in the server's own temporary directory."""
    port = servers.free_port()
    workdir = servers._workdir("redis-sentinel")
    config = workdir / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\nprotected-mode yes\ndir {workdir}\n"
        f"sentinel monitor {service} 127.0.0.1 {master_port} 1\n"
        f"sentinel down-after-milliseconds {service} 60000\n"
        f"sentinel failover-timeout {service} 180000\n"
    )
    redis_server = servers._binary("redis-server")
    argv = [redis_server, str(config), "--sentinel"]
    return servers.Server("redis-sentinel", argv, port, workdir).start()


@pytest.fixture(scope="module")
def sentinel(redis_server: servers.Server) -> Iterator[servers.Server]:
    server = sentinel_server(redis_server.port)
    yield server
    server.close()


class TestRedisSentinelConformance(
    ServerStoreConformance,
    ChallengeConformance,
    UserIndexConformance,
    LockConformance,
    ScanConformance,
    ResealConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _server(self, sentinel: servers.Server) -> None:
        self.url = f"redis+sentinel://127.0.0.1:{sentinel.port}/sessions/0"

    def make_store(self, clock: FakeClock) -> RedisStore:
        return RedisStore.from_url(self.url, prefix=unique_prefix(), clock=clock)


def test_sentinel_finds_the_master(
    sentinel: servers.Server, redis_server: servers.Server, clock: FakeClock
) -> None:
    store = RedisStore.from_url(
        f"redis+sentinel://127.0.0.1:{sentinel.port},127.0.0.1:{servers.free_port()}/sessions",
        prefix=unique_prefix(), clock=clock,
    )  # fmt: skip
    key = digest(new_id())
    meta = RecordMeta(created=int(clock.now), last_seen=int(clock.now))
    assert store.save(Write(key, {"a": "1"}, frozenset(), meta, 60.0, create=True))
    record = store.load(key)
    assert record is not None and dict(record.items) == {"a": "1"}
    assert store._client().connection_pool.get_master_address() == (
        "127.0.0.1", redis_server.port,
    )  # fmt: skip
    store.close()
