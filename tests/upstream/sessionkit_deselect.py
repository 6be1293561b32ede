"""A pytest plugin for the upstream subprocess (``-p sessionkit_deselect``): deselect
exactly the tests named in ``$SESSIONKIT_UPSTREAM_DESELECT`` (a JSON list of node ids).
pytest's own ``--deselect`` matches prefixes, so excluding ``test_save`` would also drop
``test_save_async``."""

from __future__ import annotations

import json
import os

import pytest

ENV = "SESSIONKIT_UPSTREAM_DESELECT"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    doomed = set(json.loads(os.environ.get(ENV, "[]")))
    if not doomed:
        return
    kept = [item for item in items if item.nodeid not in doomed]
    dropped = [item for item in items if item.nodeid in doomed]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
