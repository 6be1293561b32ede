"""Release hygiene: the supported versions are said once in effect, by ``tox.ini``, and the
classifiers, the README and the extras' floors agree with it; the version is written in one
place; the changelog keeps its form."""

from __future__ import annotations

import configparser
import re
import sys

from packaging.requirements import Requirement
from packaging.version import Version

from tests.packaging.conftest import ROOT, source_version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - pytest brings tomli on Python 3.10
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
README = (ROOT / "README.md").read_text()


def expand(envs: str) -> list[str]:
    """tox's brace expansion: ``py{310,312}-django42`` -> two env names."""
    group = re.search(r"\{([^}]*)\}", envs)
    if group is None:
        return [envs]
    head, tail = envs[: group.start()], envs[group.end() :]
    return [env for option in group.group(1).split(",") for env in expand(head + option + tail)]


def tox_factors() -> set[str]:
    """Every factor of tox's envlist (``py310``, ``django42``, ``starlette1``, ...)."""
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    envs = [env for line in tox["tox"]["envlist"].split() for env in expand(line)]
    return {factor for env in envs for factor in env.split("-")}


def tox_versions(framework: str) -> list[str]:
    """``django42`` -> ``4.2``; ``starlette037`` -> ``0.37``; ``starlette1`` -> ``1``."""
    found = []
    for factor in tox_factors():
        digits = factor.removeprefix(framework)
        if factor.startswith(framework) and digits.isdigit():
            if digits.startswith("0"):
                found.append(f"0.{digits[1:]}")
            else:
                found.append(digits if len(digits) == 1 else f"{digits[0]}.{digits[1:]}")
    return sorted(found, key=Version)


def classifier_versions(prefix: str) -> list[str]:
    return sorted(
        (c.removeprefix(prefix) for c in PYPROJECT["project"]["classifiers"]
         if c.startswith(prefix) and re.fullmatch(r"\d+(\.\d+)*", c.removeprefix(prefix))),
        key=Version,
    )  # fmt: skip


def floor(extra: str, name: str) -> Version:
    for line in PYPROJECT["project"]["optional-dependencies"][extra]:
        req = Requirement(line)
        if req.name == name:
            return max(Version(s.version) for s in req.specifier if s.operator == ">=")
    raise AssertionError(f"{name} is not in [{extra}]")


def test_python_versions_agree() -> None:
    pythons = sorted(f"3.{f.removeprefix('py3')}" for f in tox_factors() if f.startswith("py3"))
    assert pythons == ["3.10", "3.11", "3.12", "3.13"]
    assert classifier_versions("Programming Language :: Python :: ") == ["3", *pythons]
    assert PYPROJECT["project"]["requires-python"] == f">={pythons[0]}"
    assert f"Python {', '.join(pythons[:-1])} and {pythons[-1]}" in README


def test_django_versions_agree() -> None:
    versions = tox_versions("django")
    assert versions == ["4.2", "5.2", "6.0", "6.1"]
    assert classifier_versions("Framework :: Django :: ") == versions
    assert floor("django", "django") == Version(versions[0])
    assert f"Django {', '.join(versions[:-1])} and {versions[-1]}" in README


def test_flask_versions_agree() -> None:
    versions = tox_versions("flask")
    assert versions == ["3.0", "3.1"]
    assert floor("flask", "flask") == Version(versions[0])
    assert f"Flask {' and '.join(versions)}" in README


def test_starlette_versions_agree() -> None:
    versions = tox_versions("starlette")
    assert versions == ["0.37", "0.46", "1"]
    assert floor("starlette", "starlette") == Version(versions[0])
    assert "Starlette 0.37, 0.46 and 1.x" in README


def test_the_version_is_written_once() -> None:
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "sessionkit/__init__.py"
    Version(source_version())  # a valid version
    pinned = re.compile(r"\b\d+\.\d+\.\d+\b")
    for path in ("sessionkit/cli.py", "adapters/sessionkit_django/apps.py"):
        assert source_version() not in pinned.findall((ROOT / path).read_text()), path


def test_the_changelog_keeps_its_form() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "Keep a Changelog" in text
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings, "no release sections"
    for heading in headings:
        assert re.fullmatch(r"\[Unreleased\]|\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", heading), (
            heading
        )
    assert headings[0] == "[Unreleased]" or headings[0].startswith(f"[{source_version()}]")
    kinds = set(re.findall(r"^### (.+)$", text, re.M))
    assert kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, kinds


def test_the_readme_starts_with_how_to_install() -> None:
    sections = re.findall(r"^## (.+)$", README, re.M)
    assert sections[0] == "Install"
    assert 'pip install "sessionkit[django,redis]"' in README
    for extra in set(PYPROJECT["project"]["optional-dependencies"]) - {"test", "docs", "bench"}:
        named = re.search(rf"sessionkit\[[a-z,]*\b{extra}\b[a-z,]*\]", README)
        assert named or f"`{extra}`" in README, f"the README does not say how to get [{extra}]"
    assert "Contributing" in sections
    assert "make demo" in README and "make test" in README
