"""RecordMeta is built one checked way, and the record types live in the core."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from sessionkit import records
from sessionkit.records import RecordMeta
from sessionkit.stores import base

CORE = Path(__file__).resolve().parents[2] / "sessionkit"


def test_no_hand_packed_tuples() -> None:
    """``tuple.__new__(RecordMeta, (...))`` skips the field names and their count: one
    misaligned value would corrupt records silently. Nothing in the core builds one so."""
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "__new__"
                and isinstance(node.value, ast.Name)
                and node.value.id == "tuple"
            ):
                found.append(f"{path.relative_to(CORE)}:{node.lineno}")
    assert found == []


def test_every_field_survives_both_readers() -> None:
    meta = RecordMeta(
        created=1, last_seen=2, idle=3.0, browser=True, until=4.0, user="u",
        fingerprint="f", flash_new=("n",), flash_old=("o",), device="d",
    )  # fmt: skip
    stored = json.loads(json.dumps(meta.to_list()))  # what a store or cookie holds
    assert RecordMeta.from_list(stored) == meta
    assert RecordMeta.from_sealed_list(stored) == meta


def test_the_record_types_are_the_cores_and_still_importable_from_stores_base() -> None:
    for name in ("Record", "RecordMeta", "SessionInfo", "Write"):
        assert getattr(base, name) is getattr(records, name)
        assert getattr(records, name).__module__ == "sessionkit.records"


def test_the_bounded_cache_keeps_its_size_and_drops_the_oldest() -> None:
    from sessionkit.cache import BoundedCache

    cache: BoundedCache[int, int] = BoundedCache(size=3)
    made: list[int] = []

    def make(key: int) -> int:
        made.append(key)
        return key * 10

    assert [cache.get(k, make) for k in (1, 2, 3, 1, 4)] == [10, 20, 30, 10, 40]
    assert made == [1, 2, 3, 4] and len(cache) == 3  # 1 was a hit; 4 pushed 1 out
    assert cache.get(1, make) == 10 and made[-1] == 1  # made again: it was the oldest
