from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessionkit import SessionConfig, SessionEngine, Store, open_store
from sessionkit.testing import Browser, FakeClock
from tests import servers

KEY = "tests-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"

# django-allauth needs Python 3.11+ (its Requires-Python), so pyproject's test extra installs
# it only there: on 3.10 there is no allauth whose suite could run (not a skip: not collected)
collect_ignore = ["upstream/test_allauth_suite.py"] if sys.version_info < (3, 11) else []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_engine(clock: FakeClock | None = None, **settings: object) -> SessionEngine:
    settings.setdefault("secret_key", KEY)
    store = settings.pop("store", "memory://")
    config = SessionConfig(store=store, **settings)  # type: ignore[arg-type]
    engine = SessionEngine(config, clock=clock or FakeClock())
    if hasattr(engine.store, "_clock") and clock is not None:
        engine.store._clock = clock
    return engine


@pytest.fixture
def engine(clock: FakeClock) -> SessionEngine:
    return make_engine(clock)


@pytest.fixture
def browser(engine: SessionEngine) -> Browser:
    return Browser(engine)


# -- real servers, one set per test process (xdist workers each get their own) ------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[servers.Server]:
    server = servers.redis_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[list[servers.Server]]:
    nodes = servers.redis_cluster()
    yield nodes
    for node in nodes:
        node.close()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[servers.Server]:
    server = servers.memcached_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[servers.Postgres]:
    server = servers.postgres_server()
    yield server
    server.close()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[servers.Server]:
    server = servers.moto_server()
    yield server
    server.close()


def dynamodb_url(server: servers.Server, table: str | None = None) -> str:
    """A ``dynamodb://`` URL on the emulator, on a table of its own (create it with
    ``create_schema``); the credentials are the emulator's, which takes any."""
    table = table or f"t-{secrets.token_hex(6)}"
    return (
        f"dynamodb://{table}?region=us-east-1&endpoint=http://127.0.0.1:{server.port}"
        "&access_key_id=testing&secret_access_key=testing"
    )


def store_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a store the adapter tests run on: ``kind`` is memory, cookie, file,
    sqlite, redis or memcached (the servers are the session fixtures above; each test gets
    its own Redis key space)."""
    if kind in ("memory", "cookie"):
        return f"{kind}://"
    if kind == "file":
        return f"file://{tmp_path / 'sessions'}?fsync=false"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'sessions.sqlite3'}"
    if kind == "redis":
        server: servers.Server = request.getfixturevalue("redis_server")
        return f"redis://127.0.0.1:{server.port}/0?prefix=t{secrets.token_hex(6)}:"
    if kind == "memcached":
        mc: servers.Server = request.getfixturevalue("memcached_server")
        return f"memcached://127.0.0.1:{mc.port}"
    raise AssertionError(kind)


# -- the frameworks' own session suites (tests/upstream) report here, in the controller ----
def pytest_configure(config: pytest.Config) -> None:
    """One results directory per pytest run, made before xdist starts its workers (they
    inherit the environment), so concurrent runs never mix their tables."""
    if "SESSIONKIT_UPSTREAM_RESULTS" not in os.environ:
        os.environ["SESSIONKIT_UPSTREAM_RESULTS"] = tempfile.mkdtemp(prefix="sessionkit-upstream-")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per framework and store for the upstream suites that ran in this run."""
    from tests.upstream.suite_outcome import this_runs_results

    outcomes = this_runs_results()
    if not outcomes:
        return
    terminalreporter.section("frameworks' own session tests against sessionkit")
    for outcome in sorted(outcomes, key=lambda o: (o.framework, o.store)):
        terminalreporter.write_line(outcome.line())


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """asyncio unless a test package asks for more (anyio would otherwise run every
    ``mark.anyio`` test on trio too once trio is installed; Django's async runs on asyncio
    only). tests/asgi runs on both."""
    return "asyncio"


@pytest.fixture(params=["memory", "file", "sqlite", "postgresql", "redis", "dynamodb"])
def user_index_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each store with a user index, on the real servers (PostgreSQL in a table of its own:
    the server is shared by the whole run; DynamoDB on moto's emulator); closed after the
    test."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_server").url + f"?table=t{secrets.token_hex(6)}"
    elif request.param == "dynamodb":
        url = dynamodb_url(request.getfixturevalue("moto_server"))
    else:
        url = store_url(request.param, tmp_path, request)
    opened = open_store(url)
    if request.param == "dynamodb":
        opened.create_schema()  # what `sessionkit init` does; DynamoDB never creates tables
    yield opened
    asyncio.run(opened.aclose())
    opened.close()
