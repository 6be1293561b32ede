"""SQL store URLs: ``sqlite:///path`` and ``postgresql://...``, and sessionkit's own options."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import URL, make_url

from sessionkit.errors import ConfigError
from sessionkit.stores.base import mask_url

DEFAULT_TABLE = "sessionkit_sessions"
_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,47}")
_OUR_OPTIONS = ("table", "sweep_chunk", "busy_timeout", "pool_size", "max_overflow")


@dataclass(frozen=True)
class Target:
    """Where a store URL points: the backend and the SQLAlchemy URLs of both flavours."""

    backend: str  # "sqlite" or "postgresql"
    sync_url: URL
    async_url: URL


def parse_url(url: str) -> tuple[Target, dict[str, str]]:
    """``sqlite:///rel.db``, ``sqlite:////abs.db``, ``postgres(ql)://...`` → the target and
    sessionkit's own options taken out of the query string (the rest goes to the driver,
    e.g. ``?sslmode=require``)."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError("store", f"{mask_url(url)!r} is not a valid SQL URL") from exc
    scheme = parsed.drivername.lower()
    query = dict(parsed.query)
    ours = {k: str(query.pop(k)) for k in _OUR_OPTIONS if k in query}
    parsed = parsed.set(query=query)
    if scheme in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"):
        if (
            not parsed.database
            or parsed.database == ":memory:"
            or parsed.database.startswith("file:")
        ):
            raise ConfigError(
                "store",
                f"{mask_url(url)!r}: give SQLite a file, e.g. sqlite:///sessions.db or "
                "sqlite:////var/lib/app/sessions.db (for sessions in memory use memory://)",
            )
        target = Target(
            "sqlite",
            parsed.set(drivername="sqlite+pysqlite"),
            parsed.set(drivername="sqlite+aiosqlite"),
        )
    elif scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        pg = parsed.set(drivername="postgresql+psycopg")
        target = Target("postgresql", pg, pg)
    else:
        raise ConfigError(
            "store",
            f"{mask_url(url)!r}: SQLStore speaks sqlite:///path and postgresql://... (psycopg 3)",
        )
    return target, ours


def check_table_name(name: str) -> str:
    """Table names end up in DDL; accept plain identifiers only."""
    if not _TABLE_RE.fullmatch(name):
        raise ConfigError("table", f"{name!r} must be letters, digits and _ (at most 48)")
    return name
