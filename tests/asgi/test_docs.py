"""The examples in docs/asgi.md run (the docs test only syntax-checks adapter examples)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.asgi.apps import KEY, client

pytestmark = pytest.mark.anyio
PAGE = Path(__file__).resolve().parents[2] / "docs" / "asgi.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), re.S)


def run(number: int) -> dict[str, Any]:
    namespace: dict[str, Any] = {"SECRET_KEY": KEY, "__name__": "docs_asgi"}
    exec(compile(BLOCKS[number], f"asgi.md example {number + 1}", "exec"), namespace)  # noqa: S102
    return namespace


def test_every_block_runs() -> None:
    assert len(BLOCKS) == 7
    for number in range(len(BLOCKS)):
        run(number)


async def test_starlette_quick_start() -> None:
    async with client(run(0)["app"]) as http:
        await http.get("/")
        assert (await http.get("/")).json() == {"visits": 2}


async def test_fastapi_quick_start() -> None:
    async with client(run(2)["app"]) as http:
        await http.post("/login", params={"user": "ada"})
        assert (await http.get("/")).json() == {"user": "ada", "notice": "Welcome back, ada!"}
        assert (await http.get("/")).json() == {"user": "ada", "notice": None}
        await http.post("/logout")
        assert (await http.get("/")).json() == {"user": None, "notice": None}


async def test_locked_route_example() -> None:
    async with client(run(3)["app"]) as http:
        await http.get("/cart/add", params={"item": "tea"})
        assert (await http.get("/cart/add", params={"item": "jam"})).json() == {"items": 2}


async def test_fresh_session_example() -> None:
    async with client(run(4)["app"]) as http:
        assert (await http.post("/payment")).json() == {"user": None}


async def test_events_example() -> None:
    namespace = run(5)
    async with client(namespace["app"]) as http:
        await http.get("/missing")
        await http.get("/missing", headers={"Cookie": "session=forged"})
    assert namespace["counts"].counts["cookie_rejected"] == 1
