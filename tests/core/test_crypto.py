"""The keyring: HMAC tags and AES-GCM sealing with key rotation, and strict base64url."""

from __future__ import annotations

import hmac
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sessionkit.crypto import NONCE_BYTES, TAG_BYTES, Keyring, b64decode, b64encode

OLD = b"FaWbAmZ2QofmTa7fW4bpYftfzDZOG8ywyXEDTt4SbFcybr1O"
NEW = b"h3Kq9ZtRw2pLx7VbN4mC8sYdJ6fGu1TeAo5WiXzQrMnE0jHk"
OTHER = b"Pz4Lq8RvW1xNt6YbK3mJc9SdF2gHu7EaT5oVi0ZwXrQnMkBj"
AD = b"sessionkit/cookie/1/session"


# -- HMAC tags ------------------------------------------------------------------------------
def test_tag_is_a_128_bit_base64url_string() -> None:
    tag = Keyring([NEW]).tag(b"message")
    assert len(tag) == 22
    raw = b64decode(tag)
    assert raw is not None
    assert len(raw) == TAG_BYTES


def test_tag_is_deterministic_and_depends_on_message_and_key() -> None:
    ring = Keyring([NEW])
    assert ring.tag(b"a") == ring.tag(b"a")
    assert ring.tag(b"a") != ring.tag(b"b")
    assert ring.tag(b"a") != Keyring([OTHER]).tag(b"a")


def test_verify_accepts_own_tag_with_index_zero() -> None:
    ring = Keyring([NEW])
    assert ring.verify(b"msg", ring.tag(b"msg")) == 0


def test_verify_rejects_tag_of_other_message_or_key() -> None:
    ring = Keyring([NEW])
    assert ring.verify(b"msg", ring.tag(b"other")) is None
    assert ring.verify(b"msg", Keyring([OTHER]).tag(b"msg")) is None
    assert ring.verify(b"msg", "") is None
    assert ring.verify(b"msg", "A" * 22) is None


def test_verify_with_rotation_returns_index_of_matching_key() -> None:
    old_tag = Keyring([OLD]).tag(b"msg")
    rotated = Keyring([NEW, OLD])
    assert rotated.verify(b"msg", old_tag) == 1
    assert rotated.verify(b"msg", rotated.tag(b"msg")) == 0
    # The newest key signs.
    assert rotated.tag(b"msg") == Keyring([NEW]).tag(b"msg")
    assert Keyring([NEW, OTHER, OLD]).verify(b"msg", old_tag) == 2


def test_verify_rejects_tag_once_its_key_is_removed() -> None:
    old_tag = Keyring([OLD]).tag(b"msg")
    assert Keyring([NEW]).verify(b"msg", old_tag) is None


