"""The FastAPI sessions dashboard, in-process (Starlette's httpx-based TestClient), joined
to the running demo: it lists the sessions that signed in through the shop, with device,
place and last seen, revokes one by handle, logs out everywhere else, and logs out."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import httpx
import pytest

with warnings.catch_warnings():  # starlette nags to swap httpx for httpx2 on import
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from example_projects.fastapi_dashboard.app import create_app
from tests.examples.demo import (
    AGENT,
    COOKIE,
    Demo,
    browser_like,
    cookie_from,
    replay,
    session_cookie,
    shop_login,
    signed_in_as,
)

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"


@pytest.fixture
def client(joined: Demo) -> Iterator[TestClient]:
    # a real loopback peer (TestClient's default, "testclient", is no address at all)
    app = create_app()
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 50000)) as test_client:
        yield test_client


def visit(client: TestClient, cookie: str | None, method: str = "GET", path: str = "/",
          agent: str = AGENT) -> tuple[httpx.Response, str | None]:  # fmt: skip
    """One request with exactly this cookie; returns the response and the cookie after."""
    client.cookies.clear()
    headers = {"User-Agent": agent}
    if cookie:
        headers["Cookie"] = f"{COOKIE}={cookie}"
    response = client.request(method, path, headers=headers, follow_redirects=False)
    value = cookie_from(response.headers.get_list("set-cookie"))
    return response, (cookie if value is None else value or None)


def login(demo: Demo, agent: str = AGENT) -> str:
    with browser_like(agent) as browser:
        shop_login(browser, demo)
        cookie = session_cookie(browser)
    assert cookie
    return cookie


def handles(html: str) -> list[str]:
    return re.findall(r'<tr class="[a-z-]+" data-handle="([0-9a-f]+)"', html)


def test_lists_every_signed_in_browser_with_device_and_place(
    joined: Demo, client: TestClient
) -> None:
    other = login(joined, FIREFOX)
    visit(client, other, agent=FIREFOX)  # the other browser opens the page once
    mine = login(joined)
    page, _ = visit(client, mine)
    assert signed_in_as(page.text) == "demo"
    assert "Firefox on Windows" in page.text  # the other browser's device
    assert "this browser" in page.text and "Mozilla on Linux" in page.text  # this one
    assert "this computer (loopback)" in page.text  # where this browser's request came from
    assert len(handles(page.text)) >= 2
    assert mine not in page.text and other not in page.text  # handles, never IDs


def test_revoke_one_session_by_its_handle(joined: Demo, client: TestClient) -> None:
    other: str | None = login(joined, FIREFOX)
    _, other = visit(client, other, agent=FIREFOX)
    other_page, _ = visit(client, other, agent=FIREFOX)
    other_handle = re.search(r'data-handle="([0-9a-f]{16})">', other_page.text)
    assert other_handle
    mine: str | None = login(joined)
    done, mine = visit(client, mine, "POST", f"/revoke/{other_handle.group(1)}")
    assert done.status_code == 303
    page, _ = visit(client, mine)
    assert f"Session {other_handle.group(1)} was signed out." in page.text
    assert other_handle.group(1) not in handles(page.text)
    assert signed_in_as(replay(joined, joined.shop, other).text) is None
    assert signed_in_as(replay(joined, joined.shop, mine).text) == "demo"


def test_log_out_everywhere_else(joined: Demo, client: TestClient) -> None:
    others = [login(joined, FIREFOX), login(joined)]
    mine: str | None = login(joined)
    done, mine = visit(client, mine, "POST", "/revoke-others")
    assert done.status_code == 303
    page, mine = visit(client, mine)
    assert re.search(r"Signed out [1-9]\d* other session\(s\)\.", page.text)
    assert len(handles(page.text)) == 1 and "this browser" in page.text
    for cookie in others:
        assert signed_in_as(replay(joined, joined.notes, cookie).text) is None
    assert signed_in_as(replay(joined, joined.notes, mine).text) == "demo"


def test_logout_kills_the_cookie(joined: Demo, client: TestClient) -> None:
    captured = login(joined)
    mine: str | None = captured
    _, mine = visit(client, mine, "POST", "/logout")
    page, _ = visit(client, mine)
    assert "Signed out of all three apps" in page.text and signed_in_as(page.text) is None
    assert signed_in_as(replay(joined, joined.shop, captured).text) is None
    page, _ = visit(client, captured)
    assert signed_in_as(page.text) is None


def test_anonymous_visitors_see_a_sign_in_link(joined: Demo, client: TestClient) -> None:
    page, cookie = visit(client, None)
    assert signed_in_as(page.text) is None and f"{joined.shop}login/?next=" in page.text
    assert cookie is None  # no session stored for a visitor with no data
    refused, cookie = visit(client, None, "POST", "/revoke-others")
    assert refused.status_code == 303 and cookie is None


@pytest.mark.parametrize("handle", ["zzzz", "0" * 16, "%2e%2e", "a" * 300])
def test_a_bad_or_foreign_handle_revokes_nothing(
    joined: Demo, client: TestClient, handle: str
) -> None:
    mine: str | None = login(joined)
    done, mine = visit(client, mine, "POST", f"/revoke/{handle}")
    assert done.status_code == 303
    page, _ = visit(client, mine)
    assert "had already ended" in page.text and signed_in_as(page.text) == "demo"
