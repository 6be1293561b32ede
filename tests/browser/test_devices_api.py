"""The dashboard's "your active sessions" page signs a device out through the sessions API
(``fetch()`` from the page, same-origin), in a real browser: two browser contexts, the
second revokes the first, and the first is logged out in all three apps."""

from __future__ import annotations

from playwright.sync_api import Browser, Response, expect

from tests.browser.test_shared_login import VIEWPORT, sign_in, who
from tests.examples.demo import USER, Demo


def test_revoke_the_other_device_through_the_api(browser: Browser, demo: Demo) -> None:
    laptop = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    phone = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        first, second = laptop.new_page(), phone.new_page()
        sign_in(first, demo)
        sign_in(second, demo)
        first.goto(demo.dashboard)
        handle = first.locator("footer code[data-handle]").get_attribute("data-handle")
        assert handle

        second.goto(demo.dashboard)
        row = second.locator(f'tr.other-session[data-handle="{handle}"]')
        expect(row).to_have_count(1)

        def revoke_call(response: Response) -> bool:
            return "/api/sessions/" in response.url and response.request.method == "DELETE"

        with second.expect_response(revoke_call) as answered:
            row.locator("button[name=revoke]").click()
        response = answered.value
        assert response.status == 200
        assert response.json() == {"revoked": 1, "current": False}
        assert response.headers["cache-control"] == "no-store"
        assert response.request.all_headers().get("sec-fetch-site") == "same-origin"
        expect(second.locator(".flash")).to_contain_text(f"Session {handle} was signed out.")
        expect(row).to_have_count(0)

        for url in (demo.dashboard, demo.notes, demo.shop):
            first.goto(url)
            assert who(first) is None, url  # the revoked browser is anonymous everywhere
        second.reload()
        assert who(second) == USER  # the one that revoked it lives on
        expect(second.locator(f'tr[data-handle="{handle}"]')).to_have_count(0)
    finally:
        laptop.close()
        phone.close()
