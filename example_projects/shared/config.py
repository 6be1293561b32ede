"""The one configuration the three example apps agree on.

A login in one app is a login in the others because all three use the same cookie name,
the same secret key, the same store and the same timeouts. Everything here comes from the
environment (the launcher, ``python -m example_projects.run``, sets it for its children), so
each app can also be started on its own.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

#: The same in every app: a browser sends one cookie to 127.0.0.1 whatever the port.
COOKIE_NAME = "sessionkit"
IDLE_TIMEOUT = 2 * 3600.0  # a session unused for two hours dies
ABSOLUTE_TIMEOUT = 12 * 3600.0  # and none outlives twelve hours, however busy
DEMO_USER = "demo"
#: A local demo's known password, printed by the launcher; the server listens on loopback.
DEMO_PASSWORD = "sessionkit-demo"  # noqa: S105

ENV_DATA = "SESSIONKIT_DEMO_DATA"
ENV_STORE = "SESSIONKIT_DEMO_STORE"
ENV_URLS = {
    "shop": "SESSIONKIT_DEMO_SHOP_URL",
    "notes": "SESSIONKIT_DEMO_NOTES_URL",
    "dashboard": "SESSIONKIT_DEMO_DASHBOARD_URL",
}
DEFAULT_PORTS = {"shop": 8001, "notes": 8002, "dashboard": 8003}
TITLES = {"shop": "Shop (Django)", "notes": "Notes (Flask)", "dashboard": "Sessions (FastAPI)"}


def data_dir() -> Path:
    """Where the demo keeps its state: git-ignored, created on first use."""
    path = Path(os.environ.get(ENV_DATA) or PACKAGE / "data")
    path.mkdir(parents=True, exist_ok=True)
    return path


def secret_key() -> str:
    """The demo's secret key: made once per data folder (mode 0600), never committed.

    Created with O_EXCL so that three apps starting at once agree on one key: the first
    writer wins and the others read what it wrote.
    """
    path = data_dir() / "secret_key"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another app may be writing it right now
            key = path.read_text().strip()
            if len(key) >= 43:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} holds no usable key; delete it to make a new one") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key


def store_url() -> str:
    """``SESSIONKIT_DEMO_STORE`` (e.g. ``redis://127.0.0.1:6379/0``), else one SQLite file
    that the three server processes share."""
    return os.environ.get(ENV_STORE) or f"sqlite:///{data_dir() / 'sessions.sqlite3'}"


@dataclass(frozen=True)
class Link:
    key: str
    title: str
    url: str


def links() -> list[Link]:
    """The three apps' home URLs, for the navigation bar and cross-app redirects."""
    return [
        Link(key, TITLES[key], os.environ.get(env) or f"http://127.0.0.1:{DEFAULT_PORTS[key]}/")
        for key, env in ENV_URLS.items()
    ]


def url_of(key: str) -> str:
    return next(link.url for link in links() if link.key == key)
