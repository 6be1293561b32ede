"""The documented switch: the same demo on Redis (``make demo STORE=redis://...``), against
a real Redis server. A login in the shop is seen by the notes and the dashboard."""

from __future__ import annotations

from pathlib import Path

from tests.examples.demo import (
    browser_like,
    replay,
    session_cookie,
    shop_login,
    signed_in_as,
    start_demo,
)
from tests.servers import Server


def test_the_demo_runs_on_redis(redis_server: Server, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{redis_server.port}/7"
    demo = start_demo(tmp_path / "data", "--store", url)
    try:
        assert f"Store       {url}" in "".join(demo.output)
        with browser_like() as browser:
            page = shop_login(browser, demo, next_url=demo.dashboard)
            assert signed_in_as(page.text) == "demo" and "this browser" in page.text
            assert f"<code>{url}</code>" in page.text
            cookie = session_cookie(browser)
        assert signed_in_as(replay(demo, demo.notes, cookie).text) == "demo"
        assert not (tmp_path / "data" / "sessions.sqlite3").exists()  # nothing on SQLite
    finally:
        assert demo.stop() == 0
