"""Conversation membership the client verifies (E2E.md section 15): the SDK side of the signed
membership log.

Every membership change this device makes is signed with its login key on top of the log's head
as this device verified it. Every change anyone makes is checked before this device encrypts:
the log is fetched from the server (``get_member_log``) and replayed with
``chatproto.e2e.membership.apply``, each entry's signature checked against the signing device's
key in its account's master-signed device list. The verified state is kept in the key store, so
the server can neither add a member (a ghost, a third party in a direct conversation) nor remove
one nor change a role without a member's signature: it can only delay or withhold changes.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import msgspec
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import membership as ML
from chatproto.errors import ChatProtoError, CryptoError
from chatproto.limits import MAX_PAGE

from chatclient.events import Event, MembershipChanged, SecurityWarning

if TYPE_CHECKING:
    from chatclient.e2e import E2E

NS_CHAIN: Final = "e2e.chain"  # "{conv}" -> ChainState
NS_GROUP: Final = "e2e.group"  # group id hex -> conv: a log belongs to one conversation
SIGNED_EVENTS: Final = frozenset({"created", "joined", "left", "removed", "role", "bot_access"})
"""System events that record a membership change, each signed by a member (but the automatic
owner change, actor 0, which every client derives from the owner's signed ``leave``)."""

_OPS: Final = {
    "create": "created",
    "add": "joined",
    "remove": "removed",
    "leave": "left",
    "role": "role",
    "access": "bot_access",
}


class UnverifiedMembership(CryptoError):
    """The conversation's members cannot be verified (no signed log, or one that does not
    verify): this device does not encrypt to it."""


Request = Callable[[Any, type[Any]], Awaitable[Any]]


class Members:
    """One device's verified view of its conversations' members."""

    def __init__(self, e2e: E2E, request: Request, next_id: Callable[[], int]) -> None:
        self._e2e = e2e
        self._call = request
        self._id = next_id
        self.behind: set[int] = set()
        """Conversations with a change seen live but not verified yet (a refresh is due)."""
        self._cache: dict[int, ML.ChainState] = {}
        """Decoded states (a channel's is large: decoded once, not per message)."""

    async def listed(self, conv: int) -> list[F.Member]:
        """Every member of ``conv`` as the server lists them, ascending by account (read in
        pages, SPEC.md 8.4): what ``get_conv`` leaves out of a large conversation."""
        members: list[F.Member] = []
        after = 0
        while True:
            page = await self._call(F.ListMembers(id=self._id(), conv=conv, after=after), F.Members)
            members += page.members
            if not page.more or not page.members:
                return members
            after = page.members[-1].account

    @property
    def _ks(self) -> Any:
        return self._e2e.ks

    def state(self, conv: int) -> ML.ChainState | None:
        """The verified membership of ``conv`` as this device last checked it (None: never)."""
        state = self._cache.get(conv)
        if state is None:
            raw = self._ks.get(NS_CHAIN, str(conv))
            if raw is None:
                return None
            state = self._cache[conv] = msgspec.msgpack.decode(raw, type=ML.ChainState)
        return state

    def _save(self, conv: int, state: ML.ChainState) -> None:
        self._cache[conv] = state
        self._ks.put(NS_CHAIN, str(conv), msgspec.msgpack.encode(state))

    # ------------------------------------------------------------------ verifying

    def _key_now(self, actor: int, device: int) -> bytes | None:
        """The signing key of ``actor``'s ``device`` from its verified list, if known here."""
        trust = self._e2e.trust(actor)
        if trust is None:
            return None
        for d in trust.devices:
            if d.device == device:
                return d.signing_key
        return None

    async def _key(self, actor: int, device: int) -> bytes:
        key = self._key_now(actor, device)
        if key is None:
            listed = {d.device: d for d in await self._e2e.devices(actor, refresh=True)}
            entry = listed.get(device)
            if entry is None:
                raise ML.MembershipError(
                    f"membership entry signed by device {device}, not on account {actor}'s list"
                )
            key = entry.signing_key
        return key

    def _pin_group(self, conv: int, e: ML.Entry) -> None:
        """A log belongs to one conversation: refuse a first entry already seen elsewhere."""
        owner = self._ks.get(NS_GROUP, e.group.hex())
        if owner is not None and int(owner) != conv:
            raise ML.MembershipError(f"this membership log belongs to conversation {int(owner)}")
        self._ks.put(NS_GROUP, e.group.hex(), str(conv).encode())

    @staticmethod
    def _event(conv: int, e: ML.Entry, seq: int, count: int) -> MembershipChanged:
        return MembershipChanged(
            conv=conv,
            seq=seq,
            epoch=e.epoch,
            op=e.op,
            actor=e.actor,
            account=e.actor if e.op == "leave" else e.account,
            role=e.role,
            access=e.access,
            member_count=count,
        )

    def _step(
        self,
        conv: int,
        state: ML.ChainState | None,
        e: ML.Entry,
        body: bytes,
        sig: bytes,
        key: bytes,
        seq: int,
    ) -> tuple[ML.ChainState, MembershipChanged]:
        ML.verify_signature(body, sig, key)
        new = ML.apply(state, e, body, sig, seq)
        if state is None:
            self._pin_group(conv, e)
        return new, self._event(conv, e, seq, len(new.members))

    async def verified(self, conv: int) -> tuple[ML.ChainState, list[Event]]:
        """The conversation's verified membership, after fetching and checking the entries
        this device has not seen (in linear time, however long the log: E2E.md 15.5);
        ``UnverifiedMembership`` if there is no log or an entry fails (the state stays at the
        last good entry)."""
        events: list[Event] = []
        while True:
            start = self.state(conv)
            replay = ML.Replay(start)
            page: F.MemberLog = await self._call(
                F.GetMemberLog(id=self._id(), conv=conv, after=replay.epoch, limit=MAX_PAGE),
                F.MemberLog,
            )
            failure: ChatProtoError | None = None
            failed_at = 0
            for item in page.entries:
                if item.epoch <= replay.epoch:
                    continue
                try:
                    e = ML.decode_entry(item.body)
                    key = await self._key(e.actor, e.device)
                    ML.verify_signature(item.body, item.sig, key)
                    if replay.epoch == 0:
                        self._pin_group(conv, e)
                    replay.step(e, item.body, item.sig, item.seq)
                except ChatProtoError as exc:
                    failure, failed_at = exc, item.epoch
                    break
                events.append(self._event(conv, e, item.seq, replay.count))
            now = self.state(conv)  # a live entry may have been applied meanwhile
            if replay.epoch > (0 if now is None else now.epoch):
                state = replay.state
                assert state is not None
                self._save(conv, state)
            if failure is not None:
                raise UnverifiedMembership(
                    f"conversation {conv}: membership entry {failed_at} refused: {failure.message}"
                ) from failure
            if not page.more or not page.entries:
                break
        self.behind.discard(conv)
        final = self.state(conv)
        if final is None:
            raise UnverifiedMembership(
                f"conversation {conv} has no signed membership log: its members cannot be verified"
            )
        return final, events

    def apply_live(self, conv: int, seq: int, ev: kinds.SystemEvent) -> list[Event]:
        """A membership system message, in seq order: apply its signed entry now when it
        follows the verified state and the signer's key is known here; otherwise the
        conversation is marked ``behind`` (the caller refreshes it with ``verified``). A change
        no member signed is reported and never applied."""
        if ev.event not in SIGNED_EVENTS or (ev.event == "role" and ev.actor == 0):
            return []
        state = self.state(conv)
        if not ev.entry:
            if state is None and ev.event == "created":
                return []  # a conversation made without a log: sending to it is refused
            return [
                SecurityWarning(
                    ev.actor,
                    f"conversation {conv}: the server recorded a membership change ({ev.event})"
                    f" at seq {seq} that no member signed: ignored",
                    conv=conv,
                )
            ]
        try:
            e = ML.decode_entry(ev.entry)
        except ChatProtoError as exc:
            return [SecurityWarning(ev.actor, f"conversation {conv}: {exc.message}", conv=conv)]
        if _OPS[e.op] != ev.event:
            return [
                SecurityWarning(
                    ev.actor, f"conversation {conv}: entry does not match its message", conv=conv
                )
            ]
        if state is not None and e.epoch <= state.epoch:
            return []  # verified already (fetched with the log)
        key = self._key_now(e.actor, e.device)
        if (
            key is None
            or (state is None and e.epoch != 1)
            or (state is not None and e.epoch != state.epoch + 1)
        ):
            self.behind.add(conv)
            return []
        try:
            new, event = self._step(conv, state, e, ev.entry, ev.sig, key, seq)
        except ChatProtoError as exc:
            return [
                SecurityWarning(
                    ev.actor,
                    f"conversation {conv}: membership entry {e.epoch} refused: {exc.message}",
                    conv=conv,
                )
            ]
        self._save(conv, new)
        return [event]

    def sender_ok(self, conv: int, sender: int, seq: int) -> bool | None:
        """Whether ``sender`` was a verified member at ``seq`` (None: cannot tell yet)."""
        state = self.state(conv)
        if state is None or conv in self.behind:
            return None
        return ML.member_at(state, sender, seq)

    # ------------------------------------------------------------------ signing

    def _seed(self) -> bytes:
        seed: bytes = self._ks.seed
        return seed

    def sign_create(self, kind: str, roster: list[ML.Seat]) -> F.SignedEntry:
        e = ML.genesis(
            kind,
            self._ks.account,
            self._ks.device,
            roster,
            ts=int(time.time() * 1000),
        )
        body, sig = ML.sign_entry(e, self._seed())
        return F.SignedEntry(body=body, sig=sig)

    def sign(self, state: ML.ChainState, op: str, **fields: Any) -> F.SignedEntry:
        """The signed entry for this device's change on the verified head ``state``
        (``MembershipError`` when the others would refuse it)."""
        e = ML.next_entry(
            state,
            self._ks.account,
            self._ks.device,
            op,  # type: ignore[arg-type]
            ts=int(time.time() * 1000),
            **fields,
        )
        body, sig = ML.sign_entry(e, self._seed())
        return F.SignedEntry(body=body, sig=sig)
