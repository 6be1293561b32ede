"""The Session dict: access and change tracking for every method, lazy loading, flash API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from sessionkit import Session


def loaded(**data: object) -> Session:
    session = Session()
    dict.update(session, data)
    session._changed.clear()
    return session


def test_is_a_real_dict_for_json() -> None:
    session = loaded(a=1, b=[1, 2])
    assert isinstance(session, dict)
    assert json.loads(json.dumps(session)) == {"a": 1, "b": [1, 2]}
    assert dict(session) == {"a": 1, "b": [1, 2]}
    assert {**session} == {"a": 1, "b": [1, 2]}


@pytest.mark.parametrize(
    "read",
    [
        lambda s: s["a"],
        lambda s: s.get("a"),
        lambda s: "a" in s,
        lambda s: len(s),
        lambda s: list(s),
        lambda s: list(s.keys()),
        lambda s: list(s.values()),
        lambda s: list(s.items()),
        lambda s: s.copy(),
        lambda s: s == {},
        lambda s: bool(s),
        lambda s: json.dumps(s),
    ],
)
def test_every_read_marks_accessed_but_not_modified(read: object) -> None:
    session = loaded(a=1)
    assert not session.accessed
    read(session)  # type: ignore[operator]
    assert session.accessed
    assert not session.modified


@pytest.mark.parametrize(
    ("mutate", "changed", "removed"),
    [
        (lambda s: s.__setitem__("x", 1), {"x"}, set()),
        (lambda s: s.__delitem__("a"), set(), {"a"}),
        (lambda s: s.pop("a"), set(), {"a"}),
        (lambda s: s.popitem(), set(), {"a"}),
        (lambda s: s.setdefault("x", []), {"x"}, set()),
        (lambda s: s.update({"x": 1}, y=2), {"x", "y"}, set()),
        (lambda s: s.__ior__({"x": 1}), {"x"}, set()),
    ],
)
def test_every_mutation_is_tracked(mutate: object, changed: set[str], removed: set[str]) -> None:
    session = loaded(a=1)
    mutate(session)  # type: ignore[operator]
    assert session.modified and session.accessed
    assert session._changed == changed
    assert session._removed == removed


def test_clear_is_tracked_as_a_replacement() -> None:
    session = loaded(a=1)
    session.clear()
    assert session.modified and session._cleared and dict(session) == {}


def test_setdefault_on_existing_key_is_not_a_change() -> None:
    session = loaded(a=1)
    assert session.setdefault("a", 2) == 1
    assert not session.modified


def test_pop_missing_key() -> None:
    session = loaded()
    assert session.pop("nope", 5) == 5
    with pytest.raises(KeyError):
        session.pop("nope")
    assert not session.modified


def test_nested_mutation_is_detected_at_commit() -> None:
    session = loaded(cart={"items": [1]}, n=1)
    session["cart"]["items"].append(2)
    session._nested_changes()
    assert session._changed == {"cart"}


def test_reading_without_mutating_is_not_a_change() -> None:
    session = loaded(cart={"items": [1]})
    assert session["cart"]["items"] == [1]
    list(session.items())
    session._nested_changes()
    assert not session.modified


def test_or_returns_a_plain_dict() -> None:
    merged = loaded(a=1) | {"b": 2}
    assert merged == {"a": 1, "b": 2} and type(merged) is dict


def test_modified_can_be_forced() -> None:
    session = loaded(a=1)
    session.modified = True
    assert session.modified


def test_lazy_loading_happens_once_on_first_use() -> None:
    calls = []
    session = Session()

    def loader(_: Session) -> None:
        calls.append(1)
        dict.update(session, {"a": 1})

    session._loader = loader
    assert not session.loaded
    assert repr(session) == "<Session (not loaded)>"
    assert session["a"] == 1
    assert session.get("a") == 1
    assert calls == [1] and session.loaded


def test_a_failed_load_is_retried_by_the_next_use() -> None:
    session = Session()
    attempts = []

    def loader(_: Session) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            session._loader = loader  # what the engine does when the store is down
            raise ConnectionError("down")
        dict.update(session, {"a": 1})

    session._loader = loader
    with pytest.raises(ConnectionError):
        session.get("a")
    assert session.get("a") == 1


def test_set_expiry_forms() -> None:
    session = loaded()
    session.set_expiry(timedelta(days=30))
    assert (session._idle, session._browser) == (30 * 86400, False)
    session.set_expiry(0)
    assert session._browser is True and session._idle is None
    when = datetime(2030, 1, 1, tzinfo=timezone.utc)
    session.set_expiry(when)
    assert session._until == when.timestamp()
    session.set_expiry(None)
    assert (session._idle, session._browser, session._until) == (None, None, None)
    with pytest.raises(ValueError, match="aware"):
        session.set_expiry(datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        session.set_expiry(-1)
    for endless in (float("inf"), float("nan")):  # JSON could not carry it to every store
        with pytest.raises(ValueError, match="finite"):
            session.set_expiry(endless)


def test_flash_bookkeeping() -> None:
    session = loaded()
    session.flash("a", 1)
    session.now("b", 2)
    assert session["a"] == 1 and session["b"] == 2
    assert session._flash_new == ["a"] and session._flash_old == ["b"]
    session._age_flash()
    assert "b" not in dict.keys(session) and session._flash_old == ["a"]
    session.keep()
    assert session._flash_new == ["a"] and session._flash_old == []


def test_invalidate_clears_user_and_expiry_overrides() -> None:
    session = loaded(a=1)
    session.bind_user(7, regenerate=False)
    session.set_expiry(100)
    session.invalidate()
    assert dict(session) == {} and session.user_id is None and session._idle is None
    assert session._rotate and session._invalidated


def test_a_pending_session_puts_nothing_of_ours_in_the_dict() -> None:
    """The underlying dict holds the user's data only: no marker key that C code reading
    the dict directly (orjson, ``dict.keys``) would see. The adapters load before the view."""
    session = Session()
    session._pend(lambda _: dict.update(session, {"a": 1}))
    assert dict.keys(session) == set() and not session.loaded
    assert list(session.items()) == [("a", 1)]  # the Python-level API loads it
    assert dict.keys(session) == {"a"} and json.loads(json.dumps(session)) == {"a": 1}
