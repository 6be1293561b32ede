"""The DynamoDB store against moto's emulator in server mode (``moto[server]``, started on
loopback by tests/servers.py): the conformance suite in both flavours, then DynamoDB's own
limits and failures (item size, throttling, conditional checks, connection errors)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from sessionkit.stores.dynamodb import DynamoDBStore
from sessionkit.testing import (
    FakeClock,
    LockConformance,
    ScanConformance,
    ServerStoreConformance,
    SessionLimitConformance,
    UserIndexConformance,
)
from tests.conftest import dynamodb_url
from tests.servers import Server


def fresh_store(server: Server, clock: FakeClock | None = None) -> DynamoDBStore:
    store = DynamoDBStore.from_url(dynamodb_url(server), **({"clock": clock} if clock else {}))
    assert store.create_schema() is True
    return store


class TestDynamoDBConformance(
    ServerStoreConformance,
    UserIndexConformance,
    LockConformance,
    ScanConformance,
    SessionLimitConformance,
):
    @pytest.fixture(autouse=True)
    def _server(self, moto_server: Server) -> None:
        self.server = moto_server

    def make_store(self, clock: FakeClock) -> DynamoDBStore:
        return fresh_store(self.server, clock)


@pytest.fixture
def store(moto_server: Server, clock: FakeClock) -> Iterator[DynamoDBStore]:
    made = fresh_store(moto_server, clock)
    yield made
    asyncio.run(made.aclose())
