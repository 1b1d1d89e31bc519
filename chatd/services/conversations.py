"""Creating conversations and changing their members, roles and titles.

The store checks roles inside the write transaction and records each change as a ``system``
message in the conversation's sequence; this service then re-routes the hub and publishes it.

Membership changes may carry a signed membership-log entry (SPEC.md 8.5, E2E.md 15). This
service checks what it can before the write: the entry is well formed, signed by the very device
that sends the request (with its login key), and names exactly this change; the store then checks
that it extends the log's head, in the change's transaction. Clients check everything again
(they trust only keys their contacts' master keys sign): the server's checks keep an honest
server's logs clean, they are not what the clients' safety rests on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chatproto import frames as F
from chatproto import limits as L
from chatproto.e2e import membership as ML
from chatproto.errors import ChatProtoError

from chatd.core import consent as C
from chatd.core import pages
from chatd.errors import Invalid, NotFound
from chatd.services.deps import Deps
from chatd.services.fanout import deliver_frame, publish_message
from chatd.store.accounts import Accounts
from chatd.store.base import (
    ConvRow,
    LogRow,
    MemberRow,
    MembershipChange,
    SignedChange,
)

_CONV_ROWS = pages.FRAME_BUDGET // 48
"""Conversations read per ``list_convs`` page: more than fit (a ConvInfo takes 48 bytes at the
least), so the page is cut by bytes, and the read stays bounded."""
_MEMBER_ROWS = pages.FRAME_BUDGET // 32
"""Members read per page, likewise (a Member takes 32 bytes at the least)."""
_PAGE_BUDGET = L.MAX_FRAME_BYTES - 1024
"""A ``member_log`` page stays a legal frame: entries are cut once they would pass this."""
_ENTRY_OVERHEAD = 64
"""Bytes of framing per entry besides its body and signature (keys, ints, map headers)."""

SignedStore = Accounts
"""What checking an entry needs of the store: the signing device's login key."""


async def signed_change(
    store: SignedStore,
    actor: int,
    device: int,
    signed: F.SignedEntry | None,
    op: str,
    **expect: Any,
) -> SignedChange | None:
    """The checked entry of a change made by ``actor`` from ``device`` (``Invalid`` when it
    is malformed, not signed by this device's login key, or names another change)."""
    if signed is None:
        return None
    try:
        e = ML.decode_entry(signed.body)
    except ChatProtoError as exc:
        raise Invalid(exc.message) from None
    if e.actor != actor or e.device != device:
        raise Invalid("the entry names another account or device than the one sending it")
    if e.op != op:
        raise Invalid(f"the entry is a {e.op!r}, this request a {op!r}")
    for field, value in expect.items():
        if getattr(e, field) != value:
            raise Invalid(f"the entry's {field} is not the request's")
    row = await store.device(device)
    if row is None:
        raise NotFound("no such device")
    try:
        ML.verify_signature(signed.body, signed.sig, row.public_key)
    except ChatProtoError:
        raise Invalid("the entry's signature is not this device's") from None
    return SignedChange(
        epoch=e.epoch,
        prev=e.prev,
        hash=ML.entry_hash(signed.body, signed.sig),
        group=e.group,
        body=signed.body,
        sig=signed.sig,
        roster=tuple((m.account, m.role, m.access) for m in e.members),
        access=e.access,
    )


def _log_entry(r: LogRow) -> F.LogEntry:
    return F.LogEntry(epoch=r.epoch, seq=r.seq, body=r.body, sig=r.sig)


def _member(m: MemberRow) -> F.Member:
    return F.Member(account=m.account, role=m.role, handle=m.handle, access=m.access or None)  # type: ignore[arg-type]


def conv_info(row: ConvRow) -> F.ConvInfo:
    """``row`` on the wire; its members cut to what fits in a frame beside its other fields
    (title, cursors: under 1 KiB) (SPEC.md 8.4)."""
    members, _ = pages.fit((_member(m) for m in row.members), pages.FRAME_BUDGET - 1024)
    return F.ConvInfo(
        conv=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        title=row.title,
        last_seq=row.last_seq,
        role=row.role,  # type: ignore[arg-type]
        read=row.read,
        delivered=row.delivered,
        member_count=row.member_count,
        joined=row.joined,
        members=members,
        access=row.access or None,  # type: ignore[arg-type]
    )


