"""``sessionkit[memcached]``: the Memcached store against a real memcached, sync and async
(pymemcache has no async client: the async flavour runs in a worker thread)."""

from __future__ import annotations

import os

from smokelib import main, server_store_roundtrip


def check() -> None:
    server_store_roundtrip(os.environ["SMOKE_MEMCACHED_URL"])


if __name__ == "__main__":
    main(check)
