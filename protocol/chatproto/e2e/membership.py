"""A conversation's signed membership log (E2E.md section 15), sans-I/O.

Every change of who is in a conversation (creation, add, remove, leave, a role, a bot's access)
is an ``Entry`` signed by the device of the member who made it, with that device's Ed25519 login
key (the ``signing_key`` its account's master-signed device list holds). Entries form a hash
chain: each names the previous one's hash and the next epoch, and the first (``create``) names
a random 16-byte ``group`` id that every later entry repeats. A client replays the chain with
``apply``, which enforces the conversation's rules (SPEC.md 8.2) on every step, and encrypts only
to the members of the state it verified. The server stores and relays entries; it cannot make
one, and a forged, reordered or replayed entry fails ``apply``.

Body = canonical msgpack of ``Entry`` (fields in declaration order, defaults omitted, the
shortest encodings, ``members`` sorted by account); signature =
``Sign(device key, "chatd-e2e-membership-v1" || 0x00 || body)``; hash =
``SHA-256("chatd-e2e-membership-hash-v1" || 0x00 || u32be(len body) || body || sig)``.
"""

from __future__ import annotations

import bisect
import struct
from typing import Annotated, Final, Literal

import msgspec

from chatproto.e2e import primitives as P
from chatproto.errors import ChatProtoError, UntrustedKeyError
from chatproto.limits import MAX_ID, MAX_MEMBERS_PER_REQUEST, MAX_U32

CONTEXT: Final = b"chatd-e2e-membership-v1"
HASH_CONTEXT: Final = b"chatd-e2e-membership-hash-v1"
GROUP_ID_BYTES: Final = 16
MAX_ENTRY_BYTES: Final = 16 * 1024
"""Largest entry body (a ``create`` of 257 members is about 4 KiB)."""
MAX_ROSTER: Final = MAX_MEMBERS_PER_REQUEST + 1
"""Most members a ``create`` entry lists: the creator and up to 256 others."""
GENESIS_PREV: Final = bytes(32)
MANAGERS: Final = frozenset({"owner", "admin"})

Op = Literal["create", "add", "remove", "leave", "role", "access"]
ConvKind = Literal["direct", "group", "channel"]
AccessValue = Literal["", "addressed", "all"]
Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
MaybeId = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


class MembershipError(UntrustedKeyError):
    """An entry that does not verify, does not follow the chain, or breaks the rules."""


