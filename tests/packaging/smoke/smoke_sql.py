"""``sessionkit[sql]``: the SQLite store, sync and through ``aload``/``arun`` (SQLAlchemy's
async engine on aiosqlite, which needs greenlet)."""

from __future__ import annotations

from smokelib import TMP, main, server_store_roundtrip


def check() -> None:
    server_store_roundtrip(f"sqlite:///{TMP / 'sessions.sqlite3'}")


if __name__ == "__main__":
    main(check)
