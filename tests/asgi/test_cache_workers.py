"""The local cache across processes over HTTP: 4 uvicorn workers and one more uvicorn
process (another host) share one Redis, each process with its own cache. After a write, a
logout or a revoke-all served by one of them, the very next request to every other one sees
it: no sleep, no retry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import servers
from tests.asgi.cache_workers import Uvicorn, Worker
from tests.stores.test_redis import unique_prefix

ROUNDS = 15


@pytest.fixture(scope="module")
def processes(redis_server: servers.Server) -> Iterator[list[Worker]]:
    url = f"redis://127.0.0.1:{redis_server.port}/0?prefix={unique_prefix()}&cache=on"
    workers = Uvicorn(url, 4)
    try:
        host = Uvicorn(url, 1)
    except BaseException:
        workers.stop()
        raise
    everyone = [*workers.workers, *host.workers]
    assert len({w.pid for w in everyone}) == 5
    yield everyone
    host.stop()
    workers.stop()


def warm(everyone: list[Worker], cookie: str, n: int | None, user: str | None) -> None:
    """Every process reads the session until it serves it from its cache."""
    for worker in everyone:
        before = worker.get("/stats", None)["hits"]
        for _ in range(50):
            body = worker.get("/read", cookie)
            assert (body["n"], body["user"]) == (n, user), (worker.pid, body)
            if worker.get("/stats", None)["hits"] > before:
                break
        else:
            raise AssertionError(f"worker {worker.pid} never served a hit")


def login(worker: Worker, user: str) -> str:
    cookie: str = worker.get(f"/login?user={user}", None)["cookie"]
    return cookie


def test_a_write_on_one_process_is_seen_by_the_next_request_on_every_other(
    processes: list[Worker],
) -> None:
    cookie = login(processes[0], "writer")
    warm(processes, cookie, 0, "writer")
    for n in range(1, ROUNDS * len(processes) + 1):
        writer = processes[n % len(processes)]
        writer.get(f"/write?n={n}", cookie)
        for other in processes:  # right after the response: the next request anywhere
            assert other.get("/read", cookie)["n"] == n, (n, other.pid, writer.pid)
    hits = sum(worker.get("/stats", None)["hits"] for worker in processes)
    written = sum(worker.get("/stats", None)["written"] for worker in processes)
    assert hits > ROUNDS and written > ROUNDS  # the cache really served and wrote through


@pytest.mark.parametrize("how", ["logout", "revoke-all"])
def test_a_logout_or_revoke_all_on_one_process_is_seen_everywhere(
    processes: list[Worker], how: str
) -> None:
    for round_ in range(ROUNDS):
        user = f"{how}-{round_}"
        cookie = login(processes[round_ % len(processes)], user)
        warm(processes, cookie, 0, user)
        actor = processes[(round_ + 1) % len(processes)]
        if how == "logout":
            actor.get("/logout", cookie)
        else:
            assert actor.get(f"/revoke-all?user={user}", None)["revoked"] == 1
        for other in processes:
            body = other.get("/read", cookie)
            assert (body["n"], body["user"]) == (None, None), (round_, other.pid, body)
