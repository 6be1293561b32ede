"""Tagged JSON: the only format sessionkit writes, for cookies and server-side records alike.

Plain JSON values pass through untouched. Values JSON cannot express are written as a
one-key object whose key starts with a space (``{" t": [...]}`` for a tuple), a key that no
ordinary code produces; a user dict that happens to look like a tag is escaped with ``" di"``.
Nothing is ever unpickled, so a forged record can at worst produce plain data.

With ``orjson`` installed (``sessionkit[speed]``, part of ``sessionkit[all]``) encoding and
parsing run in it, several times faster than the standard library; the output is the same
JSON and either side reads what the other wrote. Where orjson would differ, the standard
library takes over: integers beyond 64 bits (orjson refuses to write them and reads them as
floats), and anything orjson refuses. Non-finite floats are tagged, so neither turns NaN
into ``null``.
"""

from __future__ import annotations

import base64
import json
import json.scanner
import math
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sessionkit.errors import SessionDataError

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised by forcing the fallback in the tests
    _orjson = None

FORMAT_VERSION = 1

# Floats are not "plain": NaN and infinities need a tag (JSON has no spelling for them).
_PLAIN = frozenset({str, int, bool, type(None)})
_markup_class: Any = None


def _markup() -> Any:
    global _markup_class
    if _markup_class is None:
        try:
            from markupsafe import Markup
        except ImportError:  # pragma: no cover - markupsafe ships with Flask and Jinja
            _markup_class = str
        else:
            _markup_class = Markup
    return _markup_class


