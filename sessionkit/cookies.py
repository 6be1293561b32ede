"""Reading our cookie out of a Cookie header, and writing Set-Cookie, Vary and Cache-Control.

Parsing is deliberately narrow: only ``name=value`` pairs whose name is exactly ours count.
A nameless pair such as ``=session=evil`` carries nothing (Werkzeug CVE-2023-23934), and
values are never unquoted or decoded: a value that is not in our own alphabet fails
verification later.
"""

from __future__ import annotations

from email.utils import formatdate

from sessionkit.config import SessionConfig
from sessionkit.errors import SessionTooLarge

_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


def cookie_values(header: str | None, name: str) -> list[str]:
    """Every value sent for cookie ``name``, in header order (usually zero or one)."""
    if not header or name not in header:
        return []
    if ";" not in header:  # the usual request: our cookie alone
        key, sep, value = header.partition("=")
        return [value.strip()] if sep and key.strip() == name else []
    found = []
    for pair in header.split(";"):
        key, sep, value = pair.partition("=")
        if sep and key.strip() == name:
            found.append(value.strip())
    return found


class CookieWriter:
    """Builds this app's Set-Cookie headers; the attribute tail is computed once.

    ``cookie_spelling="starlette"`` writes Starlette's own spelling and order
    (``name=v; path=/; Max-Age=N; httponly; samesite=lax; secure; domain=d; partitioned``,
    and ``name=null; ...; expires=...`` to delete), so the drop-in's headers read as before.
    """

    __slots__ = ("_expires", "_head", "_limit", "_name", "_null", "_tail", "_tail_secure")

    def __init__(self, config: SessionConfig) -> None:
        if config.cookie_spelling == "starlette":
            head = f"; path={config.cookie_path}"
            parts = ["httponly"] if config.cookie_httponly else []
            if config.cookie_samesite:
                parts.append(f"samesite={config.cookie_samesite}")
            secure, tail_parts = "; secure", []
            if config.cookie_domain:
                tail_parts.append(f"domain={config.cookie_domain}")
            if config.cookie_partitioned:
                tail_parts.append("partitioned")
            first = "; " + "; ".join(parts) if parts else ""
            rest = "; " + "; ".join(tail_parts) if tail_parts else ""
            tail, tail_secure, null = first + rest, first + secure + rest, "null"
            expires = "expires"
        else:
            head, null, expires = "", "", "Expires"
            parts = [f"Path={config.cookie_path}"]
            if config.cookie_domain:
                parts.append(f"Domain={config.cookie_domain}")
            if config.cookie_httponly:
                parts.append("HttpOnly")
            if config.cookie_samesite:
                parts.append(f"SameSite={config.cookie_samesite.capitalize()}")
            if config.cookie_partitioned:
                parts.append("Partitioned")
            tail = "; " + "; ".join(parts)
            tail_secure = tail + "; Secure"
        self._name = config.cookie_name
        self._head = head
        self._null = null
        self._expires = f"; Max-Age=0; {expires}={_EPOCH}"
        self._tail_secure = tail_secure
        self._tail = tail_secure if config.cookie_secure else tail
        self._limit = config.max_cookie_size

    def set(
        self, value: str, max_age: int | None, *, secure: bool = False,
        expires: float | None = None,
    ) -> str:  # fmt: skip
        """A Set-Cookie value; ``max_age=None`` makes a browser-session cookie. ``expires``
        (a timestamp) adds ``Expires=`` to a persistent one.

        Raises ``SessionTooLarge`` rather than produce a header browsers would drop.
        """
        tail = self._tail_secure if secure else self._tail
        if max_age is None:
            header = f"{self._name}={value}{self._head}{tail}"
        else:
            if expires is not None:
                tail = f"; Expires={formatdate(expires, usegmt=True)}{tail}"
            age = max_age if max_age > 0 else 0
            header = f"{self._name}={value}{self._head}; Max-Age={age}{tail}"
        if len(header) > self._limit:
            raise SessionTooLarge(len(header), self._limit)
        return header

    def clear(self, *, secure: bool = False) -> str:
        """A Set-Cookie value that deletes the cookie."""
        tail = self._tail_secure if secure else self._tail
        return f"{self._name}={self._null}{self._head}{self._expires}{tail}"


def add_vary_cookie(existing: str | None) -> str:
    """Merge ``Cookie`` into a Vary header value."""
    if not existing:
        return "Cookie"
    fields = [f.strip().lower() for f in existing.split(",")]
    if "cookie" in fields or "*" in fields:
        return existing
    return f"{existing}, Cookie"


def add_cache_private(existing: str | None) -> str:
    """Make a Cache-Control value private: a response that sets a session cookie must never
    be stored by a shared cache (Flask CVE-2023-30861)."""
    if not existing:
        return "private"
    directives = [d.strip() for d in existing.split(",") if d.strip()]
    lowered = [d.lower() for d in directives]
    if "private" in lowered or "no-store" in lowered:
        return existing
    kept = [d for d, low in zip(directives, lowered, strict=True) if low != "public"]
    return ", ".join(["private", *kept])


#: How each header of ``CommitPlan.headers()`` other than ``Set-Cookie`` merges into a value
#: the app already set, by lower-case name.
MERGERS = {"vary": add_vary_cookie, "cache-control": add_cache_private}


def merge_header(name: str, existing: str | None) -> str:
    """Our ``Vary`` or ``Cache-Control`` (from ``CommitPlan.headers()``) merged into the
    app's own value of that header, or ours alone when it has none."""
    return MERGERS[name.lower()](existing)
