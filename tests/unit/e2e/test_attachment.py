"""Attachment encryption (E2E.md section 14): vectors, round trips, tampering, ranges."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from chatproto.e2e import attachment as A
from chatproto.errors import DecryptError
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS: Any = json.loads(
    (Path(__file__).resolve().parents[3] / "protocol/vectors/e2e/attachment.json").read_text()
)
KEY = bytes.fromhex(VECTORS["key"])


def _data(size: int) -> bytes:
    return bytes((i * 31 + 7) % 256 for i in range(size))


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: str(c["size"]))
def test_vectors_encrypt_and_decrypt(case: dict[str, Any]) -> None:
    size = case["size"]
    blob, digest = A.encrypt(KEY, _data(size))
    assert digest.hex() == case["digest"] == hashlib.sha256(blob).hexdigest()
    assert len(blob) == case["padded_size"] == A.padded_size(size)
    assert A.ciphertext_size(size) == case["ciphertext_size"]
    assert A.chunk_count(size) == case["chunks"]
    if "ciphertext" in case:
        assert blob[: case["ciphertext_size"]].hex() == case["ciphertext"]
    assert A.decrypt(KEY, size, digest, blob) == _data(size)


def test_file_key_nonces_and_padme_vectors() -> None:
    assert A.file_key(KEY).hex() == VECTORS["file_key"]
    assert A.nonce(0, False).hex() == VECTORS["nonces"]["0_not_final"]
    assert A.nonce(1, True).hex() == VECTORS["nonces"]["1_final"]
    for n, p in VECTORS["padme"].items():
        assert A.padme(int(n)) == p


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 3 * A.CHUNK_BYTES + 5),
    pieces=st.lists(st.integers(1, 100_000), min_size=1, max_size=8),
    read=st.integers(1, 100_000),
)
def test_streaming_in_any_pieces_round_trips(size: int, pieces: list[int], read: int) -> None:
    data = _data(size)
    key = A.new_key()
    enc = A.Encryptor(key, size)
    out, pos, i = [], 0, 0
    while pos < size:
        step = pieces[i % len(pieces)]
        out.append(enc.update(data[pos : pos + step]))
        pos += step
        i += 1
    out.append(enc.finish())
    blob = b"".join(out)
    assert len(blob) == A.padded_size(size)
    assert enc.digest == hashlib.sha256(blob).digest()
    dec = A.Decryptor(key, size, enc.digest)
    plain = b"".join(dec.update(blob[j : j + read]) for j in range(0, len(blob), read))
    dec.finish()
    assert plain == data


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 2 * A.CHUNK_BYTES + 3), where=st.floats(0, 1), bit=st.integers(0, 7))
def test_every_bit_flip_is_refused(size: int, where: float, bit: int) -> None:
    """Anywhere in the blob, padding included: the digest fails, and inside a chunk its AEAD
    fails too (a receiver that skipped the digest would still not be fooled)."""
    blob, digest = A.encrypt(KEY, _data(size))
    pos = min(int(where * len(blob)), len(blob) - 1)
    bad = bytearray(blob)
    bad[pos] ^= 1 << bit
    with pytest.raises(DecryptError):
        A.decrypt(KEY, size, digest, bytes(bad))
    if pos < A.ciphertext_size(size):
        index = pos // A.CT_CHUNK_BYTES
        start, end = A.chunk_span(size, index)
        with pytest.raises(DecryptError):
            A.decrypt_chunk(
                A.file_key(KEY), index, bytes(bad[start:end]), index == A.chunk_count(size) - 1
            )


def test_a_range_decrypts_alone_and_chunks_cannot_be_moved_or_cut() -> None:
    size = 5 * A.CHUNK_BYTES + 123
    data = _data(size)
    blob, _ = A.encrypt(KEY, data)
    fkey = A.file_key(KEY)
    n = A.chunk_count(size)
    want = A.chunks_for_range(size, 3 * A.CHUNK_BYTES + 10, 4 * A.CHUNK_BYTES + 20)
    assert list(want) == [3, 4]
    for i in want:
        s, e = A.chunk_span(size, i)
        assert (
            A.decrypt_chunk(fkey, i, blob[s:e], i == n - 1)
            == data[i * A.CHUNK_BYTES : (i + 1) * A.CHUNK_BYTES]
        )
    s1, e1 = A.chunk_span(size, 1)
    with pytest.raises(DecryptError):  # chunk 1 presented as chunk 2
        A.decrypt_chunk(fkey, 2, blob[s1:e1], False)
    with pytest.raises(DecryptError):  # a truncated file: chunk 4 presented as the last one
        A.decrypt_chunk(fkey, 4, blob[slice(*A.chunk_span(size, 4))], True)


def test_wrong_sizes_are_refused() -> None:
    blob, digest = A.encrypt(KEY, _data(1000))
    with pytest.raises(DecryptError):
        A.decrypt(KEY, 999, digest, blob)
    with pytest.raises(DecryptError):
        A.decrypt(KEY, 1000, digest, blob + b"\x00")
    enc = A.Encryptor(KEY, 10)
    with pytest.raises(ValueError, match="more plaintext"):
        enc.update(bytes(11))
    enc = A.Encryptor(KEY, 10)
    enc.update(bytes(9))
    with pytest.raises(ValueError, match="less plaintext"):
        enc.finish()


def test_padding_hides_small_sizes_and_costs_little_on_large_ones() -> None:
    assert {A.padded_size(n) for n in range(0, 4000, 97)} == {A.MIN_PADDED}
    for n in (10**6, 10**7, 2 * 10**9):
        assert A.padded_size(n) / A.ciphertext_size(n) < 1.07
