"""What travels through the broker: a fixed header and one already-encoded frame.

The frame is encoded once on the committing node and its bytes are what every recipient's socket
gets, whatever the number of nodes or watchers.
"""

from __future__ import annotations

import struct
from typing import Final

_HEADER = struct.Struct(">BQQQ")
HEADER_SIZE: Final = _HEADER.size
_SEQ = struct.Struct(">Q")
_COUNT = struct.Struct(">I")
_ONE = struct.Struct(">IQ")

MESSAGE: Final = 1
"""A stored message (``Deliver``): seq is its sequence number."""
EVENT: Final = 2
"""An ephemeral event (typing, receipt): seq is 0; never held back by sync."""
WATCH: Final = 3
"""Control, on an account's topic: the account joined the conversation whose id is in seq; every
node routes the conversation to the account's local connections. The payload is empty or
``watch_payload(message seq, Deliver frame)``: the message that added the account, delivered
through the account's topic because the node's subscription to the conversation's topic may not
be in effect yet."""
UNWATCH: Final = 4
"""Control, on an account's topic: the account left the conversation whose id is in seq. The
payload is empty or ``watch_payload(message seq, Deliver frame)``: the message that removed it,
which the conversation's topic withholds from it (a node re-reading the membership would no
longer find it a member), handed to its connections before they stop watching."""
WITHHELD: Final = 5
"""A stored message (like MESSAGE) that some accounts must not receive: bots whose access is
``addressed`` and that it is not addressed to (SPEC.md 16.3), as decided when it was committed.
The payload is ``withheld_payload(accounts, Deliver frame)``. Every other message is a MESSAGE,
so delivery to conversations without such bots is exactly what it was.

A message appended after members left the conversation is a WITHHELD envelope too: its list ends
with ``REMOVALS | n``, n being ``StoredMessage.removals`` (no account has that id, so a node of
the previous version skips nobody for it). The receiving hub re-reads the membership before
delivering a message whose n is above what its routing reflects (``chatd.hub``)."""

REMOVALS: Final = 1 << 63
"""The top bit of the last entry of a WITHHELD list: the rest of it is the removal count."""
FOLLOW: Final = 6
"""Control, on an account's topic: the account follows (or now administers) the public channel
whose id is in seq; every node routes the channel's posts to its local connections."""
UNFOLLOW: Final = 7
"""Control, on an account's topic: the account stopped following the channel in seq."""


def pack(kind: int, seq: int, origin: int, node: int, frame: bytes) -> bytes:
    """The one place the header is written: ``node`` is the publishing node's id."""
    return _HEADER.pack(kind, seq, origin, node) + frame


def own_marker(node: int) -> tuple[int, bytes]:
    """``(offset, bytes)`` that mark the envelopes ``node`` published (``Broker.ignore_own``)."""
    return HEADER_SIZE - 8, node.to_bytes(8, "big")


def unpack(data: bytes) -> tuple[int, int, int, int, bytes]:
    """``(kind, seq, origin connection, publishing node, frame bytes)``."""
    kind, seq, origin, node = _HEADER.unpack_from(data)
    return kind, seq, origin, node, data[HEADER_SIZE:]


def withheld_payload(accounts: tuple[int, ...], frame: bytes, removals: int = 0) -> bytes:
    """``u32be n || n x u64be account || frame``; ``removals`` as a last entry (``REMOVALS``)."""
    if removals:
        accounts = (*accounts, REMOVALS | removals)
    n = len(accounts)
    return struct.pack(f">I{n}Q", n, *accounts) + frame


def split_withheld_payload(payload: bytes) -> tuple[tuple[int, ...], bytes]:
    """``(accounts the message is withheld from, Deliver frame)`` of a WITHHELD payload."""
    n = _COUNT.unpack_from(payload)[0]
    return struct.unpack_from(f">{n}Q", payload, 4), payload[4 + 8 * n :]


def withheld_parts(payload: bytes) -> tuple[tuple[int, ...], int, bytes]:
    """``(accounts it is withheld from, removal count, Deliver frame)`` of a WITHHELD payload."""
    n, last = _ONE.unpack_from(payload)
    if n == 1:  # the usual: the removal count alone (or one bot)
        if last & REMOVALS:
            return (), last & ~REMOVALS, payload[12:]
        return (last,), 0, payload[12:]
    accounts, frame = split_withheld_payload(payload)
    if accounts and accounts[-1] & REMOVALS:
        return accounts[:-1], accounts[-1] & ~REMOVALS, frame
    return accounts, 0, frame


def watch_payload(seq: int, frame: bytes) -> bytes:
    return _SEQ.pack(seq) + frame


def split_watch_payload(payload: bytes) -> tuple[int, bytes] | None:
    """``(message seq, Deliver frame)`` of a WATCH payload, or None when it is empty."""
    if not payload:
        return None
    return _SEQ.unpack_from(payload)[0], payload[_SEQ.size :]


def conv_topic(conv: int) -> str:
    return f"c.{conv}"


def account_topic(account: int) -> str:
    return f"a.{account}"


def device_topic(device: int) -> str:
    """Events for one device's connections (to-device items)."""
    return f"d.{device}"


def channel_topic(channel: int) -> str:
    """Posts of one public channel (SPEC.md 20), pushed to the connections that watch them."""
    return f"p.{channel}"


def post_topic(channel: int, seq: int) -> str:
    """Comments and reaction counts of one public post, pushed to the connections that watch
    its thread (SPEC.md 20.7)."""
    return f"t.{channel}.{seq}"
