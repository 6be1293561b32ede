"""FileStore: the conformance suite on a temporary directory, plus what only files need."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessionkit.stores.base import Store
from sessionkit.stores.file import FileStore
from sessionkit.testing import (
    FakeClock,
    LockConformance,
    ScanConformance,
    ServerStoreConformance,
    SweepConformance,
    UserIndexConformance,
)


class TestFileStore(
    ServerStoreConformance, UserIndexConformance, LockConformance, SweepConformance, ScanConformance
):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path / "sessions"

    def make_store(self, clock: FakeClock) -> Store:
        return FileStore(self.directory, clock=clock)
