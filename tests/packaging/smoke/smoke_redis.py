"""``sessionkit[redis]``: the Redis store against a real redis-server, sync and async."""

from __future__ import annotations

import os

from smokelib import main, server_store_roundtrip


def check() -> None:
    server_store_roundtrip(os.environ["SMOKE_REDIS_URL"])


if __name__ == "__main__":
    main(check)
