"""A pytest plugin for the upstream subprocess (``-p sessionkit_deselect``): deselect
exactly the tests named in ``$SESSIONKIT_UPSTREAM_DESELECT`` (a JSON list of node ids).
pytest's own ``--deselect`` matches prefixes, so excluding ``test_save`` would also drop
``test_save_async``. The ids it did drop go to the file ``$SESSIONKIT_UPSTREAM_DESELECTED``:
an exclusion whose test the installed version lacks (an older Django has no ``*_async``
tests) is not counted as excluded."""

from __future__ import annotations

import json
import os

import pytest

ENV = "SESSIONKIT_UPSTREAM_DESELECT"
DROPPED_ENV = "SESSIONKIT_UPSTREAM_DESELECTED"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    doomed = set(json.loads(os.environ.get(ENV, "[]")))
    kept = [item for item in items if item.nodeid not in doomed]
    dropped = [item for item in items if item.nodeid in doomed]
    report = os.environ.get(DROPPED_ENV)
    if report:
        with open(report, "w", encoding="utf-8") as file:
            json.dump([item.nodeid for item in dropped], file)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
