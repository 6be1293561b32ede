"""Each extra alone, installed from the built wheel into a fresh venv: its adapter imports
with warnings as errors, and a smoke test (``smoke/smoke_<extra>.py``) exercises what the
extra promises, sync and async, against a real server where it is a store. Once with the
newest versions the extra allows and once with the lowest (its floors in pyproject.toml).

The venvs share uv's download cache, so after the first run a venv costs about a second;
xdist spreads the cases over the workers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.version import Version

from tests import servers
from tests.conftest import dynamodb_url
from tests.packaging.conftest import SMOKE, Dist, Venv, canonical, make_venv


@dataclass(frozen=True)
class Extra:
    #: modules a user of this extra imports; each must import cleanly with ``-W error``
    imports: tuple[str, ...]
    #: the real server its smoke test talks to, if any (a fixture of tests/conftest.py)
    server: str | None = None


EXTRAS: dict[str, Extra] = {
    "none": Extra(("sessionkit", "sessionkit.stores.file")),
    "redis": Extra(("sessionkit.stores.redis",), "redis_server"),
    "sql": Extra(("sessionkit.stores.sql",)),
    "postgres": Extra(("sessionkit.stores.sql", "psycopg"), "postgres_server"),
    "memcached": Extra(("sessionkit.stores.memcached",), "memcached_server"),
    "starlette": Extra(("sessionkit_asgi",)),
    "fastapi": Extra(("sessionkit_asgi", "sessionkit_asgi.fastapi")),
    "django": Extra(("sessionkit_django", "sessionkit_django.apps")),
    "flask": Extra(("sessionkit_flask",)),
    "cli": Extra(("sessionkit.cli",)),
    "speed": Extra(("sessionkit",)),
    "dynamodb": Extra(("sessionkit.stores.dynamodb", "boto3"), "moto_server"),
    "dbsc": Extra(("sessionkit.dbsc", "jwt")),
    "metrics": Extra(("sessionkit.metrics", "sessionkit.metrics.prometheus")),
    "otel": Extra(("sessionkit.metrics", "sessionkit.metrics.otel")),
}


def server_env(extra: Extra, request: pytest.FixtureRequest) -> dict[str, str]:
    """The smoke test's store URL, in a key space (prefix, table) of its own."""
    if extra.server is None:
        return {}
    server: servers.Server = request.getfixturevalue(extra.server)
    tag = f"smoke{secrets.token_hex(4)}"
    if extra.server == "redis_server":
        return {"SMOKE_REDIS_URL": f"redis://127.0.0.1:{server.port}/0?prefix={tag}:"}
    if extra.server == "postgres_server":
        assert isinstance(server, servers.Postgres)
        return {"SMOKE_POSTGRES_URL": f"{server.url}?table={tag}"}
    if extra.server == "moto_server":
        return {"SMOKE_DYNAMODB_URL": dynamodb_url(server, table=tag)}
    return {"SMOKE_MEMCACHED_URL": f"memcached://127.0.0.1:{server.port}"}


def smoke(venv: Venv, name: str, extra: Extra, tmp_path: Path, env: dict[str, str]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    for module in extra.imports:
        done = venv.run("-s", "-W", "error", "-c", f"import {module}", cwd=work)
        assert done.returncode == 0, f"import {module} with only [{name}]:\n{done.stderr}"
    script = SMOKE / f"smoke_{name}.py"
    done = venv.run("-s", str(script), cwd=work, env={"SMOKE_TMP": str(work), **env}, timeout=180)
    assert done.returncode == 0, f"{script.name} with only [{name}]:\n{done.stdout}\n{done.stderr}"
    assert f"smoke_{name}: ok" in done.stdout


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", list(EXTRAS))
def test_extra_alone(name: str, dist: Dist, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    extra = EXTRAS[name]
    env = server_env(extra, request)
    venv = make_venv(tmp_path / "venv", dist, name)
    smoke(venv, name, extra, tmp_path, env)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", [n for n in EXTRAS if n != "none"])
def test_extra_alone_at_its_lowest_versions(
    name: str, dist: Dist, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    extra = EXTRAS[name]
    env = server_env(extra, request)
    venv = make_venv(tmp_path / "venv", dist, name, lowest=True)
    installed = venv.versions()
    for req in dist.requirements(name):  # the floors are what ran, not something newer
        floors = [Version(s.version) for s in req.specifier if s.operator == ">="]
        assert floors, f"{req} has no >= floor in pyproject.toml"
        assert Version(installed[canonical(req.name)]) == max(floors), (req, installed)
    smoke(venv, name, extra, tmp_path, env)


def test_the_smoke_tests_cover_every_extra(dist: Dist) -> None:
    provided = set(dist.metadata()["Provides-Extra"]) - {"all", "test", "docs", "bench"}
    assert provided == set(EXTRAS) - {"none"}
    assert {p.stem.removeprefix("smoke_") for p in SMOKE.glob("smoke_*.py")} == set(EXTRAS)
