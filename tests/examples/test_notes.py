"""The Flask notes app, in-process (Flask's test client), joined to the running demo: a
login made in the shop (a real Django server) is recognised here, and a logout here ends it
in the shop too."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from example_projects.flask_notes.app import create_app
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


class Browser:
    """Flask's test client holding one session cookie the way a browser would."""

    def __init__(self, app: Flask, cookie: str | None) -> None:
        self.client: FlaskClient = app.test_client(use_cookies=False)
        self.cookie = cookie

    def request(self, method: str, path: str, **kwargs: object) -> TestResponse:
        headers = {"User-Agent": AGENT}
        if self.cookie:
            headers["Cookie"] = f"{COOKIE}={self.cookie}"
        response = self.client.open(path, method=method, headers=headers, **kwargs)  # type: ignore[arg-type]
        value = cookie_from(response.headers.getlist("Set-Cookie"))
        if value is not None:
            self.cookie = value or None
        return response


def signed_in_cookie(demo: Demo) -> str:
    with browser_like() as browser:
        shop_login(browser, demo)
        cookie = session_cookie(browser)
    assert cookie
    return cookie


def test_a_shop_login_is_a_notes_login(joined: Demo) -> None:
    browser = Browser(create_app(), signed_in_cookie(joined))
    page = browser.request("GET", "/")
    assert page.status_code == 200
    assert signed_in_as(page.text) == "demo" and "New note" in page.text


def test_notes_and_their_flash(joined: Demo) -> None:
    browser = Browser(create_app(), signed_in_cookie(joined))
    saved = browser.request("POST", "/notes", data={"text": "buy <milk>"})
    assert saved.status_code == 302 and saved.location == "/"
    page = browser.request("GET", "/")
    assert page.text.count("Note saved.") == 1
    assert "buy &lt;milk&gt;" in page.text  # escaped
    assert "saved only the keys that changed" in page.text  # the panel: last change here
    again = browser.request("GET", "/")
    assert "Note saved." not in again.text and "buy &lt;milk&gt;" in again.text


def test_anonymous_visitors_are_sent_to_the_shop_to_sign_in(joined: Demo) -> None:
    browser = Browser(create_app(), None)
    page = browser.request("GET", "/")
    assert signed_in_as(page.text) is None
    assert f'href="{joined.shop}login/?next=' in page.text
    refused = browser.request("POST", "/notes", data={"text": "x"})
    assert refused.status_code == 302
    assert refused.location.startswith(joined.shop + "login/?next=")
    assert browser.cookie is None  # nothing stored for an anonymous visitor


def test_logout_in_notes_ends_the_session_everywhere(joined: Demo) -> None:
    cookie = signed_in_cookie(joined)
    browser = Browser(create_app(), cookie)
    out = browser.request("POST", "/logout")
    assert out.status_code == 302
    page = browser.request("GET", "/")
    assert "Signed out of all three apps" in page.text and signed_in_as(page.text) is None
    assert signed_in_as(replay(joined, joined.shop, cookie).text) is None


def test_a_forged_cookie_is_anonymous(joined: Demo) -> None:
    cookie = signed_in_cookie(joined)
    forged = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    page = Browser(create_app(), forged).request("GET", "/")
    assert signed_in_as(page.text) is None