def _tag(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is float:
        return value if math.isfinite(value) else {" f": repr(value)}
    if kind is list:
        return [v if type(v) in _PLAIN else _tag(v) for v in value]
    if kind is dict:
        return _tag_pairs(value.items())
    if kind is tuple:
        return {" t": [_tag(v) for v in value]}
    if kind is datetime:
        return {" dt": value.isoformat()}
    if kind is date:
        return {" d": value.isoformat()}
    if kind is time:
        return {" tm": value.isoformat()}
    if kind is timedelta:
        return {" td": [value.days, value.seconds, value.microseconds]}
    if kind is bytes:
        return {" b": base64.b64encode(value).decode("ascii")}
    if kind is uuid.UUID:
        return {" u": value.hex}
    if kind is Decimal:
        return {" dec": str(value)}
    if kind is set or kind is frozenset:
        return {" s" if kind is set else " fs": [_tag(v) for v in value]}
    if hasattr(value, "__html__"):
        return {" m": str(value.__html__())}
    # Subclasses of plain types (IntEnum, str subclasses, OrderedDict...) degrade to the base.
    for base in (str, bool, int, float):  # bool before int: True must stay True
        if isinstance(value, base):
            return base(value)
    if isinstance(value, dict):
        return _tag(dict(value))
    if isinstance(value, tuple):  # namedtuples come back as plain tuples
        return _tag(tuple(value))
    if isinstance(value, list):
        return _tag(list(value))
    raise SessionDataError(
        f"cannot store a {kind.__module__}.{kind.__qualname__} in the session: sessionkit "
        "stores JSON plus datetime, date, time, timedelta, UUID, Decimal, bytes, tuple, set "
        "and markup, and never pickles. Store a plain representation instead (e.g. its id)."
    )


def _tag_pairs(items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """A dict's items, tagged: string keys only, and a lone key that looks like a tag
    escaped as a ``" di"`` pair."""
    out = {}
    for key, item in items:
        if type(key) is not str:
            raise SessionDataError(
                f"session dict keys must be strings, got {type(key).__name__} key "
                f"{key!r}; convert it with str() before storing"
            )
        out[key] = item if type(item) in _PLAIN else _tag(item)
    if len(out) == 1:
        (only,) = out
        if only in _UNTAG:  # a user dict that looks like a tag: escape it as a pair
            return {" di": [only, out[only]]}
    return out


_UNTAG: dict[str, Callable[[Any], Any]] = {
    " di": lambda v: {v[0]: v[1]},
    " f": lambda v: float(v) if v in ("nan", "inf", "-inf") else float("x"),
    " t": tuple,
    " dt": datetime.fromisoformat,
    " d": date.fromisoformat,
    " tm": time.fromisoformat,
    " td": lambda v: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    " b": lambda v: base64.b64decode(v.encode("ascii"), validate=True),
    " u": lambda v: uuid.UUID(hex=v),
    " dec": Decimal,
    " s": set,
    " fs": frozenset,
    " m": lambda v: _markup()(v),
}


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        (key,) = obj
        restore = _UNTAG.get(key)
        if restore is not None:
            return restore(obj[key])
    return obj


def _refuse(value: Any) -> Any:
    raise SessionDataError(f"cannot serialize {type(value).__name__}")  # _tag vetted it first


def _make_dumps() -> Callable[[Any], str]:
    """The standard library's encoder, configured once, through its public API only. It
    runs only where orjson does not (not installed, a lone surrogate, a 65-bit integer)."""
    return json.JSONEncoder(
        ensure_ascii=False, separators=(",", ":"), check_circular=False, default=_refuse
    ).encode


_std_dumps = _make_dumps()
_decoder = json.JSONDecoder(object_hook=_untag)
# orjson reads integers beyond 64 bits as floats: text with a run of 19 or more digits (any
# integer outside the signed 64-bit range has one) goes to the standard library.
# (one translate plus a substring search: ten times cheaper than a regular expression)
_DIGITS_AS_ZERO = bytes(48 if 48 <= c <= 57 else 46 for c in range(256))
_DIGIT_RUN = b"0" * 19


# every tag, and every escaped user dict, starts like this: text without it has no tags
_TAG_OPENING = b'{" '


_TOO_DEEP = "a session value contains itself (or is nested too deeply) and cannot be stored"


def tag(value: Any) -> Any:
    """``value`` with every non-JSON value replaced by its tag (for payloads assembled from
    tagged data and plain metadata, encoded with ``dumps_plain``)."""
    if type(value) in _PLAIN:
        return value
    try:
        return _tag(value)
    except RecursionError:
        raise SessionDataError(_TOO_DEEP) from None


def _no_default(value: Any) -> Any:
    raise TypeError


#: What orjson must not take natively for ``check_item``'s fast path: everything it writes
#: then is plain JSON (str/int/float/bool/None, lists, tuples, str-keyed dicts, UUIDs).
_STRICT = 0
if _orjson is not None:
    _STRICT = (
        _orjson.OPT_PASSTHROUGH_DATACLASS
        | _orjson.OPT_PASSTHROUGH_DATETIME
        | _orjson.OPT_PASSTHROUGH_SUBCLASS
    )


def check_item(key: Any, value: Any) -> None:
    """Refuse, naming the key, what a session could never store. ``Session.__setitem__``
    calls it, so the traceback points at the line of the view that stored the value, not
    at the middleware's save. Plain values cost one type check; a container is one orjson
    pass in C (~1 µs for a 10-item cart) when it holds only plain JSON, else (datetimes,
    sets..., or no orjson) the walk the save does. orjson writes a plain ``Enum`` member by
    its value where the save refuses it: that one slips through to the save's check."""
    if type(key) is not str:
        raise SessionDataError(
            f"session keys must be strings, got {type(key).__name__} key {key!r}; convert "
            "it with str() before storing"
        )
    if type(value) in _PLAIN:
        return
    if _orjson is not None:
        try:
            _orjson.dumps(value, default=_no_default, option=_STRICT)
            return
        except TypeError:  # not plain JSON (or a 65-bit int): the walk decides
            pass
    try:
        tag(value)
    except SessionDataError as exc:
        raise SessionDataError(f"session[{key!r}]: {exc}") from None


#: Why a value that passed ``check_item`` can still fail when the session is saved.
_AT_SAVE = (
    " (found when the session was saved, so the traceback shows the save, not the view: a "
    "value stored earlier was changed in place, e.g. session[{key!r}].append(...))"
)


def tag_items(items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """``tag(dict(items))`` without the copy: a session's data, tagged for one JSON text."""
    try:
        return _tag_pairs(items)
    except RecursionError:
        raise SessionDataError(_TOO_DEEP) from None


def _by_orjson(value: Any) -> bytes | None:
    """orjson's encoding of a plain (or tagged) value, or ``None`` where the standard
    library decides: a 65-bit integer, a lone surrogate, no orjson at all."""
    if _orjson is not None:
        try:
            encoded: bytes = _orjson.dumps(value)
            return encoded
        except TypeError:
            pass
    return None


def dumps_plain_bytes(value: Any) -> bytes:
    """Encode a value that is already plain JSON (or already tagged), as UTF-8."""
    encoded = _by_orjson(value)
    return encoded if encoded is not None else _utf8(_std_dumps(value))


def dumps_plain(value: Any) -> str:
    """Encode a value that is already plain JSON (or already tagged)."""
    encoded = _by_orjson(value)
    return encoded.decode("utf-8") if encoded is not None else _std_dumps(value)


def dumps(value: Any) -> str:
    """Serialize one value as tagged JSON text."""
    return dumps_plain(tag(value))


def dumps_item(key: str, value: Any) -> str:
    """``dumps(value)`` for the session key ``key``, refused with a ``SessionDataError``
    naming the key when the key or the text is not valid Unicode (a lone surrogate such as
    ``"\\ud800"``, which ``json.loads('"\\ud800"')`` returns): the one check that stops such
    data before any store sees it, whatever the store's encoding. A value that cannot be
    serialized is refused naming the key, and saying why it was only found now."""
    try:
        tagged = tag(value)
    except SessionDataError as exc:
        raise SessionDataError(f"session[{key!r}]: {exc}" + _AT_SAVE.format(key=key)) from None
    encoded = _by_orjson(tagged)  # orjson refuses lone surrogates, so its text is valid
    text = encoded.decode("utf-8") if encoded is not None else _std_dumps(tagged)
    plain_key = not isinstance(key, str) or key.isascii()  # other keys: refused elsewhere
    if not (encoded is not None or text.isascii()) or not plain_key:
        try:
            text.encode("utf-8")
            if not plain_key:
                key.encode("utf-8")
        except UnicodeEncodeError:
            raise SessionDataError(
                f"session key {key!r} holds a lone surrogate (in the key or its value), "
                "which no UTF-8 store can hold; store text that came from a valid encoding"
            ) from None
    return text


def loads_plain(raw: bytes) -> Any:
    """Parse plain JSON (no untagging: for documents whose keys are the user's own), with
    orjson where it reads exactly what the standard library would. ``ValueError`` for
    anything malformed."""
    if _orjson is not None and _DIGIT_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return _orjson.loads(raw)
        except ValueError:
            pass  # the standard library has the last word (and names the problem)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"not JSON ({type(exc).__name__})") from None


def loads(text: str | bytes) -> Any:
    """Parse tagged JSON text. Raises ``ValueError`` on anything malformed (including
    malformed tags); callers treat that as a corrupted record."""
    if _orjson is not None:
        raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        if _DIGIT_RUN not in raw.translate(_DIGITS_AS_ZERO):  # no long number: orjson is exact
            try:
                value = _orjson.loads(raw)
            except ValueError:
                pass  # not JSON to orjson (NaN from an old record?): the standard library says
            else:
                return _restore_tags(value, raw)
    return _std_loads(text)


def _restore_tags(value: Any, raw: bytes) -> Any:
    """What orjson parsed from ``raw``, with its tags turned back into values."""
    if _TAG_OPENING not in raw:  # every tag starts like this: no untagging walk needed
        return value
    try:
        return _untag_tree(value)
    except Exception as exc:
        raise ValueError(f"malformed tagged JSON: {exc!r}") from exc


def dumps_marked(value: Any) -> bytes:
    """Encode a plain (or already tagged) value as UTF-8 JSON whose first byte says which
    encoder wrote it: ``[`` or ``{`` when orjson did, so the text holds no integer orjson
    cannot read back exactly; a space (JSON whitespace) when the standard library did.
    ``loads_marked`` then needs no scan for long numbers."""
    encoded = _by_orjson(value)
    return encoded if encoded is not None else b" " + _utf8(_std_dumps(value))


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no UTF-8 spells it
        raise SessionDataError(
            "a session string holds a lone surrogate, which cannot be stored as UTF-8; "
            "store text that came from a valid encoding"
        ) from None


def loads_marked(raw: bytes) -> Any:
    """Parse what ``dumps_marked`` wrote, with its tags restored. Text that starts with
    whitespace takes the fully checked path of ``loads``."""
    if _orjson is not None and raw and raw[0] != 32:
        try:
            value = _orjson.loads(raw)
        except ValueError as exc:
            raise ValueError(f"not JSON ({exc})") from None
        return _restore_tags(value, raw)
    return loads(raw.lstrip(b" \t\n\r"))


def loads_items(items: Mapping[str, str]) -> dict[str, Any]:
    """Decode a record's per-key values in one parse: the values, each a JSON text, are
    joined into one JSON array. Raises ``ValueError`` if any value is malformed (then the
    whole record is, and callers reject it): a truncated or foreign value breaks the array
    or its length. Values crafted to pair up across keys could parse; only someone who can
    already write any record into the store could craft them."""
    if not items:
        return {}
    try:
        joined = ",".join(items.values())
    except TypeError:  # not all text (bytes from a store): one parse per value
        return {key: loads(text) for key, text in items.items()}
    values = loads(f"[{joined}]")
    if type(values) is not list or len(values) != len(items):
        raise ValueError("a stored value is not one JSON value")
    return dict(zip(items.keys(), values, strict=False))  # lengths checked just above


def _untag_tree(value: Any) -> Any:
    """What the standard library's object hook does while parsing, done after orjson."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(item) is dict or type(item) is list:
                value[key] = _untag_tree(item)
        return _untag(value)
    if kind is list:
        return [_untag_tree(v) if type(v) is dict or type(v) is list else v for v in value]
    return value


def _std_loads(text: str | bytes) -> Any:
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return _decoder.decode(text)  # JSONDecodeError (a ValueError) names the problem
    except ValueError:
        raise
    except Exception as exc:  # a malformed tag: KeyError, IndexError, OverflowError, ...
        raise ValueError(f"malformed tagged JSON: {exc!r}") from exc
