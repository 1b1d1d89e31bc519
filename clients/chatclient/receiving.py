"""Receiving: messages handed to the application in seq order, once each, decrypted.

The core (``chatproto.client``) applies the receive rule: it keeps a cursor per conversation
(highest contiguous seq), drops repeats, buffers what arrives early and reports a gap, and hands
each message over (``Delivery``) in order. This module turns a delivery into an event: it
decrypts it, follows membership and bots from system messages, and parks a message whose sender
key has not arrived (the messages after it in its conversation wait behind it) until the key
comes or ``PARK_SECONDS`` pass. Gaps are fetched; ``resync`` catches every conversation up.

The read position is committed to the key store as ``events()`` hands a message over, so a
process killed at any point resumes after what it showed, never showing it again; what was
queued but not handed over comes again (decrypted messages are cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

from chatproto import client as core
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e.payload import E2E_KIND
from chatproto.errors import ChatProtoError, ErrorCode, ProtocolError

from chatclient.connection import Connection
from chatclient.conversations import Conversations
from chatclient.e2e import E2E, Decrypted, MissingKey, content_of
from chatclient.errors import ChatClientError, ConnectionLost, RateLimited, error_for
from chatclient.events import (
    Event,
    Message,
    SecurityWarning,
    TranscriptWarning,
    Undecryptable,
)
from chatclient.outbox import Pending, pending_of

log = logging.getLogger("chatclient.client")

KNOWN_SENDERS = 4096
"""(conv, seq) -> sender remembered for addressing replies without a fetch."""


class Receiving:
    """Deliveries, decryption, parking, history, and the handover to ``events()``."""

    def __init__(
        self,
        conn: Connection,
        e2e: E2E,
        conversations: Conversations,
        *,
        encrypt: bool,
        save_read_positions: bool,
        park_seconds: Callable[[], float],
    ) -> None:
        self._conn = conn
        self._e2e = e2e
        self._convs = conversations
        self.encrypt = encrypt
        self.save_read_positions = save_read_positions
        self._park_seconds = park_seconds
        """Read at every park: how long a message waits for its sender key."""
        self.fetch_to_device: Callable[[], Awaitable[None]] | None = None
        """Fetches this device's to-device queue (where sender keys come from)."""
        self._saved_cursors: dict[int, int] = dict(conn.keystore.cursors)
        """The read positions on disk (what the application was handed)."""
        self._parked: dict[int, list[Message]] = {}
        self._followers: dict[tuple[int, int], list[Event]] = {}
        self._senders: OrderedDict[tuple[int, int], int] = OrderedDict()

    # ------------------------------------------------------------------ from the core

    async def on_delivery(self, conv: int, seq: int, item: core.Item) -> None:
        """The core hands message ``seq`` of ``conv`` over, in order."""
        ks = self._conn.keystore
        match item:
            case F.Deliver():
                m = self._message(conv, item)
            case F.Message():
                m = self._message(conv, item)
            case core.Own(ack=ack, entry=entry):
                p = pending_of(entry)
                m = own_message(p, conv, seq, ack.ts, ks.account, ks.device, ack.cmid)
        await self._deliver(m)
        ks.cursors[conv] = seq

    def on_gap(self, conv: int) -> None:
        """A message arrived past the cursor: fetch what lies between."""
        self._conn.spawn(self._fill_gap(conv))

    async def _fill_gap(self, conv: int) -> None:
        with contextlib.suppress(ChatClientError):  # the next reconnect's sync repairs it
            if conv not in self._convs.joined:  # a conversation we were just added to
                await self._convs.conversation(conv)
            if self._conn.core.fill_gap(conv) is not None:
                await self._conn.flush()

    def on_resync(self) -> None:
        """The server asked for a resync (it lost live fan-out for a while)."""
        self._conn.spawn(self._resync_quietly())

    async def _resync_quietly(self) -> None:
        try:
            if self.encrypt and self.fetch_to_device is not None:
                await self.fetch_to_device()
            await self.resync()
        except (ChatClientError, TimeoutError) as exc:
            log.info("resync deferred to the next reconnect: %s", exc)

    # ------------------------------------------------------------------ catching up

    async def resync(self) -> None:
        """Fetch everything missed in every conversation, from the stored cursors."""
        convs = await self._convs.conversations()
        if convs and self._convs.is_bot is None:
            self._convs.is_bot = any(info.access is not None for info in convs)
        for info in convs:
            self._convs.joined[info.conv] = info.joined
            await self.sync(info.conv)

    async def sync(self, conv: int) -> None:
        """Catch ``conv`` up (SPEC.md 7.4); a ``RATE_LIMITED`` refusal is repeated after a
        growing pause, like any request's."""
        c = self._conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + c.request_timeout
        pause = 0.05
        while True:
            try:
                rid = c.core.sync(conv)
            except core.NotConnected:
                raise ConnectionLost("not connected") from None
            if rid is None:
                return  # one runs already on this connection
            try:
                await c.answer(rid, F.Synced)
                return
            except RateLimited:
                if c.closed or loop.time() + pause > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)

    # ------------------------------------------------------------------ delivering

    async def _deliver(self, m: Message) -> None:
        """Hand the next message of a conversation (in seq order) to the application, decrypted.

        A message whose sender key has not arrived yet is parked, and the messages after it in
        the same conversation wait behind it, until the key comes (a to-device item) or
        ``PARK_SECONDS`` pass (then it is reported ``Undecryptable``)."""
        content = m.content
        if isinstance(content, kinds.SystemEvent):
            self._convs.membership_changed(m, content, self._follower_list(m))
        parked = self._parked.get(m.conv)
        if parked:
            parked.append(m)
            return
        if m.kind == kinds.WITHHELD:
            return  # a bot's placeholder for what it may not see: the cursor moves, no event
        try:
            opened = self._open(m)
        except MissingKey:
            self._parked[m.conv] = [m]
            self._conn.spawn(self._park_deadline(m.conv, m.seq))
            return
        await self._emit_message(opened)

    def _follower_list(self, m: Message) -> Callable[[list[Event]], None]:
        def add(events: list[Event]) -> None:
            self._followers.setdefault((m.conv, m.seq), []).extend(events)

        return add

    async def _emit_message(self, m: Message | Undecryptable) -> None:
        """Emit a message, then the events derived from it (``BotAdded``, ...)."""
        await self._conn.emit(m)
        for follower in self._followers.pop((m.conv, m.seq), ()):
            await self._conn.emit(follower)

    def _check_transcript(self, m: Message, d: Decrypted) -> None:
        """What the message says its sender had seen against what reached this device (E2E.md
        16): a ``TranscriptWarning`` right after it for each thing that does not add up. Not on
        a bot: one with access ``addressed`` misses messages by design."""
        if self._convs.is_bot:
            return
        out: list[Event] = []
        if d.gap:
            warn = TranscriptWarning(
                m.conv, m.seq, m.sender, "iteration_gap", m.sender, m.device, d.gap
            )
            out.append(warn)
        if d.transcript is not None:
            found = self._e2e.observe(
                m.conv,
                m.seq,
                m.sender,
                m.device,
                m.body,
                d.transcript,
                joined=self._convs.joined.get(m.conv, 0),
                log_head=self._convs.log_head(m.conv),
            )
            out += [
                TranscriptWarning(m.conv, m.seq, m.sender, f.problem, f.account, f.device, f.count)
                for f in found
            ]
        if out:
            self._followers.setdefault((m.conv, m.seq), []).extend(out)

    def _open(self, m: Message, *, in_order: bool = True) -> Message | Undecryptable:
        """Decrypt ``m``; ``in_order``: it is the conversation's next message (not history
        fetched on request), so its transcript is checked."""
        if m.kind != E2E_KIND:
            return m
        if self._convs.members.sender_ok(m.conv, m.sender, m.seq) is False:
            reason = f"account {m.sender} is not a verified member of conversation {m.conv}"
            self._followers.setdefault((m.conv, m.seq), []).append(
                SecurityWarning(m.sender, reason, conv=m.conv)
            )
            return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
        try:
            d = self._e2e.decrypt(m.conv, m.seq, m.sender, m.device, m.body, m.fc)
        except MissingKey as exc:
            if m.seq < self._convs.joined.get(m.conv, 0):
                reason = "sent before you joined: its key was never shared with you"
                return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
            if m.device == self._conn.keystore.device:
                # This device's own message, stored by the server while the client stopped
                # before its ack (a kill, a crash): a device never gets its own sender key, and
                # the plaintext is kept only once acked. No key is coming: do not wait for one.
                reason = "sent by this device, which stopped before the server acknowledged it"
                return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
            if self._e2e.given_up(m.conv, m.device, m.body):
                return Undecryptable(m.conv, m.seq, m.sender, m.device, exc.message)
            raise
        except ChatProtoError as exc:
            return Undecryptable(m.conv, m.seq, m.sender, m.device, exc.message)
        if in_order and (d.transcript is not None or d.gap):
            self._check_transcript(m, d)
        return Message(
            m.conv,
            m.seq,
            m.ts,
            m.sender,
            m.device,
            d.kind,
            d.body,
            content_of(d),
            m.own,
            m.to,
            d.reply_to,
            cmid=m.cmid,
            fc=m.fc,
        )

    # ------------------------------------------------------------------ parked messages

    async def unpark(self, conv: int, *, give_up: int = 0) -> None:
        """Retry the parked messages of ``conv`` in order (``give_up``: the key of that seq is
        not coming; report it undecryptable, and fail fast on other messages under that key)."""
        parked = self._parked.get(conv)
        while parked:
            head = parked[0]
            try:
                opened = self._open(head)
            except MissingKey as exc:
                if head.seq != give_up:
                    return
                self._e2e.give_up(conv, head.device, head.body)
                opened = Undecryptable(conv, head.seq, head.sender, head.device, exc.message)
            parked.pop(0)
            if head.kind != kinds.WITHHELD:
                await self._emit_message(opened)
            if parked and parked[0].kind == E2E_KIND:
                self._conn.spawn(self._park_deadline(conv, parked[0].seq))
        self._parked.pop(conv, None)

    async def _park_deadline(self, conv: int, seq: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._conn.stopping.wait(), self._park_seconds())
        if self._conn.closed:
            return  # still parked: aclose kept the cursor before them for next time
        parked = self._parked.get(conv)
        if parked and parked[0].seq == seq:
            if self.fetch_to_device is not None:
                with contextlib.suppress(ChatClientError, TimeoutError):
                    await self.fetch_to_device()  # offline now: give up on what we have
            await self.unpark(conv, give_up=seq)

    def keep_parked_unread(self) -> None:
        """Closing: what is parked was not shown, so the next client resumes before it."""
        for conv, parked in self._parked.items():
            if parked:
                self._conn.keystore.cursors[conv] = parked[0].seq - 1

    # ------------------------------------------------------------------ history

    async def fetch(
        self, conv: int, *, after: int = 0, before: int | None = None, limit: int = 100
    ) -> F.Messages:
        """One page of stored history (ascending). ``before`` pages backwards."""
        c = self._conn
        return await c.call(
            F.Fetch(id=c.next_id(), conv=conv, after=after, before=before, limit=limit),
            F.Messages,
        )

    async def history(
        self, conv: int, *, before: int | None = None, limit: int = 50
    ) -> list[Message | Undecryptable]:
        if not before:
            before = (await self._convs.conversation(conv)).last_seq + 1
        # A page holds what fits in a frame (SPEC.md 7.5): page on until ``limit`` or the start.
        got: list[F.Message] = []
        while len(got) < limit and before > 1:
            page = await self.fetch(conv, before=before, limit=limit - len(got))
            got[:0] = page.messages
            if not page.more or not page.messages:
                break
            before = page.messages[0].seq
        return [self.message_from(conv, m) for m in got if m.kind != kinds.WITHHELD]

    async def message(self, conv: int, seq: int) -> Message | Undecryptable:
        """Message ``seq`` of ``conv`` from stored history, decrypted (``NotFound`` when there
        is no such message, or this account may not read it)."""
        page = await self.fetch(conv, after=seq - 1, limit=1)
        if (
            not page.messages
            or page.messages[0].seq != seq
            or page.messages[0].kind == kinds.WITHHELD
        ):
            raise error_for(int(ErrorCode.NOT_FOUND), f"no message {seq} in conversation {conv}")
        return self.message_from(conv, page.messages[0])

    def message_from(self, conv: int, m: F.Message) -> Message | Undecryptable:
        """The event for a message of a fetched page (``fetch``), decrypted like live ones (from
        this device's own record of what it already read: a sender key opens each message once)."""
        self._conn.settle_from_history(conv, m)
        try:
            return self._open(self._message(conv, m), in_order=False)
        except MissingKey as exc:
            return Undecryptable(conv, m.seq, m.sender, m.device, exc.message)

    def _message(self, conv: int, m: F.Message | F.Deliver) -> Message:
        return Message(
            conv,
            m.seq,
            m.ts,
            m.sender,
            m.device,
            m.kind,
            m.body,
            decoded_content(m.kind, m.body),
            own=m.device == self._conn.keystore.device,
            to=tuple(m.to),
            cmid=m.cmid or "",
            e2e=not _plain(m.kind),
            fc=m.fc,
        )

    async def sender_of(self, conv: int, seq: int) -> int:
        """Who sent message ``seq`` of ``conv`` (0: unknown)."""
        sender = self._senders.get((conv, seq))
        if sender is None:
            try:
                sender = (await self.message(conv, seq)).sender
            except ChatClientError:
                sender = 0
        return sender

    def remember_sender(self, event: Event) -> Event:
        """An event filter: remembers who sent each message emitted (``sender_of``)."""
        if isinstance(event, Message):
            self._senders[(event.conv, event.seq)] = event.sender
            if len(self._senders) > KNOWN_SENDERS:
                self._senders.popitem(last=False)
        return event

    # ------------------------------------------------------------------ receipts, typing

    async def mark_read(self, conv: int, seq: int) -> None:
        c = self._conn
        await c.call(F.Receipt(id=c.next_id(), conv=conv, type="read", seq=seq), F.Ok)

    async def mark_delivered(self, conv: int, seq: int) -> None:
        c = self._conn
        await c.call(F.Receipt(id=c.next_id(), conv=conv, type="delivered", seq=seq), F.Ok)

    async def typing(self, conv: int, on: bool = True) -> None:
        await self._conn.wait_connected()
        await self._conn.notify(F.Typing(conv=conv, on=on))

    async def presence(self, accounts: Sequence[int]) -> list[F.PresenceInfo]:
        c = self._conn
        reply = await c.call(F.GetPresence(id=c.next_id(), accounts=list(accounts)), F.PresenceList)
        return reply.presence

    # ------------------------------------------------------------------ the handover

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order; ends when the client closes or stops for good.

        A conversation's read position is committed to the key store as its message is handed
        over here, so a process killed at any point does not show it again."""
        while True:
            event = await self._conn.events.get()
            if event is None:
                if self._conn.fatal is not None:
                    raise self._conn.fatal
                return
            self._seen((event,))
            yield event

    def events_nowait(self) -> list[Event]:
        """The events queued now (their read positions committed in one transaction)."""
        out = []
        queue = self._conn.events
        while not queue.empty():
            event = queue.get_nowait()
            if event is not None:
                out.append(event)
        self._seen(out)
        return out

    def _seen(self, events: Iterable[Event]) -> None:
        """Commit the read positions the application was just handed (one write per handover;
        none for events that do not move one)."""
        if not self.save_read_positions or self._convs.is_bot:
            return
        moved: dict[int, int] = {}
        for ev in events:
            if isinstance(ev, Message | Undecryptable) and (
                ev.seq > self._saved_cursors.get(ev.conv, 0)
            ):
                moved[ev.conv] = max(ev.seq, moved.get(ev.conv, 0))
        if moved:
            self._saved_cursors.update(moved)
            self._conn.keystore.save_cursors(moved)


def _plain(kind: str) -> bool:
    """A client kind sent outside ``e2e``: allowed, but nothing authenticates it (SPEC 9)."""
    return kind != E2E_KIND and kinds.client_may_send(kind)


def decoded_content(kind: str, body: bytes) -> kinds.Content | None:
    """The typed content of a plain ``kind``/``body`` (None: not one this SDK can decode)."""
    try:
        return kinds.decode_content(kind, body)
    except ProtocolError:
        return None


def own_message(
    p: Pending, conv: int, seq: int, ts: int, account: int, device: int, cmid: str
) -> Message:
    """One of this device's messages as the application sees it: ``p`` as given to ``send``
    (seq and ts 0 while it waits in the outbox)."""
    return Message(
        conv,
        seq,
        ts,
        account,
        device,
        p.kind,
        p.body,
        decoded_content(p.kind, p.body),
        own=True,
        to=p.to or (),
        reply_to=p.reply_to,
        cmid=cmid,
    )
