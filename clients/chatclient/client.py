"""The chatd SDK client: a thin façade over one module per concern.

    async with Client("ws://127.0.0.1:8765/ws", KeyStore.open("alice.key")) as c:
        await c.register("alice", "Alice")          # first run only; later runs log in
        conv = await c.direct(await c.lookup("bob"))
        await c.send_text(conv, "hi")
        async for event in c.events(): ...

Where each part lives (each module's docstring says what it promises):

* ``connection``    the WebSocket, reconnects and backoff, requests; drives the protocol core
                    (``chatproto.client``: login steps, request ids, cursors, the outbox)
* ``accounts``      register and link this device
* ``conversations`` conversations, members and their signed log, who is a bot
* ``sending``       ``send``: the outbox, addressing, encryption, acks and refusals
* ``receiving``     messages in order, decrypted, parked for keys; history; ``events()``
* ``links``         invite links: make, list, revoke, preview, join; join requests
* ``keys``          the to-device queue, device lists, safety numbers
* ``profiles``      bot profiles; ``miniapps``: invocations, cards, shares, forwards
* ``channels``      public channels: the directory, follows, signed posts (verified)
* ``creators``      tips, paid subscriptions (receipts verified)
* ``timeline``      the merged timeline, paged; what this connection watches (said again
  after each reconnect)
* ``moments``       Moments to contacts, end-to-end encrypted, WeChat's visibility rule
* ``payments``, ``media``, ``members``, ``e2e``: payments, attachments, the membership log,
  end-to-end encryption

Modules import downwards only (connection <- conversations <- receiving <- sending <- miniapps,
each also on ``connection``); where a lower module must reach a higher one (a sender key that
arrives opens parked messages), this façade hands it a callback. No module calls another's
private names (``tests/unit/test_layering.py`` checks both).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Self, TypeVar

from chatproto import client as core
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import moments as moment_scopes
from websockets.asyncio.client import ClientConnection

from chatclient.accounts import Accounts
from chatclient.channels import Channels
from chatclient.connection import RATE_LIMIT_BACKOFF, SEND_WINDOW, Connection, urls_of
from chatclient.contacts import Contacts
from chatclient.conversations import Conversations, ConvView
from chatclient.creators import Creators
from chatclient.e2e import E2E
from chatclient.errors import ChatClientError, ClientClosed, RequestError
from chatclient.events import Event, Message, SecurityWarning, Undecryptable
from chatclient.keys import Keys
from chatclient.keystore import KeyStore
from chatclient.links import Links
from chatclient.media import Media
from chatclient.members import Members
from chatclient.miniapps import MiniApps
from chatclient.moments import Moments
from chatclient.payments import Payments, Receipt
from chatclient.profiles import Profiles
from chatclient.receiving import KNOWN_SENDERS, Receiving
from chatclient.reports import Reports
from chatclient.sending import Sending
from chatclient.timeline import Timeline

__all__ = [
    "KNOWN_SENDERS",
    "PARK_SECONDS",
    "RATE_LIMIT_BACKOFF",
    "SEND_WINDOW",
    "Client",
    "ConvView",
]

T = TypeVar("T", bound=F.Frame)

PARK_SECONDS = 10.0
"""How long a message waits for its sender key before it is reported as undecryptable (read at
each park, so a test may shorten it)."""


def _park_seconds() -> float:
    return PARK_SECONDS


class Client:
    """A chatd connection for one device. Use as ``async with``."""

    def __init__(
        self,
        url: str | Sequence[str],
        keystore: KeyStore | None = None,
        *,
        reconnect: bool = True,
        request_timeout: float = 10.0,
        max_events: int = 10_000,
        backoff_initial: float = 0.1,
        backoff_max: float = 1.0,
        encrypt: bool = True,
        save_read_positions: bool = True,
    ) -> None:
        self.urls: tuple[str, ...] = urls_of(url)
        """Every node of the service; after a drop the client tries the next one in turn."""
        self.keystore = keystore or KeyStore.memory()
        self.encrypt = encrypt
        """End-to-end encryption for every kind (on by default; off only for tests/tools)."""
        conn = self._conn = Connection(
            self.urls,
            self.keystore,
            reconnect=reconnect,
            request_timeout=request_timeout,
            max_events=max_events,
            backoff=(backoff_initial, backoff_max),
        )
        self.e2e = E2E(
            self.keystore,
            conn.request,
            conn.next_id,
            warn=lambda account, reason: conn.emit(SecurityWarning(account, reason)),
        )
        self.members = Members(self.e2e, conn.call, conn.next_id)
        self.contacts = Contacts(conn.call, conn.next_id)
        """Requests, invitations, contacts, blocks, privacy (chatclient/contacts.py)."""
        """The conversations' verified members (E2E.md 15): sending encrypts to them only."""
        self._profiles = Profiles(conn)
        self._accounts = Accounts(conn)
        self._convs = Conversations(conn, self.e2e, self.members, self._profiles, encrypt=encrypt)
        self.links = Links(
            conn.call,
            conn.next_id,
            self._convs.signed_change,
            self._convs.learn,
            self._convs.is_bot_account,
        )
        """Invite links and join requests (chatclient/links.py)."""
        self._receiving = Receiving(
            conn,
            self.e2e,
            self._convs,
            encrypt=encrypt,
            save_read_positions=save_read_positions,
            park_seconds=_park_seconds,
        )
        self._sending = Sending(
            conn, self.e2e, self._convs, self._profiles, self._receiving, encrypt=encrypt
        )
        self._keys = Keys(conn, self.e2e, encrypt=encrypt)
        self.payments = Payments(
            conn, self.e2e, self._sending.send, self._receiving.message, encrypt=encrypt
        )
        """Payments (``pay``, ``red_packet``, ...: chatclient/payments.py); verifies receipts."""
        self.media = Media(conn, self._sending.send, self._receiving.message, encrypt=encrypt)
        """Files, images, voice notes (``send_file``, ``download``: chatclient/media.py)."""
        self.channels = Channels(conn, self.e2e, conn.emit)
        """Public channels (``create``, ``search``, ``follow``, ``publish``, ``posts``, ...:
        chatclient/channels.py); verifies every post's signature."""
        self.creators = Creators(conn, self.e2e, self.payments)
        """Tips, paid subscriptions (``tip``, ``subscribe``, ``unsubscribe``, ...:
        chatclient/creators.py); verifies every receipt."""
        self.moments = Moments(conn, self.e2e, self._keys.fetch_to_device, conn.emit)
        """Moments to contacts, end-to-end encrypted (``post``, ``feed``, ``comment``, ``like``,
        ...: chatclient/moments.py)."""
        self.timeline = Timeline(conn, self.channels, self.moments.open)
        """The timeline (``page``, ``entries``) and what this connection watches
        (``watch_feed``, ``watch_channel``, ``watch_post``: chatclient/timeline.py)."""
        self._reports = Reports(self.e2e, conn.call, conn.next_id, self._receiving.message)
        self._apps = MiniApps(
            conn, self._convs, self._profiles, self._sending, self.payments, self.media
        )
        # The wiring: what a lower module hands up, and what every emitted event passes.
        self._receiving.fetch_to_device = self._keys.fetch_to_device
        self._keys.on_sender_key = self._on_sender_key
        conn.filters += [self._receiving.remember_sender, self._apps.observe, self.payments.checked]
        conn.on_login = self._after_login
        conn.on_event = self._on_core_event
        conn.on_acked = lambda ev: self._sending.on_acked(ev.ack, ev.entry)
        conn.on_lost = self._on_lost
        conn.on_frame = self._on_frame

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._conn.start(self._tasks)
        self._keys.start(self._tasks)
        try:
            await self._conn.wait_connected()
            if self.keystore.registered:  # the login goes on: its first step is the payment key
                async with asyncio.timeout(self.request_timeout):
                    await self.payments.key_loaded.wait()
        except BaseException:
            await self.aclose()
            await self._tasks.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        await self._tasks.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting; cursors are saved."""
        if self._conn.closed:
            return
        self._keys.stop()
        await self._conn.aclose()
        # What is not acknowledged stays in the key store: the next client sends it.
        self._sending.fail_waits(ClientClosed("client closed before the ack (kept in the outbox)"))
        self._receiving.keep_parked_unread()
        if self.keystore.registered:
            self.keystore.save()
        self.keystore.close()  # releases the file for the next client (same or another process)
        self._conn.end_events()

    async def _after_login(self, first_device: bool) -> None:
        """Logged in: the payment key, this device's keys and to-device queue, every
        conversation caught up, then the outbox (SPEC.md 13 steps 3, 6 and 9)."""
        await self.payments.load_key()  # before any receipt is delivered: they are verified
        if self.encrypt:
            await self.e2e.setup(first_device=first_device)
            await self._keys.fetch_to_device()  # sender keys first, so synced messages open
        await self._receiving.resync()
        await self.timeline.rewatch()  # the server forgot what the last connection watched
        self._sending.resume()
        await self._missed_answers()

    async def _missed_answers(self) -> None:
        """Answers to this account's invitations that came while no device of it was connected
        (SPEC.md 13 step 11, 18.3), handed over as ``InvitationAnswered`` events (``joined``
        false: an accept still waits for the signed ``invite``); a decline is then dismissed.
        A server without ``list_answers`` (older than SPEC.md 18.3's) tells nothing here."""
        try:
            async for a in self.contacts.answers():
                await self._answered(
                    F.InvitationAnswered(
                        conv=a.conv,
                        account=a.account,
                        handle=a.handle,
                        answer=a.answer,
                        joined=False,
                    )
                )
        except RequestError:
            pass

    async def _answered(self, ev: F.InvitationAnswered) -> None:
        await self._conn.emit(ev)
        if ev.answer == "decline":  # not dismissed (connection lost): told again next login
            with contextlib.suppress(ChatClientError):
                await self.contacts.dismiss(ev.conv, ev.account)

    async def _on_sender_key(self, conv: int) -> None:
        """A sender key arrived: a conversation's parked messages open, or a Moment's wait."""
        if moment_scopes.is_moment_scope(conv):
            self.moments.key_arrived(conv)
        else:
            await self._receiving.unpark(conv)

    def _on_lost(self, fatal: BaseException | None) -> None:
        if fatal is not None:  # the client stops for good: nobody waits for the outbox
            self._sending.fail_waits(fatal)

    async def _on_frame(self, frame: F.ServerFrame) -> None:
        """Every frame from the server, decoded (a subclass may hold some back, as a slow
        network would: tests do)."""
        await self._conn.receive(frame)

    async def _on_core_event(self, ev: core.Event) -> None:
        """Route an event of the protocol core to the module it concerns."""
        match ev:
            case core.Delivery(conv=conv, seq=seq, item=item):
                await self._receiving.on_delivery(conv, seq, item)
            case core.Gap(conv=conv):
                self._receiving.on_gap(conv)
            case core.SendFailed(entry=entry, error=error):
                self._sending.on_failed(entry, error)
            case core.Pushed(frame=F.ToDeviceEvent() as item):
                self._keys.on_to_device(item)
            case core.Pushed(frame=F.DeviceListChanged(account=account)):
                await self._keys.on_device_list_changed(account)
            case core.Pushed(frame=F.PostEvent() as post):
                self.channels.on_post_event(post)
            case core.Pushed(frame=F.MomentEvent() | F.MomentCommentEvent() as moment):
                self.moments.on_event(moment)
            case core.Pushed(frame=F.CommentEvent() | F.ReactionsEvent() as under_post):
                await self._conn.emit(under_post)
            case core.Pushed(frame=F.TipEvent() | F.SubscriptionEvent() as paid):
                self.creators.on_event(paid)
            case core.Pushed(frame=F.Resync()):
                self._receiving.on_resync()
            case core.Pushed(
                frame=F.ReceiptEvent()
                | F.TypingEvent()
                | F.PresenceEvent()
                | F.RequestEvent()
                | F.JoinRequestEvent() as f
            ):
                await self._conn.emit(f)
            case core.Pushed(frame=F.InvitationAnswered() as answered):
                if answered.answer == "decline":  # dismissed once handed over
                    self._conn.spawn(self._answered(answered))
                else:
                    await self._conn.emit(answered)
            case _:
                pass  # duplicates dropped, deferred sends resent by the core, answers settled

    @property
    def url(self) -> str:
        """The node this client is connected to, or tries next."""
        return self._conn.url

    @property
    def account(self) -> int:
        return self.keystore.account

    @property
    def device(self) -> int:
        return self.keystore.device

    @property
    def connected(self) -> bool:
        return self._conn.ready.is_set()

    @property
    def server_name(self) -> str:
        return self._conn.server_name

    @property
    def reconnect(self) -> bool:
        return self._conn.reconnect

    @reconnect.setter
    def reconnect(self, value: bool) -> None:
        self._conn.reconnect = value

    @property
    def request_timeout(self) -> float:
        return self._conn.request_timeout

    @request_timeout.setter
    def request_timeout(self, value: float) -> None:
        self._conn.request_timeout = value

    @property
    def save_read_positions(self) -> bool:
        """Commit a conversation's read position as ``events()`` hands its message over (a user
        never sees a message twice, even after a kill). Off for processes that keep what they
        handled themselves and want the rest again after a crash (the bot framework; also off
        whenever the account is a bot): then positions are saved on ``aclose``."""
        return self._receiving.save_read_positions

    @save_read_positions.setter
    def save_read_positions(self, value: bool) -> None:
        self._receiving.save_read_positions = value

    @property
    def is_bot(self) -> bool | None:
        """Whether this account is a bot (learned from the server's conversation listings)."""
        return self._convs.is_bot

    @is_bot.setter
    def is_bot(self, value: bool | None) -> None:
        self._convs.is_bot = value

    @property
    def _ws(self) -> ClientConnection | None:
        """The WebSocket now (tests reach under the SDK with it)."""
        return self._conn.ws

    def _next_id(self) -> int:
        """A request id (tests and tools that write raw frames with ``_call``)."""
        return self._conn.next_id()

    async def _call(self, frame: Any, expect: type[T]) -> T:
        """A raw request and its typed answer (tests and tools; applications use the methods)."""
        return await self._conn.call(frame, expect)

    async def drop_connection(self) -> None:
        """Abort the socket as a network failure would (tests and demos): the client reconnects."""
        await self._conn.drop()

    # ------------------------------------------------------------------ accounts and keys

    async def register(
        self,
        handle: str,
        name: str,
        *,
        bot: bool = False,
        device_name: str = "python",
        owner: tuple[int, bytes] | None = None,
    ) -> int:
        """Create an account with this device as its first device; returns the account id.
        ``owner``: a bot's owner's approval, from the owner's ``approve_bot``."""
        return await self._accounts.register(
            handle, name, bot=bot, device_name=device_name, owner=owner
        )

    def approve_bot(self, handle: str, device_key: bytes) -> tuple[int, bytes]:
        """This (logged-in) device's approval of bot ``handle`` with first device
        ``device_key``: what the bot's ``register(..., bot=True, owner=...)`` carries, so the
        bot is this account's (SPEC.md 6.1)."""
        return self._keys.approve_bot(handle, device_key)

    async def link(
        self, handle: str, approver: int, approval: bytes, *, device_name: str = "python"
    ) -> int:
        """Add this device to account ``handle`` with an existing device's approval."""
        return await self._accounts.link(handle, approver, approval, device_name=device_name)

    def approve_device(self, device_key: bytes) -> bytes:
        return self._keys.approve_device(device_key)

    async def publish_devices(self, approve: Sequence[int] = (), remove: Sequence[int] = ()) -> int:
        return await self._keys.publish_devices(approve, remove)

    async def send_approval(self, device_key: bytes) -> None:
        await self._keys.send_approval(device_key)

    async def remove_device(self, device: int) -> None:
        await self._keys.remove_device(device)

    async def transfer_master_key(self, device: int, *, keep: bool = True) -> None:
        await self._keys.transfer_master_key(device, keep=keep)

    def safety_number(self, account: int) -> str:
        return self._keys.safety_number(account)

    def verify(self, account: int) -> None:
        self._keys.verify(account)

    def unverify(self, account: int) -> None:
        self._keys.unverify(account)

    async def lookup(self, handle: str) -> int:
        """The account id of ``handle`` (raises ``NotFound``)."""
        return await self._convs.lookup(handle)

    async def account_info(self, handle: str) -> F.Account:
        return await self._convs.account_info(handle)

    # ------------------------------------------------------------------ conversations

    async def direct(self, account: int) -> int:
        return await self._convs.direct(account)

    async def create(self, kind: str, title: str = "", members: Sequence[int] = ()) -> F.ConvInfo:
        return await self._convs.create(kind, title, members)

    async def conversations(self) -> list[F.ConvInfo]:
        return await self._convs.conversations()

    async def conversation(self, conv: int) -> F.ConvInfo:
        return await self._convs.conversation(conv)

    async def invite(self, conv: int, account: int) -> None:
        await self._convs.invite(conv, account)

    async def remove(self, conv: int, account: int) -> None:
        await self._convs.remove(conv, account)

    async def leave(self, conv: int) -> None:
        await self._convs.leave(conv)

    async def set_role(self, conv: int, account: int, role: str) -> None:
        await self._convs.set_role(conv, account, role)

    async def rename(self, conv: int, title: str) -> None:
        await self._convs.rename(conv, title)

    async def resync(self) -> None:
        """Fetch everything missed in every conversation, from the stored cursors."""
        await self._receiving.resync()

    # ------------------------------------------------------------------ messages

    async def send(
        self,
        conv: int,
        content: kinds.Content,
        *,
        to: Collection[int] | None = None,
        reply_to: int | None = None,
        cmid: str | None = None,
    ) -> F.Ack:
        """Send typed content; returns the ``Ack`` once the server has stored it.

        ``to``: the accounts the message is addressed to (SPEC.md 16.3; a bot with access
        ``addressed`` receives only what names it). None (the default) works it out: in a group
        or channel, a text addressed to bots (``/command`` to every bot, ``/command@bot`` to
        that one, ``@bot`` mentions, a reply to a bot's message) names them, and an invocation
        names the bot whose mini-app it is. ``reply_to``: the seq this message answers.

        The message goes into the outbox (the key store) first, connected or not, and stays
        there until the server acknowledges it: it is written when the client is connected, and
        again with the same ``cmid`` after every reconnect (the server stores it once), in the
        order sent per conversation; a client started later on the same key store sends what an
        earlier one left (after a kill too). Cancelling the wait (``asyncio.timeout``) does not
        withdraw the message (``discard`` does); a send with the ``cmid`` of a message still in
        the outbox waits for that one. Raises only a refusal (``RequestError``, or ``ChatProtoError``
        when a member's keys cannot be trusted; also a ``SendFailed`` event; the message leaves
        the outbox), ``ClientClosed`` (closed before the ack: it stays queued in the key store),
        or ``AuthError``."""
        return await self._sending.send(conv, content, to=to, reply_to=reply_to, cmid=cmid)

    async def send_text(self, conv: int, text: str, **kw: Any) -> F.Ack:
        return await self.send(conv, kinds.Text(text=text), **kw)

    async def send_raw(
        self,
        conv: int,
        kind: str,
        body: bytes,
        *,
        to: Collection[int] = (),
        reply_to: int | None = None,
        cmid: str | None = None,
    ) -> F.Ack:
        """``send`` of an encoded kind and body (encrypted unless the kind is ``e2e`` already,
        or the client was made with ``encrypt=False``)."""
        addressed = tuple(sorted(set(to)))
        return await self._sending.enqueue(conv, kind, body, addressed, reply_to or 0, cmid)

    def pending(self, conv: int | None = None) -> list[Message]:
        """What is in the outbox (of ``conv``), oldest first, as own messages with seq 0
        (``cmid`` set): what a user interface shows as not sent yet."""
        return self._sending.pending(conv)

    def discard(self, cmid: str) -> bool:
        """Take a message out of the outbox (False when it is not there). It may still be
        stored if it was written before: its ack then finds nothing waiting."""
        return self._sending.discard(cmid)

    async def fetch(
        self, conv: int, *, after: int = 0, before: int | None = None, limit: int = 100
    ) -> F.Messages:
        """One page of stored history (ascending). ``before`` pages backwards."""
        return await self._receiving.fetch(conv, after=after, before=before, limit=limit)

    async def history(
        self, conv: int, *, before: int | None = None, limit: int = 50
    ) -> list[Message | Undecryptable]:
        return await self._receiving.history(conv, before=before, limit=limit)

    async def message(self, conv: int, seq: int) -> Message | Undecryptable:
        """Message ``seq`` of ``conv`` from stored history, decrypted (``NotFound`` when there
        is no such message, or this account may not read it)."""
        return await self._receiving.message(conv, seq)

    async def delete_for_everyone(self, conv: int, seq: int) -> None:
        """Delete message ``seq`` of ``conv`` for everyone (SPEC.md 18.9): this account's own
        message, or as the owner or an admin of a group or channel a member's. The server
        keeps only a tombstone (who, when) in its place and tells every member with a
        ``deleted`` system message. ``RequestError``: ``FORBIDDEN`` (not yours, and you are not
        an owner or admin who may), ``INVALID`` (a server message), ``NOT_FOUND`` (no such
        message or conversation). A report of it still verifies (18.7): this device keeps what
        it decrypted."""
        c = self._conn
        await c.call(F.DeleteMessage(id=c.next_id(), conv=conv, seq=seq), F.Ok)

    async def report(self, conv: int, seq: int, reason: str = "") -> F.Reported:
        """Report message ``seq`` of ``conv`` to the operator, verifiably (SPEC.md 18.7)."""
        return await self._reports.report(conv, seq, reason)

    # ------------------------------------------------------------------ Web Push (SPEC.md 21)

    async def push_config(self) -> F.PushConfig:
        """The server's VAPID public key (empty: push is off there) and this device's push
        subscription (``endpoint`` "" when it has none)."""
        got: F.PushConfig = await self._conn.call(F.GetPush(id=self._conn.next_id()), F.PushConfig)
        return got

    async def register_push(
        self, endpoint: str, p256dh: bytes | str, auth: bytes | str, *, show_conv: bool = False
    ) -> F.PushConfig:
        """Register (or replace) this device's Web Push subscription: a browser's
        ``PushSubscription`` (its keys as bytes or as the base64url text ``toJSON()`` gives).
        While the account is offline the server then pushes "something new" to it (with the
        conversation's id when ``show_conv``; never a sender or content). ``RequestError``
        ``PUSH_REFUSED`` for an endpoint the server will not send to, ``UNAVAILABLE`` when push
        is off."""
        frame = F.SetPush(
            id=self._conn.next_id(),
            endpoint=endpoint,
            p256dh=_b64url(p256dh),
            auth=_b64url(auth),
            show_conv=show_conv,
        )
        got: F.PushConfig = await self._conn.call(frame, F.PushConfig)
        return got

    async def unregister_push(self) -> None:
        """Delete this device's push subscription (nothing when it has none)."""
        await self._conn.call(F.ClearPush(id=self._conn.next_id()), F.Ok)

    def message_from(self, conv: int, m: F.Message) -> Message | Undecryptable:
        """The event for a message of a fetched page (``fetch``), decrypted like live ones."""
        return self._receiving.message_from(conv, m)

    async def mark_read(self, conv: int, seq: int) -> None:
        await self._receiving.mark_read(conv, seq)

    async def mark_delivered(self, conv: int, seq: int) -> None:
        await self._receiving.mark_delivered(conv, seq)

    async def typing(self, conv: int, on: bool = True) -> None:
        await self._receiving.typing(conv, on)

    async def presence(self, accounts: Sequence[int]) -> list[F.PresenceInfo]:
        return await self._receiving.presence(accounts)

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order; ends when the client closes or stops for good.

        A conversation's read position is committed to the key store as its message is handed
        over here, so a process killed at any point does not show it again."""
        async for event in self._receiving.events():
            yield event

    def events_nowait(self) -> list[Event]:
        """The events queued now (their read positions committed in one transaction)."""
        return self._receiving.events_nowait()

    # ------------------------------------------------------------------ bots (SPEC.md 16)

    async def set_bot_profile(
        self, commands: Sequence[F.BotCommand], manifest: F.Manifest | None = None
    ) -> None:
        await self._profiles.set_bot_profile(commands, manifest)

    async def bot_profile(self, account: int, *, refresh: bool = False) -> F.BotProfile:
        return await self._profiles.bot_profile(account, refresh=refresh)

    async def set_bot_access(self, conv: int, bot: int, access: str) -> None:
        await self._convs.set_bot_access(conv, bot, access)

    async def add_bot(self, conv: int, bot: int | str) -> int:
        return await self._apps.add_bot(conv, bot)

    async def bots(self, conv: int) -> dict[int, str]:
        """The bot members of ``conv`` -> their access."""
        return await self._convs.bots(conv)

    async def invoke(
        self,
        conv: int,
        bot: int,
        app: str,
        action: str,
        params: Mapping[str, str | int | bool] | None = None,
        **kw: Any,
    ) -> Message:
        """Invoke ``action`` of mini-app ``app`` of ``bot`` and return its result card
        (``MiniApps.invoke``: ``timeout``, ``resend_every``, ``invocation_id``)."""
        return await self._apps.invoke(conv, bot, app, action, params, **kw)

    async def press(self, card: Message, button: kinds.Button | int, **kw: Any) -> Message:
        return await self._apps.press(card, button, **kw)

    async def open_share(self, share: kinds.Share, conv: int | None = None, **kw: Any) -> Message:
        return await self._apps.open_share(share, conv, **kw)

    async def pay_order(self, result: Message, *, ttl: float = 600.0) -> Receipt:
        return await self._apps.pay_order(result, ttl=ttl)

    async def share(self, conv: int, card: kinds.Share, **kw: Any) -> F.Ack:
        return await self._apps.share(conv, card, **kw)

    async def forward(self, message: Message, to_conv: int, *, origin: bool = True) -> F.Ack:
        return await self._apps.forward(message, to_conv, origin=origin)

    # ------------------------------------------------------------------ payments (payments.py)

    async def pay(
        self, conv: int, to: int, amount: str | int, currency: str, memo: str = "", **kw: Any
    ) -> Receipt:
        """Pay account ``to`` in ``conv``: ``await c.pay(conv, bob, "12.50", "USD", "lunch")``."""
        return await self.payments.pay(conv, to, amount, currency, memo, **kw)

    async def request(
        self, conv: int, amount: str | int, currency: str, memo: str = "", **kw: Any
    ) -> Receipt:
        """Ask for money in ``conv`` (``payer=`` one member, default any)."""
        return await self.payments.request(conv, amount, currency, memo, **kw)

    async def red_packet(
        self, conv: int, total: str | int, currency: str, shares: int, memo: str = "", **kw: Any
    ) -> Receipt:
        return await self.payments.red_packet(conv, total, currency, shares, memo, **kw)

    async def claim(self, packet_id: str) -> Receipt:
        return await self.payments.claim(packet_id)

    async def balance(self, currency: str = "") -> dict[str, int]:
        """Balances in minor units by currency."""
        return await self.payments.balance(currency)

    async def payment_history(
        self, currency: str = "", *, before: int | None = None, limit: int = 100
    ) -> tuple[list[F.WalletEntry], bool]:
        """Ledger entries, newest first (``history`` is the conversation's message history)."""
        return await self.payments.history(currency, before=before, limit=limit)

    # ------------------------------------------------------------------ media (media.py)

    async def send_file(self, conv: int, path: str | os.PathLike[str], **kw: Any) -> F.Ack:
        """Send a file end-to-end encrypted (``Media.send_file``: progress, resumption)."""
        return await self.media.send_file(conv, path, **kw)

    async def send_image(self, conv: int, path: str | os.PathLike[str], **kw: Any) -> F.Ack:
        return await self.media.send_image(conv, path, **kw)

    async def send_voice(self, conv: int, path: str | os.PathLike[str], **kw: Any) -> F.Ack:
        return await self.media.send_voice(conv, path, **kw)

    async def download(
        self, message: Message | kinds.Attachment, path: str | os.PathLike[str], **kw: Any
    ) -> Path:
        """Fetch, check the digest of, and decrypt an attachment into ``path``."""
        return await self.media.download(message, path, **kw)


def _b64url(value: bytes | str) -> bytes:
    """Key bytes, from bytes or from base64url text (padded or not)."""
    if isinstance(value, bytes):
        return value
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
