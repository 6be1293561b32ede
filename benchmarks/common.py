"""What every benchmark script shares: the session payload, the secret, the environment
block of the results file, and writing that file."""

from __future__ import annotations

import json
import platform
import secrets
from pathlib import Path
from typing import Any

import sessionkit

#: One secret (48 random characters) shared by every contestant of a run.
SECRET = secrets.token_urlsafe(36)
#: A small, realistic session, the same in every benchmark.
PAYLOAD: dict[str, Any] = {
    "user_id": 48213,
    "csrf_token": secrets.token_urlsafe(32),
    "n": 0,
    "recent": ["/", "/products/17", "/cart"],
}


def fresh_payload() -> dict[str, Any]:
    """A deep-enough copy of ``PAYLOAD``, so no contestant shares mutable state."""
    return {**PAYLOAD, "recent": list(PAYLOAD["recent"])}


def environment(**versions: Any) -> dict[str, Any]:
    """The interpreter, the machine, sessionkit's version and the peers' ``versions``."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "platform": platform.platform(),
        "sessionkit": sessionkit.__version__,
        **versions,
    }


def write_results(document: dict[str, Any], output: Path) -> None:
    """``benchmarks/results/<name>.json``, which ``report.py`` turns into the docs page."""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"\nwrote {output}")