class Seat(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """One member in a ``create`` entry."""

    account: Id
    role: Literal["owner", "admin", "member"]
    access: AccessValue = ""
    """A bot member's access (``addressed`` or ``all``); empty for a user."""


class Entry(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """One signed change of a conversation's membership."""

    group: Annotated[bytes, msgspec.Meta(min_length=GROUP_ID_BYTES, max_length=GROUP_ID_BYTES)]
    epoch: Annotated[int, msgspec.Meta(ge=1, le=MAX_U32)]
    prev: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    """The previous entry's hash; 32 zero bytes for the first (``create``)."""
    actor: Id
    """The account that made the change (its device signs)."""
    device: Id
    """The signing device, one of ``actor``'s listed devices."""
    op: Op
    kind: Literal["", "direct", "group", "channel"] = ""
    """``create`` only: the conversation's kind, fixed for its life."""
    members: Annotated[tuple[Seat, ...], msgspec.Meta(max_length=MAX_ROSTER)] = ()
    """``create`` only: every initial member, the creator included, ascending by account."""
    account: MaybeId = 0
    """``add``/``remove``/``role``/``access``: the member concerned."""
    role: Literal["", "admin", "member"] = ""
    """``role``: the new role."""
    access: AccessValue = ""
    """``add``: ``addressed`` when the new member is a bot (else empty); ``access``: the new
    access (``addressed`` or ``all``)."""
    ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    """The signer's clock, Unix ms (informational)."""


class MemberState(msgspec.Struct, frozen=True, array_like=True):
    account: int
    role: str
    access: str
    """``addressed``/``all`` for a bot, empty for a user."""
    joined: int
    """The epoch of the entry that made it a member (``create``: 1)."""
    since: int
    """The seq of that entry's system message (server metadata, for ``member_at``)."""


class Span(msgspec.Struct, frozen=True, array_like=True):
    """A past membership: ``account`` was a member for seqs ``start`` <= s < ``end``."""

    account: int
    start: int
    end: int


class ChainState(msgspec.Struct, frozen=True, kw_only=True):
    """The membership a verified chain arrives at."""

    group: bytes
    kind: str
    epoch: int
    head: bytes
    """Hash of the last entry applied."""
    seq: int
    """Seq of the last entry applied."""
    members: tuple[MemberState, ...]
    """Ascending by account."""
    past: tuple[Span, ...] = ()

    def member(self, account: int) -> MemberState | None:
        i = bisect.bisect_left(self.members, account, key=lambda m: m.account)
        if i < len(self.members) and self.members[i].account == account:
            return self.members[i]
        return None

    @property
    def accounts(self) -> tuple[int, ...]:
        return tuple(m.account for m in self.members)

    @property
    def bots(self) -> dict[int, str]:
        """Bot member -> access."""
        return {m.account: m.access for m in self.members if m.access}


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Entry)


def encode_entry(entry: Entry) -> bytes:
    """Canonical body bytes (``members`` sorted by account, ids unique)."""
    members = tuple(sorted(entry.members, key=lambda s: s.account))
    if len({s.account for s in members}) != len(members):
        raise MembershipError("an account appears twice in the entry's members")
    return _encoder.encode(msgspec.structs.replace(entry, members=members))


def signed_payload(body: bytes) -> bytes:
    return CONTEXT + b"\x00" + body


def sign_entry(entry: Entry, signing_seed: bytes) -> tuple[bytes, bytes]:
    """``(body, sig)``: the entry signed with the device's login key seed."""
    body = encode_entry(entry)
    return body, P.SigningKey(signing_seed).sign(signed_payload(body))


def entry_hash(body: bytes, sig: bytes) -> bytes:
    return P.sha256(HASH_CONTEXT + b"\x00" + struct.pack(">I", len(body)) + body + sig)


def decode_entry(body: bytes) -> Entry:
    """The entry of a canonical body, or ``MembershipError`` (the signature is not checked)."""
    if len(body) > MAX_ENTRY_BYTES:
        raise MembershipError("membership entry too large")
    try:
        entry = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise MembershipError(f"malformed membership entry: {exc}") from None
    try:
        canonical = encode_entry(entry)
    except ChatProtoError as exc:
        raise MembershipError(exc.message) from None
    if canonical != body:
        raise MembershipError("membership entry is not canonical")
    return entry


def verify_signature(body: bytes, sig: bytes, signing_key: bytes) -> None:
    """``MembershipError`` unless ``sig`` is ``signing_key``'s over the entry ``body``."""
    try:
        P.verify(signing_key, sig, signed_payload(body))
    except ChatProtoError as exc:
        raise MembershipError("membership entry signature does not verify") from exc


def new_group_id() -> bytes:
    return P.random_bytes(GROUP_ID_BYTES)


def genesis(
    kind: str,
    actor: int,
    device: int,
    members: list[Seat] | tuple[Seat, ...],
    *,
    group: bytes | None = None,
    ts: int = 0,
) -> Entry:
    """The ``create`` entry: ``members`` is the whole roster, the creator included."""
    return Entry(
        group=new_group_id() if group is None else group,
        epoch=1,
        prev=GENESIS_PREV,
        actor=actor,
        device=device,
        op="create",
        kind=kind,  # type: ignore[arg-type]
        members=tuple(sorted(members, key=lambda s: s.account)),
        ts=ts,
    )


def next_entry(
    state: ChainState,
    actor: int,
    device: int,
    op: Op,
    *,
    account: int = 0,
    role: str = "",
    access: str = "",
    ts: int = 0,
) -> Entry:
    """The entry that changes ``state`` by ``op`` (checked by ``apply`` before it is returned,
    so a client never signs a change the others would refuse)."""
    entry = Entry(
        group=state.group,
        epoch=state.epoch + 1,
        prev=state.head,
        actor=actor,
        device=device,
        op=op,
        account=account,
        role=role,  # type: ignore[arg-type]
        access=access,  # type: ignore[arg-type]
        ts=ts,
    )
    apply(state, entry, b"", b"", state.seq)  # raises MembershipError if the others would
    return entry


def heir(members: tuple[MemberState, ...] | list[MemberState]) -> int | None:
    """Who becomes owner when the owner leaves: the earliest-joined admin, else the
    earliest-joined member (ties: the lower account id). SPEC.md 8.2."""
    admins = [m for m in members if m.role == "admin"]
    pool = admins or list(members)
    if not pool:
        return None
    return min(pool, key=lambda m: (m.joined, m.account)).account


def _fail(message: str) -> MembershipError:
    return MembershipError(message)


def _genesis_state(e: Entry, body: bytes, sig: bytes, seq: int) -> ChainState:
    if e.op != "create" or e.epoch != 1 or e.prev != GENESIS_PREV:
        raise _fail("a membership log starts with a create entry at epoch 1")
    if e.kind == "" or e.account or e.role or e.access:
        raise _fail("malformed create entry")
    roles = {s.account: s.role for s in e.members}
    if e.actor not in roles:
        raise _fail("the creator is not among the members it created")
    if e.kind == "direct":
        if len(e.members) != 2 or any(s.role != "member" for s in e.members):
            raise _fail("a direct conversation has exactly two members, both 'member'")
        if any(s.access not in ("", "all") for s in e.members):
            raise _fail("a bot in a direct conversation has access 'all'")
    else:
        owners = [a for a, r in roles.items() if r == "owner"]
        if owners != [e.actor]:
            raise _fail("a group or channel has exactly one owner: its creator")
    members = tuple(MemberState(s.account, s.role, s.access, 1, seq) for s in e.members)
    return ChainState(
        group=e.group,
        kind=e.kind,
        epoch=1,
        head=entry_hash(body, sig),
        seq=seq,
        members=members,
    )


class _Work:
    """A chain state being replayed: members in a dict, so a long log (a channel of many
    members) replays in linear time; ``ChainState`` is built once at the end."""

    __slots__ = ("epoch", "group", "head", "kind", "members", "past", "seq")

    def __init__(self, state: ChainState) -> None:
        self.group, self.kind, self.epoch = state.group, state.kind, state.epoch
        self.head, self.seq = state.head, state.seq
        self.members = {m.account: m for m in state.members}
        self.past = list(state.past)

    def state(self) -> ChainState:
        return ChainState(
            group=self.group,
            kind=self.kind,
            epoch=self.epoch,
            head=self.head,
            seq=self.seq,
            members=tuple(self.members[a] for a in sorted(self.members)),
            past=tuple(self.past),
        )


def _step(w: _Work, e: Entry, body: bytes, sig: bytes, seq: int) -> None:
    """Apply ``e`` to ``w`` in place; every check runs before anything changes."""
    if e.group != w.group:
        raise _fail("membership entry of another conversation")
    if e.epoch != w.epoch + 1 or not P.constant_time_equal(e.prev, w.head):
        raise _fail(f"membership entry {e.epoch} does not follow entry {w.epoch}")
    if e.op == "create" or e.kind or e.members:
        raise _fail("a conversation is created once")
    if w.kind == "direct":
        raise _fail("a direct conversation's members are fixed at creation")
    members = w.members
    actor = members.get(e.actor)
    if actor is None:
        raise _fail(f"account {e.actor} is not a member: it cannot change the members")
    target = members.get(e.account) if e.account else None
    match e.op:
        case "add":
            if actor.role not in MANAGERS:
                raise _fail("only the owner or an admin adds members")
            if not e.account or target is not None:
                raise _fail("add names an account that is not a member")
            if e.role or e.access not in ("", "addressed"):
                raise _fail("a new member joins as 'member' (a bot with access 'addressed')")
            members[e.account] = MemberState(e.account, "member", e.access, e.epoch, seq)
        case "remove":
            if target is None or e.account == e.actor or e.role or e.access:
                raise _fail("remove names another member")
            if actor.role not in MANAGERS:
                raise _fail("only the owner or an admin removes members")
            if target.role == "owner":
                raise _fail("the owner cannot be removed")
            if target.role == "admin" and actor.role != "owner":
                raise _fail("only the owner removes an admin")
            del members[e.account]
            w.past.append(Span(e.account, target.since, seq))
        case "leave":
            if e.account or e.role or e.access:
                raise _fail("malformed leave entry")
            del members[e.actor]
            w.past.append(Span(e.actor, actor.since, seq))
            if actor.role == "owner":
                new_owner = heir(list(members.values()))
                if new_owner is not None:
                    members[new_owner] = msgspec.structs.replace(members[new_owner], role="owner")
        case "role":
            if actor.role != "owner":
                raise _fail("only the owner changes roles")
            if target is None or target.role == "owner" or e.role not in ("admin", "member"):
                raise _fail("role names a member other than the owner and a role")
            if e.access:
                raise _fail("malformed role entry")
            members[e.account] = msgspec.structs.replace(target, role=e.role)
        case "access":
            if actor.role not in MANAGERS:
                raise _fail("only the owner or an admin changes a bot's access")
            if target is None or not target.access or e.access not in ("addressed", "all"):
                raise _fail("access names a bot member and an access")
            if e.access == target.access or e.role:
                raise _fail("malformed access entry")
            members[e.account] = msgspec.structs.replace(target, access=e.access)
        case _:  # pragma: no cover - the decoder admits only the ops above
            raise _fail(f"unknown op {e.op!r}")
    w.epoch, w.head, w.seq = e.epoch, entry_hash(body, sig), seq


def apply(state: ChainState | None, entry: Entry, body: bytes, sig: bytes, seq: int) -> ChainState:
    """The state after ``entry`` (whose signature the caller verified against its device's key
    in the actor's verified device list), or ``MembershipError``: a broken link (group, epoch,
    previous hash), a change in a direct conversation, or a change the actor's role does not
    allow. ``seq`` is the seq of the entry's system message (server metadata). ``state`` is
    never changed."""
    if state is None:
        return _genesis_state(entry, body, sig, seq)
    w = _Work(state)
    _step(w, entry, body, sig, seq)
    return w.state()


class Replay:
    """Apply many entries in a row (a fetched log) in linear time: ``step`` each, then
    ``state``. A refused entry raises and leaves the replay at the last good one."""

    def __init__(self, state: ChainState | None) -> None:
        self._w = None if state is None else _Work(state)

    @property
    def epoch(self) -> int:
        return 0 if self._w is None else self._w.epoch

    def step(self, entry: Entry, body: bytes, sig: bytes, seq: int) -> None:
        if self._w is None:
            self._w = _Work(_genesis_state(entry, body, sig, seq))
        else:
            _step(self._w, entry, body, sig, seq)

    @property
    def count(self) -> int:
        """How many members there are now."""
        return 0 if self._w is None else len(self._w.members)

    @property
    def state(self) -> ChainState | None:
        return None if self._w is None else self._w.state()


def member_at(state: ChainState, account: int, seq: int) -> bool:
    """Whether ``account`` was a member when message ``seq`` was committed, as far as the chain
    up to ``state`` tells (joins and departures at their entries' seqs)."""
    m = state.member(account)
    if m is not None and m.since <= seq:
        return True
    return any(s.account == account and s.start <= seq < s.end for s in state.past)
