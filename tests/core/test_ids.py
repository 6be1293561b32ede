"""Session IDs: 256-bit random, strictly shaped; only digests and handles leave the core."""

from __future__ import annotations

import hashlib
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkit.crypto import b64decode
from sessionkit.ids import ID_LENGTH, digest, handle, is_well_formed, new_id

ALPHABET = set(string.ascii_letters + string.digits + "-_")
N = 10_000


@pytest.fixture(scope="module")
def many_ids() -> list[str]:
    return [new_id() for _ in range(N)]


def test_ids_are_43_base64url_characters(many_ids: list[str]) -> None:
    assert ID_LENGTH == 43
    for session_id in many_ids:
        assert len(session_id) == 43
        assert set(session_id) <= ALPHABET


def test_ids_carry_256_bits(many_ids: list[str]) -> None:
    for session_id in many_ids[:100]:
        raw = b64decode(session_id)
        assert raw is not None
        assert len(raw) == 32


def test_ids_never_repeat(many_ids: list[str]) -> None:
    assert len(set(many_ids)) == N


def test_ids_share_no_12_character_prefix(many_ids: list[str]) -> None:
    """SECURITY item 1: no shared prefixes (a counter or timestamp would show up here)."""
    assert len({session_id[:12] for session_id in many_ids}) == N


def test_ids_use_the_whole_alphabet(many_ids: list[str]) -> None:
    """A generator stuck on a subset of the alphabet (e.g. hex) has far fewer bits."""
    used = set().union(*(set(i[:42]) for i in many_ids[:2000]))
    assert used == ALPHABET
    first_chars = {i[0] for i in many_ids}
    assert len(first_chars) == 64


def test_fresh_ids_are_well_formed(many_ids: list[str]) -> None:
    assert all(is_well_formed(i) for i in many_ids)


@pytest.mark.parametrize(
    "candidate",
    [
        "",
        ".",
        "..",
        "../../x",
        "../../../../../../../../../../../../../../../../../../etc/passwd",
        "..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "A" * 10_240,
        "A" * 42,
        "A" * 44,
        "A" * 42 + "\x00",
        "A" * 21 + "\x00" + "A" * 21,
        "A" * 43 + "\n",
        "\n" + "A" * 42,
        "' OR '1'='1' -- AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'; DROP TABLE",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA;",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA*",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u00e9",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\uff21",  # fullwidth A
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\u0661",  # arabic-indic digit one
    ],
    ids=lambda c: repr(c[:50]),
)
def test_malformed_ids_are_rejected(candidate: str) -> None:
    assert not is_well_formed(candidate)


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=60))
def test_is_well_formed_is_exactly_the_new_id_shape(candidate: str) -> None:
    expected = len(candidate) == 43 and re.fullmatch(r"[A-Za-z0-9_-]+", candidate, re.ASCII)
    assert is_well_formed(candidate) == bool(expected)


@settings(max_examples=100, deadline=None, database=None)
@given(st.text(alphabet=sorted(ALPHABET), min_size=43, max_size=43))
def test_any_43_alphabet_characters_are_well_formed(candidate: str) -> None:
    assert is_well_formed(candidate)


def test_digest_is_sha256_hex_and_differs_from_id() -> None:
    session_id = new_id()
    d = digest(session_id)
    assert len(d) == 64
    assert set(d) <= set("0123456789abcdef")
    assert d != session_id
    assert session_id not in d
    assert d == hashlib.sha256(session_id.encode("ascii")).hexdigest()
    assert digest(session_id) == d  # stable: stores key records by it
    assert digest(new_id()) != d


def test_handle_is_a_16_character_prefix_of_the_digest() -> None:
    session_id = new_id()
    d = digest(session_id)
    h = handle(d)
    assert len(h) == 16
    assert d.startswith(h)
    assert h not in session_id
