from __future__ import annotations

import subprocess
import sys

from sessionkit import SessionConfig


def test_keygen_prints_a_key_the_config_accepts() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", "keygen"], capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    key = out.stdout.strip()
    assert len(key) == 64
    assert SessionConfig(secret_key=key).secret_keys == (key.encode(),)


def test_keygen_refuses_short_keys() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sessionkit.cli", "keygen", "--bytes", "8"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
