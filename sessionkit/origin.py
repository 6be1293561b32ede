"""Whether a request may change state: the browser's word on where it came from.

``Sec-Fetch-Site`` first (every current browser sends it), then ``Origin`` against the
app's own scheme and host. Used by the sessions API in the frameworks that have no CSRF
check of their own, and available to any view.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol
from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HeaderItems(Protocol):
    """Any framework's request headers: a mapping, or Werkzeug's ``Headers``."""

    def items(self) -> Iterable[tuple[str, str]]: ...


def same_origin(method: str, headers: HeaderItems, host: str, scheme: str) -> bool:
    """Whether a request may change state: safe methods always; otherwise the browser's
    ``Sec-Fetch-Site`` must say ``same-origin`` (or ``none``: typed by the user), or, from a
    browser that does not send it, ``Origin`` must be this scheme and host. A request with
    neither header is refused: a state-changing call from a non-browser client proves
    nothing about where it came from, so such clients send ``Origin`` themselves."""
    if method.upper() in SAFE_METHODS:
        return True
    lowered = {name.lower(): value for name, value in headers.items()}
    site = lowered.get("sec-fetch-site")
    if site is not None:
        return site.strip().lower() in ("same-origin", "none")
    origin = lowered.get("origin")
    if origin is None or origin.strip().lower() == "null":
        return False
    claimed, ours = _origin(origin.strip()), _origin(f"{scheme}://{host}")
    return claimed is not None and claimed == ours


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]
