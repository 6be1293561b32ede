"""Strict, canonical unpadded base64url, with pybase64 (``sessionkit[speed]``) and with
the standard library's binascii alone."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkit import crypto
from sessionkit.crypto import b64decode, b64encode


@pytest.fixture(autouse=True, scope="module", params=["pybase64", "binascii"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = crypto._pybase64
    if request.param == "binascii":
        crypto._pybase64 = None
    else:
        assert saved is not None, "pybase64 is part of sessionkit[all]; install it"
    yield request.param
    crypto._pybase64 = saved


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(max_size=100))
def test_b64_round_trip_and_format(raw: bytes) -> None:
    text = b64encode(raw)
    assert "=" not in text
    assert "+" not in text
    assert "/" not in text
    assert text == base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    assert b64decode(text) == raw


def test_b64decode_rejects_padding() -> None:
    padded = base64.urlsafe_b64encode(b"\x01" * 32).decode("ascii")
    assert padded.endswith("=")
    assert b64decode(padded) is None
    assert b64decode(padded.rstrip("=")) == b"\x01" * 32


@pytest.mark.parametrize(
    "text",
    [
        "AAAA!AAA",
        "AAA AAAA",
        "AAAA\nAAAA",
        "AAAA+AAA",  # standard, not url-safe, alphabet
        "AAAA/AAA",
        "AAAAA",  # impossible length (1 mod 4)
        "A",
        "\u00e9AAA",
        "AA\x00A",
        "=AAA",
    ],
    ids=repr,
)
def test_b64decode_rejects_stray_characters(text: str) -> None:
    assert b64decode(text) is None


@pytest.mark.parametrize("size", [1, 2, 31, 32])
def test_b64decode_rejects_non_canonical_trailing_bits(size: int) -> None:
    """One token has exactly one spelling: unused low bits of the last character must be 0."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    raw = bytes(range(100, 100 + size))
    text = b64encode(raw)
    assert b64decode(text) == raw
    last = alphabet.index(text[-1])
    spare_bits = {1: 4, 2: 2}[size % 3]  # 32 bytes -> 43 chars, last char has 2 spare bits
    for flip in range(1, 2**spare_bits):
        forged = text[:-1] + alphabet[last ^ flip]
        assert base64.urlsafe_b64decode(forged + "=" * (-len(forged) % 4)) == raw
        assert b64decode(forged) is None


def test_b64decode_of_empty_string_is_empty_bytes() -> None:
    assert b64decode("") == b""
    assert crypto.b64encode(b"") == ""
