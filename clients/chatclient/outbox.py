"""The SDK's side of the outbox: what the key store keeps, and who waits for each message.

The outbox itself (order, windows, resends by cmid) is ``chatproto.client``'s; each of its
entries carries a ``Pending`` as its ``data``: the message as the application sent it (the
plaintext, its addressees), and the future its ``send`` waits on. Every entry is committed to the
key store before its first write and deleted on its ack, so a message survives a kill.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
from chatproto import client as core
from chatproto import frames as F


class _Stored(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An outbox entry as the key store keeps it (``KeyStore.outbox_put``)."""

    conv: int
    kind: str
    body: bytes
    to: list[int] | None = None
    reply_to: int = 0
    wire_kind: str = ""
    wire_body: bytes = b""
    wire_fc: bytes = b""
    """The franking commitment sent with the wire bytes (SPEC.md 18.7); empty: none."""


_ENCODER = msgspec.msgpack.Encoder()


@dataclass
class Pending:
    """A message in the outbox as sent (``kind``/``body`` as given), not yet acknowledged.

    Its wire form (the ``e2e`` ciphertext, or the plain kind) is the core entry's ``kind`` and
    ``body``, made once and kept in the key store before the first write: every resend is the
    same bytes, so the server stores it once (SPEC.md 7.3)."""

    kind: str
    body: bytes
    to: tuple[int, ...] | None = None
    """None: worked out when it is sent (``send``'s default addressing)."""
    reply_to: int = 0
    future: asyncio.Future[F.Ack] | None = None


def stored(entry: core.Entry) -> bytes:
    """The key store's record of ``entry`` (its wire form too once it is prepared)."""
    p: Pending = entry.data
    return _ENCODER.encode(
        _Stored(
            conv=entry.conv,
            kind=p.kind,
            body=p.body,
            to=None if p.to is None else list(p.to),
            reply_to=p.reply_to,
            wire_kind=entry.kind if entry.ready else "",
            wire_body=entry.body if entry.ready else b"",
            wire_fc=(entry.fc or b"") if entry.ready else b"",
        )
    )


def restored(cmid: str, data: bytes) -> core.Entry:
    """An entry back from the key store (sent by this or an earlier process, never acked)."""
    e = msgspec.msgpack.decode(data, type=_Stored)
    to = None if e.to is None else tuple(e.to)
    pending = Pending(e.kind, e.body, to, e.reply_to)
    ready = bool(e.wire_kind)
    entry = core.Entry(e.conv, cmid, e.wire_kind, e.wire_body, to or (), ready, pending)
    entry.fc = e.wire_fc or None
    return entry


def pending_of(entry: core.Entry) -> Pending:
    p: Pending = entry.data
    return p