def test_verify_compares_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    """SECURITY item 21: signature checks are constant-time."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("sessionkit.crypto.hmac.compare_digest", spy)
    ring = Keyring([NEW, OLD])
    good = ring.tag(b"msg")
    assert ring.verify(b"msg", good) == 0
    assert calls
    assert any(good in pair for pair in calls)

    calls.clear()
    forged = "B" * 22
    assert ring.verify(b"msg", forged) is None
    assert len(calls) == 2  # every key was checked, each in constant time
    assert all(forged in pair for pair in calls)


@pytest.mark.parametrize(
    "tag", ["\u00e9" * 22, "A" * 21 + "\u00ff", "\u2603" * 22, "A" * 21 + "\x00"], ids=repr
)
def test_verify_of_a_non_ascii_or_odd_tag_is_none_not_an_error(tag: str) -> None:
    """Tags come straight from a Cookie header, which may hold any latin-1 text."""
    assert Keyring([NEW, OLD]).verify(b"msg", tag) is None


def test_keyring_needs_a_secret() -> None:
    with pytest.raises(ValueError):
        Keyring([])


def test_len_is_number_of_keys() -> None:
    assert len(Keyring([NEW, OLD, OTHER])) == 3


def test_purposes_use_independent_sub_keys() -> None:
    ring = Keyring([NEW])
    assert ring.tag(b"material") != ring.fingerprint(b"material")
    raw_hmac = hmac.new(NEW, b"material", "sha256").digest()[:TAG_BYTES]
    assert ring.tag(b"material") != b64encode(raw_hmac)  # not the raw secret


def test_fingerprint_matches_under_any_configured_key() -> None:
    old_fp = Keyring([OLD]).fingerprint(b"ua:firefox")
    assert Keyring([NEW, OLD]).fingerprint_matches(b"ua:firefox", old_fp)
    assert not Keyring([NEW, OLD]).fingerprint_matches(b"ua:chrome", old_fp)
    assert not Keyring([NEW]).fingerprint_matches(b"ua:firefox", old_fp)


# -- AEAD -----------------------------------------------------------------------------------
def test_seal_unseal_round_trip() -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(b"secret payload", AD)
    assert b"secret payload" not in sealed
    assert ring.unseal(sealed, AD) == (b"secret payload", 0)


def test_seal_of_empty_plaintext_round_trips() -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(b"", AD)
    assert len(sealed) == NONCE_BYTES + TAG_BYTES
    assert ring.unseal(sealed, AD) == (b"", 0)


def test_unseal_with_rotation_reports_key_index() -> None:
    sealed = Keyring([OLD]).seal(b"data", AD)
    assert Keyring([NEW, OLD]).unseal(sealed, AD) == (b"data", 1)
    # Sealing always uses the newest key.
    fresh = Keyring([NEW, OLD]).seal(b"data", AD)
    assert Keyring([NEW]).unseal(fresh, AD) == (b"data", 0)
    assert Keyring([OLD]).unseal(fresh, AD) is None


def test_unseal_with_removed_key_is_none() -> None:
    sealed = Keyring([OLD]).seal(b"data", AD)
    assert Keyring([NEW]).unseal(sealed, AD) is None


def test_unseal_with_different_associated_data_is_none() -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(b"data", AD)
    assert ring.unseal(sealed, b"sessionkit/cookie/1/other") is None
    assert ring.unseal(sealed, b"") is None


@pytest.mark.parametrize("length", [0, 1, NONCE_BYTES, NONCE_BYTES + TAG_BYTES - 1])
def test_unseal_of_short_blob_is_none(length: int) -> None:
    ring = Keyring([NEW])
    sealed = ring.seal(b"", AD)
    assert ring.unseal(sealed[:length], AD) is None


_RING = Keyring([NEW, OLD])


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200), st.data())
def test_flipping_any_single_byte_of_a_sealed_blob_is_rejected(
    plaintext: bytes, data: st.DataObject
) -> None:
    sealed = _RING.seal(plaintext, AD)
    position = data.draw(st.integers(0, len(sealed) - 1), label="position")
    mask = data.draw(st.integers(1, 255), label="mask")
    tampered = bytearray(sealed)
    tampered[position] ^= mask
    assert _RING.unseal(bytes(tampered), AD) is None
    assert _RING.unseal(sealed, AD) == (plaintext, 0)


@settings(max_examples=100, deadline=None, database=None)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_truncated_or_extended_sealed_blob_is_rejected(
    plaintext: bytes, data: st.DataObject
) -> None:
    sealed = _RING.seal(plaintext, AD)
    cut = data.draw(st.integers(0, len(sealed) - 1), label="cut")
    assert _RING.unseal(sealed[:cut], AD) is None
    assert _RING.unseal(sealed + b"\x00", AD) is None


def test_nonces_never_repeat() -> None:
    """SECURITY item 21: an AEAD nonce is never reused."""
    ring = Keyring([NEW])
    blobs = [ring.seal(b"same plaintext", AD) for _ in range(10_000)]
    nonces = {blob[:NONCE_BYTES] for blob in blobs}
    assert len(nonces) == 10_000
    assert len(set(blobs)) == 10_000  # so equal plaintexts never give equal ciphertexts


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")  # never skipped on Linux CI
def test_a_forked_child_never_reuses_its_parents_nonces() -> None:
    """Each seal draws its nonce from the OS: a forked child and its parent never seal
    with the same one (a nonce pool copied by fork would; see crypto.Keyring.seal)."""
    ring = Keyring([NEW])
    ring.seal(b"fill the pool", AD)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the nonces it would use next
        os.close(read)
        os.write(write, b"".join(ring.seal(b"x", AD)[:NONCE_BYTES] for _ in range(50)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = b"".join(ring.seal(b"x", AD)[:NONCE_BYTES] for _ in range(50))
    child_nonces = {child[i : i + NONCE_BYTES] for i in range(0, len(child), NONCE_BYTES)}
    parent_nonces = {parent[i : i + NONCE_BYTES] for i in range(0, len(parent), NONCE_BYTES)}
    assert len(child_nonces) == 50
    assert not child_nonces & parent_nonces
