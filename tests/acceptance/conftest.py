"""What the acceptance apps share: a fresh secret key as `sessionkit keygen` makes one, an
HTTP server squatting a port (the "wrong service on the store port"), a port nobody
listens on, and a Redis of the module's own that a test may stop (a store that goes down
while users are signed in)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sessionkit.cli import build_group
from tests import servers

#: Every misconfiguration and outage of issue 14 that the three apps go through.
STORE_SCHEMES = (
    "cookie://, dynamodb://, file://, memcached://, memory://, postgres://, postgresql://, "
    "redis://, redis+cluster://, redis+sentinel://, rediss://, rediss+cluster://, "
    "rediss+sentinel://, sqlite://"
)
WEAK_KEY = (
    "the secret key is 8 bytes; at least 32 random bytes are required. Generate one with "
    "`sessionkit keygen`"
)
PATTERN_KEY = (
    "the secret key is not random (it repeats a short pattern or a few characters). "
    "Generate one with `sessionkit keygen`"
)
LOCKING = "memory://, redis://, sqlite:///, postgresql://, file:/// or memcached://"


@pytest.fixture(scope="session")
def secret_key() -> str:
    """A key made the way the docs say, with `sessionkit keygen`."""
    from click.testing import CliRunner

    result = CliRunner().invoke(build_group(), ["keygen"])
    assert result.exit_code == 0, result.output
    key = result.output.strip()
    assert len(key) >= 43
    return key


class _Quiet(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def http_port() -> Iterator[int]:
    """An HTTP server where the store URL points by mistake."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def own_redis() -> Iterator[servers.Server]:
    """A Redis for one test alone, so the test can take it down."""
    server = servers.redis_server()
    yield server
    server.close()
