"""Tagged JSON: what goes into a session comes back out with the same types, and nothing
else gets in (no pickle, no arbitrary objects)."""

from __future__ import annotations

import ast
import contextlib
import json
import math
import uuid
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import Markup

import sessionkit
from sessionkit import serialization
from sessionkit.errors import SessionDataError

# Every tag the format defines: a one-key dict with one of these keys is special on the wire.
TAGS = (" di", " t", " dt", " d", " tm", " td", " b", " u", " dec", " s", " fs", " m", " f")

SETTINGS = settings(max_examples=200, deadline=None, database=None)


@pytest.fixture(autouse=True, scope="module", params=["orjson", "stdlib"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here runs with orjson doing the JSON work and with the standard library
    alone (what users without ``sessionkit[speed]`` get)."""
    saved = serialization._orjson
    if request.param == "stdlib":
        serialization._orjson = None
    else:
        assert saved is not None, "orjson is part of sessionkit[all]; install it"
    yield request.param
    serialization._orjson = saved


def same(a: Any, b: Any) -> bool:
    """Equality that also insists on identical types all the way down (tuple is not list,
    Markup is not str, an aware datetime keeps its offset, Decimal keeps its exponent)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (set, frozenset)):
        return {(type(x), x) for x in a} == {(type(y), y) for y in b}
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, (datetime, time)):
        return a == b and a.utcoffset() == b.utcoffset()
    return bool(a == b)


# -- strategies -----------------------------------------------------------------------------
# Whole-second offsets (historical zones have them, e.g. Paris LMT +00:09:21). Sub-second
# offsets are left out: CPython's fromisoformat itself drops their microseconds.
offsets = st.integers(min_value=-(24 * 3600 - 1), max_value=24 * 3600 - 1).map(
    lambda s: timezone(timedelta(seconds=s))
)
fixed_zones = st.one_of(st.just(timezone.utc), offsets)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
hashable_scalars = st.one_of(
    json_scalars,
    st.uuids(),
    st.dates(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=16),
)
rich_scalars = st.one_of(
    json_scalars,
    st.floats(allow_nan=False),  # infinities are not JSON: they travel tagged
    st.datetimes(),
    st.datetimes(timezones=fixed_zones),
    st.dates(),
    st.times(),
    st.times(timezones=fixed_zones),
    st.timedeltas(),
    st.uuids(),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.binary(max_size=64),
    st.text().map(Markup),
    st.sets(hashable_scalars, max_size=5),
    st.frozensets(hashable_scalars, max_size=5),
)
# Keys that are not exactly a tag: the escaping of tag-like keys has its own tests below.
plain_keys = st.text(max_size=12).filter(lambda k: k not in TAGS)

session_values = st.recursive(
    rich_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=5).map(tuple),
        st.dictionaries(plain_keys, children, max_size=5),
    ),
    max_leaves=20,
)

json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)


# -- round trips ----------------------------------------------------------------------------
@SETTINGS
@given(session_values)
def test_round_trip_preserves_value_and_types(value: Any) -> None:
    text = serialization.dumps(value)
    assert isinstance(text, str)
    assert same(serialization.loads(text), value)
    # Stores hand back bytes; that must decode just the same.
    assert same(serialization.loads(text.encode("utf-8")), value)


@SETTINGS
@given(session_values)
def test_marked_round_trip_preserves_value(value: Any) -> None:
    """The cookie's codec: ``dumps_marked`` of tagged data, read back by ``loads_marked``;
    text the standard library wrote (a long integer, or no orjson) starts with a space."""
    raw = serialization.dumps_marked(serialization.tag(value))
    assert same(serialization.loads_marked(raw), value)
    if serialization._orjson is None:
        assert raw[:1] == b" "


def test_a_lone_surrogate_is_a_clear_error() -> None:
    with pytest.raises(SessionDataError, match="lone surrogate"):
        serialization.dumps_marked(serialization.tag({"x": "\ud800"}))
    with pytest.raises(SessionDataError, match="lone surrogate"):
        serialization.dumps_plain_bytes(serialization.tag({"x": "\ud800"}))


