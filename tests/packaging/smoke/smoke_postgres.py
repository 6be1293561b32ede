"""``sessionkit[postgres]``: the PostgreSQL store against a real server, sync (psycopg) and
async (psycopg's async connection under SQLAlchemy's async engine)."""

from __future__ import annotations

import os

from smokelib import main, server_store_roundtrip


def check() -> None:
    server_store_roundtrip(os.environ["SMOKE_POSTGRES_URL"])


if __name__ == "__main__":
    main(check)
