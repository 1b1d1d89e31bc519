"""Attachment encryption (E2E.md section 14): a fresh key per file, AES-256-GCM per 64 KiB
chunk with the chunk index and a final-chunk flag in the nonce (age's STREAM construction), the
ciphertext padded to a Padmé size bucket, and the SHA-256 of the padded ciphertext as the digest
receivers check before decrypting.

Sans-I/O: the caller reads and writes the bytes. ``Encryptor`` takes plaintext in pieces of any
size and returns ciphertext as it becomes available (memory bounded by one chunk);
``decrypt_chunk`` opens any chunk alone, so a range of a large file is decrypted without the rest;
``Decryptor`` streams a whole file (checking the digest at ``finish``). Receivers MUST verify
the digest of the whole downloaded ciphertext (``Digest``) before they show or keep anything
decrypted from it; the per-chunk AEAD then guarantees the chunks, their order and the end.
"""

from __future__ import annotations

from typing import Final

from chatproto.e2e import primitives as P
from chatproto.errors import DecryptError, InvalidKeyError

CHUNK_BYTES: Final = 65536
"""Plaintext bytes per chunk (the last chunk may be shorter; an empty file is one empty chunk)."""
TAG_BYTES: Final = P.GCM_TAG_BYTES
CT_CHUNK_BYTES: Final = CHUNK_BYTES + TAG_BYTES
KEY_BYTES: Final = 32
DIGEST_BYTES: Final = 32
MAX_SIZE: Final = 2**53 - 1
_INFO: Final = b"chatd-e2e-attachment-v1"
_AAD: Final = b"chatd-e2e-attachment-chunk-v1"


def new_key() -> bytes:
    """A fresh random attachment key (one per file; never reused, also not for a re-encryption)."""
    return P.random_bytes(KEY_BYTES)


def file_key(key: bytes) -> bytes:
    """The AES-256 key of the chunks: HKDF(key, salt = zero, info = "chatd-e2e-attachment-v1")."""
    if len(key) != KEY_BYTES:
        raise InvalidKeyError("an attachment key is 32 bytes")
    return P.hkdf_sha256(key, salt=b"", info=_INFO, length=32)


