"""Creating conversations and changing their members, roles and titles.

The store checks roles inside the write transaction and records each change as a ``system``
message in the conversation's sequence; this service then re-routes the hub and publishes it.
"""

from __future__ import annotations

from chatproto import frames as F

from chatd.errors import NotFound
from chatd.services.deps import Deps
from chatd.services.fanout import deliver_frame, publish_message
from chatd.store.base import ConvRow, MembershipChange


def conv_info(row: ConvRow) -> F.ConvInfo:
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
        members=[
            F.Member(account=m.account, role=m.role, handle=m.handle, access=m.access or None)  # type: ignore[arg-type]
            for m in row.members
        ],
        access=row.access or None,  # type: ignore[arg-type]
    )


class ConversationService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps

    async def create(self, account: int, device: int, f: F.CreateConv) -> F.ConvInfo:
        d = self._d
        created = await d.store.create_conversation(
            f.kind, f.title, account, f.members, d.clock.now_ms()
        )
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
        return conv_info(await self._d.store.conversation(conv, account, device))

    async def list(self, account: int, device: int) -> list[F.ConvInfo]:
        return [conv_info(r) for r in await self._d.store.conversations_of(account, device)]

    async def invite(self, account: int, f: F.Invite) -> None:
        await self._apply(
            await self._d.store.invite(f.conv, account, f.account, self._d.clock.now_ms())
        )

    async def remove(self, account: int, f: F.Remove) -> None:
        await self._apply(
            await self._d.store.remove(f.conv, account, f.account, self._d.clock.now_ms())
        )

    async def leave(self, account: int, f: F.Leave) -> None:
        await self._apply(await self._d.store.leave(f.conv, account, self._d.clock.now_ms()))

    async def set_role(self, account: int, f: F.SetRole) -> None:
        await self._apply(
            await self._d.store.set_role(f.conv, account, f.account, f.role, self._d.clock.now_ms())
        )

    async def rename(self, account: int, f: F.Rename) -> None:
        await self._apply(
            await self._d.store.rename(f.conv, account, f.title, self._d.clock.now_ms())
        )

    async def lookup(self, rid: int, handle: str) -> F.Account:
        row = await self._d.store.account_by_handle(handle)
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
        if change.added:
            joined = (m.seq, deliver_frame(m))
            for account in change.added:
                hub.watch(account, change.conv, joined)
        publish_message(hub, m)
        for account in change.removed:
            hub.unwatch(account, change.conv)
        await hub.published()
