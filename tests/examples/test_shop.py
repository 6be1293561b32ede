"""The Django shop, served by gunicorn exactly as ``make demo`` serves it."""

from __future__ import annotations

from tests.examples.demo import (
    Demo,
    browser_like,
    replay,
    session_cookie,
    shop_login,
    shop_post,
    signed_in_as,
)


def test_cart_survives_login_under_a_new_id(demo: Demo) -> None:
    with browser_like() as browser:
        page = shop_post(browser, demo, "cart/add/mug/")
        assert "Added Enamel mug to your cart." in page.text
        anonymous = session_cookie(browser)
        assert anonymous

        page = shop_login(browser, demo)
        signed_in = session_cookie(browser)
        assert signed_in and signed_in != anonymous  # no fixation
        assert signed_in_as(page.text) == "demo"
        assert "Enamel mug</td>" in page.text  # the cart came along
        assert "regenerated the ID" in page.text  # the panel tells what sessionkit did

    stale = replay(demo, demo.shop, anonymous)
    assert signed_in_as(stale.text) is None and "Nothing here yet." in stale.text


def test_a_message_shows_once(demo: Demo) -> None:
    with browser_like() as browser:
        page = shop_post(browser, demo, "cart/add/tee/")
        assert page.text.count("Added Organic tee to your cart.") == 1
        again = browser.get(demo.shop)
        assert "Added Organic tee" not in again.text
        assert "Organic tee</td>" in again.text


def test_logout_kills_the_cookie_server_side(demo: Demo) -> None:
    with browser_like() as browser:
        shop_login(browser, demo)
        captured = session_cookie(browser)
        assert captured
        page = shop_post(browser, demo, "logout/")
        assert "Signed out of all three apps" in page.text
        assert signed_in_as(page.text) is None
    assert signed_in_as(replay(demo, demo.shop, captured).text) is None


def test_session_cookie_attributes(demo: Demo) -> None:
    with browser_like() as browser:
        browser.get(demo.shop)
        response = browser.post(
            demo.shop + "cart/add/cap/",
            data={"csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            follow_redirects=False,
        )
    header = next(h for h in response.headers.get_list("set-cookie") if h.startswith("sessionkit="))
    attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")[1:]}
    assert "httponly" in attributes and attributes["samesite"].strip() == "SameSite=Lax"
    assert attributes["path"].strip() == "Path=/"
    assert 7000 < int(attributes["max-age"].split("=")[1]) <= 7200  # the shared idle timeout
    assert "Cookie" in response.headers["vary"]


def test_after_login_only_sibling_apps_are_followed(demo: Demo) -> None:
    with browser_like() as browser:
        page = shop_login(browser, demo, next_url="https://evil.example/")
        assert str(page.url) == demo.shop
    with browser_like() as browser:
        page = shop_login(browser, demo, next_url=demo.notes)
        assert str(page.url) == demo.notes
        assert signed_in_as(page.text) == "demo"  # and the notes app knows who it is


def test_a_wrong_password_signs_nobody_in(demo: Demo) -> None:
    with browser_like() as browser:
        browser.get(demo.shop + "login/")
        page = browser.post(
            demo.shop + "login/",
            data={"csrfmiddlewaretoken": browser.cookies["csrftoken"], "username": "demo",
                  "password": "wrong"},
        )  # fmt: skip
        assert "did not match" in page.text and signed_in_as(page.text) is None
        assert session_cookie(browser) is None  # nothing stored for a failed attempt
