"""The demo in a real browser: one login across Django, Flask and FastAPI, flash messages
shown once, the cookie's attributes as the browser stored them, "log out everywhere else"
from a second browser, and a logged-out cookie replayed.

Screenshots of the three apps are taken on every run; with ``SESSIONKIT_SCREENSHOTS=1``
they replace the ones in ``docs/images/`` (committed, shown by docs/examples.md).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.examples.demo import PASSWORD, USER, Demo

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT = {"width": 1100, "height": 760}


def sign_in(page: Page, demo: Demo) -> None:
    page.goto(demo.shop)
    page.click("#signin")
    page.fill("#id_username", USER)
    page.fill("#id_password", PASSWORD)
    page.click("#login")
    expect(page.locator(".user")).to_have_attribute("data-user", USER)


def who(page: Page) -> str | None:
    return page.locator(".user").get_attribute("data-user")


def shoot(page: Page, name: str, tmp_path: Path) -> None:
    """Screenshot the page; publish it to the docs when asked (or when it is missing)."""
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one
    target = IMAGES / shot.name
    if os.environ.get("SESSIONKIT_SCREENSHOTS") == "1" or not target.exists():
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    yield ctx
    ctx.close()


def test_one_login_three_apps(context: BrowserContext, demo: Demo, tmp_path: Path) -> None:
    page = context.new_page()
    page.goto(demo.shop)
    assert who(page) is None
    page.click("#add-mug")
    flash = page.locator(".flash", has_text="Added Enamel mug to your cart.")
    expect(flash).to_have_count(1)
    page.reload()
    expect(flash).to_have_count(0)  # a flash message shows once
    anonymous = {c["name"]: c["value"] for c in context.cookies()}["sessionkit"]

    sign_in(page, demo)
    expect(page.locator("table.cart")).to_contain_text("Enamel mug")  # the cart survived
    page.click("#add-tee")
    shoot(page, "shop", tmp_path)

    cookies = [c for c in context.cookies() if c["name"] == "sessionkit"]
    assert len(cookies) == 1
    cookie = cookies[0]
    assert cookie["value"] != anonymous  # the login renewed the ID
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Lax"
    assert cookie["domain"] == "127.0.0.1" and cookie["path"] == "/"
    assert cookie["secure"] is False  # plain http on loopback; Secure when served on https

    page.goto(demo.notes)
    assert who(page) == USER  # Flask recognises the Django login
    page.fill("#text", "Call the bakery about Saturday")
    page.click("#save-note")
    expect(page.locator(".flash", has_text="Note saved.")).to_have_count(1)
    page.fill("#text", "Sessions survive framework boundaries")
    page.click("#save-note")
    shoot(page, "notes", tmp_path)
    page.reload()
    expect(page.locator(".flash")).to_have_count(0)
    expect(page.locator(".note")).to_have_count(2)

    page.goto(demo.dashboard)
    assert who(page) == USER  # and so does FastAPI
    expect(page.locator("tr.this-session")).to_have_count(1)


def test_log_out_everywhere_else(browser: Browser, playwright: object, demo: Demo,
                                 tmp_path: Path) -> None:  # fmt: skip
    laptop = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    phone = browser.new_context(**playwright.devices["Pixel 7"])  # type: ignore[attr-defined]
    try:
        first = laptop.new_page()
        sign_in(first, demo)
        second = phone.new_page()
        sign_in(second, demo)

        first.goto(demo.dashboard)
        phone_row = first.locator("tr.other-session", has_text="Android")
        expect(phone_row).to_have_count(1)
        shoot(first, "dashboard", tmp_path)

        second.goto(demo.dashboard)
        with second.expect_response(lambda r: r.url.endswith("/api/sessions/revoke-others")
                                    and r.request.method == "POST") as answered:  # fmt: skip
            second.click("#revoke-others")  # the page calls the sessions API
        assert answered.value.status == 200
        expect(second.locator(".flash")).to_contain_text("other session(s)")
        expect(second.locator("tr.other-session")).to_have_count(0)

        first.goto(demo.notes)
        assert who(first) is None  # the laptop's session is gone
        first.goto(demo.shop)
        assert who(first) is None
        second.goto(demo.shop)
        assert who(second) == USER  # the phone's own session lives on
    finally:
        laptop.close()
        phone.close()


def test_a_logged_out_cookie_replayed_is_anonymous(browser: Browser, demo: Demo) -> None:
    victim = browser.new_context()
    attacker = browser.new_context()
    try:
        page = victim.new_page()
        sign_in(page, demo)
        captured = [c for c in victim.cookies() if c["name"] == "sessionkit"]
        assert captured
        page.goto(demo.dashboard)
        page.click("#signout")
        expect(page.locator(".user")).not_to_have_attribute("data-user", USER)

        attacker.add_cookies(captured)  # type: ignore[arg-type]
        stolen = attacker.new_page()
        for url in (demo.shop, demo.notes, demo.dashboard):
            stolen.goto(url)
            assert who(stolen) is None, url
    finally:
        victim.close()
        attacker.close()
