"""Presence, typing and receipts: who is online, who is typing, how far each device has read.

Typing is never stored. Receipts move per-device cursors forward in the store and are then
announced. Neither is fanned out in channels (a 100k-member channel would drown in them).
"""

from __future__ import annotations

from chatproto import frames as F

from chatd.errors import NotFound
from chatd.services.contacts import presence_audience, visible_presence
from chatd.services.deps import Deps
from chatd.services.fanout import publish_event, publish_to_account


class PresenceService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps

    async def announce(self, account: int, online: bool) -> None:
        """Tell the online contacts of ``account`` that it came online or went offline (only
        when its last connection on ANY node closed)."""
        d = self._d
        now = d.clock.now_ms()
        if online:
            await d.presence.arrive(account)
        else:
            if not await d.presence.depart(account):
                return  # still connected on another node
            if d.hub.online(account):
                # It connected here again while the directory was asked: that arrival's entry
                # may have been removed by this departure, so put it back; no offline event.
                await d.presence.arrive(account)
                return
            await d.store.set_last_seen(account, now)
        event = F.PresenceEvent(account=account, online=online, last_seen=now)
        full, bare = await presence_audience(d, account, await d.store.contacts_of(account))
        for contact in full:
            publish_to_account(d.hub, contact, event)
        hidden = F.PresenceEvent(account=account, online=online, last_seen=0)
        for contact in bare:  # may see it online, not when it was last (SPEC.md 18.2)
            publish_to_account(d.hub, contact, hidden)

    async def query(self, account: int, f: F.GetPresence) -> F.PresenceList:
        d = self._d
        shared = set(await d.store.contacts_of(account)) | {account}
        wanted = [other for other in dict.fromkeys(f.accounts) if other in shared]
        visible = await visible_presence(d, account, wanted)  # consent, SPEC.md 18.2
        wanted = [other for other in wanted if other in visible]
        online = {a for a in wanted if d.hub.online(a)}
        online |= await d.presence.online(a for a in wanted if a not in online)
        out = []
        for other in wanted:
            row = await d.store.account(other)
            if row is not None:
                last_seen = row.last_seen if visible[other] else 0
                out.append(
                    F.PresenceInfo(account=other, online=other in online, last_seen=last_seen)
                )
        return F.PresenceList(re=f.id, presence=out)

    async def typing(self, conn_id: int, account: int, f: F.Typing) -> None:
        kind = await self._kind(f.conv, account)
        if kind != "channel":
            publish_event(
                self._d.hub,
                f.conv,
                F.TypingEvent(conv=f.conv, account=account, on=f.on),
                conn_id,
            )

    async def receipt(self, conn_id: int, account: int, device: int, f: F.Receipt) -> None:
        kind = await self._kind(f.conv, account)
        seq = await self._at_most_last(f.conv, f.seq)
        moved = await self._d.store.move_cursor(device, f.conv, f.type, seq)
        if moved and kind != "channel":
            event = F.ReceiptEvent(
                conv=f.conv, account=account, device=device, type=f.type, seq=seq
            )
            publish_event(self._d.hub, f.conv, event, conn_id)

    async def _at_most_last(self, conv: int, seq: int) -> int:
        """``seq``, or the conversation's highest seq when ``seq`` is past it (SPEC 10.1: a
        cursor never passes the last message). No store read when this node has seen it."""
        if seq <= self._d.hub.latest_seq(conv):
            return seq
        last = await self._d.store.messages(conv, 0, seq + 1, 1)
        return last[-1].seq if last else 0

    async def _kind(self, conv: int, account: int) -> str:
        found = await self._d.store.member_kind(conv, account)
        if found is None:
            raise NotFound("no such conversation")
        return found[0]
