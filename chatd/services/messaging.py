"""Sending, syncing and fetching messages: the hot path.

``submit`` never awaits: it queues the append for the next group commit and returns. When the
commit lands, ``_committed`` runs (in commit order) and publishes the ``Deliver`` bytes to the
broker, then acks the sender. A resend of a stored cmid is acked again and not published again.

History (``sync``, ``fetch``) starts at the reader's own join (SPEC.md 7.8): nothing stored
before it is read, for users and bots alike. A bot gets a ``withheld`` placeholder in place of
each later message it may not see (SPEC.md 16.3: withheld from it at commit); users read every
message as stored.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Protocol

from chatproto import bots, kinds
from chatproto import frames as F
from chatproto.errors import ErrorCode
from chatproto.limits import MAX_PAGE

from chatd.core import pages, rules
from chatd.errors import ChatdError, Invalid, NotFound
from chatd.hub import HOLD
from chatd.services.deps import Deps
from chatd.services.fanout import deliver_frame, publish_committed, publish_message
from chatd.store.base import Appended, Membership, NewMessage, StoredMessage

_SENDABLE = frozenset(k for k in kinds.KINDS if kinds.client_may_send(k))
"""The registered kinds a client may send: the hot path's check is one set lookup
(``kinds.client_may_send`` decides the others, experimental kinds among them)."""


class Sender(Protocol):
    """The session as messaging sees it."""

    conn_id: int
    account: int
    device: int
    floors: dict[int, int]
    inflight: int

    def reply(self, frame: F.Frame) -> None: ...
    def fail(self, rid: int, code: ErrorCode, message: str) -> None: ...
    def send_done(self) -> None: ...
    async def send_paced(self, data: bytes) -> None: ...


class Pusher(Protocol):
    """Where stored messages go to become Web Pushes (``services.push.PushService``)."""

    def committed(self, m: StoredMessage) -> None: ...


class MessagingService:
    def __init__(self, deps: Deps, push: Pusher | None = None) -> None:
        self._d = deps
        self._push = push

    def submit(self, s: Sender, f: F.Send) -> None:
        if f.kind not in _SENDABLE and not kinds.client_may_send(f.kind):
            s.fail(f.id, ErrorCode.INVALID, f"kind {f.kind!r} may not be sent")
            return
        to: tuple[int, ...] = ()
        if f.to:
            try:
                to = bots.check_to(f.to)
            except bots.BotError as exc:
                s.fail(f.id, exc.code, exc.message)
                return
        d = self._d
        s.inflight += 1
        d.store.append(
            NewMessage(
                f.conv, s.account, s.device, f.cmid, f.kind, f.body, d.clock.now_ms(), to, f.fc
            ),
            partial(self._committed, s, f.id),  # run by the writer as the commit resolves
        )

    def _committed(self, s: Sender, rid: int, future: asyncio.Future[Appended]) -> None:
        s.send_done()
        exc = future.exception()
        if exc is not None:
            if isinstance(exc, ChatdError):
                s.fail(rid, exc.code, exc.message)
            else:
                s.fail(rid, ErrorCode.INTERNAL, "internal error")
            return
        appended = future.result()
        m = appended.message
        hub = self._d.hub
        if appended.duplicate:
            publish_committed(hub, m, s.conn_id, repeat=True)
        else:
            publish_message(hub, m, s.conn_id)
            self._d.metrics.hot.stored += 1
            if self._push is not None:  # a dict insert: the push is made by its own task
                self._push.committed(m)
        ack = F.Ack(re=rid, conv=m.conv, cmid=m.cmid or "", seq=m.seq, ts=m.ts)
        # Acked once its envelope has left this node (at once in-process). A franked message's
        # commitment is in its row (SPEC.md 18.7): a report right after the ack finds it.
        if hub.remote:
            hub.after_published(partial(s.reply, ack))
        else:  # after_published would call it at once
            s.reply(ack)

    async def delete(self, account: int, f: F.DeleteMessage) -> None:
        """Delete message ``seq`` for everyone (SPEC.md 18.9): the store puts its tombstone in
        place and appends the ``deleted`` system message, published like any (the caller's
        connection gets it before ``ok``). A tombstone already: nothing is written or sent."""
        d = self._d
        change = await d.store.delete_message(f.conv, f.seq, account, d.clock.now_ms())
        if change is not None:
            publish_message(d.hub, change.message)

    async def _require_member(self, conv: int, account: int) -> Membership:
        found = await self._d.store.membership(conv, account)
        if found is None:
            raise NotFound("no such conversation")
        return found

    async def sync(self, s: Sender, f: F.Sync) -> None:
        """Stream seq > after from the store, holding back live delivery of this conversation on
        this connection until the stream has caught up with everything this node published.

        Membership is checked when the sync starts; a removal (or leave) that commits while the
        stream runs ends it at the message recording it (SPEC.md 7.4): that message is the
        last one sent, ``synced`` names its seq, and nothing written after it leaves the store
        for this caller, whatever happens next (a later re-invitation included)."""
        d = self._d
        member = await self._require_member(f.conv, s.account)
        start = after = _from_join(f.after, member)
        s.floors[f.conv] = HOLD
        subscribed = unconfirmed = ended = False
        newest: int | None = None  # the conversation's highest seq, read when nothing is newer
        try:
            while True:
                page, full = await d.store.message_page(
                    f.conv, after, None, MAX_PAGE, pages.READ_BUDGET
                )
                end = _membership_end(page, s.account, member.joined_seq)
                if end is not None:
                    page, ended = page[:end], True
                shown = _for_bot(page, s.account, member) if member.bot else page
                for m in shown:
                    await s.send_paced(deliver_frame(m))
                if page:
                    after = page[-1].seq
                if ended:
                    break
                if not full and d.hub.latest_seq(f.conv) <= after:
                    # With other nodes: once this node's subscription to the conversation is in
                    # effect, read once more; what commits later arrives live.
                    if not subscribed:
                        confirmed = await d.hub.barrier()
                        if confirmed is not None:
                            subscribed = True
                            unconfirmed = not confirmed
                            continue
                    if after != start or after == 0:
                        break
                    # Nothing newer: answer the conversation's highest seq (SPEC 7.4), so that
                    # a client whose cursor is past it (its server lost history) can tell. Live
                    # delivery is still held back during this read: a message published
                    # meanwhile was dropped by the floor, so it is read from the store.
                    last = await d.store.messages(f.conv, 0, after + 1, 1)
                    if d.hub.latest_seq(f.conv) <= after:
                        newest = last[-1].seq if last else 0
                        break
        except BaseException:
            s.floors.pop(f.conv, None)
            raise
        if ended:
            # Not a member any more: live delivery of the conversation stays held back on this
            # connection (HOLD) until the removal's UNWATCH drops it; had the UNWATCH come
            # already, the floor is gone (or a re-invitation's WATCH set a new one): left so.
            s.reply(F.Synced(re=f.id, conv=f.conv, seq=after))
            return
        if newest is not None:
            after = newest
        s.floors[f.conv] = after
        s.reply(F.Synced(re=f.id, conv=f.conv, seq=after))
        if unconfirmed:  # Redis did not confirm the subscription: live delivery may miss some
            s.reply(F.Resync())

    async def fetch(self, s: Sender, f: F.Fetch) -> F.Messages:
        member = await self._require_member(f.conv, s.account)
        if f.before is not None and f.before <= f.after + 1:
            raise Invalid("empty range: before must exceed after + 1")
        start = _from_join(f.after, member)
        if f.before is not None and f.before <= start + 1:  # all of it before the caller's join
            return F.Messages(re=f.id, conv=f.conv, messages=[], more=False)
        # Bodies beyond a frame are never read; the page is then cut to what fits (SPEC 7.5).
        rows, more = await self._d.store.message_page(
            f.conv, start, f.before, f.limit, pages.FRAME_BUDGET
        )
        end = _membership_end(rows, s.account, member.joined_seq)
        if end is not None:  # removed after the membership check: nothing past the removal
            rows, more = rows[:end], f.before is not None and more
        if member.bot:
            rows = _for_bot(rows, s.account, member)
        messages = [
            F.Message(
                seq=m.seq,
                ts=m.ts,
                sender=m.sender,
                device=m.device,
                cmid=m.cmid,
                kind=m.kind,
                body=m.body,
                to=list(m.to),
                fc=m.fc,
            )
            for m in rows
        ]
        # Forward: the lowest seqs that fit; backward: the highest.
        fitted, cut = (pages.fit if f.before is None else pages.fit_from_end)(messages)
        return F.Messages(re=f.id, conv=f.conv, messages=fitted, more=more or cut)


def _from_join(after: int, member: Membership) -> int:
    """``after``, raised so that history starts at the member's own ``created``/``joined``
    message: nothing stored before a member's join is read by it, system messages and payment
    receipts included, users and bots alike (SPEC.md 7.8, issue 14.8)."""
    return max(after, member.joined_seq - 1)


def _membership_end(page: list[StoredMessage], account: int, joined_seq: int) -> int | None:
    """How many messages of ``page`` to keep when it holds the ``removed`` or ``left`` message
    that ends ``account``'s membership that began at ``joined_seq`` (kept: it tells the
    account's devices, as live delivery does, SPEC.md 7.6); None when it holds none."""
    for i, m in enumerate(page):
        if m.kind == "system" and m.seq > joined_seq:
            event = kinds.decode_content("system", m.body)
            assert isinstance(event, kinds.SystemEvent)
            if (event.event == "removed" and event.account == account) or (
                event.event == "left" and event.actor == account
            ):
                return i + 1
    return None


def _for_bot(page: list[StoredMessage], bot: int, member: Membership) -> list[StoredMessage]:
    """``page`` as bot member ``bot`` reads it: a placeholder in place of every message it may
    not see (same conv, seq and ts; nothing else)."""
    return [
        StoredMessage(m.conv, m.seq, m.ts, 0, 0, None, kinds.WITHHELD, b"")
        if rules.hidden_from_bot(m.kind, m.seq, m.sender, m.to, m.withheld, bot, member.joined_seq)
        else m
        for m in page
    ]
