"""Run an upstream pytest suite in a subprocess, with a sessionkit plugin swapped in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.upstream.exclusions import excluded
from tests.upstream.fetch import ROOT
from tests.upstream.sessionkit_deselect import DROPPED_ENV
from tests.upstream.sessionkit_deselect import ENV as DESELECT_ENV
from tests.upstream.suite_outcome import Outcome, from_junit


def run_pytest(
    framework: str,
    store: str,
    tree: Path,
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    junit: Path,
    timeout: float = 600,
    asyncio_plugin: bool = False,
) -> Outcome:
    """``python -m pytest ARGS`` in ``tree`` (so the framework's own pytest config applies),
    with this repository and ``adapters/`` importable and every exclusion deselected (by its
    exact node id: ``sessionkit_deselect``). pytest-asyncio, installed for the one suite
    that uses it (``asyncio_plugin=True``: allauth's), is kept out of the others: it would
    change how their async tests run and warn, an error in their configs, about its loop
    scope."""
    skip = excluded(framework, store)
    run_env = {**os.environ, **(env or {})}
    # tests/upstream itself too: the plugin loads by a top-level name, because the upstream
    # tree, the subprocess's cwd, may have a ``tests`` package of its own. So no module here
    # may share a name with a package the suites import (``outcome`` shadowed trio's).
    run_env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "adapters"), str(Path(__file__).resolve().parent)]
    )
    run_env.pop("PYTEST_XDIST_WORKER", None)
    run_env.pop("PYTEST_ADDOPTS", None)
    run_env[DESELECT_ENV] = json.dumps([exclusion.test for exclusion in skip])
    dropped = junit.with_name(junit.name + ".deselected.json")
    run_env[DROPPED_ENV] = str(dropped)
    command = [sys.executable, "-m", "pytest", *args, "-q", "-p", "no:cacheprovider",
               "-p", "no:randomly", "-p", "sessionkit_deselect", f"--junitxml={junit}",
               "-o", "junit_family=xunit1"]
    if not asyncio_plugin:
        command += ["-p", "no:asyncio"]
    proc = subprocess.run(command, cwd=tree, env=run_env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if not junit.exists():
        raise AssertionError(f"{framework} suite did not run:\n{proc.stdout}\n{proc.stderr}")
    # the exclusions this version has a test for (the list may name tests it lacks)
    excluded_here = json.loads(dropped.read_text()) if dropped.exists() else []
    outcome = from_junit(junit, framework, store, excluded_here)
    if proc.returncode not in (0, 1):  # 1 = tests failed; anything else is a broken run
        outcome.failed["<run>"] = (proc.stdout + proc.stderr)[-3000:]
    return outcome