@SETTINGS
@given(st.recursive(
    json_scalars,
    lambda c: st.one_of(st.lists(c, max_size=4), st.dictionaries(plain_keys, c, max_size=4)),
    max_leaves=10,
))  # fmt: skip
def test_plain_json_is_written_as_plain_json(value: Any) -> None:
    """Plain values pass through untouched, so any JSON reader sees the same data."""
    text = serialization.dumps(value)
    assert same(json.loads(text), value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 2, 29, 12, 30, 15, 123456),
        datetime(2024, 2, 29, 12, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
        date(2024, 1, 1),
        time(23, 59, 59, 999999),
        time(8, 0, tzinfo=timezone(timedelta(hours=-7))),
        timedelta(days=-3, seconds=5, microseconds=7),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("1.10"),
        Decimal("-0"),
        b"\x00\xff binary",
        (1, "two", (3.0,)),
        {1, "a", None},
        frozenset({"x", "y"}),
        Markup("<b>bold</b>"),
    ],
    ids=lambda value: type(value).__name__,  # stable across processes (sets reorder)
)
def test_each_supported_type_round_trips(value: Any) -> None:
    assert same(serialization.loads(serialization.dumps(value)), value)


def test_markup_stays_markup_and_is_not_re_escaped() -> None:
    restored = serialization.loads(serialization.dumps({"msg": Markup("<i>hi</i> &amp; bye")}))
    assert type(restored["msg"]) is Markup
    assert restored["msg"] == "<i>hi</i> &amp; bye"
    assert str(Markup("{}").format(restored["msg"])) == "<i>hi</i> &amp; bye"


def test_aware_datetime_keeps_its_offset() -> None:
    tz = timezone(timedelta(hours=-3))
    value = datetime(2024, 6, 1, 9, 0, tzinfo=tz)
    restored = serialization.loads(serialization.dumps(value))
    assert restored.tzinfo is not None
    assert restored.utcoffset() == timedelta(hours=-3)
    naive = serialization.loads(serialization.dumps(value.replace(tzinfo=None)))
    assert naive.tzinfo is None


# -- tag-looking user data ------------------------------------------------------------------
TAG_LOOKALIKES = {
    " di": {"x": 1},
    " t": [1, 2],
    " dt": "2024-01-01T00:00:00",
    " d": "2024-01-01",
    " tm": "12:00:00",
    " td": [1, 2, 3],
    " b": "AAAA",
    " u": "12345678123456781234567812345678",
    " dec": "1.5",
    " s": [1, 2],
    " fs": ["a"],
    " m": "<b>x</b>",
    " f": "nan",
}


def test_lookalike_table_covers_every_tag() -> None:
    assert set(TAG_LOOKALIKES) == set(TAGS)


@pytest.mark.parametrize(("key", "inner"), sorted(TAG_LOOKALIKES.items()))
def test_user_dict_that_looks_like_a_tag_round_trips_unchanged(key: str, inner: Any) -> None:
    value = {key: inner}
    assert same(serialization.loads(serialization.dumps(value)), value)


@pytest.mark.parametrize(
    "value",
    [
        {" t": 1},  # would not even be a valid tuple payload
        {" di": 5},
        {" di": {" di": {" t": "x"}}},
        [{" u": "not-a-uuid"}, {"a": {" s": [[1]]}}],
        {"outer": ({" dec": "abc"},)},
    ],
    ids=repr,
)
def test_nested_and_invalid_tag_lookalikes_round_trip_unchanged(value: Any) -> None:
    assert same(serialization.loads(serialization.dumps(value)), value)


def test_dict_with_a_tag_key_among_others_is_plain() -> None:
    value = {" t": [1], "other": 2}
    assert same(serialization.loads(serialization.dumps(value)), value)


# -- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [{1: "a"}, {None: "a"}, {(1, 2): "a"}, {b"k": "a"}, {True: "a"}, {"ok": [{"deep": {2.5: 1}}]}],
    ids=repr,
)
def test_non_string_dict_keys_are_refused_with_advice(value: Any) -> None:
    with pytest.raises(SessionDataError) as info:
        serialization.dumps(value)
    message = str(info.value)
    assert "keys must be strings" in message
    assert "str()" in message


