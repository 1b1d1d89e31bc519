"""Message franking (E2E.md section 17, chatproto.franking): the committed vectors, and the
properties a report's verification rests on, over arbitrary inputs (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chatproto import franking
from hypothesis import given
from hypothesis import strategies as st

VECTORS = Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "franking.json"

keys = st.binary(min_size=franking.KEY_BYTES, max_size=franking.KEY_BYTES)
secrets = st.binary(min_size=franking.KEY_BYTES, max_size=64)
texts = st.binary(max_size=512)
u64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
places = st.fixed_dictionaries({"sender": u64, "conv": u64, "seq": u64, "ts": u64})


def _load() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


def _at(v: dict[str, Any]) -> dict[str, int]:
    return {k: int(v[k]) for k in ("sender", "conv", "seq", "ts")}


def test_accepted_vectors_commit_tag_and_verify() -> None:
    data = _load()
    secret = bytes.fromhex(data["secret"])
    assert data["accepted"]
    for v in data["accepted"]:
        plaintext, key = bytes.fromhex(v["plaintext"]), bytes.fromhex(v["key"])
        commitment = franking.commit(key, plaintext)
        assert commitment.hex() == v["commitment"], v["name"]
        assert franking.tag(secret, commitment, **_at(v)).hex() == v["tag"], v["name"]
        assert franking.verify(secret, bytes.fromhex(v["tag"]), plaintext, key, **_at(v))


def test_refused_vectors_do_not_verify() -> None:
    data = _load()
    secret = bytes.fromhex(data["secret"])
    names = {v["name"] for v in data["refused"]}
    assert {"altered_plaintext", "swapped_key", "other_sender", "other_conv"} <= names
    for v in data["refused"]:
        ok = franking.verify(
            secret,
            bytes.fromhex(v["tag"]),
            bytes.fromhex(v["plaintext"]),
            bytes.fromhex(v["key"]),
            **_at(v),
        )
        assert not ok, v["name"]


@given(secrets, keys, texts, places)
def test_an_honest_report_verifies(
    secret: bytes, key: bytes, text: bytes, at: dict[str, int]
) -> None:
    commitment = franking.commit(key, text)
    assert franking.opens(commitment, key, text)
    assert franking.verify(secret, franking.tag(secret, commitment, **at), text, key, **at)


@given(secrets, keys, texts, texts, places)
def test_another_plaintext_is_refused(
    secret: bytes, key: bytes, text: bytes, other: bytes, at: dict[str, int]
) -> None:
    if other == text:
        return
    t = franking.tag(secret, franking.commit(key, text), **at)
    assert not franking.opens(franking.commit(key, text), key, other)
    assert not franking.verify(secret, t, other, key, **at)


@given(secrets, keys, keys, texts, places)
def test_another_key_is_refused(
    secret: bytes, key: bytes, other: bytes, text: bytes, at: dict[str, int]
) -> None:
    if other == key:
        return
    t = franking.tag(secret, franking.commit(key, text), **at)
    assert not franking.verify(secret, t, text, other, **at)


@given(secrets, keys, texts, places, places)
def test_another_sender_conv_seq_or_time_is_refused(
    secret: bytes, key: bytes, text: bytes, at: dict[str, int], other: dict[str, int]
) -> None:
    if other == at:
        return
    t = franking.tag(secret, franking.commit(key, text), **at)
    assert not franking.verify(secret, t, text, key, **other)


@given(secrets, secrets, keys, texts, places)
def test_a_tag_under_another_secret_is_refused(
    secret: bytes, other: bytes, key: bytes, text: bytes, at: dict[str, int]
) -> None:
    if other == secret:
        return
    t = franking.tag(other, franking.commit(key, text), **at)
    assert not franking.verify(secret, t, text, key, **at)


@given(secrets, keys, texts, places, st.integers(min_value=0, max_value=8 * franking.TAG_BYTES - 1))
def test_every_bit_of_the_tag_matters(
    secret: bytes, key: bytes, text: bytes, at: dict[str, int], bit: int
) -> None:
    t = bytearray(franking.tag(secret, franking.commit(key, text), **at))
    t[bit // 8] ^= 1 << (bit % 8)
    assert not franking.verify(secret, bytes(t), text, key, **at)


@given(st.binary(max_size=64).filter(lambda b: len(b) != franking.KEY_BYTES), texts)
def test_a_key_of_the_wrong_length_commits_nothing(key: bytes, text: bytes) -> None:
    with pytest.raises(ValueError, match="franking key"):
        franking.commit(key, text)
    assert not franking.opens(bytes(32), key, text)


def test_fresh_keys_differ() -> None:
    assert len({franking.new_key() for _ in range(64)}) == 64
    assert all(len(k) == franking.KEY_BYTES for k in {franking.new_key()})
