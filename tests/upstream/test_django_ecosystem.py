"""Django's own suites that lean on sessions (``auth_tests``, ``messages_tests``,
``test_client``, ``test_client_regress``: logins, logouts, the session hash of a password
change, the messages' session storage, the test client's ``login()`` and ``session``), run
by Django's ``runtests.py`` from the installed version's sdist with only
``SESSION_ENGINE = "sessionkit_django.engine"`` changed, as a user's project changes it.

Their own skips (an optional library not installed, a database feature) are Django's and are
counted, not failed; every failure must be an exclusion listed, with its reason, in
``tests/upstream/exclusions.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.upstream.exclusions import EXCLUSIONS
from tests.upstream.fetch import upstream_tree
from tests.upstream.suite_outcome import Outcome

ROOT = Path(__file__).resolve().parents[2]
LABELS = ["auth_tests", "messages_tests", "test_client", "test_client_regress"]
SETTINGS = '''\
# Django's own test settings, with sessionkit's engine swapped in (the one change a user makes)
from test_sqlite import *  # noqa: F403

SESSION_ENGINE = "sessionkit_django.engine"
SESSIONKIT = {"STORE": "memory://"}
SECRET_KEY = "django-ecosystem-suites-0123456789abcdefghijklmnopqrstuvwxyzABCDEF"
'''
# "test_name (module.Class.test_name) ... ok" (Django 5 prints the dotted id in brackets);
# a test with a docstring has the id alone on one line and "docstring ... ok" on the next
NAMED = re.compile(r"^\w+ \(([\w.]+)\)")
STATUS = re.compile(r" \.\.\. (ok|ERROR|FAIL|skipped.*|expected failure|unexpected success)$")


def results(stderr: str) -> dict[str, str]:
    found: dict[str, str] = {}
    pending = None
    for line in stderr.splitlines():
        named, status = NAMED.match(line), STATUS.search(line)
        test = named[1] if named is not None else pending
        if status is not None and test is not None:
            found[test] = status[1]
            pending = None
        elif named is not None:
            pending = named[1]
    return found


@pytest.mark.timeout(900)  # 1,100-odd Django tests in one process: minutes on a loaded machine
def test_django_suites_that_use_sessions(tmp_path: Path) -> None:
    tree = upstream_tree("Django")
    (tmp_path / "sk_settings.py").write_text(SETTINGS)
    env_path = [str(tmp_path), str(ROOT), str(ROOT / "adapters")]
    done = subprocess.run(
        [sys.executable, "runtests.py", "--settings=sk_settings", "--parallel=1", "-v", "2",
         *LABELS],
        cwd=tree / "tests", capture_output=True, text=True, timeout=900,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    skip = {e.test for e in EXCLUSIONS if e.framework == "django" and "ecosystem" in e.stores}
    outcome = Outcome("django", "ecosystem", excluded=sorted(skip))
    for test, status in results(done.stderr).items():
        if status in ("ok", "expected failure"):
            outcome.passed.append(test)
        elif status.startswith("skipped"):
            outcome.skipped[test] = status  # Django's own skip (an optional library)
        elif test not in skip:
            outcome.failed[test] = status
    # Django's own count decides, and its failure headers name them ("ERROR: test (id)"):
    # a listing line may be split by output, a header never is
    summary = re.search(r"^(OK|FAILED)(?: \((.*)\))?$", done.stderr, re.M)
    assert summary is not None, done.stderr[-3000:]
    counts = dict(re.findall(r"(\w+)=(\d+)", summary[2] or ""))
    bad = int(counts.get("errors", 0)) + int(counts.get("failures", 0))
    failing = set(re.findall(r"^(?:ERROR|FAIL): \w+ \(([\w.]+)\)", done.stderr, re.M))
    for test in failing - skip:
        outcome.failed.setdefault(test, "failed (see Django's output)")
    outcome.save()
    assert bad == len(failing), f"{summary[0]}, but headers name {sorted(failing)}"
    assert not outcome.failed, outcome.report() + "\n" + done.stderr[-6000:]