class Widget:
    pass


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (object(), "object"),
        (Widget(), "Widget"),
        (1 + 2j, "complex"),
        ({"nested": [Widget()]}, "Widget"),
        (len, "builtin_function_or_method"),
        (bytearray(b"x"), "bytearray"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_objects_are_refused_with_a_helpful_message(value: Any, type_name: str) -> None:
    with pytest.raises(SessionDataError) as info:
        serialization.dumps(value)
    message = str(info.value)
    assert type_name in message  # names what was refused
    assert "JSON" in message  # says what is supported
    assert "plain representation" in message  # says what to do instead


def test_session_data_error_is_a_type_error() -> None:
    """Code written against json.dumps (which raises TypeError) keeps working."""
    with pytest.raises(TypeError):
        serialization.dumps(object())


# -- malformed input ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "not json",
        "[1, 2",
        '{"a": }',
        "{'single': 1}",
        b"\xff\xfe\x00",
        b"\x80\x04K\x01.",  # a pickle of 1: must be rejected, never unpickled
        '{" t": 1}',
        '{" dt": "garbage"}',
        '{" dt": 5}',
        '{" d": "2024-13-01"}',
        '{" tm": "25:00"}',
        '{" td": "x"}',
        '{" td": []}',
        '{" td": [1e300, 0, 0]}',
        '{" b": "!!"}',
        '{" b": 5}',
        '{" u": "zz"}',
        '{" u": 5}',
        '{" dec": "abc"}',
        '{" dec": [1]}',
        '{" s": [[1]]}',
        '{" fs": 3}',
        '{" di": []}',
        '{" di": {}}',
        '{" di": [[1], 2]}',
    ],
    ids=repr,
)
def test_loads_rejects_malformed_text_with_value_or_type_error(text: str | bytes) -> None:
    with pytest.raises((ValueError, TypeError)):
        serialization.loads(text)


@settings(max_examples=300, deadline=None, database=None)
@given(st.sampled_from(TAGS), json_values)
def test_loads_of_any_tagged_payload_decodes_or_raises_value_or_type_error(
    tag: str, payload: Any
) -> None:
    text = json.dumps({tag: payload})
    # Decoding may succeed (many payloads are valid); any failure must be in the family
    # that callers catch as "corrupted record".
    with contextlib.suppress(ValueError, TypeError):
        serialization.loads(text)


# -- no pickle ------------------------------------------------------------------------------
_FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal",
                      "jsonpickle"}  # fmt: skip


def _imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Name) and node.func.id == "__import__")
                or (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
            )
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def _package_sources() -> list[Path]:
    root = Path(sessionkit.__file__).resolve().parent
    sources = sorted(root.rglob("*.py"))
    adapters = root.parent / "adapters"
    if adapters.is_dir():
        sources += sorted(adapters.rglob("*.py"))
    return sources


def test_the_import_scanner_sees_pickle() -> None:
    assert "pickle" in _imported_modules("import pickle")
    assert "pickle" in _imported_modules("from pickle import loads")
    assert "pickle" in _imported_modules("importlib.import_module('pickle')")
    assert "pickle" in _imported_modules("__import__('pickle')")


def test_no_module_of_the_package_imports_pickle() -> None:
    sources = _package_sources()
    assert any(p.name == "serialization.py" for p in sources)
    offenders = {
        str(path): found
        for path in sources
        if (found := _imported_modules(path.read_text("utf-8")) & _FORBIDDEN_MODULES)
    }
    assert offenders == {}


def test_namedtuple_comes_back_as_a_tuple() -> None:
    from collections import namedtuple

    point = namedtuple("point", "x y")
    assert serialization.loads(serialization.dumps(point(1, 2))) == (1, 2)
    assert type(serialization.loads(serialization.dumps(point(1, 2)))) is tuple


