"""Transcript consistency for conversation messages (E2E.md section 16), sans-I/O.

Every sender-key message carries, inside its encrypted payload, what its sender had seen: its
own per-conversation message number ``n`` and a hash of its previous message, the highest
message number it had read from each other device that wrote in the conversation, and the
membership log head it encrypted under. A member who reads the conversation in seq order can
then tell a message that never reached it (a number skipped), a reordering (a number lower than
the last, or a chain that does not link), delivery to only some members (another member saw a
message of a device this member never got), and a membership fork (the same log epoch with a
different head). The server cannot change any of it: it is encrypted and signed with the
message.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from chatproto.e2e import primitives as P
from chatproto.limits import MAX_ID, MAX_U32

HASH_BYTES: Final = 16
MAX_SEEN: Final = 32
"""Most devices a message reports (the most recently heard from)."""

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Count = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Hash = Annotated[bytes, msgspec.Meta(max_length=HASH_BYTES)]


class Seen(msgspec.Struct, frozen=True, array_like=True):
    """The highest message number ``n`` the sender had read from ``device`` (of ``account``)."""

    account: Id
    device: Id
    n: Count


class Transcript(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What a message's sender had seen when it encrypted it (payload field ``tr``)."""

    n: Count
    """This device's message number in the conversation: 1, 2, 3, ..."""
    prev: Hash = b""
    """``message_hash`` of this device's previous message in the conversation (empty for 1)."""
    seen: Annotated[tuple[Seen, ...], msgspec.Meta(max_length=MAX_SEEN)] = ()
    epoch: Annotated[int, msgspec.Meta(ge=0, le=MAX_U32)] = 0
    """The membership log epoch the sender encrypted under (0: none)."""
    head: Hash = b""
    """The first 16 bytes of that log head's hash."""


class Peer(msgspec.Struct, frozen=True, array_like=True):
    """What this device has read from one other device in a conversation."""

    device: int
    account: int
    n: int
    hash: bytes
    seq: int


class Sent(msgspec.Struct, frozen=True, array_like=True):
    """This device's own chain in a conversation."""

    n: int = 0
    hash: bytes = b""


class View(msgspec.Struct, frozen=True, kw_only=True):
    """One conversation as this device has read it."""

    peers: tuple[Peer, ...] = ()
    """Ascending by seq of the last message read (most recent last)."""
    sent: Sent = Sent()


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """One inconsistency: ``problem`` is ``missing`` (``count`` messages of ``device`` never
    reached this device), ``reordered``, ``forked_chain`` (the previous-message hash does not
    link), ``unseen`` (the sender had read ``count`` more messages of ``device`` than this device
    has: delivery to some members only), ``own`` (the sender claims more of this device's
    messages than it sent) or ``membership_fork`` (same log epoch, another head)."""

    problem: str
    account: int
    device: int
    count: int = 0


def message_hash(body: bytes) -> bytes:
    """The hash a message's successor names: of its whole sender-key message (the ``body``)."""
    return P.sha256(b"chatd-e2e-transcript-v1\x00" + body)[:HASH_BYTES]


def outgoing(
    view: View, body_hash_of_prev: bytes | None = None, *, epoch: int = 0, head: bytes = b""
) -> Transcript:
    """The transcript of this device's next message (``view.sent`` is its chain so far)."""
    seen = tuple(Seen(p.account, p.device, p.n) for p in view.peers[-MAX_SEEN:])
    return Transcript(
        n=view.sent.n + 1,
        prev=view.sent.hash if body_hash_of_prev is None else body_hash_of_prev,
        seen=tuple(sorted(seen, key=lambda s: s.device)),
        epoch=epoch,
        head=head[:HASH_BYTES],
    )


def sent(view: View, body: bytes) -> View:
    """``view`` after this device sent ``body`` (the sender-key message it encrypted)."""
    return msgspec.structs.replace(view, sent=Sent(view.sent.n + 1, message_hash(body)))


def observe(
    view: View,
    *,
    me: int,
    account: int,
    device: int,
    seq: int,
    body: bytes,
    t: Transcript,
    joined: int = 0,
    epoch: int = 0,
    head: bytes = b"",
) -> tuple[View, list[Finding]]:
    """Read message ``seq`` (sender-key message ``body`` from ``account``'s ``device``, carrying
    ``t``) in seq order. ``me`` is this device, ``joined`` the seq this device's account joined
    at (messages before it were never meant for it), ``epoch``/``head`` this device's verified
    membership log head. Returns the new view and what does not add up."""
    found: list[Finding] = []
    peers = {p.device: p for p in view.peers}
    last = peers.get(device)
    if last is not None and last.seq >= joined:
        if t.n <= last.n:
            found.append(Finding(problem="reordered", account=account, device=device))
        elif t.n > last.n + 1:
            found.append(
                Finding(problem="missing", account=account, device=device, count=t.n - last.n - 1)
            )
        elif t.prev != last.hash:
            found.append(Finding(problem="forked_chain", account=account, device=device))
    for s in t.seen:
        if s.device == device:
            continue
        if s.device == me:
            if s.n > view.sent.n:
                found.append(Finding(problem="own", account=s.account, device=me, count=s.n))
            continue
        mine = peers.get(s.device)
        if mine is not None and mine.seq >= joined and s.n > mine.n:
            found.append(
                Finding(problem="unseen", account=s.account, device=s.device, count=s.n - mine.n)
            )
    if t.epoch and epoch and t.epoch == epoch and head and t.head and t.head != head[:HASH_BYTES]:
        found.append(Finding(problem="membership_fork", account=account, device=device))
    if last is None or t.n > last.n:
        peers[device] = Peer(device, account, t.n, message_hash(body), seq)
    ordered = tuple(sorted(peers.values(), key=lambda p: (p.seq, p.device)))
    return msgspec.structs.replace(view, peers=ordered), found
