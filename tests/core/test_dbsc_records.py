"""RecordMeta.dbsc, the device-bound key on a record: written only when set, so records
and cookies without one keep their exact layout; read by every reader."""

from __future__ import annotations

import pytest

from sessionkit import serialization
from sessionkit.records import RecordMeta


def test_without_a_key_the_layout_is_unchanged() -> None:
    meta = RecordMeta(1, 2, user="u", device="Firefox on Linux")
    assert len(meta.to_list()) == 11
    listed = serialization.loads_plain(
        serialization.dumps_plain(RecordMeta(1, 2).to_list()).encode()
    )
    assert listed == [serialization.FORMAT_VERSION, 1, 2, None, None, None, None, None, [], [],
                      None]  # fmt: skip


def test_a_key_round_trips() -> None:
    meta = RecordMeta(1, 2, user="u", device="d", dbsc='{"id":"x"}')
    listed = serialization.loads_plain(serialization.dumps_plain(meta.to_list()).encode())
    assert len(listed) == 12
    assert RecordMeta.from_list(listed) == meta
    assert RecordMeta.from_sealed_list(listed) == meta
    assert RecordMeta.from_list(listed[:11]).dbsc is None  # a record of the release before


@pytest.mark.parametrize("bad", [None, 5, ["x"]])
def test_a_twelfth_field_must_be_a_key(bad: object) -> None:
    listed = [*RecordMeta(1, 2).to_list(), bad]
    with pytest.raises(ValueError):
        RecordMeta.from_list(listed)
