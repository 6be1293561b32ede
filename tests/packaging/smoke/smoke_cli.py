"""``sessionkit[cli]``: the console script: ``keygen``, and ``init``, ``gc`` and ``stats``
on a store that needs no other extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from smokelib import KEY, TMP, core_roundtrip, main

COMMAND = str(Path(sys.executable).parent / "sessionkit")


def sessionkit(*args: str) -> str:
    done = subprocess.run([COMMAND, *args], capture_output=True, text=True, check=False)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


def check() -> None:
    from sessionkit import SessionConfig, SessionEngine

    key = sessionkit("keygen").strip()
    assert len(key) >= 43, key
    SessionConfig(secret_key=key)  # a key it makes is one the config accepts
    store = f"file://{TMP / 'sessions'}"
    sessionkit("init", store)
    engine = SessionEngine(SessionConfig(secret_key=KEY, store=store))
    core_roundtrip(engine)  # ends with a logout: nothing left
    session = engine.open(None)
    session["n"] = 1
    engine.run(engine.commit(session, 200))
    stats = json.loads(sessionkit("stats", "--json", store))
    assert stats["sessions"] == 1, stats
    assert "1 session" in sessionkit("stats", store)
    assert "removed 0 expired sessions" in sessionkit("gc", store)
    assert "version" in sessionkit("--version")


if __name__ == "__main__":
    main(check)
