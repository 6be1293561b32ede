"""SQL store URLs: ``sqlite:///path`` and ``postgresql://...``, and sessionkit's own options."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

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


def sqlite_path(target: Target) -> Path:
    """The database file a ``sqlite:///`` target names (relative to the working directory)."""
    return Path(os.path.abspath(target.sync_url.database or ""))


def check_sqlite_directory(target: Target, url: str) -> None:
    """A database in a directory that does not exist is a setting to fix, told at start-up:
    SQLite creates the file but never its directory (the file store creates its own)."""
    directory = sqlite_path(target).parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigError(
            "store",
            f"{mask_url(url)!r}: the directory {str(directory)!r} {what}. SQLite creates the "
            f"database file but not its directory: create it (mkdir -p {directory}) or point "
            "the URL at an existing directory",
        )


def sqlite_hint(target: Target) -> str:
    """What to do when SQLite cannot open its file (it has no server to check on)."""
    path = sqlite_path(target)
    directory = path.parent
    if not directory.is_dir():
        return (
            f"The directory {str(directory)!r} does not exist (any more): create it "
            f"(mkdir -p {directory}); SQLite creates the file, not its directory"
        )
    if not os.access(directory, os.W_OK | os.X_OK) or (
        path.exists() and not os.access(path, os.R_OK | os.W_OK)
    ):
        return (
            f"This process may not write {str(path)!r} or its directory (SQLite also creates "
            f"{path.name}-wal and {path.name}-shm beside it): fix the owner or permissions"
        )
    return f"Check that {str(path)!r} is an SQLite database this process may read and write"