class ConversationService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps

    async def create(
        self,
        account: int,
        device: int,
        f: F.CreateConv,
        before_publish: Callable[[int], Awaitable[None]] | None = None,
    ) -> F.ConvInfo:
        """``before_publish(conv)``: run once a new conversation is stored and before anyone
        is handed its first message (consent records a request there, so that the recipient's
        first receipt is already muted, SPEC.md 18.3)."""
        d = self._d
        entry = await signed_change(self._d.store, account, device, f.entry, "create", kind=f.kind)
        created = await d.store.create_conversation(
            f.kind, f.title, account, f.members, d.clock.now_ms(), entry
        )
        if not created.existed and before_publish is not None:
            await before_publish(created.conv.id)
        if not created.existed:
            # Every node routes the conversation to the members' connections and hands them the
            # message that created it (then published to the conversation's other watchers:
            # nobody yet, on any node).
            joined = None
            if created.messages:
                last = created.messages[-1]
                joined = (last.seq, deliver_frame(last))
            for member in {account, *f.members}:
                d.hub.watch(member, created.conv.id, joined)
            for m in created.messages:
                publish_message(d.hub, m)
            await d.hub.published()  # replied once the other nodes can see it
        return conv_info(await d.store.conversation(created.conv.id, account, device))

    async def get(self, account: int, device: int, conv: int) -> F.ConvInfo:
        return conv_info(await self._d.store.conversation(conv, account, device, _MEMBER_ROWS))

    async def list(self, account: int, device: int, f: F.ListConvs) -> F.Convs:
        """A page of the caller's conversations that fits in a frame (SPEC.md 8.4)."""
        rows = await self._d.store.conversations_of(account, device, f.after, _CONV_ROWS + 1)
        convs, cut = pages.fit(conv_info(r) for r in rows[:_CONV_ROWS])
        return F.Convs(re=f.id, convs=convs, more=cut or len(rows) > _CONV_ROWS)

    async def members(self, account: int, f: F.ListMembers) -> F.Members:
        """A page of a conversation's members by account id, to members only (SPEC.md 8.4)."""
        store = self._d.store
        if await store.membership(f.conv, account) is None:
            raise NotFound("no such conversation")
        rows = await store.members_page(f.conv, f.after, _MEMBER_ROWS + 1)
        members, cut = pages.fit(_member(m) for m in rows[:_MEMBER_ROWS])
        return F.Members(
            re=f.id, conv=f.conv, members=members, more=cut or len(rows) > _MEMBER_ROWS
        )

    async def invite(self, account: int, device: int, f: F.Invite) -> None:
        entry = await signed_change(
            self._d.store, account, device, f.entry, "add", account=f.account
        )
        await self._apply(
            await self._d.store.invite(f.conv, account, f.account, self._d.clock.now_ms(), entry)
        )

    async def remove(self, account: int, device: int, f: F.Remove) -> None:
        entry = await signed_change(
            self._d.store, account, device, f.entry, "remove", account=f.account
        )
        await self._apply(
            await self._d.store.remove(
                f.conv, account, f.account, self._d.clock.now_ms(), entry, f.ban
            )
        )

    async def leave(self, account: int, device: int, f: F.Leave) -> None:
        entry = await signed_change(self._d.store, account, device, f.entry, "leave")
        await self._apply(await self._d.store.leave(f.conv, account, self._d.clock.now_ms(), entry))

    async def set_role(self, account: int, device: int, f: F.SetRole) -> None:
        entry = await signed_change(
            self._d.store, account, device, f.entry, "role", account=f.account, role=f.role
        )
        await self._apply(
            await self._d.store.set_role(
                f.conv, account, f.account, f.role, self._d.clock.now_ms(), entry
            )
        )

    async def member_log(self, account: int, f: F.GetMemberLog) -> F.MemberLog:
        """A page of the log, to members only (``NotFound`` otherwise, SPEC.md 8.3)."""
        store = self._d.store
        if await store.member_kind(f.conv, account) is None:
            raise NotFound("no such conversation")
        rows = await store.member_log(f.conv, f.after, f.limit + 1)
        entries: list[F.LogEntry] = []
        more = len(rows) > f.limit
        size = 0
        for r in rows[: f.limit]:
            size += len(r.body) + len(r.sig) + _ENTRY_OVERHEAD
            if entries and size > _PAGE_BUDGET:
                more = True  # the page stays a legal frame; the rest comes in the next one
                break
            entries.append(_log_entry(r))
        return F.MemberLog(re=f.id, conv=f.conv, entries=entries, more=more)

    async def rename(self, account: int, f: F.Rename) -> None:
        await self._apply(
            await self._d.store.rename(f.conv, account, f.title, self._d.clock.now_ms())
        )

    async def lookup(self, account: int, rid: int, handle: str) -> F.Account:
        """The account of ``handle``, unless its ``find_me`` setting (or a block) hides it from
        ``account``: then the same ``NOT_FOUND`` as for a handle nobody holds (SPEC.md 18)."""
        store = self._d.store
        row = await store.account_by_handle(handle)
        if row is not None and row.id != account:
            privacy = await store.privacy(row.id) or C.Privacy()
            rel = (await store.relations(row.id, [account])).get(account, C.STRANGER)
            if not C.may_find(privacy, rel):
                row = None
        if row is None:
            raise NotFound(f"no account @{handle}")
        return F.Account(re=rid, account=row.id, handle=row.handle, name=row.name, type=row.type)  # type: ignore[arg-type]

    async def _apply(self, change: MembershipChange) -> None:
        """Newcomers start watching before the system message goes out, so they see it; the
        removed stop watching after it, so they see their own removal and nothing later. On
        every node: WATCH/UNWATCH go on the account's topic, and the WATCH carries the message
        itself (that node's subscription to the conversation's topic may not be in effect yet).
        """
        hub = self._d.hub
        m = change.message
        frame = deliver_frame(m)
        if change.added:
            joined = (m.seq, frame)
            for account in change.added:
                hub.watch(account, change.conv, joined)
        # The removed get the message that removed them with their UNWATCH, not from the
        # conversation's topic: a node re-reading the membership for it would not find them.
        publish_message(hub, m, skip=change.removed, frame=frame)
        for account in change.removed:
            hub.unwatch(account, change.conv, (m.seq, frame))
        await hub.published()
