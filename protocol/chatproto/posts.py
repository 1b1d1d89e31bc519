"""Public posts, sans-I/O: the exact bytes a publisher's device signs (SPEC.md 20.4), and the
checks a reader, a mirror or a bot runs so that it need not trust the server.

A post of a public channel is not end-to-end encrypted (anyone may read it), but it is signed:
the payload is ``"chatd-post-v1" 0x00 msgpack([server, channel, seq, ver, ts, author, device,
kind, content])``, each field in its shortest msgpack encoding (as payments' intents,
``chatproto.payments``). ``ver`` 0 is the post as first published; each edit is the next
``ver``, signed again; a delete is a version of kind ``deleted`` with empty content (the signed
tombstone). The server stores every version and can neither forge a post (it has no device key)
nor alter one (the signature covers every field a reader shows) nor move one to another seq,
channel, author or server. Verification needs the key of device ``device`` of ``author`` from
its signed device list (E2E.md 3), which the SDK fetches and pins.
"""

from __future__ import annotations

import unicodedata
from typing import Final

import msgspec

from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey, verify
from chatproto.errors import ChatProtoError

POST_CONTEXT: Final = b"chatd-post-v1"
PAID_POST_CONTEXT: Final = b"chatd-post-v2"
"""A paid post's payload (SPEC.md 15.14): v1's fields then ``paid`` (true). A free post keeps
the v1 bytes, so no existing signature changes; the server can neither unlock a paid post (its
signature is over v2) nor lock a free one."""
TOMBSTONE: Final = "deleted"
"""The kind of a deleted post's last version (its content is empty)."""
MAX_QUERY_WORDS: Final = 4
MAX_WORD_CHARS: Final = 32
MAX_TERMS: Final = 64

_encoder = msgspec.msgpack.Encoder()


def post_payload(
    server: str,
    *,
    channel: int,
    seq: int,
    ver: int,
    ts: int,
    author: int,
    device: int,
    kind: str,
    content: bytes,
    paid: bool = False,
) -> bytes:
    """The bytes the publisher's device signs (SPEC.md 20.4; a paid post's: 15.14)."""
    fields = (server, channel, seq, ver, ts, author, device, kind, content)
    if paid:
        return PAID_POST_CONTEXT + b"\x00" + _encoder.encode((*fields, True))
    return POST_CONTEXT + b"\x00" + _encoder.encode(fields)


def payload_of(server: str, p: F.Post) -> bytes:
    return post_payload(
        server,
        channel=p.channel,
        seq=p.seq,
        ver=p.ver,
        ts=p.ts,
        author=p.author,
        device=p.device,
        kind=p.kind,
        content=p.content,
        paid=p.paid,
    )


def sign_post(key: SigningKey, server: str, p: F.Post) -> bytes:
    """``p``'s signature by ``key`` (``p.sig`` is ignored)."""
    return key.sign(payload_of(server, p))


def verify_post(public_key: bytes, server: str, p: F.Post) -> None:
    """Raise ``SignatureError`` unless ``p.sig`` is ``public_key``'s over ``p``, and
    ``ChatProtoError`` when ``p`` is a malformed tombstone (deleted with content)."""
    if p.kind == TOMBSTONE and p.content:
        raise ChatProtoError("a tombstone has no content")
    if p.locked:
        raise ChatProtoError("a locked paid post has no content to verify")
    verify(public_key, p.sig, payload_of(server, p))


def is_tombstone(p: F.Post) -> bool:
    return p.kind == TOMBSTONE


def locked(p: F.Post) -> F.Post:
    """The placeholder of paid post ``p`` for a reader without access: everything but the
    content (seq, version, author, device, kind, time, signature), ``locked`` set."""
    return msgspec.structs.replace(p, content=b"", locked=True)


# --------------------------------------------------------------------------- the directory


def words(text: str) -> list[str]:
    """The words a directory search compares (SPEC.md 20.2): NFKC, case-folded, split at every
    character that is not a letter or digit, each cut to 32 characters; in order, repeated."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    word: list[str] = []
    for ch in folded:
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word)[:MAX_WORD_CHARS])
            word = []
    if word:
        out.append("".join(word)[:MAX_WORD_CHARS])
    return out


def channel_terms(handle: str, title: str, about: str) -> list[str]:
    """The distinct words a channel is found by: its handle whole and split, its title's and
    its description's (at most 64, handle and title first)."""
    seen: dict[str, None] = {handle.casefold()[:MAX_WORD_CHARS]: None}
    for w in words(handle) + words(title) + words(about):
        if len(seen) >= MAX_TERMS:
            break
        seen[w] = None
    return list(seen)


def query_words(query: str) -> list[str]:
    """A query's distinct words, longest first (the first one drives the index scan), at most
    four; empty when the query has no letter or digit."""
    distinct = list(dict.fromkeys(words(query)))
    return sorted(distinct, key=len, reverse=True)[:MAX_QUERY_WORDS]


def prefix_bound(prefix: str) -> str:
    """The smallest string above every string starting with ``prefix`` in code point (= UTF-8
    byte) order: the exclusive upper end of a prefix's range scan."""
    return prefix + "\U0010ffff"