# -- the orjson accelerator and the standard library agree ----------------------------------
@pytest.mark.parametrize(
    "value",
    [
        float("nan"), float("inf"), -float("inf"), [1.5, float("inf")],
        2**63, 2**64, 2**70, -(2**63) - 1, -(2**80), [2**100, {"k": -(2**65)}],
        9223372036854775807, 0.12345678901234567, 1e300,
    ],
    ids=repr,
)  # fmt: skip
def test_numbers_orjson_cannot_hold_round_trip_exactly(value: Any) -> None:
    back = serialization.loads(serialization.dumps(value))
    if isinstance(value, float) and math.isnan(value):
        assert isinstance(back, float) and math.isnan(back)
    else:
        assert same(back, value)


def test_non_finite_floats_are_tagged_not_nulled() -> None:
    assert serialization.dumps(float("nan")) == '{" f":"nan"}'
    assert serialization.dumps([float("-inf")]) == '[{" f":"-inf"}]'


@pytest.mark.parametrize("text", ['{" f":"1.5"}', '{" f":1}', '{" f":"nanx"}'])
def test_malformed_float_tags_are_rejected(text: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        serialization.loads(text)


@SETTINGS
@given(session_values)
def test_what_one_codec_writes_the_other_reads(value: Any) -> None:
    saved = serialization._orjson
    if saved is None:  # the stdlib run: nothing to compare against here
        return
    written_fast = serialization.dumps(value)
    serialization._orjson = None
    try:
        written_std = serialization.dumps(value)
        assert same(serialization.loads(written_fast), value)
    finally:
        serialization._orjson = saved
    assert same(serialization.loads(written_std), value)
    assert json.loads(written_fast) == json.loads(written_std)


# -- a record's values, decoded in one parse -------------------------------------------------
@SETTINGS
@given(st.dictionaries(plain_keys, session_values, max_size=6))
def test_loads_items_matches_one_by_one_decoding(data: dict[str, Any]) -> None:
    items = {key: serialization.dumps(value) for key, value in data.items()}
    assert same(serialization.loads_items(items), data)


@pytest.mark.parametrize(
    "items",
    [
        {"a": "1,2"},  # two values where one belongs
        {"a": "[1", "b": "2]"},  # values that only parse together
        {"a": '{"x":1', "b": '"y":2}'},
        {"a": ""},
        {"a": "1", "b": "{not json"},
    ],
    ids=repr,
)
def test_loads_items_rejects_values_that_are_not_one_json_value_each(
    items: dict[str, str],
) -> None:
    with pytest.raises(ValueError):
        serialization.loads_items(items)


# -- record metadata --------------------------------------------------------------------------
def test_metadata_lists_with_and_without_a_device_label_are_read() -> None:
    """Records written before the device label existed hold ten fields; they still read."""
    from sessionkit.stores.base import RecordMeta

    meta = RecordMeta(1, 2, user="u", device="Firefox on Linux")
    listed = serialization.loads_plain(serialization.dumps_plain(meta.to_list()).encode())
    assert len(listed) == 11
    assert RecordMeta.from_list(listed) == meta
    assert RecordMeta.from_sealed_list(listed) == meta
    assert RecordMeta.from_list(listed[:10]).device is None
    assert RecordMeta.from_sealed_list(listed[:10]).device is None
    assert RecordMeta.from_list(listed, 7).last_seen == 7
    for bad in ([*listed, None], listed[:9], [*listed[:10], 5]):
        with pytest.raises(ValueError):
            RecordMeta.from_list(bad)
    with pytest.raises(ValueError):  # a stored last_seen is checked even when overridden
        RecordMeta.from_list([1, 1, "junk", None, None, None, None, None, [], []], 5)


@SETTINGS
@given(st.dictionaries(st.one_of(plain_keys, st.sampled_from(TAGS)), session_values, max_size=4))
def test_tag_items_is_tag_of_the_dict(data: dict[str, Any]) -> None:
    """The cookie tags the session's items without copying them first: same result."""
    assert serialization.tag_items(data.items()) == serialization.tag(data)
