"""Message franking (E2E.md section 17): reports of end-to-end encrypted messages the server can
verify without reading anything that was not reported.

The scheme is Facebook Messenger's ("Message Franking", 2016), over chatd's fields:

1. The sender draws a fresh 32-byte franking key ``fk`` per message, puts it INSIDE the E2E
   plaintext, and sends ``commitment = HMAC-SHA256(fk, COMMIT_LABEL || plaintext)`` in the
   clear beside the ciphertext.
2. The server binds the commitment to who sent it, where and when:
   ``tag = HMAC-SHA256(server_secret, TAG_LABEL || commitment || u64(sender) || u64(conv) ||
   u64(seq) || u64(ts))`` (u64: 8 bytes big-endian). The tag is opaque to clients.
3. A recipient who reports reveals the plaintext, ``fk`` (the opening) and the tag; the server
   recomputes the commitment from the opening, then the tag, and compares. A changed plaintext,
   another key, or another sender, conversation, seq or time gives another tag: the report is
   refused. Nothing the server holds reveals an unreported plaintext: it sees a commitment under
   a key it never learns.

Pure functions; ``protocol/vectors/franking.json`` pins the bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import Final

import msgspec

KEY_BYTES: Final = 32
"""Length of a franking key (and of a server franking secret, at least)."""
COMMITMENT_BYTES: Final = 32
TAG_BYTES: Final = 32

COMMIT_LABEL: Final = b"chatd.franking.commit.v1\x00"
TAG_LABEL: Final = b"chatd.franking.tag.v1\x00"

_MAX_U64: Final = (1 << 64) - 1
_IDS: Final = struct.Struct(">QQQQ")


class Plaintext(msgspec.Struct, frozen=True, kw_only=True):
    """What a franked message commits to (E2E.md 17): its inner kind and content body, as the
    E2E payload holds them (E2E.md 8), encoded as the msgpack map ``{"kind", "body"}``."""

    kind: str
    body: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Plaintext)


def encode_plaintext(kind: str, body: bytes) -> bytes:
    """The franked plaintext of a message of inner ``kind`` with content ``body``."""
    return _encoder.encode(Plaintext(kind=kind, body=body))


def decode_plaintext(data: bytes) -> tuple[str, bytes]:
    """``(kind, body)`` of a franked plaintext; ``msgspec.DecodeError`` if it is not one."""
    p = _decoder.decode(data)
    return p.kind, p.body


def new_key() -> bytes:
    """A fresh franking key: one per message, never reused."""
    return os.urandom(KEY_BYTES)


def commit(key: bytes, plaintext: bytes) -> bytes:
    """The sender's commitment to ``plaintext`` under franking key ``key`` (32 bytes)."""
    if len(key) != KEY_BYTES:
        raise ValueError(f"a franking key is {KEY_BYTES} bytes")
    return hmac.new(key, COMMIT_LABEL + plaintext, hashlib.sha256).digest()


def opens(commitment: bytes, key: bytes, plaintext: bytes) -> bool:
    """True when (``plaintext``, ``key``) opens ``commitment`` (constant-time compare)."""
    if len(key) != KEY_BYTES or len(commitment) != COMMITMENT_BYTES:
        return False
    return hmac.compare_digest(commit(key, plaintext), commitment)


def tag(secret: bytes, commitment: bytes, *, sender: int, conv: int, seq: int, ts: int) -> bytes:
    """The server's tag binding ``commitment`` to ``sender``, ``conv``, ``seq`` and ``ts``."""
    if len(secret) < KEY_BYTES:
        raise ValueError(f"a franking secret is at least {KEY_BYTES} bytes")
    if len(commitment) != COMMITMENT_BYTES:
        raise ValueError(f"a franking commitment is {COMMITMENT_BYTES} bytes")
    for value in (sender, conv, seq, ts):
        if not 0 <= value <= _MAX_U64:
            raise ValueError("ids and times are unsigned 64-bit integers")
    data = TAG_LABEL + commitment + _IDS.pack(sender, conv, seq, ts)
    return hmac.new(secret, data, hashlib.sha256).digest()


def verify(
    secret: bytes,
    report_tag: bytes,
    plaintext: bytes,
    key: bytes,
    *,
    sender: int,
    conv: int,
    seq: int,
    ts: int,
) -> bool:
    """True when a report is genuine: ``plaintext`` with franking key ``key`` is what ``sender``
    sent as message ``seq`` of ``conv`` at ``ts``, as the server's ``report_tag`` attests."""
    if len(key) != KEY_BYTES or len(report_tag) != TAG_BYTES:
        return False
    try:
        expected = tag(secret, commit(key, plaintext), sender=sender, conv=conv, seq=seq, ts=ts)
    except ValueError:
        return False
    return hmac.compare_digest(expected, report_tag)
