"""``sessionkit[speed]``: orjson and pybase64 are picked up, and the cookie they make reads
back (sync and async) exactly as one made by the standard library would."""

from __future__ import annotations

import asyncio

from smokelib import KEY, acore_roundtrip, core_roundtrip, main


def check() -> None:
    from sessionkit import SessionConfig, SessionEngine, crypto, serialization

    assert serialization._orjson is not None, "orjson is installed but not used"
    assert crypto._pybase64 is not None, "pybase64 is installed but not used"
    value = {"n": 1, "s": "é", "t": (1, 2)}
    assert serialization.loads(serialization.dumps(value)) == value
    engine = SessionEngine(SessionConfig(secret_key=KEY, store="cookie://"))
    core_roundtrip(engine)
    asyncio.run(acore_roundtrip(engine))


if __name__ == "__main__":
    main(check)
