"""Conversations and their members (SPEC.md 8; E2E.md 15 for the signed membership log).

Creating, listing and changing conversations; with encryption every membership change is signed
on the verified head of the log, and the members a message is encrypted to are those of the
verified log, never the server's list (``view``). This module also follows who is a bot with
which access, from the conversations' system messages (``bot_events``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import membership as ML
from chatproto.errors import ChatProtoError, ErrorCode

from chatclient.connection import Connection
from chatclient.e2e import E2E
from chatclient.errors import ChatClientError, Conflict, NotFound, RequestError
from chatclient.events import BotAdded, BotRemoved, Event, Message, SecurityWarning
from chatclient.members import Members, UnverifiedMembership
from chatclient.profiles import Profiles


@dataclass(frozen=True, slots=True)
class ConvView:
    """What sending needs to know of a conversation: its kind, members, their handles, and its
    bot members with their access (SPEC.md 16.2)."""

    kind: str
    members: tuple[int, ...]
    handles: Mapping[int, str] = field(default_factory=dict)
    bots: Mapping[int, str] = field(default_factory=dict)
    """Bot member -> access (``addressed`` or ``all``)."""

    @property
    def addressed_bots(self) -> frozenset[int]:
        return frozenset(a for a, access in self.bots.items() if access == "addressed")

    @classmethod
    def of(cls, info: F.ConvInfo) -> ConvView:
        return cls(
            info.kind,
            tuple(m.account for m in info.members),
            {m.account: m.handle for m in info.members},
            {m.account: m.access for m in info.members if m.access is not None},
        )

    @classmethod
    def verified(cls, state: ML.ChainState, info: F.ConvInfo | None) -> ConvView:
        """The members and bots of the verified membership log (handles from the server)."""
        handles = {} if info is None else {m.account: m.handle for m in info.members}
        return cls(state.kind, state.accounts, handles, state.bots)


class Conversations:
    """The conversations of one client: operations, views, membership and bot tracking."""

    def __init__(
        self, conn: Connection, e2e: E2E, members: Members, profiles: Profiles, *, encrypt: bool
    ) -> None:
        self._conn = conn
        self._e2e = e2e
        self.members = members
        self._profiles = profiles
        self.encrypt = encrypt
        self.views: dict[int, ConvView] = {}
        """Per conversation, its members and bots as last fetched (dropped on changes)."""
        self._bots: dict[int, dict[int, str]] = {}
        """Per conversation, its bot members -> access, kept current from system messages (for
        ``BotRemoved``, which needs to know the one that left was a bot)."""
        self.is_bot: bool | None = None
        """Whether this account is a bot (learned from the server's conversation listings)."""
        self._users: set[int] = set()
        """Accounts known not to be bots (``is_bot_account``)."""
        self._member_warned: set[tuple[int, frozenset[int]]] = set()
        self.joined: dict[int, int] = {}
        """Seq at which this account joined each conversation (keys exist only from there)."""

    # ------------------------------------------------------------------ directory

    async def lookup(self, handle: str) -> int:
        """The account id of ``handle`` (raises ``NotFound``)."""
        return (await self.account_info(handle)).account

    async def account_info(self, handle: str) -> F.Account:
        c = self._conn
        return await c.call(F.Lookup(id=c.next_id(), handle=handle.lstrip("@")), F.Account)

    # ------------------------------------------------------------------ reading

    async def conversations(self) -> list[F.ConvInfo]:
        """Every conversation of this account (the server answers in pages, SPEC.md 8.4)."""
        c = self._conn
        convs: list[F.ConvInfo] = []
        after = 0
        while True:
            page = await c.call(F.ListConvs(id=c.next_id(), after=after), F.Convs)
            convs += page.convs
            if not page.more or not page.convs:
                return convs
            after = page.convs[-1].conv

    async def conversation(self, conv: int) -> F.ConvInfo:
        """``conv`` with all its members (a large one's are read in pages, SPEC.md 8.4)."""
        c = self._conn
        info = (await c.call(F.GetConv(id=c.next_id(), conv=conv), F.Conv)).info
        if len(info.members) < info.member_count:
            info = msgspec.structs.replace(info, members=await self.members.listed(conv))
        self.joined[conv] = info.joined
        self.learn(info)
        return info

    def learn(self, info: F.ConvInfo) -> None:
        self.is_bot = info.access is not None  # present exactly when the caller is a bot
        if info.members:
            view = ConvView.of(info)
            if not self.encrypt:  # else only the verified membership log decides (``view``)
                self.views[info.conv] = view
            self._bots[info.conv] = dict(view.bots)

    async def view(self, conv: int) -> ConvView:
        """The conversation's members and bots (fetched when not known or after a change).

        With encryption, the members are those of the verified membership log (E2E.md 15),
        never the server's list: a member the server lists but no member signed in is left
        out (and reported), one it dropped without a signature is kept."""
        view = self.views.get(conv)
        if view is None:
            info = await self.conversation(conv)
            if self.encrypt:
                state = await self.verified_members(conv)
                view = self.views[conv] = ConvView.verified(state, info)
                await self._compare_members(conv, info, state)
            view = self.views[conv]
        return view

    async def bots(self, conv: int) -> dict[int, str]:
        """The bot members of ``conv`` -> their access."""
        return dict((await self.view(conv)).bots)

    async def verified_members(self, conv: int) -> ML.ChainState:
        """The verified membership of ``conv`` (fetched and checked now), its new changes
        emitted as ``MembershipChanged``; ``UnverifiedMembership`` (also emitted as a
        ``SecurityWarning``) when it cannot be verified."""
        try:
            state, events = await self.members.verified(conv)
        except UnverifiedMembership as exc:
            await self._conn.emit(SecurityWarning(0, exc.message, conv=conv))
            raise
        for event in events:
            await self._conn.emit(event)
        return state

    async def refresh_members(self, conv: int) -> None:
        # A log that does not verify was reported (SecurityWarning) by verified_members.
        with contextlib.suppress(ChatClientError, ChatProtoError, TimeoutError):
            await self.verified_members(conv)

    async def _compare_members(self, conv: int, info: F.ConvInfo, state: ML.ChainState) -> None:
        """Report, once, the accounts the server lists and the verified log does not (or the
        reverse): what a lying server shows, which this device does not encrypt to."""
        if len(info.members) < info.member_count:
            return  # a partial list (a large channel) says nothing
        listed = {m.account for m in info.members}
        if listed != set(state.accounts):  # a change may have landed between the two reads
            c = self._conn
            info = (await c.call(F.GetConv(id=c.next_id(), conv=conv), F.Conv)).info
            state = await self.verified_members(conv)
            listed = {m.account for m in info.members}
        diff = frozenset(listed ^ set(state.accounts))
        if diff and (conv, diff) not in self._member_warned:
            self._member_warned.add((conv, diff))
            extra = sorted(listed - set(state.accounts))
            missing = sorted(set(state.accounts) - listed)
            await self._conn.emit(
                SecurityWarning(
                    extra[0] if extra else missing[0],
                    f"conversation {conv}: the server lists members {extra} no member signed in"
                    f" and leaves out verified members {missing}: encrypting to the verified"
                    " members only",
                    conv=conv,
                )
            )

    def log_head(self, conv: int) -> tuple[int, bytes]:
        state = self.members.state(conv)
        return (0, b"") if state is None else (state.epoch, state.head)

    # ------------------------------------------------------------------ changing

    async def direct(self, account: int) -> int:
        """The direct conversation with ``account`` (created on first use)."""
        return (await self.create("direct", members=[account])).conv

    async def create(self, kind: str, title: str = "", members: Sequence[int] = ()) -> F.ConvInfo:
        """Create a conversation; with encryption, its membership log starts with this device's
        signed ``create`` entry (E2E.md 15), and the log is verified before this returns (for an
        existing direct conversation, the one its first member signed)."""
        c = self._conn

        def frame(entry: F.SignedEntry | None) -> F.CreateConv:
            return F.CreateConv(
                id=c.next_id(),
                kind=kind,  # type: ignore[arg-type]
                title=title,
                members=list(members),
                entry=entry,
            )

        if not self.encrypt:
            reply = await c.call(frame(None), F.Conv)
            self.learn(reply.info)
            return reply.info
        await c.wait_connected()
        try:  # first as if nobody were a bot (no look-ups); the server refuses a wrong access
            entry = self.members.sign_create(kind, await self._roster(kind, members, probe=False))
            reply = await c.call(frame(entry), F.Conv)
        except RequestError as exc:
            if exc.code != ErrorCode.INVALID:
                raise
            entry = self.members.sign_create(kind, await self._roster(kind, members, probe=True))
            reply = await c.call(frame(entry), F.Conv)
        self.learn(reply.info)
        state = await self.verified_members(reply.info.conv)
        self.views[reply.info.conv] = ConvView.verified(state, reply.info)
        return reply.info

    async def _roster(self, kind: str, members: Sequence[int], *, probe: bool) -> list[ML.Seat]:
        """The seats of a new conversation: this account (owner; ``member`` in a direct one)
        and ``members``, bots with their initial access (``probe``: asking which are bots;
        else none is, but this account if it knows it is one)."""
        me = self._conn.keystore.account
        initial = "all" if kind == "direct" else "addressed"
        seats = []
        for account in sorted({me, *members}):
            if probe:
                bot = await self.is_bot_account(account)
            else:
                bot = account == me and bool(self.is_bot)
            role = "owner" if account == me and kind != "direct" else "member"
            access = initial if bot else ""
            seats.append(ML.Seat(account=account, role=role, access=access))  # type: ignore[arg-type]
        return seats

    async def is_bot_account(self, account: int) -> bool:
        """Whether ``account`` is a bot, as the server says (its profile exists): what a signed
        entry states about the accounts it adds (E2E.md 15.5)."""
        if account in self._users:
            return False
        try:
            await self._profiles.bot_profile(account)
        except NotFound:
            self._users.add(account)
            return False
        return True

    async def signed_change(self, conv: int, make: Any, op: str, **fields: Any) -> None:
        """Send a membership change; with encryption, signed on the verified head of the log
        (signed again on a fresher head when another change got there first)."""
        if not self.encrypt:
            await self._conn.call(make(None), F.Ok)
            return
        for attempt in range(3):
            state = await self.verified_members(conv)
            entry = self.members.sign(state, op, **fields)
            try:
                await self._conn.call(make(entry), F.Ok)
                return
            except Conflict:
                if attempt == 2:
                    raise

    async def invite(self, conv: int, account: int) -> None:
        """Add ``account`` (owner or admin). Signed as a user's add first (no look-up); if the
        server says the account is a bot, as a bot's (access ``addressed``)."""
        c = self._conn
        try:
            await self.signed_change(
                conv,
                lambda e: F.Invite(id=c.next_id(), conv=conv, account=account, entry=e),
                "add",
                account=account,
            )
        except RequestError as exc:
            if (
                not self.encrypt
                or exc.code != ErrorCode.INVALID
                or not await self.is_bot_account(account)
            ):
                raise
            await self.signed_change(
                conv,
                lambda e: F.Invite(id=c.next_id(), conv=conv, account=account, entry=e),
                "add",
                account=account,
                access="addressed",
            )

    async def remove(self, conv: int, account: int) -> None:
        c = self._conn
        await self.signed_change(
            conv,
            lambda e: F.Remove(id=c.next_id(), conv=conv, account=account, entry=e),
            "remove",
            account=account,
        )

    async def leave(self, conv: int) -> None:
        c = self._conn
        await self.signed_change(
            conv, lambda e: F.Leave(id=c.next_id(), conv=conv, entry=e), "leave"
        )

    async def set_role(self, conv: int, account: int, role: str) -> None:
        c = self._conn
        await self.signed_change(
            conv,
            lambda e: F.SetRole(
                id=c.next_id(),
                conv=conv,
                account=account,
                role=role,  # type: ignore[arg-type]
                entry=e,
            ),
            "role",
            account=account,
            role=role,
        )

    async def rename(self, conv: int, title: str) -> None:
        c = self._conn
        await c.call(F.Rename(id=c.next_id(), conv=conv, title=title), F.Ok)

    async def set_bot_access(self, conv: int, bot: int, access: str) -> None:
        """Let bot member ``bot`` of group or channel ``conv`` receive every message (``all``)
        or only those addressed to it (``addressed``, the default). Owner or admin only."""
        if access not in ("all", "addressed"):
            raise ValueError("access is 'all' or 'addressed'")
        if self.encrypt and (await self.view(conv)).bots.get(bot) == access:
            return  # nothing to change (and nothing to sign)
        c = self._conn
        await self.signed_change(
            conv,
            lambda e: F.SetBotAccess(
                id=c.next_id(),
                conv=conv,
                account=bot,
                access=access,  # type: ignore[arg-type]
                entry=e,
            ),
            "access",
            account=bot,
            access=access,
        )

    # ------------------------------------------------------------------ system messages

    def membership_changed(
        self, m: Message, ev: kinds.SystemEvent, followers: Callable[[list[Event]], None]
    ) -> None:
        """A membership system message (before it is shown): new keys for the next send, the
        bots followed, and with encryption its signed entry verified (E2E.md 15):
        ``MembershipChanged`` right after it, or a ``SecurityWarning`` for a change no member
        signed (never applied). ``followers`` takes the events to emit right after ``m``."""
        if ev.event in ("created", "joined", "left", "removed", "bot_access"):
            # A member came or went, or a bot's access changed: new keys for the next send
            # (and the main key never goes to a bot with access "addressed", E2E.md 7.1).
            # Done at once, even behind a parked message: sending must not wait for it.
            if ev.event != "created":  # a new conversation's member list is still true
                self.views.pop(m.conv, None)
            self._e2e.rotate(m.conv)
            self._bot_events(m, ev, followers)
        if self.encrypt:
            out = self.members.apply_live(m.conv, m.seq, ev)
            if out:
                followers(list(out))
            if m.conv in self.members.behind:
                self._conn.spawn(self.refresh_members(m.conv))

    def _bot_events(
        self, m: Message, ev: kinds.SystemEvent, followers: Callable[[list[Event]], None]
    ) -> None:
        """``BotAdded`` / ``BotRemoved`` from a membership message, emitted right after it."""
        bots = self._bots.setdefault(m.conv, {})
        out: list[Event] = []
        match ev.event:
            case "created" if not self._conn.closed:
                # Initial members are not announced one by one: the member list tells.
                self._conn.spawn(self._announce_initial_bots(m.conv, m.seq, ev.actor))
            case "joined" if ev.access:
                bots[ev.account] = ev.access
                out.append(BotAdded(m.conv, ev.account, ev.actor, ev.access, m.seq))
            case "bot_access":
                bots[ev.account] = ev.access
            case "left" | "removed":
                gone = ev.actor if ev.event == "left" else ev.account
                known = gone in bots or (gone == self._conn.keystore.account and self.is_bot)
                bots.pop(gone, None)
                if known:
                    out.append(BotRemoved(m.conv, gone, ev.actor, m.seq))
        if out:
            followers(out)

    async def _announce_initial_bots(self, conv: int, seq: int, creator: int) -> None:
        try:
            view = await self.view(conv)  # known already when this client created it
        except (ChatClientError, ChatProtoError, TimeoutError):
            return  # no longer a member, or offline: nothing to announce
        for bot, access in sorted(view.bots.items()):
            await self._conn.emit(BotAdded(conv, bot, creator, access, seq))
