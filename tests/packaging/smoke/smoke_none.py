"""``pip install sessionkit``: the core with its built-in stores (memory, cookie, file), sync
and async; a store or command whose extra is missing says which extra to install."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from smokelib import KEY, TMP, acore_roundtrip, core_roundtrip, main, server_store_roundtrip


def check() -> None:
    from sessionkit import ConfigError, SessionConfig, SessionEngine
    from sessionkit.stores import open_store

    for url in ("memory://", "cookie://"):
        engine = SessionEngine(SessionConfig(secret_key=KEY, store=url))
        core_roundtrip(engine)
        asyncio.run(acore_roundtrip(engine))
    server_store_roundtrip(f"file://{TMP / 'sessions'}")
    for url, extra in [
        ("redis://127.0.0.1:1/0", "redis"), (f"sqlite:///{TMP / 'x.db'}", "sql"),
        ("postgresql://127.0.0.1:1/db", "postgres"), ("memcached://127.0.0.1:1", "memcached"),
    ]:  # fmt: skip
        try:
            open_store(url)
        except ConfigError as exc:
            message = str(exc)
        else:
            raise AssertionError(f"{url} opened without its extra")
        assert f"sessionkit[{extra}]" in message, message
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sessionkit"), "keygen"], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "sessionkit[cli]" in done.stderr + done.stdout, done


if __name__ == "__main__":
    main(check)
