"""Download and unpack a framework's sdist for the version installed in this environment."""

from __future__ import annotations

import fcntl
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Where unpacked sdists live: ``$SESSIONKIT_UPSTREAM_CACHE`` or ``.venv/upstream``."""
    configured = os.environ.get("SESSIONKIT_UPSTREAM_CACHE")
    path = Path(configured) if configured else ROOT / ".venv" / "upstream"
    path.mkdir(parents=True, exist_ok=True)
    return path


def installed_version(dist: str) -> str:
    return importlib.metadata.version(dist)


def upstream_tree(dist: str, version: str | None = None) -> Path:
    """The unpacked source tree of ``dist`` (default: the installed version).

    xdist workers may ask at once: a file lock makes one of them download while the others
    wait, and a ``.complete`` marker makes an interrupted unpack start again.
    """
    version = version or installed_version(dist)
    root = cache_dir()
    target = root / f"{dist.lower()}-{version}"
    marker = target / ".complete"
    if marker.exists():
        return target
    with open(root / f".{dist.lower()}-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return target
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
                 "--no-deps", "--no-binary", ":all:", f"{dist}=={version}", "-d", tmp],
                check=True,
            )
            (archive,) = Path(tmp).glob("*.tar.gz")
            with tarfile.open(archive) as tar:
                if sys.version_info >= (3, 12):
                    tar.extractall(tmp, filter="data")
                else:
                    tar.extractall(tmp)  # noqa: S202 - an sdist from the registry we trust
            (unpacked,) = (p for p in Path(tmp).iterdir() if p.is_dir())
            shutil.rmtree(target, ignore_errors=True)
            unpacked.rename(target)
        marker.touch()
    return target
