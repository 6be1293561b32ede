"""The built sdist and wheel: they pass ``twine check``, and the wheel holds exactly the core
and the three adapters (every module, ``py.typed``, the Django templates), the metadata of
the version in ``sessionkit/__init__.py``, the console script and the pytest plugin, which
a fresh venv with only the wheel and pytest loads."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

from tests.packaging.conftest import ROOT, Dist, make_venv, need_module, source_version

PACKAGES = {
    "sessionkit": ROOT / "sessionkit",
    "sessionkit_asgi": ROOT / "adapters" / "sessionkit_asgi",
    "sessionkit_django": ROOT / "adapters" / "sessionkit_django",
    "sessionkit_flask": ROOT / "adapters" / "sessionkit_flask",
}


def wheel_names(dist: Dist) -> set[str]:
    with zipfile.ZipFile(dist.wheel) as archive:
        return set(archive.namelist())


def shipped_files(package: str, source: Path) -> set[str]:
    """What the wheel must hold of ``source``: every file but bytecode."""
    return {
        f"{package}/{path.relative_to(source).as_posix()}"
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_twine_check_passes(dist: Dist) -> None:
    need_module("twine")
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dist.wheel), str(dist.sdist)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_wheel_holds_the_core_and_the_three_adapters_and_nothing_else(dist: Dist) -> None:
    names = wheel_names(dist)
    info = f"sessionkit-{source_version()}.dist-info"
    assert {name.split("/")[0] for name in names} == {*PACKAGES, info}
    for package, source in PACKAGES.items():
        want = shipped_files(package, source)
        assert f"{package}/py.typed" in want
        assert want <= names, f"missing from the wheel: {sorted(want - names)}"
        extra = {n for n in names if n.startswith(f"{package}/")} - want
        assert not extra, f"in the wheel but not in the tree: {sorted(extra)}"
    assert f"{info}/licenses/LICENSE" in names


def test_the_django_app_ships_its_templates_and_needs_no_migrations(dist: Dist) -> None:
    names = wheel_names(dist)
    app = PACKAGES["sessionkit_django"]
    templates = shipped_files("sessionkit_django", app / "templates")
    templates = {
        n.replace("sessionkit_django/", "sessionkit_django/templates/", 1) for n in templates
    }
    assert templates and templates <= names
    # the app defines no models (sessions live in sessionkit's stores, not Django's database),
    # so it has no migrations; a models module without them would break `migrate`
    migrations = app / "migrations"
    if (app / "models.py").exists() or migrations.exists():
        assert (migrations / "__init__.py").exists(), (
            "sessionkit_django has models but no migrations"
        )
        assert shipped_files("sessionkit_django", app) <= names


def test_entry_points_and_metadata(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as archive:
        info = f"sessionkit-{source_version()}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "[console_scripts]\nsessionkit = sessionkit.cli:main" in entry_points
    assert "[pytest11]\nsessionkit = sessionkit.testing.plugin" in entry_points
    metadata = dist.metadata()
    assert metadata["Version"] == [source_version()]
    assert metadata["Requires-Python"] == [">=3.10"]
    assert metadata["Description-Content-Type"] == ["text/markdown"]


def test_the_sdist_carries_the_tests_docs_and_release_files(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    required = {
        "pyproject.toml", "README.md", "CHANGELOG.md", "LICENSE", "Makefile", "tox.ini",
        "mkdocs.yml", "sessionkit/__init__.py", "adapters/sessionkit_django/apps.py",
        "docs/compatibility.md", "tests/fixtures/formats/manifest.json",
    }  # fmt: skip
    assert required <= names, f"not in the sdist: {sorted(required - names)}"


def test_the_pytest_plugin_and_conformance_suite_from_the_wheel(dist: Dist, tmp_path: Path) -> None:
    """A third-party store's tests: only the wheel and pytest installed, the ``fake_clock``
    fixture from the plugin's entry point, and the conformance suite on a store."""
    venv = make_venv(tmp_path / "venv", dist, "none", also=("pytest",))
    work = tmp_path / "work"
    work.mkdir()
    (work / "test_my_store.py").write_text(
        textwrap.dedent(
            """
            from sessionkit import MemoryStore
            from sessionkit.testing import (
                FakeClock, LockConformance, ScanConformance, ServerStoreConformance,
                SweepConformance, UserIndexConformance, SessionLimitConformance,
                ResealConformance,
                ChallengeConformance,
            )


            def test_the_plugin_gives_a_fake_clock(fake_clock):
                assert isinstance(fake_clock, FakeClock)


            class TestMemory(ServerStoreConformance, UserIndexConformance, LockConformance,
                             SweepConformance, ScanConformance, SessionLimitConformance,
                             ResealConformance, ChallengeConformance):
                def make_store(self, clock):
                    return MemoryStore(clock=clock)
            """
        )
    )
    done = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", cwd=work, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) > 50 and "failed" not in done.stdout, done.stdout[-500:]