def chunk_count(size: int) -> int:
    """Number of chunks of a ``size``-byte plaintext (at least 1)."""
    if not 0 <= size <= MAX_SIZE:
        raise ValueError("attachment size out of range")
    return max(1, -(-size // CHUNK_BYTES))


def ciphertext_size(size: int) -> int:
    """Bytes of ciphertext (chunks and tags, before padding) for ``size`` plaintext bytes."""
    return size + chunk_count(size) * TAG_BYTES


def padme(length: int) -> int:
    """Padmé (Nikitin et al., PURBs, 2019): round ``length`` up so that only O(log log L) bits of
    it remain (overhead at most 12 %, under 7 % past 1 MiB). 0 stays 0."""
    if length < 2:
        return length
    e = length.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (length + mask) & ~mask


MIN_PADDED: Final = 4096
"""Every blob is at least this long: the server cannot tell small files apart by size."""


def padded_size(size: int) -> int:
    """The size of the blob the server stores for ``size`` plaintext bytes: the Padmé bucket of
    its ciphertext, at least ``MIN_PADDED``. The padding is zero bytes after the last chunk."""
    return max(MIN_PADDED, padme(ciphertext_size(size)))


def nonce(index: int, final: bool) -> bytes:
    """u88be(index) || (0x01 if the last chunk else 0x00)."""
    if not 0 <= index < 2**88:
        raise ValueError("chunk index out of range")
    return index.to_bytes(11, "big") + (b"\x01" if final else b"\x00")


def encrypt_chunk(fkey: bytes, index: int, data: bytes, final: bool) -> bytes:
    """Chunk ``index`` (``file_key``). Every chunk but the last holds exactly ``CHUNK_BYTES``."""
    if len(data) > CHUNK_BYTES or (not final and len(data) != CHUNK_BYTES):
        raise ValueError("a chunk holds CHUNK_BYTES bytes (the last one at most that)")
    return P.aes_gcm_encrypt(fkey, nonce(index, final), data, _AAD)


def decrypt_chunk(fkey: bytes, index: int, ct: bytes, final: bool) -> bytes:
    """Open chunk ``index``; ``DecryptError`` for a modified, moved or truncated chunk."""
    if len(ct) > CT_CHUNK_BYTES or (not final and len(ct) != CT_CHUNK_BYTES):
        raise DecryptError("attachment chunk of the wrong length")
    return P.aes_gcm_decrypt(fkey, nonce(index, final), ct, _AAD)


def chunk_span(size: int, index: int) -> tuple[int, int]:
    """``(start, end)`` of ciphertext chunk ``index`` in the blob (what to ask for in a Range)."""
    n = chunk_count(size)
    if not 0 <= index < n:
        raise ValueError("no such chunk")
    start = index * CT_CHUNK_BYTES
    return start, min(start + CT_CHUNK_BYTES, ciphertext_size(size))


def chunks_for_range(size: int, start: int, end: int) -> range:
    """The chunk indexes holding plaintext bytes ``start`` .. ``end - 1``."""
    if not 0 <= start < end <= size:
        raise ValueError("range outside the file")
    return range(start // CHUNK_BYTES, (end - 1) // CHUNK_BYTES + 1)


class Digest:
    """SHA-256 of the padded ciphertext, fed in pieces."""

    __slots__ = ("_h", "length")

    def __init__(self) -> None:
        self._h = P.Sha256()
        self.length = 0

    def update(self, data: bytes) -> None:
        self._h.update(data)
        self.length += len(data)

    def digest(self) -> bytes:
        return self._h.digest()

    def matches(self, expected: bytes) -> bool:
        """Constant-time comparison with the digest a message carries."""
        return P.constant_time_equal(self._h.digest(), expected)


class Encryptor:
    """Encrypt a ``size``-byte plaintext given in pieces of any size.

    ``update`` returns the ciphertext of every chunk completed so far; ``finish`` returns the last
    chunk and the padding, and raises ``ValueError`` if the plaintext was not exactly ``size``
    bytes. ``digest`` is then the value the ``attachment`` message carries."""

    __slots__ = ("_buf", "_done", "_fkey", "_index", "_seen", "_sha", "size")

    def __init__(self, key: bytes, size: int) -> None:
        chunk_count(size)
        self.size = size
        self._fkey = file_key(key)
        self._buf = bytearray()
        self._index = 0
        self._seen = 0
        self._done = False
        self._sha = Digest()

    def _emit(self, data: bytes, final: bool) -> bytes:
        ct = encrypt_chunk(self._fkey, self._index, data, final)
        self._index += 1
        self._sha.update(ct)
        return ct

    def update(self, data: bytes) -> bytes:
        if self._done:
            raise ValueError("finish() was called")
        self._seen += len(data)
        if self._seen > self.size:
            raise ValueError("more plaintext than the declared size")
        self._buf += data
        out: list[bytes] = []
        # Keep the last full chunk back while the file may end with it: it is the final one.
        while len(self._buf) > CHUNK_BYTES or (
            len(self._buf) == CHUNK_BYTES and self._seen < self.size
        ):
            out.append(self._emit(bytes(self._buf[:CHUNK_BYTES]), False))
            del self._buf[:CHUNK_BYTES]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._done:
            raise ValueError("finish() was called")
        if self._seen != self.size:
            raise ValueError("less plaintext than the declared size")
        self._done = True
        last = self._emit(bytes(self._buf), True)
        self._buf.clear()
        pad = bytes(padded_size(self.size) - ciphertext_size(self.size))
        self._sha.update(pad)
        return last + pad

    @property
    def digest(self) -> bytes:
        if not self._done:
            raise ValueError("the digest is known after finish()")
        return self._sha.digest()


class Decryptor:
    """Decrypt a whole blob fed in pieces, for a file of ``size`` plaintext bytes.

    ``update`` returns plaintext of every chunk completed so far; ``finish`` checks the blob was
    exactly ``padded_size(size)`` bytes whose digest is ``digest`` and raises ``DecryptError``
    otherwise. A caller that writes the plaintext out before ``finish`` MUST discard it when
    ``finish`` raises; the SDK verifies the digest of the downloaded blob first and only then
    decrypts it."""

    __slots__ = ("_buf", "_ct_left", "_digest", "_fkey", "_index", "_n", "_pad_left", "_sha")

    def __init__(self, key: bytes, size: int, digest: bytes) -> None:
        self._fkey = file_key(key)
        self._n = chunk_count(size)
        self._ct_left = ciphertext_size(size)
        self._pad_left = padded_size(size) - self._ct_left
        self._digest = digest
        self._buf = bytearray()
        self._index = 0
        self._sha = Digest()

    def update(self, data: bytes) -> bytes:
        self._sha.update(data)
        take = min(len(data), self._ct_left)
        self._buf += data[:take]
        self._ct_left -= take
        self._pad_left -= len(data) - take
        if self._pad_left < 0:
            raise DecryptError("blob longer than its declared size")
        out: list[bytes] = []
        while self._index < self._n:
            final = self._index == self._n - 1
            if final and self._ct_left > 0:
                break
            if not final and len(self._buf) < CT_CHUNK_BYTES:
                break
            cut = len(self._buf) if final else CT_CHUNK_BYTES
            out.append(decrypt_chunk(self._fkey, self._index, bytes(self._buf[:cut]), final))
            del self._buf[:cut]
            self._index += 1
        return b"".join(out)

    def finish(self) -> None:
        if self._ct_left or self._pad_left or self._index != self._n:
            raise DecryptError("blob shorter than its declared size")
        if not self._sha.matches(self._digest):
            raise DecryptError("blob digest does not match the message")


def encrypt(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    """``(blob, digest)`` of a whole plaintext in memory (small files, tests, vectors)."""
    enc = Encryptor(key, len(data))
    blob = enc.update(data) + enc.finish()
    return blob, enc.digest


def decrypt(key: bytes, size: int, digest: bytes, blob: bytes) -> bytes:
    """The plaintext of a whole blob in memory, digest checked first."""
    sha = Digest()
    sha.update(blob)
    if len(blob) != padded_size(size) or not sha.matches(digest):
        raise DecryptError("blob digest or length does not match the message")
    dec = Decryptor(key, size, digest)
    out = dec.update(blob)
    dec.finish()
    return out
