"""What one run of an upstream suite gave, read from its JUnit XML, and the table of all runs.

Each run writes ``<framework>-<store>.json`` into ``$SESSIONKIT_UPSTREAM_RESULTS``, a directory
the controlling pytest process makes for its run (xdist workers inherit it), and
``tests/conftest.py`` prints the table of this run's results in the terminal summary.
"""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.upstream.fetch import cache_dir


@dataclass
class Outcome:
    framework: str
    store: str
    passed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # test id -> first lines of the error
    skipped: dict[str, str] = field(default_factory=dict)  # test id -> reason
    excluded: list[str] = field(default_factory=list)
    finished: float = field(default_factory=time.time)

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.skipped)

    def line(self) -> str:
        counts = f"{len(self.passed):>4}/{self.total:<4} passed  {len(self.failed)} failed"
        rest = f"  {len(self.skipped)} skipped  {len(self.excluded)} excluded"
        return f"{self.framework:<10} {self.store:<10} {counts}{rest}"

    def report(self) -> str:
        """The message of a failing run: every failure and skip with its first lines."""
        parts = [self.line()]
        parts += [f"FAILED {test}\n    {msg}" for test, msg in self.failed.items()]
        parts += [f"SKIPPED {test}: {why}" for test, why in self.skipped.items()]
        return "\n".join(parts)

    def save(self) -> None:
        results = results_dir()
        results.mkdir(parents=True, exist_ok=True)
        (results / f"{self.framework}-{self.store}.json").write_text(json.dumps(asdict(self)))

    def assert_clean(self) -> None:
        """No failure, no skip, and the suite really ran (a run that collected nothing fails)."""
        self.save()
        assert self.total > 0, f"{self.framework} on {self.store}: no upstream test ran"
        assert not self.failed and not self.skipped, self.report()


def from_junit(path: Path, framework: str, store: str, excluded: list[str]) -> Outcome:
    """Read a JUnit XML file (pytest's ``--junitxml``, or Django's via unittest-xml)."""
    outcome = Outcome(framework, store, excluded=excluded)
    root = ET.parse(path).getroot()  # noqa: S314 - the file our own subprocess wrote
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skip = case.find("skipped")
        if problem is not None:
            text = (problem.get("message") or problem.text or "").strip()
            outcome.failed[name] = "\n    ".join(text.splitlines()[-6:])
        elif skip is not None:
            outcome.skipped[name] = skip.get("message") or ""
        else:
            outcome.passed.append(name)
    return outcome


def results_dir() -> Path:
    """This pytest run's results (a run started without the conftest keeps them in the cache)."""
    configured = os.environ.get("SESSIONKIT_UPSTREAM_RESULTS")
    return Path(configured) if configured else cache_dir() / "results"


def this_runs_results() -> list[Outcome]:
    results = results_dir()
    files = sorted(results.glob("*.json")) if results.exists() else []
    return [Outcome(**json.loads(file.read_text())) for file in files]
