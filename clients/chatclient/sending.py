"""Sending: the outbox as the application sees it (SPEC.md 7.2, 7.3, 13 steps 5-6).

Every ``send`` is committed to the key store before it is written to the network, and stays there
until its ack. Each connection writes what is there in the order sent per conversation, with the
original cmid and the same bytes (so the server stores each message once), including what an
earlier process on the same key store left (typed offline, or killed before the ack). A backlog
(and anything after a refusal for rate) goes one message at a time, each after the previous
one's answer, so no message is stored ahead of one sent before it; otherwise up to
``SEND_WINDOW`` are in flight. A message of this device that comes back by sync or fetch before
its ack is taken as acknowledged and shown from its outbox plaintext. (Order, windows and
resends are the core's outbox; this module prepares each entry once, addresses and encrypts
it, and settles the application's waits.)

Bots (SPEC.md 16): ``send`` addresses commands, mentions and replies to the bots of a group by
itself (``to``; a bot with access ``addressed`` gets nothing else), and picks the sender key by
E2E.md 7.1.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection

from chatproto import client as core
from chatproto import frames as F
from chatproto import franking, kinds
from chatproto.e2e.payload import E2E_KIND
from chatproto.errors import ChatProtoError, ErrorCode

from chatclient.addressing import MAX_TO, addressees, bare_command
from chatclient.connection import RATE_LIMIT_BACKOFF, Connection
from chatclient.conversations import Conversations
from chatclient.e2e import E2E
from chatclient.errors import (
    ChatClientError,
    ClientClosed,
    ConnectionLost,
    RateLimited,
    RequestError,
    error_for,
)
from chatclient.events import Message, SendFailed
from chatclient.outbox import Pending, pending_of, restored, stored
from chatclient.profiles import Profiles
from chatclient.receiving import Receiving, decoded_content, own_message

log = logging.getLogger("chatclient.client")


class Sending:
    """``send`` and the outbox's entries from the application's side."""

    def __init__(
        self,
        conn: Connection,
        e2e: E2E,
        conversations: Conversations,
        profiles: Profiles,
        receiving: Receiving,
        *,
        encrypt: bool,
    ) -> None:
        self._conn = conn
        self._core = conn.core
        self._e2e = e2e
        self._convs = conversations
        self._profiles = profiles
        self._receiving = receiving
        self.encrypt = encrypt
        self._preparers: dict[int, asyncio.Task[None]] = {}
        """Per conversation, the task preparing (addressing, encrypting) its new entries."""
        for cmid, data in conn.keystore.outbox():  # a previous run's, in the order sent
            self._core.outbox.add(restored(cmid, data))

    # ------------------------------------------------------------------ the application's side

    async def send(
        self,
        conv: int,
        content: kinds.Content,
        *,
        to: Collection[int] | None = None,
        reply_to: int | None = None,
        cmid: str | None = None,
    ) -> F.Ack:
        kind, body = kinds.encode_content(content)
        addressed = None if to is None else tuple(sorted(set(to)))
        return await self.enqueue(conv, kind, body, addressed, reply_to or 0, cmid)

    async def enqueue(
        self,
        conv: int,
        kind: str,
        body: bytes,
        to: tuple[int, ...] | None,
        reply_to: int,
        cmid: str | None,
    ) -> F.Ack:
        c = self._conn
        if c.fatal is not None:
            raise c.fatal
        if c.closed:
            raise ClientClosed("client closed")
        if to is not None and len(to) > MAX_TO:
            raise ChatClientError(f"a message is addressed to at most {MAX_TO} accounts")
        cmid = cmid or self._core.new_cmid(asyncio.get_running_loop().time())
        entry = self._core.outbox.get(cmid)
        if entry is not None and entry.conv != conv:
            raise ChatClientError(f"cmid {cmid} is waiting in the outbox for another conversation")
        if entry is None:
            # Sent as it is when there is nothing to work out (addressees given, no encryption).
            ready = to is not None and (kind == E2E_KIND or not self.encrypt)
            pending = Pending(kind, body, to, reply_to)
            wire_kind, wire_body = (kind, body) if ready else ("", b"")
            entry = self._core.send(
                conv, cmid, wire_kind, wire_body, to=to or (), ready=ready, data=pending
            )
            c.keystore.outbox_put(cmid, stored(entry))  # before it reaches the network
        p = pending_of(entry)
        if p.future is None:
            p.future = asyncio.get_running_loop().create_future()
            p.future.add_done_callback(_retrieve)  # also when nobody waits any more
        self._kick(conv)
        # Shielded: a caller that stops waiting leaves the message in the outbox.
        return await asyncio.shield(p.future)

    def pending(self, conv: int | None = None) -> list[Message]:
        """What is in the outbox (of ``conv``), oldest first, as own messages with seq 0."""
        ks = self._conn.keystore
        out = []
        for entry in self._core.outbox:
            if conv is not None and entry.conv != conv:
                continue
            p = pending_of(entry)
            out.append(own_message(p, entry.conv, 0, 0, ks.account, ks.device, entry.cmid))
        return out

    def discard(self, cmid: str) -> bool:
        """Take a message out of the outbox (False when it is not there)."""
        entry = self._core.discard(cmid)
        if entry is None:
            return False
        self._conn.keystore.outbox_delete(cmid)
        p = pending_of(entry)
        if p.future is not None and not p.future.done():
            p.future.set_exception(ClientClosed(f"message {cmid} discarded"))
        self._conn.spawn(self._conn.flush_quietly())
        return True

    # ------------------------------------------------------------------ preparing

    def resume(self) -> None:
        """Logged in and caught up: write the outbox on this connection (SPEC.md 13 step 6)."""
        self._core.start_sending()
        self._kick()

    def _kick(self, conv: int | None = None) -> None:
        """Start preparing (and writing) the outbox entries of ``conv`` (None: of all)."""
        c = self._conn
        if not c.ready.is_set() or c.tasks is None or c.closed:
            return  # the next login kicks every conversation
        convs = {e.conv for e in self._core.outbox} if conv is None else {conv}
        for cv in convs:
            task = self._preparers.get(cv)
            if task is None or task.done():
                started = c.spawn(self._prepare_all(cv))
                if started is not None:
                    self._preparers[cv] = started

    async def _prepare_all(self, conv: int) -> None:
        """Prepare the entries of ``conv`` in order (the core writes each as it is ready),
        trying again after a transient failure; an entry that cannot be sent leaves."""
        pause = RATE_LIMIT_BACKOFF[0]
        try:
            while self._conn.ready.is_set() and not self._conn.closed:
                todo = self._core.outbox.unprepared(conv)
                if not todo:
                    await self._conn.flush_quietly()
                    return
                entry = todo[0]
                try:
                    await self._prepare(entry)
                except (ConnectionLost, TimeoutError, RateLimited) as exc:
                    log.info("outbox: %s; trying again", exc)
                    await asyncio.sleep(pause * (0.5 + random.random()))
                    pause = min(pause * 2, RATE_LIMIT_BACKOFF[1])
                except Exception as exc:  # refused (NotFound, a key change, ...): not sendable
                    if not isinstance(exc, ChatClientError | ChatProtoError):
                        log.exception("outbox: message %s cannot be sent", entry.cmid)
                    self._refused(entry, exc if isinstance(exc, ChatClientError) else None, exc)
        finally:  # one task per conversation with something to prepare
            if self._preparers.get(conv) is asyncio.current_task():
                del self._preparers[conv]

    async def _prepare(self, entry: core.Entry) -> None:
        """Work out the addressees and encrypt; kept in the key store before the first write."""
        p = pending_of(entry)
        if p.to is None:
            content = decoded_content(p.kind, p.body)
            reply_to = p.reply_to or None
            p.to = () if content is None else await self._addressees(entry.conv, content, reply_to)
            if len(p.to) > MAX_TO:
                raise ChatClientError(f"a message is addressed to at most {MAX_TO} accounts")
        fc: bytes | None = None
        if self.encrypt and p.kind != E2E_KIND:
            # Franking (E2E.md 17): a fresh key inside the ciphertext, its commitment beside
            # it, so a recipient can report this message and the server can verify it.
            fk = franking.new_key()
            fc = franking.commit(fk, franking.encode_plaintext(p.kind, p.body))
            view = await self._convs.view(entry.conv)
            bots = view.addressed_bots
            sealed = await self._e2e.encrypt(
                entry.conv,
                p.kind,
                p.body,
                view.members,
                addressed_bots=bots,
                addressed=not bots.isdisjoint(p.to),
                reply_to=p.reply_to or None,
                log_head=self._convs.log_head(entry.conv),
                franking_key=fk,
            )
            wire = (E2E_KIND, sealed)
        else:
            wire = (p.kind, p.body)
        if self._core.outbox.get(entry.cmid) is entry:
            self._core.prepare(entry.cmid, wire[0], wire[1], p.to, fc)
            self._conn.keystore.outbox_put(entry.cmid, stored(entry))  # before the first write
            await self._conn.flush_quietly()

    async def _addressees(
        self, conv: int, content: kinds.Content, reply_to: int | None
    ) -> tuple[int, ...]:
        """``send``'s default ``to`` (see ``chatclient.addressing``)."""
        if isinstance(content, kinds.MiniappInvoke):
            bot = await self._profiles.bot_for_app(
                list((await self._convs.view(conv)).bots), content.app
            )
            return (bot,) if bot else ()
        if not isinstance(content, kinds.Text) and not reply_to:
            return ()
        view = await self._convs.view(conv)
        if view.kind == "direct" or not view.bots:
            return ()  # a bot in a direct conversation reads everything anyway
        reply_sender = await self._receiving.sender_of(conv, reply_to) if reply_to else 0
        text = content.text if isinstance(content, kinds.Text) else ""
        me = self._conn.keystore.account
        commands: dict[int, Collection[str] | None] = {}
        if bare_command(text):  # which bots there answer it? their profiles tell
            for bot in view.bots:
                if bot != me:
                    commands[bot] = await self._profiles.declared_commands(bot)
        return addressees(
            text,
            me=me,
            handles=view.handles,
            bots=view.bots.keys(),
            reply_sender=reply_sender,
            commands=commands,
        )

    # ------------------------------------------------------------------ answers (from the core)

    def on_acked(self, ack: F.Ack, entry: core.Entry) -> None:
        """``ack`` acknowledges an outbox entry: it leaves the key store, its plaintext is kept
        (this device cannot decrypt its own message), its sender's wait returns ``ack``."""
        p = pending_of(entry)
        self._conn.keystore.outbox_delete(entry.cmid)
        if entry.kind == E2E_KIND and p.kind != E2E_KIND:
            self._e2e.remember_own(ack.conv, ack.seq, p.kind, p.body, p.reply_to)
        if p.future is not None and not p.future.done():
            p.future.set_result(ack)

    def on_failed(self, entry: core.Entry, error: F.Error) -> None:
        """The server refused the message for good (the core took it out of the outbox)."""
        self._refused(entry, error_for(error.code, error.msg), taken=True)

    def _refused(
        self,
        entry: core.Entry,
        error: ChatClientError | None,
        cause: Exception | None = None,
        *,
        taken: bool = False,
    ) -> None:
        """The message cannot be sent: it leaves the outbox, its sender's wait raises, and a
        ``SendFailed`` event says so."""
        if not taken and self._core.discard(entry.cmid) is not entry:
            return
        self._conn.keystore.outbox_delete(entry.cmid)
        exc: Exception = error or cause or ChatClientError("refused")
        code = error.code if isinstance(error, RequestError) else 0
        p = pending_of(entry)
        if p.future is not None and not p.future.done():
            p.future.set_exception(exc)
        if code == ErrorCode.CONFLICT:
            return  # this cmid is stored already (with other bytes, by an earlier run): not lost
        self._conn.emit_nowait(SendFailed(entry.conv, entry.cmid, code, str(exc)))

    def fail_waits(self, exc: BaseException) -> None:
        """Nobody waits on this client any more: the waits end with ``exc``; the messages stay
        in the key store for the next client."""
        for entry in self._core.outbox:
            p = pending_of(entry)
            if p.future is not None and not p.future.done():
                p.future.set_exception(exc)
            p.future = None


def _retrieve(future: asyncio.Future[F.Ack]) -> None:
    """Mark a future's exception as seen (an outbox entry nobody waits for any more)."""
    if not future.cancelled():
        future.exception()
