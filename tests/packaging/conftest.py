"""What a user installs is what the tests tested: the sdist and wheel are built once per run
(``python -m build``), and each extra is installed from that wheel into a fresh venv (uv)
that holds nothing else.

``make test`` builds and checks ``dist/`` first (``make dist``) and points ``SESSIONKIT_DIST``
at it; a bare ``pytest`` run builds into its own temporary directory, once for all xdist
workers. A missing ``build`` or ``uv`` fails the run with what to install: nothing here is
skipped.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).resolve().parent / "smoke"
#: the venvs' download cache lives in the dev venv (gone with ``make clean``)
UV_CACHE = Path(sys.prefix) / "uv-cache"


def source_version() -> str:
    """``__version__`` as written in ``sessionkit/__init__.py``, the one place it is set."""
    text = (ROOT / "sessionkit" / "__init__.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert found, "sessionkit/__init__.py sets no __version__"
    return found.group(1)


def uv() -> str:
    """The uv binary of the dev venv (the ``uv`` package of the test extra), else PATH's."""
    try:
        from uv import find_uv_bin

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
    if found is None:
        pytest.fail(
            "tests/packaging needs uv to make a fresh venv per extra: it is in the test "
            "extra (pip install -e '.[test]'; `make test` installs it)",
            pytrace=False,
        )
    return found


def need_module(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.fail(
            f"tests/packaging needs {name!r} (in the test extra: pip install -e '.[test]'; "
            "`make test` installs it)",
            pytrace=False,
        )


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path

    def metadata(self) -> dict[str, list[str]]:
        """The wheel's METADATA, each field a list of its values."""
        with zipfile.ZipFile(self.wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            message = Parser().parsestr(archive.read(name).decode())
        fields: dict[str, list[str]] = {}
        for key, value in message.items():
            fields.setdefault(key, []).append(value)
        return fields

    def requirements(self, extra: str) -> list[Requirement]:
        """What ``sessionkit[extra]`` installs directly: the base dependencies and the
        extra's, markers resolved (``extra="none"``: the base alone)."""
        found = []
        for line in self.metadata().get("Requires-Dist", []):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                req.marker = None
                found.append(req)
        return found


def build_dist(outdir: Path) -> None:
    need_module("build")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(outdir), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout}\n{done.stderr}"


def find_dist(directory: Path) -> Dist:
    version = source_version()
    wheels = sorted(directory.glob(f"sessionkit-{version}-*.whl"))
    sdists = sorted(directory.glob(f"sessionkit-{version}.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, (
        f"{directory} should hold one wheel and one sdist of sessionkit {version}; it holds "
        f"{sorted(p.name for p in directory.iterdir())} (rebuild: make dist)"
    )
    return Dist(wheels[0], sdists[0])


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    given = os.environ.get("SESSIONKIT_DIST")
    if given:
        return find_dist(ROOT / given)
    base = tmp_path_factory.getbasetemp()
    # under xdist every worker's basetemp sits in the run's own directory: build once there
    directory = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "dist"
    directory.mkdir(exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (directory / ".built").exists():
            build_dist(directory)
            (directory / ".built").touch()
    return find_dist(directory)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no source tree on the path, no dev venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV", "UV_", "DJANGO_"))
        and k != "SESSIONKIT_STORE"
    }
    env.update(UV_CACHE_DIR=str(UV_CACHE), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    env.update(extra)
    return env


@dataclass(frozen=True)
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def run(
        self, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), *args], cwd=cwd, env=clean_env(**(env or {})),
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def versions(self) -> dict[str, str]:
        done = subprocess.run(
            [uv(), "pip", "freeze", "--python", str(self.python)],
            env=clean_env(), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        pins = (line.split("==", 1) for line in done.stdout.splitlines() if "==" in line)
        return {canonical(name): version for name, version in pins}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make_venv(
    path: Path, dist: Dist, extra: str, *, lowest: bool = False, also: tuple[str, ...] = ()
) -> Venv:
    """A fresh venv with the built wheel and ``extra`` alone (``"none"``: no extra).
    ``lowest``: every direct requirement at the lowest version it allows (restated as a
    direct requirement, since uv's ``lowest-direct`` treats a wheel's own dependencies as
    transitive)."""
    tool = uv()
    done = subprocess.run(
        [tool, "venv", "--quiet", "--python", sys.executable, str(path)],
        env=clean_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"uv venv failed:\n{done.stderr}"
    target = "sessionkit" if extra == "none" else f"sessionkit[{extra}]"
    command = [tool, "pip", "install", "--quiet", "--python", str(path / "bin" / "python"),
               f"{target} @ {dist.wheel.as_uri()}", *also]  # fmt: skip
    if lowest:
        command += ["--resolution", "lowest-direct", *map(str, dist.requirements(extra))]
    done = subprocess.run(
        command, env=clean_env(), capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    return Venv(path)
