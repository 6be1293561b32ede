"""A library a store needs and the user did not install is a ``ConfigError`` that names the
extra to install, not the library's own traceback. Each case runs in a fresh interpreter
with the missing module blocked, so the modules this test process already holds do not
hide the failure."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_without(module: str, code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a new interpreter where ``import module`` fails as if not installed."""
    prelude = f"import sys\nsys.modules[{module!r}] = None  # import raises ImportError\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "adapters")])}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_async_sql_without_greenlet_is_a_config_error_naming_the_extra(tmp_path: Path) -> None:
    # SQLAlchemy 2.1 refuses to import sqlalchemy.ext.asyncio without greenlet; that import
    # must sit inside the store's try, or the user sees SQLAlchemy's message (or a 500)
    done = run_without(
        "greenlet",
        f"""
        import asyncio
        from sessionkit import ConfigError
        from sessionkit.stores import open_store

        store = open_store("sqlite:///{tmp_path / "s.sqlite3"}")
        assert store.load("a" * 64) is None  # the sync side needs no greenlet
        try:
            asyncio.run(store.aload("a" * 64))
        except ConfigError as exc:
            print("ConfigError:", exc)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "ConfigError:" in done.stdout
    assert "sqlalchemy[asyncio]" in done.stdout
    assert "sessionkit[sql]" in done.stdout


def test_a_store_without_its_client_library_names_its_extra(tmp_path: Path) -> None:
    done = run_without(
        "sqlalchemy",
        """
        from sessionkit import ConfigError
        from sessionkit.stores import open_store

        for url in ("sqlite:///x.sqlite3", "postgresql://localhost/db"):
            try:
                open_store(url)
            except ConfigError as exc:
                print("ConfigError:", exc)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "sessionkit[sql]" in done.stdout
    assert "sessionkit[postgres]" in done.stdout


def test_metrics_without_their_library_name_their_extra(tmp_path: Path) -> None:
    for module, setting, extra in [
        ("prometheus_client", "prometheus", "metrics"), ("opentelemetry", "otel", "otel"),
    ]:  # fmt: skip
        done = run_without(
            module,
            f"""
            from sessionkit import ConfigError, SessionConfig, SessionEngine

            config = SessionConfig(secret_key="k" * 8 + "0123456789abcdefghijklmnopqrstuv",
                                   store="memory://", metrics={setting!r})
            try:
                SessionEngine(config)
            except ConfigError as exc:
                print("ConfigError:", exc)
            """,
            tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "ConfigError:" in done.stdout and f"sessionkit[{extra}]" in done.stdout, done.stdout
