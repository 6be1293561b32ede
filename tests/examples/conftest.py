"""A running demo (the three servers, as ``make demo`` starts them) shared by the module's
tests, and the environment that lets an app built in-process join it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.examples.demo import Demo, start_demo


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(tmp_path_factory.mktemp("demo") / "data")
    yield running
    assert running.stop() == 0


@pytest.fixture
def joined(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    """Apps created in this test use the demo's key, store and links."""
    for name, value in demo.env.items():
        monkeypatch.setenv(name, value)
    return demo
