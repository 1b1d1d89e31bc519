"""The chatd SDK client.

    async with Client("ws://127.0.0.1:8765/ws", KeyStore.open("alice.key")) as c:
        await c.register("alice", "Alice")          # first run only; later runs log in
        conv = await c.direct(await c.lookup("bob"))
        await c.send_text(conv, "hi")
        async for event in c.events(): ...

One supervisor task owns the connection: it connects, logs in with the device key, resyncs
every conversation from the stored cursors, then pumps frames until the socket drops, and
reconnects with exponential backoff, jittered and capped at ``backoff_max`` (1 s by default: a
server back after an outage of any length is found within about a second). Given several URLs
(the nodes of one service), each reconnect goes to the next one. Policy closes (1008) and failed
logins stop it and surface as ``AuthError``. No websockets exception reaches the application:
a request on a lost connection raises ``ConnectionLost``.

The outbox: every ``send`` is committed to the key store before it is written to the network,
and stays there until its ack. Each connection writes what is there in the order sent per
conversation, with the original cmid and the same bytes (so the server stores each message once),
including what an earlier process on the same key store left (typed offline, or killed before the
ack). A backlog (and anything after a refusal for rate) goes one message at a time, each after
the previous one's answer, so no message is stored ahead of one sent before it; otherwise up to
``SEND_WINDOW`` are in flight. A message of this device that comes back by sync or fetch before
its ack is taken as acknowledged and shown from its outbox plaintext.

Delivery to the application is exactly once and in seq order per conversation: the client keeps
a cursor per conversation (highest contiguous seq), drops repeats, buffers what arrives early and
fetches the gap. The read position is committed to the key store as ``events()`` hands a message
over, so a process killed at any point resumes after what it showed, never showing it again;
what was queued but not handed over comes again (decrypted messages are cached).

Bots (SPEC.md 16): ``send`` addresses commands, mentions and replies to the bots of a group by
itself (``to``; a bot with access ``addressed`` gets nothing else), and picks the sender key by
E2E.md 7.1; ``invoke`` runs a mini-app action and waits for its result card; ``pay_order`` pays
the order on a card through the ledger; ``share`` and ``forward`` carry cards and messages into
other conversations, end-to-end encrypted there like any message. A bot's ``withheld``
placeholders move its cursors and are never shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

import msgspec
from chatproto import PROTOCOL_VERSION, WS_PATH, auth, codec, kinds
from chatproto import frames as F
from chatproto.e2e import membership as ML
from chatproto.e2e.payload import E2E_KIND
from chatproto.errors import ChatProtoError, ErrorCode, ProtocolError
from chatproto.limits import MAX_PAGE
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    WebSocketException,
)
from websockets.protocol import State
from websockets.typing import Subprotocol

from chatclient.addressing import MAX_TO, addressees, bare_command
from chatclient.e2e import E2E, Decrypted, MissingKey, content_of
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    Conflict,
    ConnectionLost,
    InvocationTimeoutError,
    NotFound,
    RateLimited,
    RequestError,
    error_for,
)
from chatclient.events import (
    BotAdded,
    BotRemoved,
    Connected,
    DevicesChanged,
    Disconnected,
    Event,
    InvocationTimeout,
    MasterKeyReceived,
    Message,
    SecurityWarning,
    SendFailed,
    TranscriptWarning,
    Undecryptable,
)
from chatclient.keystore import KeyStore
from chatclient.media import Media
from chatclient.members import Members, UnverifiedMembership
from chatclient.payments import Payments, Receipt

log = logging.getLogger(__name__)
T = TypeVar("T", bound=F.Frame)

PARK_SECONDS = 10.0
"""How long a message waits for its sender key before it is reported as undecryptable."""
MEMBERSHIP_EVENTS = frozenset({"created", "joined", "left", "removed", "bot_access"})
"""System events after which the member list (and who is a bot with which access) is fetched
again and new sender keys are made."""
RATE_LIMIT_BACKOFF = (0.05, 1.0)
"""First and longest pause before repeating a request refused with ``RATE_LIMITED``."""
SEND_WINDOW = 64
"""Sends of one conversation written and not yet answered at a time. 1 (each waits for the
previous one's answer) while a backlog from before a (re)connect drains and after a refusal to be
retried (``RATE_LIMITED``): no message is stored ahead of one sent before it."""
KNOWN_SENDERS = 4096
"""(conv, seq) -> sender remembered for addressing replies without a fetch."""


class _Stored(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An outbox entry as the key store keeps it (``KeyStore.outbox_put``)."""

    conv: int
    kind: str
    body: bytes
    to: list[int] | None = None
    reply_to: int = 0
    wire_kind: str = ""
    wire_body: bytes = b""


@dataclass
class _Pending:
    """A message in the outbox: sent (``kind``/``body`` as given), not yet acknowledged.

    ``wire_kind``/``wire_body`` are what goes on the network (the ``e2e`` ciphertext, or the
    plain kind), made once and kept in the key store before the first write: every resend is
    the same bytes, so the server stores it once (SPEC.md 7.3)."""

    conv: int
    cmid: str
    kind: str
    body: bytes
    to: tuple[int, ...] | None = None
    """None: worked out when it is sent (``send``'s default addressing)."""
    reply_to: int = 0
    wire_kind: str = ""
    wire_body: bytes = b""
    future: asyncio.Future[F.Ack] | None = None
    attempts: int = 0
    written_on: int = 0
    """The connection (``Client._generation``) this was last written on."""

    def stored(self) -> bytes:
        to = None if self.to is None else list(self.to)
        return _ENCODER.encode(
            _Stored(
                conv=self.conv,
                kind=self.kind,
                body=self.body,
                to=to,
                reply_to=self.reply_to,
                wire_kind=self.wire_kind,
                wire_body=self.wire_body,
            )
        )

    @classmethod
    def restored(cls, cmid: str, data: bytes) -> _Pending:
        e = msgspec.msgpack.decode(data, type=_Stored)
        to = None if e.to is None else tuple(e.to)
        return cls(e.conv, cmid, e.kind, e.body, to, e.reply_to, e.wire_kind, e.wire_body)


_ENCODER = msgspec.msgpack.Encoder()


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


@dataclass
class _Invocation:
    conv: int
    bot: int
    future: asyncio.Future[Message]


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
        self.urls: tuple[str, ...] = (url,) if isinstance(url, str) else tuple(url)
        """Every node of the service; after a drop the client tries the next one in turn."""
        if not self.urls:
            raise ValueError("at least one server URL is needed")
        for u in self.urls:
            if not u.startswith(("ws://", "wss://")):
                raise ValueError(f"not a WebSocket URL: {u!r} (chatd's is ws://HOST:PORT{WS_PATH})")
        self._url_index = 0
        self.keystore = keystore or KeyStore.memory()
        self.reconnect = reconnect
        self.request_timeout = request_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(max_events)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[F.Frame]] = {}
        self._outbox: dict[str, _Pending] = {
            cmid: _Pending.restored(cmid, data) for cmid, data in self.keystore.outbox()
        }
        """Sent, not acknowledged: mirrors the key store's outbox (a previous run's too)."""
        self._flushers: dict[int, asyncio.Task[None]] = {}
        """Per conversation, the task writing its outbox entries in order."""
        self._windows: dict[int, int] = {}
        """Conversations whose sends go one at a time for now (see ``SEND_WINDOW``)."""
        self._progress = asyncio.Event()
        """Set (and replaced) when an outbox entry is answered, or the connection goes."""
        self._generation = 0
        """Counts logins: an entry is written once per connection."""
        self._saved_cursors: dict[int, int] = dict(self.keystore.cursors)
        """The read positions on disk (what the application was handed)."""
        self._buffers: dict[int, dict[int, Message]] = {}
        self._syncing: set[int] = set()
        self._gap_fetching: set[int] = set()
        self._ws: ClientConnection | None = None
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        """Set by ``aclose``: pending park deadlines end at once."""
        self._challenge: asyncio.Future[F.Challenge] | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closed = False
        self._fatal: BaseException | None = None
        self._connected_once = False
        self.server_name = ""
        self.encrypt = encrypt
        """End-to-end encryption for every kind (on by default; off only for tests/tools)."""
        self.save_read_positions = save_read_positions
        """Commit a conversation's read position as ``events()`` hands its message over (a user
        never sees a message twice, even after a kill). Off for processes that keep what they
        handled themselves and want the rest again after a crash (the bot framework; also off
        whenever the account is a bot): then positions are saved on ``aclose``."""
        self.e2e = E2E(
            self.keystore,
            self._request,
            self._next_id,
            warn=lambda account, reason: self._emit(SecurityWarning(account, reason)),
        )
        self.members = Members(self.e2e, self._call, self._next_id)
        """The conversations' verified members (E2E.md 15): sending encrypts to them only."""
        self._member_warned: set[tuple[int, frozenset[int]]] = set()
        self._users: set[int] = set()
        """Accounts known not to be bots (``_is_bot``)."""
        self.payments = Payments(self)
        self.media = Media(self)
        """Files, images, voice notes (``send_file``, ``download``: chatclient/media.py)."""
        """Payments (``pay``, ``red_packet``, ...: chatclient/payments.py); verifies receipts."""
        self._views: dict[int, ConvView] = {}
        """Per conversation, its members and bots as last fetched (dropped on changes)."""
        self._bots: dict[int, dict[int, str]] = {}
        """Per conversation, its bot members -> access, kept current from system messages (for
        ``BotRemoved``, which needs to know the one that left was a bot)."""
        self.is_bot: bool | None = None
        """Whether this account is a bot (learned from the server's conversation listings)."""
        self._senders: OrderedDict[tuple[int, int], int] = OrderedDict()
        self._profiles: dict[int, F.BotProfile] = {}
        self._invocations: dict[str, _Invocation] = {}
        self._followers: dict[tuple[int, int], list[Event]] = {}
        self._joined: dict[int, int] = {}
        """Seq at which this account joined each conversation (keys exist only from there)."""
        self._parked: dict[int, list[Message]] = {}
        self._to_device: asyncio.Queue[F.ToDeviceEvent | F.ToDeviceItem] = asyncio.Queue(10_000)
        self._to_device_paused = False
        """Set when an item could not be processed: later live ones wait for the next fetch
        (which a recovery task makes soon, or the next login)."""
        self._recovering = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._supervisor = self._tasks.create_task(self._supervise(), name="chatclient")
        self._worker = self._tasks.create_task(self._to_device_worker(), name="chatclient-e2e")
        try:
            await self._wait_connected()
        except BaseException:
            await self.aclose()
            await self._tasks.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
        assert self._tasks is not None
        await self._tasks.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Close the connection and stop reconnecting; cursors are saved."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._worker.cancel()
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        self._fail_waiting(ClientClosed("client closed"))
        # What is not acknowledged stays in the key store: the next client sends it.
        self._fail_outbox(ClientClosed("client closed before the ack (kept in the outbox)"))
        for conv, parked in self._parked.items():
            if parked:  # not shown yet: resume from before them next time
                self.keystore.cursors[conv] = parked[0].seq - 1
        if self.keystore.registered:
            self.keystore.save()
        self.keystore.close()  # releases the file for the next client (same or another process)
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(None)

    async def _wait_connected(self) -> None:
        """Until the socket is open and (when the key store has a device) logged in.

        Raises ``ConnectionLost`` after ``request_timeout`` seconds, or as soon as the client
        stopped trying (reconnect disabled)."""
        deadline = asyncio.get_running_loop().time() + self.request_timeout
        while True:
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                raise ClientClosed("client closed")
            if self._ready.is_set() or (self._ws is not None and not self.keystore.registered):
                return
            if self._supervisor is not None and self._supervisor.done():
                raise ConnectionLost("not connected, and the client stopped reconnecting")
            if asyncio.get_running_loop().time() > deadline:
                raise ConnectionLost(f"could not connect to {self.url}")
            await asyncio.sleep(0.01)

    @property
    def url(self) -> str:
        """The node this client is connected to, or tries next."""
        return self.urls[self._url_index]

    @property
    def account(self) -> int:
        return self.keystore.account

    @property
    def device(self) -> int:
        return self.keystore.device

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    # ------------------------------------------------------------------ connection

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        while not self._closed:
            code: int | None = None
            reason = ""
            try:
                async with connect(
                    self.url,
                    subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                    compression=None,
                    max_size=None,
                    open_timeout=self.request_timeout,
                ) as ws:
                    self._ws = ws
                    self._challenge = asyncio.get_running_loop().create_future()
                    async with asyncio.TaskGroup() as tg:
                        pump = tg.create_task(self._pump(ws))
                        try:
                            await self._setup()
                            delay = self._backoff[0]
                        except (ConnectionLost, ConnectionClosed):
                            pass
                        except AuthError as exc:  # here, or the TaskGroup wraps it in a group
                            self._fatal = exc
                            await ws.close()
                        except (ChatClientError, TimeoutError) as exc:
                            # A slow or failing server while logging in or catching up: start
                            # again on a new connection (after the backoff), not end the client.
                            log.warning("could not resume the session, reconnecting: %r", exc)
                            await ws.close()
                        await pump
                    code, reason = ws.close_code, ws.close_reason or ""
            except AuthError as exc:
                self._fatal = exc
            except InvalidStatus as exc:
                code, reason = None, f"HTTP {exc.response.status_code}"
                if exc.response.status_code == 404:  # not a WebSocket endpoint there
                    reason += f": nothing at {self.url}; chatd serves clients on {WS_PATH}"
                if exc.response.status_code in (400, 403, 404):
                    self._fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason)
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                reason = repr(exc)
            finally:
                self._ws = None
                self._ready.clear()
                self._fail_waiting(ConnectionLost("connection lost"))
                self._progressed()
            if code == 1008 and self._fatal is None:
                self._fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason or "policy close")
            will_retry = self.reconnect and self._fatal is None and not self._closed
            # Next attempt on the next node: the one that dropped us may be gone (killed, or
            # draining with 1001); the others share its store, so the session resumes there.
            self._url_index = (self._url_index + 1) % len(self.urls)
            await self._emit(Disconnected(code, reason, will_retry))
            if not will_retry:
                self._fail_outbox(
                    self._fatal or ConnectionLost("not connected (kept in the outbox)")
                )
                with contextlib.suppress(asyncio.QueueFull):
                    self._events.put_nowait(None)
                return
            # Jittered within [delay/2, delay] (clients do not come back in step), doubling up
            # to backoff_max: a server back after an outage of any length is found within it.
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff[1])

    async def _setup(self) -> None:
        assert self._challenge is not None
        async with asyncio.timeout(self.request_timeout):
            challenge = await self._challenge
        self.server_name = challenge.server
        if not self.keystore.registered:
            return  # the application registers or links explicitly
        sig = self._login_sig(challenge)
        try:
            await self._request(F.Login(id=self._next_id(), device=self.keystore.device, sig=sig))
        except AuthError:
            raise
        await self._after_login()

    async def _after_login(self, *, first_device: bool = False) -> None:
        if self.keystore.get("server", "name") is None:  # pinned: later logins check it
            self.keystore.put("server", "name", self.server_name.encode())
        reconnect = self._connected_once
        self._connected_once = True
        self._generation += 1
        self._ready.set()
        await self._emit(Connected(self.keystore.account, self.keystore.device, reconnect))
        await self.payments.load_key()  # before any receipt is delivered: they are verified
        if self.encrypt:
            await self.e2e.setup(first_device=first_device)
            await self._fetch_to_device()  # sender keys first, so synced messages open
        await self.resync()
        for p in self._outbox.values():  # a backlog goes out in order, one at a time
            self._windows[p.conv] = 1
        self._kick()

    async def _resync_quietly(self) -> None:
        """The server asked for a resync (it lost live fan-out for a while)."""
        try:
            if self.encrypt:
                await self._fetch_to_device()
            await self.resync()
        except (ChatClientError, TimeoutError) as exc:
            log.info("resync deferred to the next reconnect: %s", exc)

    async def resync(self) -> None:
        """Fetch everything missed in every conversation, from the stored cursors."""
        convs = await self.conversations()
        if convs and self.is_bot is None:
            self.is_bot = any(info.access is not None for info in convs)
        for info in convs:
            self._joined[info.conv] = info.joined
            await self._sync(info.conv)

    async def _sync(self, conv: int) -> None:
        after = self.keystore.cursors.get(conv, 0)
        self._syncing.add(conv)
        try:
            await self._request(F.Sync(id=self._next_id(), conv=conv, after=after), F.Synced)
        finally:
            self._syncing.discard(conv)
        self._check_gap(conv)

    async def _pump(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                try:
                    frame = codec.decode_server(data)
                except ProtocolError as exc:
                    log.warning("bad frame from server: %s", exc)
                    continue
                await self._on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self._ready.clear()
            self._fail_waiting(ConnectionLost("connection lost"))

    async def _on_frame(self, frame: F.ServerFrame) -> None:
        match frame:
            case F.Deliver():
                await self._on_message(
                    Message(
                        frame.conv,
                        frame.seq,
                        frame.ts,
                        frame.sender,
                        frame.device,
                        frame.kind,
                        frame.body,
                        _content(frame.kind, frame.body),
                        own=frame.device == self.keystore.device,
                        to=tuple(frame.to),
                        cmid=frame.cmid or "",
                        e2e=not _plain(frame.kind),
                    )
                )
            case F.Ack():
                pending = self._settle(frame)
                self._resolve(frame)
                if pending is not None:
                    await self._on_message(
                        Message(
                            frame.conv,
                            frame.seq,
                            frame.ts,
                            self.keystore.account,
                            self.keystore.device,
                            pending.kind,
                            pending.body,
                            _content(pending.kind, pending.body),
                            own=True,
                            to=pending.to or (),
                            reply_to=pending.reply_to,
                            cmid=frame.cmid,
                        )
                    )
            case F.ToDeviceEvent():
                with contextlib.suppress(asyncio.QueueFull):  # else the next fetch gets it
                    self._to_device.put_nowait(frame)
            case F.Resync():
                if self._tasks is not None:
                    self._tasks.create_task(self._resync_quietly())
            case F.DeviceListChanged():
                self.e2e.forget_devices(frame.account)
                await self._emit(DevicesChanged(frame.account))
                if self.encrypt and self._tasks is not None:
                    self._tasks.create_task(self._check_devices(frame.account))
            case F.Challenge():
                if self._challenge is not None and not self._challenge.done():
                    self._challenge.set_result(frame)
            case F.Error():
                self._resolve(frame)
            case F.ReceiptEvent() | F.TypingEvent() | F.PresenceEvent():
                await self._emit(frame)
            case _:
                self._resolve(frame)

    # ------------------------------------------------------------------ ordering

    async def _on_message(self, m: Message) -> None:
        self._settle_own(m)
        cursor = self.keystore.cursors.get(m.conv, 0)
        if m.seq <= cursor:
            return
        if m.seq > cursor + 1:
            self._buffers.setdefault(m.conv, {})[m.seq] = m
            self._check_gap(m.conv)
            return
        await self._deliver(m)
        cursor = m.seq
        buffered = self._buffers.get(m.conv)
        while buffered and cursor + 1 in buffered:
            cursor += 1
            await self._deliver(buffered.pop(cursor))
        if buffered is not None and not buffered:
            del self._buffers[m.conv]
        self.keystore.cursors[m.conv] = cursor

    # ------------------------------------------------------------------ end-to-end

    async def _deliver(self, m: Message) -> None:
        """Hand the next message of a conversation (in seq order) to the application, decrypted.

        A message whose sender key has not arrived yet is parked, and the messages after it in
        the same conversation wait behind it, until the key comes (a to-device item) or
        ``PARK_SECONDS`` pass (then it is reported ``Undecryptable``)."""
        content = m.content
        if isinstance(content, kinds.SystemEvent) and content.event in MEMBERSHIP_EVENTS:
            # A member came or went, or a bot's access changed: new keys for the next send
            # (and the main key never goes to a bot with access "addressed", E2E.md 7.1).
            # Done at once, even behind a parked message: sending must not wait for it.
            if content.event != "created":  # a new conversation's member list is still true
                self._views.pop(m.conv, None)
            self.e2e.rotate(m.conv)
            self._bot_events(m, content)
        if isinstance(content, kinds.SystemEvent) and self.encrypt:
            self._membership_events(m, content)
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
            if self._tasks is not None:
                self._tasks.create_task(self._park_deadline(m.conv, m.seq))
            return
        await self._emit_message(opened)

    async def _emit_message(self, m: Message | Undecryptable) -> None:
        """Emit a message, then the events derived from it (``BotAdded``, ...)."""
        await self._emit(m)
        for follower in self._followers.pop((m.conv, m.seq), ()):
            await self._emit(follower)

    def _membership_events(self, m: Message, ev: kinds.SystemEvent) -> None:
        """Verify a membership message's signed entry (E2E.md 15): ``MembershipChanged`` right
        after it, or a ``SecurityWarning`` for a change no member signed (never applied)."""
        out = self.members.apply_live(m.conv, m.seq, ev)
        if out:
            self._followers.setdefault((m.conv, m.seq), []).extend(out)
        if m.conv in self.members.behind and self._tasks is not None and not self._closed:
            self._tasks.create_task(self._refresh_members(m.conv))

    async def _refresh_members(self, conv: int) -> None:
        # A log that does not verify was reported (SecurityWarning) by _verified_members.
        with contextlib.suppress(ChatClientError, ChatProtoError, TimeoutError):
            await self._verified_members(conv)

    async def _verified_members(self, conv: int) -> ML.ChainState:
        """The verified membership of ``conv`` (fetched and checked now), its new changes
        emitted as ``MembershipChanged``; ``UnverifiedMembership`` (also emitted as a
        ``SecurityWarning``) when it cannot be verified."""
        try:
            state, events = await self.members.verified(conv)
        except UnverifiedMembership as exc:
            await self._emit(SecurityWarning(0, exc.message, conv=conv))
            raise
        for event in events:
            await self._emit(event)
        return state

    def _bot_events(self, m: Message, ev: kinds.SystemEvent) -> None:
        """``BotAdded`` / ``BotRemoved`` from a membership message, emitted right after it."""
        bots = self._bots.setdefault(m.conv, {})
        out: list[Event] = []
        match ev.event:
            case "created" if self._tasks is not None and not self._closed:
                # Initial members are not announced one by one: the member list tells.
                self._tasks.create_task(self._announce_initial_bots(m.conv, m.seq, ev.actor))
            case "joined" if ev.access:
                bots[ev.account] = ev.access
                out.append(BotAdded(m.conv, ev.account, ev.actor, ev.access, m.seq))
            case "bot_access":
                bots[ev.account] = ev.access
            case "left" | "removed":
                gone = ev.actor if ev.event == "left" else ev.account
                known = gone in bots or (gone == self.keystore.account and self.is_bot)
                bots.pop(gone, None)
                if known:
                    out.append(BotRemoved(m.conv, gone, ev.actor, m.seq))
        if out:
            self._followers[(m.conv, m.seq)] = out

    async def _announce_initial_bots(self, conv: int, seq: int, creator: int) -> None:
        try:
            view = await self._view(conv)  # known already when this client created it
        except (ChatClientError, ChatProtoError, TimeoutError):
            return  # no longer a member, or offline: nothing to announce
        for bot, access in sorted(view.bots.items()):
            await self._emit(BotAdded(conv, bot, creator, access, seq))

    def _log_head(self, conv: int) -> tuple[int, bytes]:
        state = self.members.state(conv)
        return (0, b"") if state is None else (state.epoch, state.head)

    def _check_transcript(self, m: Message, d: Decrypted) -> None:
        """What the message says its sender had seen against what reached this device (E2E.md
        16): a ``TranscriptWarning`` right after it for each thing that does not add up. Not on
        a bot: one with access ``addressed`` misses messages by design."""
        if self.is_bot:
            return
        out: list[Event] = []
        if d.gap:
            warn = TranscriptWarning(
                m.conv, m.seq, m.sender, "iteration_gap", m.sender, m.device, d.gap
            )
            out.append(warn)
        if d.transcript is not None:
            found = self.e2e.observe(
                m.conv,
                m.seq,
                m.sender,
                m.device,
                m.body,
                d.transcript,
                joined=self._joined.get(m.conv, 0),
                log_head=self._log_head(m.conv),
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
        if self.members.sender_ok(m.conv, m.sender, m.seq) is False:
            reason = f"account {m.sender} is not a verified member of conversation {m.conv}"
            self._followers.setdefault((m.conv, m.seq), []).append(
                SecurityWarning(m.sender, reason, conv=m.conv)
            )
            return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
        try:
            d = self.e2e.decrypt(m.conv, m.seq, m.sender, m.device, m.body)
        except MissingKey as exc:
            if m.seq < self._joined.get(m.conv, 0):
                reason = "sent before you joined: its key was never shared with you"
                return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
            if m.device == self.keystore.device:
                # This device's own message, stored by the server while the client stopped
                # before its ack (a kill, a crash): a device never gets its own sender key, and
                # the plaintext is kept only once acked. No key is coming: do not wait for one.
                reason = "sent by this device, which stopped before the server acknowledged it"
                return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
            if self.e2e.given_up(m.conv, m.device, m.body):
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
        )

    async def _unpark(self, conv: int, *, give_up: int = 0) -> None:
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
                self.e2e.give_up(conv, head.device, head.body)
                opened = Undecryptable(conv, head.seq, head.sender, head.device, exc.message)
            parked.pop(0)
            if head.kind != kinds.WITHHELD:
                await self._emit_message(opened)
            if parked and parked[0].kind == E2E_KIND and self._tasks is not None:
                self._tasks.create_task(self._park_deadline(conv, parked[0].seq))
        self._parked.pop(conv, None)

    async def _park_deadline(self, conv: int, seq: int) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), PARK_SECONDS)
        if self._closed:
            return  # still parked: aclose kept the cursor before them for next time
        parked = self._parked.get(conv)
        if parked and parked[0].seq == seq:
            with contextlib.suppress(ChatClientError, TimeoutError):
                await self._fetch_to_device()  # offline now: give up on what we have
            await self._unpark(conv, give_up=seq)

    async def _to_device_worker(self) -> None:
        while not self._closed:
            item = await self._to_device.get()
            if self._to_device_paused:
                continue  # left queued on the server: the next login's fetch takes it
            if await self._handle_to_device(item):
                with contextlib.suppress(ChatClientError, TimeoutError):
                    await self._call(F.AckToDevice(id=self._next_id(), up_to=item.tid), F.Ok)
            else:
                self._pause_to_device()

    def _pause_to_device(self) -> None:
        """An item could not be processed (it stays queued on the server): later live items
        wait, and a task fetches the queue again soon, in order."""
        self._to_device_paused = True
        if not self._recovering and self._tasks is not None and not self._closed:
            self._recovering = True
            self._tasks.create_task(self._recover_to_device())

    async def _recover_to_device(self) -> None:
        """Fetch the to-device queue again, backing off, until it went through (instead of
        leaving sender keys waiting until the next login)."""
        pause = 0.2
        try:
            while self._to_device_paused and not self._closed:
                await asyncio.sleep(pause * (0.5 + random.random()))
                pause = min(pause * 2, 5.0)
                if not self._ready.is_set():
                    continue  # not logged in: retried once the connection is back
                try:
                    await self._fetch_to_device()
                except (ChatClientError, TimeoutError) as exc:
                    self._to_device_paused = True
                    log.info("to-device fetch failed, retrying: %s", exc)
        finally:
            self._recovering = False

    async def _handle_to_device(self, item: F.ToDeviceEvent | F.ToDeviceItem) -> bool:
        """Process one item once (by ``tid``). False when it could not be checked for now (the
        connection failed): it stays queued on the server and is not acknowledged."""
        done = int(self.keystore.get("e2e.device", "to_device_done") or b"0")
        if item.tid <= done:
            return True  # pushed live and fetched again: already processed
        conv: int | None = None
        try:
            received = await self.e2e.receive_to_device(item)
        except ChatProtoError as exc:
            await self._emit(
                SecurityWarning(item.sender, f"to-device item {item.tid} refused: {exc.message}")
            )
        except (ChatClientError, TimeoutError) as exc:
            log.warning("could not check the sender of to-device item %s: %s", item.tid, exc)
            return False
        else:
            conv = received.conv
            if received.master_key:
                await self._emit(MasterKeyReceived(item.device))
        self.keystore.put("e2e.device", "to_device_done", str(item.tid).encode())
        if conv is not None:
            await self._unpark(conv)
        return True

    async def _fetch_to_device(self) -> None:
        """Everything queued for this device while it was away, in order, then acknowledged."""
        self._to_device_paused = False
        after = 0
        while True:
            batch: F.ToDeviceBatch = await self._call(
                F.FetchToDevice(id=self._next_id(), after=after), F.ToDeviceBatch
            )
            acked = after
            for item in batch.events:
                if not await self._handle_to_device(item):
                    self._pause_to_device()
                    break
                after = item.tid
            if after > acked:
                await self._call(F.AckToDevice(id=self._next_id(), up_to=after), F.Ok)
            if not batch.more or after == acked:
                return

    async def _check_devices(self, account: int) -> None:
        """Verify an account's new device list at once, so a forged list or a changed master
        key is reported when announced, not only as a refused send."""
        try:
            await self.e2e.devices(account, refresh=True)
        except ChatProtoError as exc:
            await self._emit(SecurityWarning(account, exc.message))
        except (ChatClientError, TimeoutError):
            pass  # offline: the next send checks it

    async def _view(self, conv: int) -> ConvView:
        """The conversation's members and bots (fetched when not known or after a change).

        With encryption, the members are those of the verified membership log (E2E.md 15),
        never the server's list: a member the server lists but no member signed in is left
        out (and reported), one it dropped without a signature is kept."""
        view = self._views.get(conv)
        if view is None:
            info = await self.conversation(conv)
            if self.encrypt:
                state = await self._verified_members(conv)
                view = self._views[conv] = ConvView.verified(state, info)
                await self._compare_members(conv, info, state)
            view = self._views[conv]
        return view

    async def _compare_members(self, conv: int, info: F.ConvInfo, state: ML.ChainState) -> None:
        """Report, once, the accounts the server lists and the verified log does not (or the
        reverse): what a lying server shows, which this device does not encrypt to."""
        if len(info.members) < info.member_count:
            return  # a partial list (a large channel) says nothing
        listed = {m.account for m in info.members}
        if listed != set(state.accounts):  # a change may have landed between the two reads
            info = (await self._call(F.GetConv(id=self._next_id(), conv=conv), F.Conv)).info
            state = await self._verified_members(conv)
            listed = {m.account for m in info.members}
        diff = frozenset(listed ^ set(state.accounts))
        if diff and (conv, diff) not in self._member_warned:
            self._member_warned.add((conv, diff))
            extra = sorted(listed - set(state.accounts))
            missing = sorted(set(state.accounts) - listed)
            await self._emit(
                SecurityWarning(
                    extra[0] if extra else missing[0],
                    f"conversation {conv}: the server lists members {extra} no member signed in"
                    f" and leaves out verified members {missing}: encrypting to the verified"
                    " members only",
                    conv=conv,
                )
            )

    async def publish_devices(self, approve: Sequence[int] = (), remove: Sequence[int] = ()) -> int:
        """Sign the account's device list with its master key (on the device that holds it),
        adding the devices in ``approve`` (each only with the login key approved with
        ``approve_device``: else ``ChatProtoError`` and nothing is published) and leaving out
        those in ``remove``; returns the new version."""
        await self._wait_connected()
        return await self.e2e.publish_device_list(list(approve), list(remove))

    async def send_approval(self, device_key: bytes) -> None:
        """Send this device's approval of ``device_key`` (see ``approve_device``) to the
        account's other devices, end-to-end encrypted, so the one holding the master key can
        list the new device."""
        await self._wait_connected()
        self.e2e.approve(device_key)
        await self.e2e.request_device_change("approve", device_key)

    async def remove_device(self, device: int) -> None:
        """Remove ``device`` (lost, stolen, retired) from this account's device list, from any
        device of the account: the device holding the master key signs the list without it,
        and every sender key it held is replaced before the next message."""
        await self._wait_connected()
        await self.e2e.remove_device(device)

    async def transfer_master_key(self, device: int, *, keep: bool = True) -> None:
        """Hand the account's master key to ``device``, another device of this account (calling
        this is the user's approval). Only on the device that holds the key, and only to a
        device on the account's signed device list (``publish_devices`` first): otherwise it
        raises ``ChatProtoError`` and sends nothing. The key travels end-to-end encrypted over
        the pairwise session; the receiver checks it and emits ``MasterKeyReceived``, after which
        it can ``publish_devices``.

        ``keep`` (default True): this device keeps its copy too, so both can sign lists. With
        ``keep=False`` it deletes its copy as soon as the server accepted the item; if the
        receiving device is lost or refuses it, the account can no longer sign a device list,
        so pass it only when retiring this device."""
        await self._wait_connected()
        await self.e2e.transfer_master_key(device, keep=keep)

    def safety_number(self, account: int) -> str:
        """The 60-digit number both sides compare to verify each other's keys."""
        return self.e2e.safety_number(account)

    def verify(self, account: int) -> None:
        """Mark ``account``'s current keys as verified (after comparing safety numbers); also
        acknowledges a key change, which otherwise blocks sending to it."""
        self.e2e.set_verified(account, True)
        self.e2e._stale.discard(account)  # else the next send re-fetches the refused list

    def unverify(self, account: int) -> None:
        self.e2e.set_verified(account, False)

    def _check_gap(self, conv: int) -> None:
        """A message arrived past the cursor: fetch what lies between (unless a sync runs)."""
        if conv in self._syncing or conv in self._gap_fetching or not self._buffers.get(conv):
            return
        if self._tasks is None or self._ws is None:
            return
        self._gap_fetching.add(conv)
        self._tasks.create_task(self._fill_gap(conv))

    async def _fill_gap(self, conv: int) -> None:
        try:
            if conv not in self._joined:  # a conversation we were just added to
                await self.conversation(conv)
            while self._buffers.get(conv):
                cursor = self.keystore.cursors.get(conv, 0)
                first = min(self._buffers[conv])
                page = await self.fetch(conv, after=cursor, before=first, limit=MAX_PAGE)
                for m in page.messages:
                    await self._on_message(self._raw_message(conv, m))
                if not page.messages:
                    break  # nothing stored in between: the buffered ones are next
        except ChatClientError:
            pass  # the next reconnect's sync repairs it
        finally:
            self._gap_fetching.discard(conv)

    def message_from(self, conv: int, m: F.Message) -> Message | Undecryptable:
        """The event for a message of a fetched page (``fetch``), decrypted like live ones (from
        this device's own record of what it already read: a sender key opens each message once)."""
        raw = self._raw_message(conv, m)
        self._settle_own(raw)
        try:
            return self._open(raw, in_order=False)
        except MissingKey as exc:
            return Undecryptable(conv, m.seq, m.sender, m.device, exc.message)

    def _raw_message(self, conv: int, m: F.Message) -> Message:
        return Message(
            conv,
            m.seq,
            m.ts,
            m.sender,
            m.device,
            m.kind,
            m.body,
            _content(m.kind, m.body),
            own=m.device == self.keystore.device,
            to=tuple(m.to),
            cmid=m.cmid or "",
            e2e=not _plain(m.kind),
        )

    async def _emit(self, event: Event) -> None:
        if isinstance(event, Message):
            key = (event.conv, event.seq)
            self._senders[key] = event.sender
            if len(self._senders) > KNOWN_SENDERS:
                self._senders.popitem(last=False)
            if isinstance(event.content, kinds.MiniappResult):
                waiting = self._invocations.get(event.content.invocation_id)
                if (
                    waiting is not None
                    and waiting.bot == event.sender
                    and waiting.conv == event.conv
                    and not waiting.future.done()
                ):
                    waiting.future.set_result(event)
        await self._events.put(self.payments.checked(event))  # a bad receipt: a warning

    # ------------------------------------------------------------------ requests

    def _next_id(self) -> int:
        return next(self._ids) % 0xFFFFFFFF + 1

    async def _write(self, frame: F.Frame) -> None:
        """Write one frame with websockets' public ``send``.

        Raises ``ConnectionLost`` (never a websockets exception, whichever its version) when
        the connection is not open or closes meanwhile: a request then fails with the SDK's own
        error, and a send stays in the outbox and goes out again on the next connection, with
        its cmid (the server stores it once)."""
        ws = self._ws
        if ws is None or ws.state is not State.OPEN:
            # Checked first: ``send`` on a closing connection waits for the close to finish
            # before it raises, and this frame is lost with the connection anyway.
            raise ConnectionLost("not connected")
        try:
            await ws.send(codec.encode(frame))
        except (WebSocketException, OSError) as exc:
            # ConnectionClosed; InvalidState or ConcurrencyError from some versions.
            raise ConnectionLost(f"connection lost: {exc!r}") from None

    async def _request(self, frame: Any, expect: type[T] | None = None) -> Any:
        """Send a request and return its answer; a ``RATE_LIMITED`` refusal (the server did
        nothing) is repeated after a jittered, growing pause, up to ``request_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        pause = RATE_LIMIT_BACKOFF[0]
        while True:
            try:
                return await self._request_once(frame, expect)
            except RateLimited:
                wait = pause * (0.5 + random.random())
                if self._closed or loop.time() + wait > deadline:
                    raise
            await asyncio.sleep(wait)
            pause = min(pause * 2, RATE_LIMIT_BACKOFF[1])
            frame = msgspec.structs.replace(frame, id=self._next_id())

    async def _request_once(self, frame: Any, expect: type[T] | None = None) -> Any:
        rid: int = frame.id
        future: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            await self._write(frame)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the answer does, leaving a cancelled task running.
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        finally:
            self._waiting.pop(rid, None)
        if isinstance(reply, F.Error):
            raise error_for(reply.code, reply.msg)
        if expect is not None and not isinstance(reply, expect):
            raise RequestError(int(ErrorCode.INTERNAL), f"unexpected reply {type(reply).__name__}")
        return reply

    def _resolve(self, frame: F.Frame) -> None:
        rid = getattr(frame, "re", 0)
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(frame)

    def _fail_waiting(self, exc: BaseException) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()

    async def _call(self, frame: Any, expect: type[T]) -> T:
        await self._wait_connected()
        result: T = await self._request(frame, expect)
        return result

    # ------------------------------------------------------------------ accounts

    async def register(
        self, handle: str, name: str, *, bot: bool = False, device_name: str = "python"
    ) -> int:
        """Create an account with this device as its first device; returns the account id."""
        challenge = await self._current_challenge()
        key = self.keystore.key
        sig = self._login_sig(challenge)
        welcome: F.Welcome = await self._request(
            F.Register(
                id=self._next_id(),
                handle=handle,
                name=name,
                type="bot" if bot else "user",
                device_key=key.public_key,
                device_name=device_name,
                sig=sig,
            ),
            F.Welcome,
        )
        self._remember(welcome)
        await self._after_login(first_device=True)
        return welcome.account

    def _login_sig(self, challenge: F.Challenge) -> bytes:
        """This device's signature over the login payload of ``challenge`` (login, register
        and link all prove the key this way)."""
        pinned = self.keystore.get("server", "name")
        if pinned is not None and challenge.server != pinned.decode():
            # SPEC 6.1: sign only for the service this device belongs to, or a rogue server
            # relaying that service's challenge would get a login there.
            raise AuthError(
                int(ErrorCode.AUTH_FAILED),
                f"the server calls itself {challenge.server!r}, not {pinned.decode()!r} (the"
                " server this key store was registered with): not signing in",
            )
        key = self.keystore.key
        return key.sign(auth.login_payload(challenge.server, challenge.nonce, key.public_key))

    def approve_device(self, device_key: bytes) -> bytes:
        """Signature by this (logged-in) device approving ``device_key`` for its account. The
        approval is also recorded here: the master key lists a device only with a key approved
        so (on the device holding it, or sent there with ``send_approval``)."""
        self.e2e.approve(device_key)
        return self.keystore.key.sign(
            auth.device_approval_payload(self.server_name, self.keystore.account, device_key)
        )

    async def link(
        self, handle: str, approver: int, approval: bytes, *, device_name: str = "python"
    ) -> int:
        """Add this device to account ``handle`` with an existing device's approval."""
        challenge = await self._current_challenge()
        key = self.keystore.key
        sig = self._login_sig(challenge)
        welcome: F.Welcome = await self._request(
            F.LinkDevice(
                id=self._next_id(),
                handle=handle,
                device_key=key.public_key,
                device_name=device_name,
                approver=approver,
                approval=approval,
                sig=sig,
            ),
            F.Welcome,
        )
        self._remember(welcome)
        await self._after_login()
        return welcome.device

    async def _current_challenge(self) -> F.Challenge:
        if self.keystore.registered:
            raise ChatClientError("this key store already holds a registered device")
        await self._wait_connected()
        assert self._challenge is not None
        return await asyncio.wait_for(asyncio.shield(self._challenge), self.request_timeout)

    def _remember(self, welcome: F.Welcome) -> None:
        ks = self.keystore
        ks.account, ks.device, ks.handle = welcome.account, welcome.device, welcome.handle
        ks.save()

    async def lookup(self, handle: str) -> int:
        """The account id of ``handle`` (raises ``NotFound``)."""
        reply = await self._call(F.Lookup(id=self._next_id(), handle=handle.lstrip("@")), F.Account)
        return reply.account

    async def account_info(self, handle: str) -> F.Account:
        return await self._call(F.Lookup(id=self._next_id(), handle=handle.lstrip("@")), F.Account)

    # ------------------------------------------------------------------ conversations

    async def direct(self, account: int) -> int:
        """The direct conversation with ``account`` (created on first use)."""
        return (await self.create("direct", members=[account])).conv

    async def create(self, kind: str, title: str = "", members: Sequence[int] = ()) -> F.ConvInfo:
        """Create a conversation; with encryption, its membership log starts with this device's
        signed ``create`` entry (E2E.md 15), and the log is verified before this returns (for an
        existing direct conversation, the one its first member signed)."""

        def frame(entry: F.SignedEntry | None) -> F.CreateConv:
            return F.CreateConv(
                id=self._next_id(),
                kind=kind,  # type: ignore[arg-type]
                title=title,
                members=list(members),
                entry=entry,
            )

        if not self.encrypt:
            reply = await self._call(frame(None), F.Conv)
            self._learn(reply.info)
            return reply.info
        await self._wait_connected()
        try:  # first as if nobody were a bot (no look-ups); the server refuses a wrong access
            entry = self.members.sign_create(kind, await self._roster(kind, members, probe=False))
            reply = await self._call(frame(entry), F.Conv)
        except RequestError as exc:
            if exc.code != ErrorCode.INVALID:
                raise
            entry = self.members.sign_create(kind, await self._roster(kind, members, probe=True))
            reply = await self._call(frame(entry), F.Conv)
        self._learn(reply.info)
        state = await self._verified_members(reply.info.conv)
        self._views[reply.info.conv] = ConvView.verified(state, reply.info)
        return reply.info

    async def _roster(self, kind: str, members: Sequence[int], *, probe: bool) -> list[ML.Seat]:
        """The seats of a new conversation: this account (owner; ``member`` in a direct one)
        and ``members``, bots with their initial access (``probe``: asking which are bots;
        else none is, but this account if it knows it is one)."""
        me = self.account
        initial = "all" if kind == "direct" else "addressed"
        seats = []
        for account in sorted({me, *members}):
            if probe:
                bot = await self._is_bot(account)
            else:
                bot = account == me and bool(self.is_bot)
            role = "owner" if account == me and kind != "direct" else "member"
            access = initial if bot else ""
            seats.append(ML.Seat(account=account, role=role, access=access))  # type: ignore[arg-type]
        return seats

    async def _is_bot(self, account: int) -> bool:
        """Whether ``account`` is a bot, as the server says (its profile exists): what a signed
        entry states about the accounts it adds (E2E.md 15.5)."""
        if account in self._users:
            return False
        try:
            await self.bot_profile(account)
        except NotFound:
            self._users.add(account)
            return False
        return True

    async def _signed_change(self, conv: int, make: Any, op: str, **fields: Any) -> None:
        """Send a membership change; with encryption, signed on the verified head of the log
        (signed again on a fresher head when another change got there first)."""
        if not self.encrypt:
            await self._call(make(None), F.Ok)
            return
        for attempt in range(3):
            state = await self._verified_members(conv)
            entry = self.members.sign(state, op, **fields)
            try:
                await self._call(make(entry), F.Ok)
                return
            except Conflict:
                if attempt == 2:
                    raise

    async def conversations(self) -> list[F.ConvInfo]:
        """Every conversation of this account (the server answers in pages, SPEC.md 8.4)."""
        convs: list[F.ConvInfo] = []
        after = 0
        while True:
            page = await self._call(F.ListConvs(id=self._next_id(), after=after), F.Convs)
            convs += page.convs
            if not page.more or not page.convs:
                return convs
            after = page.convs[-1].conv

    async def conversation(self, conv: int) -> F.ConvInfo:
        """``conv`` with all its members (a large one's are read in pages)."""
        info = (await self._call(F.GetConv(id=self._next_id(), conv=conv), F.Conv)).info
        if len(info.members) < info.member_count:
            info = msgspec.structs.replace(info, members=await self.members.listed(conv))
        self._joined[conv] = info.joined
        self._learn(info)
        return info

    def _learn(self, info: F.ConvInfo) -> None:
        self.is_bot = info.access is not None  # present exactly when the caller is a bot
        if info.members:
            view = ConvView.of(info)
            if not self.encrypt:  # else only the verified membership log decides (``_view``)
                self._views[info.conv] = view
            self._bots[info.conv] = dict(view.bots)

    async def invite(self, conv: int, account: int) -> None:
        """Add ``account`` (owner or admin). Signed as a user's add first (no look-up); if the
        server says the account is a bot, as a bot's (access ``addressed``)."""
        try:
            await self._signed_change(
                conv,
                lambda e: F.Invite(id=self._next_id(), conv=conv, account=account, entry=e),
                "add",
                account=account,
            )
        except RequestError as exc:
            if not self.encrypt or exc.code != ErrorCode.INVALID or not await self._is_bot(account):
                raise
            await self._signed_change(
                conv,
                lambda e: F.Invite(id=self._next_id(), conv=conv, account=account, entry=e),
                "add",
                account=account,
                access="addressed",
            )

    async def remove(self, conv: int, account: int) -> None:
        await self._signed_change(
            conv,
            lambda e: F.Remove(id=self._next_id(), conv=conv, account=account, entry=e),
            "remove",
            account=account,
        )

    async def leave(self, conv: int) -> None:
        await self._signed_change(
            conv, lambda e: F.Leave(id=self._next_id(), conv=conv, entry=e), "leave"
        )

    async def set_role(self, conv: int, account: int, role: str) -> None:
        await self._signed_change(
            conv,
            lambda e: F.SetRole(
                id=self._next_id(),
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
        await self._call(F.Rename(id=self._next_id(), conv=conv, title=title), F.Ok)

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
        kind, body = kinds.encode_content(content)
        addressed = None if to is None else tuple(sorted(set(to)))
        return await self._enqueue(conv, kind, body, addressed, reply_to or 0, cmid)

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
        return await self._enqueue(conv, kind, body, tuple(sorted(set(to))), reply_to or 0, cmid)

    def pending(self, conv: int | None = None) -> list[Message]:
        """What is in the outbox (of ``conv``), oldest first, as own messages with seq 0
        (``cmid`` set): what a user interface shows as not sent yet."""
        return [
            Message(
                p.conv,
                0,
                0,
                self.keystore.account,
                self.keystore.device,
                p.kind,
                p.body,
                _content(p.kind, p.body),
                own=True,
                to=p.to or (),
                reply_to=p.reply_to,
                cmid=p.cmid,
            )
            for p in self._outbox.values()
            if conv is None or p.conv == conv
        ]

    def discard(self, cmid: str) -> bool:
        """Take a message out of the outbox (False when it is not there). It may still be
        stored if it was written before: its ack then finds nothing waiting."""
        p = self._outbox.pop(cmid, None)
        if p is None:
            return False
        self.keystore.outbox_delete(cmid)
        self._drained(p.conv)
        if p.future is not None and not p.future.done():
            p.future.set_exception(ClientClosed(f"message {cmid} discarded"))
        return True

    async def _enqueue(
        self,
        conv: int,
        kind: str,
        body: bytes,
        to: tuple[int, ...] | None,
        reply_to: int,
        cmid: str | None,
    ) -> F.Ack:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise ClientClosed("client closed")
        if to is not None and len(to) > MAX_TO:
            raise ChatClientError(f"a message is addressed to at most {MAX_TO} accounts")
        cmid = cmid or uuid.uuid4().hex
        p = self._outbox.get(cmid)
        if p is not None and p.conv != conv:
            raise ChatClientError(f"cmid {cmid} is waiting in the outbox for another conversation")
        if p is None:
            p = _Pending(conv, cmid, kind, body, to, reply_to)
            if to is not None and (kind == E2E_KIND or not self.encrypt):
                p.wire_kind, p.wire_body = kind, body  # sent as it is: nothing to work out
            self._outbox[cmid] = p
            self.keystore.outbox_put(cmid, p.stored())
        if p.future is None:
            p.future = asyncio.get_running_loop().create_future()
            p.future.add_done_callback(_retrieve)  # also when nobody waits any more
        self._kick(conv)
        # Shielded: a caller that stops waiting leaves the message in the outbox.
        return await asyncio.shield(p.future)

    def _kick(self, conv: int | None = None) -> None:
        """Start writing the outbox entries of ``conv`` (None: of every conversation)."""
        if not self._ready.is_set() or self._tasks is None or self._closed:
            return  # the next login kicks every conversation
        convs = {p.conv for p in self._outbox.values()} if conv is None else {conv}
        for c in convs:
            task = self._flushers.get(c)
            if task is None or task.done():
                self._flushers[c] = self._tasks.create_task(self._flush(c))

    async def _flush(self, conv: int) -> None:
        try:
            await self._write_outbox(conv)
        finally:  # one task per conversation with something to send, not per conversation ever
            if self._flushers.get(conv) is asyncio.current_task():
                del self._flushers[conv]

    async def _write_outbox(self, conv: int) -> None:
        """Write the outbox entries of ``conv`` not yet written on this connection, in order
        (working out their addressees and encrypting each once, first)."""
        generation = self._generation
        pause = RATE_LIMIT_BACKOFF[0]
        while self._ready.is_set() and generation == self._generation and not self._closed:
            todo = [p for p in self._outbox.values() if p.conv == conv]
            todo = [p for p in todo if p.written_on != generation]
            if not todo:
                return
            for p in todo:
                if self._outbox.get(p.cmid) is not p or generation != self._generation:
                    continue
                if not p.wire_kind:
                    try:
                        await self._prepare(p)
                    except (ConnectionLost, TimeoutError, RateLimited) as exc:
                        log.info("outbox: %s; trying again", exc)
                        await asyncio.sleep(pause * (0.5 + random.random()))
                        pause = min(pause * 2, RATE_LIMIT_BACKOFF[1])
                        break  # from the start: the order stays
                    except Exception as exc:  # refused (NotFound, a key change, ...): not sendable
                        if not isinstance(exc, ChatClientError | ChatProtoError):
                            log.exception("outbox: message %s cannot be sent", p.cmid)
                        self._refused(p, exc if isinstance(exc, ChatClientError) else None, exc)
                        continue
                if self._outbox.get(p.cmid) is not p or generation != self._generation:
                    continue
                if self._in_flight(conv, generation) >= self._windows.get(conv, SEND_WINDOW):
                    await self._progress.wait()
                    break  # from the start: an entry refused meanwhile goes again first
                if not await self._transmit(p, generation):
                    return  # the connection is going: the next login starts again

    def _in_flight(self, conv: int, generation: int) -> int:
        return sum(
            1 for p in self._outbox.values() if p.conv == conv and p.written_on == generation
        )

    def _progressed(self) -> None:
        """Wake the outbox writers waiting for an answer (``SEND_WINDOW``)."""
        done, self._progress = self._progress, asyncio.Event()
        done.set()

    async def _prepare(self, p: _Pending) -> None:
        """Work out the addressees and encrypt; kept in the key store before the first write."""
        if p.to is None:
            content = _content(p.kind, p.body)
            reply_to = p.reply_to or None
            p.to = () if content is None else await self._addressees(p.conv, content, reply_to)
            if len(p.to) > MAX_TO:
                raise ChatClientError(f"a message is addressed to at most {MAX_TO} accounts")
        if self.encrypt and p.kind != E2E_KIND:
            view = await self._view(p.conv)
            bots = view.addressed_bots
            sealed = await self.e2e.encrypt(
                p.conv,
                p.kind,
                p.body,
                view.members,
                addressed_bots=bots,
                addressed=not bots.isdisjoint(p.to),
                reply_to=p.reply_to or None,
                log_head=self._log_head(p.conv),
            )
            wire = (E2E_KIND, sealed)
        else:
            wire = (p.kind, p.body)
        if self._outbox.get(p.cmid) is p:
            p.wire_kind, p.wire_body = wire
            self.keystore.outbox_put(p.cmid, p.stored())

    async def _transmit(self, p: _Pending, generation: int) -> bool:
        """Write one (re)send (False: the connection is lost); its ``Error``, if any, reaches
        ``_send_answered``."""
        rid = self._next_id()
        waiter: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        waiter.add_done_callback(lambda w: self._send_answered(rid, p.cmid, w))
        frame = F.Send(
            id=rid,
            conv=p.conv,
            cmid=p.cmid,
            kind=p.wire_kind,
            body=p.wire_body,
            to=list(p.to or ()),
        )
        try:
            await self._write(frame)
        except ConnectionLost:
            self._waiting.pop(rid, None)  # written again after the reconnect
            return False
        p.written_on = generation
        return True

    def _send_answered(self, rid: int, cmid: str, waiter: asyncio.Future[F.Frame]) -> None:
        """An ``Error`` for a send is final (except retryable codes, which the outbox repeats)."""
        self._waiting.pop(rid, None)
        if waiter.cancelled() or waiter.exception() is not None:
            return
        reply = waiter.result()
        if not isinstance(reply, F.Error):
            return
        pending = self._outbox.get(cmid)
        if pending is None:
            return
        if _retryable(reply.code):
            self._windows[pending.conv] = 1  # nothing overtakes it while it waits
            if self._tasks is not None and not self._closed:
                self._tasks.create_task(self._retry_later(pending))
            return
        self._refused(pending, error_for(reply.code, reply.msg))

    def _refused(
        self, p: _Pending, error: ChatClientError | None, cause: Exception | None = None
    ) -> None:
        """The server (or this client's checks) refused the message for good: it leaves the
        outbox, its sender's wait raises, and a ``SendFailed`` event says so."""
        if self._outbox.get(p.cmid) is not p:
            return
        del self._outbox[p.cmid]
        self.keystore.outbox_delete(p.cmid)
        self._drained(p.conv)
        exc: Exception = error or cause or ChatClientError("refused")
        code = error.code if isinstance(error, RequestError) else 0
        if p.future is not None and not p.future.done():
            p.future.set_exception(exc)
        if code == ErrorCode.CONFLICT:
            return  # this cmid is stored already (with other bytes, by an earlier run): not lost
        with contextlib.suppress(asyncio.QueueFull):
            self._events.put_nowait(SendFailed(p.conv, p.cmid, code, str(exc)))

    async def _retry_later(self, p: _Pending) -> None:
        """Send again after a rate-limit or overload refusal, with jittered backoff."""
        p.attempts += 1
        await asyncio.sleep(min(2.0, 0.05 * 2 ** min(p.attempts, 6)) * (0.5 + random.random()))
        if self._outbox.get(p.cmid) is p:
            p.written_on = 0
            self._progressed()
            self._kick(p.conv)

    def _settle(self, ack: F.Ack) -> _Pending | None:
        """``ack`` acknowledges an outbox entry: it leaves the outbox, its plaintext is kept
        (this device cannot decrypt its own message), its sender's wait returns ``ack``."""
        p = self._outbox.get(ack.cmid)
        if p is None or p.conv != ack.conv:
            return None
        del self._outbox[ack.cmid]
        self.keystore.outbox_delete(ack.cmid)
        self._drained(p.conv)
        if p.wire_kind == E2E_KIND and p.kind != E2E_KIND:
            self.e2e.remember_own(ack.conv, ack.seq, p.kind, p.body, p.reply_to)
        if p.future is not None and not p.future.done():
            p.future.set_result(ack)
        return p

    def _drained(self, conv: int) -> None:
        """An entry of ``conv`` left the outbox: wake its writer; the whole window again once
        nothing of ``conv`` is left."""
        self._progressed()
        if conv in self._windows and not any(p.conv == conv for p in self._outbox.values()):
            del self._windows[conv]

    def _settle_own(self, m: Message) -> None:
        """A message of this device that is still in the outbox came back (a sync, a gap fetch
        or a resync can bring it before its ack): it is stored, so it is acknowledged, and its
        plaintext is known (else this device could never open it: no device gets its own sender
        key). Matched by cmid, and by its bytes, so only the very message written is taken."""
        if not (m.own and m.cmid):
            return
        p = self._outbox.get(m.cmid)
        if p is not None and p.wire_kind == m.kind and p.wire_body == m.body:
            self._settle(F.Ack(re=0, conv=m.conv, cmid=m.cmid, seq=m.seq, ts=m.ts))

    def _fail_outbox(self, exc: BaseException) -> None:
        """Nobody waits on this client any more: the waits end with ``exc``; the messages stay
        in the key store for the next client."""
        for p in self._outbox.values():
            if p.future is not None and not p.future.done():
                p.future.set_exception(exc)
        self._outbox.clear()
        self._windows.clear()
        self._progressed()

    async def fetch(
        self, conv: int, *, after: int = 0, before: int | None = None, limit: int = 100
    ) -> F.Messages:
        """One page of stored history (ascending). ``before`` pages backwards."""
        return await self._call(
            F.Fetch(id=self._next_id(), conv=conv, after=after, before=before, limit=limit),
            F.Messages,
        )

    async def history(
        self, conv: int, *, before: int | None = None, limit: int = 50
    ) -> list[Message | Undecryptable]:
        if not before:
            before = (await self.conversation(conv)).last_seq + 1
        # A page holds what fits in a frame (SPEC.md 7.5): page on until ``limit`` or the start.
        got: list[F.Message] = []
        while len(got) < limit and before > 1:
            page = await self.fetch(conv, before=before, limit=limit - len(got))
            got[:0] = page.messages
            if not page.more or not page.messages:
                break
            before = page.messages[0].seq
        return [self.message_from(conv, m) for m in got if m.kind != kinds.WITHHELD]

    async def mark_read(self, conv: int, seq: int) -> None:
        await self._call(F.Receipt(id=self._next_id(), conv=conv, type="read", seq=seq), F.Ok)

    async def mark_delivered(self, conv: int, seq: int) -> None:
        await self._call(F.Receipt(id=self._next_id(), conv=conv, type="delivered", seq=seq), F.Ok)

    async def typing(self, conv: int, on: bool = True) -> None:
        await self._wait_connected()
        await self._write(F.Typing(conv=conv, on=on))

    async def presence(self, accounts: Sequence[int]) -> list[F.PresenceInfo]:
        reply = await self._call(
            F.GetPresence(id=self._next_id(), accounts=list(accounts)), F.PresenceList
        )
        return reply.presence

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

    async def _addressees(
        self, conv: int, content: kinds.Content, reply_to: int | None
    ) -> tuple[int, ...]:
        """``send``'s default ``to`` (see ``chatclient.addressing``)."""
        if isinstance(content, kinds.MiniappInvoke):
            bot = await self._bot_for_app(conv, content.app)
            return (bot,) if bot else ()
        if not isinstance(content, kinds.Text) and not reply_to:
            return ()
        view = await self._view(conv)
        if view.kind == "direct" or not view.bots:
            return ()  # a bot in a direct conversation reads everything anyway
        reply_sender = await self._sender_of(conv, reply_to) if reply_to else 0
        text = content.text if isinstance(content, kinds.Text) else ""
        commands: dict[int, Collection[str] | None] = {}
        if bare_command(text):  # which bots there answer it? their profiles tell
            for bot in view.bots:
                if bot != self.account:
                    commands[bot] = await self._declared_commands(bot)
        return addressees(
            text,
            me=self.account,
            handles=view.handles,
            bots=view.bots.keys(),
            reply_sender=reply_sender,
            commands=commands,
        )

    async def _declared_commands(self, bot: int) -> frozenset[str] | None:
        """The commands ``bot`` declares (None: it published no profile, or it cannot be read
        now: then a bare command is sent to it too, rather than lost)."""
        try:
            profile = await self.bot_profile(bot)
        except (ChatClientError, TimeoutError):
            return None
        if not profile.updated_at and not profile.commands:
            return None
        return frozenset(c.name for c in profile.commands)

    async def _sender_of(self, conv: int, seq: int) -> int:
        sender = self._senders.get((conv, seq))
        if sender is None:
            try:
                sender = (await self.message(conv, seq)).sender
            except ChatClientError:
                sender = 0
        return sender

    async def _bot_for_app(self, conv: int, app: str) -> int:
        """The bot member of ``conv`` whose mini-app is ``app`` (0: none): the only bot there,
        else the one whose profile's manifest is named ``app``."""
        bots = sorted((await self._view(conv)).bots)
        if len(bots) == 1:
            return bots[0]
        for bot in bots:
            with contextlib.suppress(ChatClientError):
                manifest = (await self.bot_profile(bot)).manifest
                if manifest is not None and manifest.name == app:
                    return bot
        return 0

    # ------------------------------------------------------------------ bots (SPEC.md 16)

    async def set_bot_profile(
        self, commands: Sequence[F.BotCommand], manifest: F.Manifest | None = None
    ) -> None:
        """Publish this bot's commands and mini-app manifest (replacing the previous profile;
        bots do it after every login). ``Forbidden`` for a user account."""
        await self._call(
            F.SetBotProfile(id=self._next_id(), commands=list(commands), manifest=manifest), F.Ok
        )
        self._profiles.pop(self.account, None)

    async def bot_profile(self, account: int, *, refresh: bool = False) -> F.BotProfile:
        """A bot's profile (kept for the session; ``refresh`` reads it again). ``NotFound``
        when ``account`` is not a bot."""
        profile = None if refresh else self._profiles.get(account)
        if profile is None:
            profile = await self._call(
                F.GetBotProfile(id=self._next_id(), account=account), F.BotProfile
            )
            self._profiles[account] = profile
        return profile

    async def set_bot_access(self, conv: int, bot: int, access: str) -> None:
        """Let bot member ``bot`` of group or channel ``conv`` receive every message (``all``)
        or only those addressed to it (``addressed``, the default). Owner or admin only."""
        if access not in ("all", "addressed"):
            raise ValueError("access is 'all' or 'addressed'")
        if self.encrypt and (await self._view(conv)).bots.get(bot) == access:
            return  # nothing to change (and nothing to sign)
        await self._signed_change(
            conv,
            lambda e: F.SetBotAccess(
                id=self._next_id(),
                conv=conv,
                account=bot,
                access=access,  # type: ignore[arg-type]
                entry=e,
            ),
            "access",
            account=bot,
            access=access,
        )

    async def add_bot(self, conv: int, bot: int | str) -> int:
        """Invite a bot (an account id or ``@handle``) into group or channel ``conv`` (owner or
        admin); it starts with access ``addressed``. Returns the bot's account id."""
        account = await self.lookup(bot) if isinstance(bot, str) else bot
        await self.invite(conv, account)
        return account

    async def bots(self, conv: int) -> dict[int, str]:
        """The bot members of ``conv`` -> their access."""
        return dict((await self._view(conv)).bots)

    # ------------------------------------------------------------------ mini-apps and shares

    async def invoke(
        self,
        conv: int,
        bot: int,
        app: str,
        action: str,
        params: Mapping[str, str | int | bool] | None = None,
        *,
        timeout: float = 30.0,  # noqa: ASYNC109 - when the invocation counts as failed (an event)
        resend_every: float | None = None,
        invocation_id: str | None = None,
    ) -> Message:
        """Invoke ``action`` of mini-app ``app`` of ``bot`` in ``conv`` and return the bot's
        ``miniapp.result`` message (its card; ``content.error`` set when the action failed).

        The invocation is addressed to the bot with a fresh id and sent again (same id: the bot
        answers it once) every ``resend_every`` seconds (default ``timeout / 3``) until its
        result arrives. After ``timeout`` seconds without one, an ``InvocationTimeout`` event is
        emitted and ``InvocationTimeoutError`` raised."""
        inv = invocation_id or uuid.uuid4().hex
        content = kinds.MiniappInvoke(
            invocation_id=inv, app=app, action=action, params=dict(params or {})
        )
        loop = asyncio.get_running_loop()
        waiting = _Invocation(conv, bot, loop.create_future())
        self._invocations[inv] = waiting
        every = resend_every if resend_every is not None else max(timeout / 3, 0.2)
        started = loop.time()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.send(conv, content, to=(bot,))
                    done, _ = await asyncio.wait({waiting.future}, timeout=every)
                    if done:
                        return waiting.future.result()
        except TimeoutError:
            waited = loop.time() - started
            await self._emit(InvocationTimeout(conv, bot, inv, app, action, waited))
            raise InvocationTimeoutError(inv, waited) from None
        finally:
            self._invocations.pop(inv, None)
            if not waiting.future.done():
                waiting.future.cancel()

    async def press(self, card: Message, button: kinds.Button | int, **kw: Any) -> Message:
        """Press a button of a bot's card (a ``miniapp.result``, or its index there): invoke its
        action, in the card's mini-app (or the button's ``app`` of its ``bot``), in the card's
        conversation (the direct one with another bot that is not a member there). ``kw`` as
        for ``invoke``."""
        result = card.content
        if not isinstance(result, kinds.MiniappResult):
            raise ChatClientError("only a bot's card has buttons")
        if isinstance(button, int):
            if not 0 <= button < len(result.buttons):
                raise ChatClientError(f"the card has {len(result.buttons)} button(s)")
            button = result.buttons[button]
        bot = button.bot or card.sender
        app = button.app
        if not app:
            manifest = (await self.bot_profile(bot)).manifest
            if manifest is None:
                raise ChatClientError(f"account {bot} has no mini-app")
            app = manifest.name
        conv = card.conv
        if bot not in (await self._view(conv)).bots:
            conv = await self.direct(bot)
        return await self.invoke(conv, bot, app, button.action, button.params, **kw)

    async def open_share(self, share: kinds.Share, conv: int | None = None, **kw: Any) -> Message:
        """Open a shared mini-app card: invoke its action in ``conv`` (default: the direct
        conversation with its bot). ``kw`` as for ``invoke``."""
        if not (share.bot and share.app and share.action):
            raise ChatClientError("this share is not a mini-app card")
        target = conv if conv is not None else await self.direct(share.bot)
        return await self.invoke(target, share.bot, share.app, share.action, share.params, **kw)

    async def pay_order(self, result: Message, *, ttl: float = 600.0) -> Receipt:
        """Pay the order on a bot's ``miniapp.result`` card: a ``pay`` to the bot naming the
        order's ``request_id``, for exactly its amount (the server refuses any other). Returns
        the verified receipt. Paying the same order again (a retry, after a crash too: the
        signed intent is kept in the key store) is the same posting: the ledger moves the money
        once and the answer is the first receipt (``replay``)."""
        card = result.content
        if not isinstance(card, kinds.MiniappResult) or card.order is None:
            raise ChatClientError("this message is not a card with an order")
        if result.own or result.sender == 0:
            raise ChatClientError("an order is paid to the bot that sent it")
        return await self.payments.pay_order(result.conv, result.sender, card.order, ttl=ttl)

    async def share(self, conv: int, card: kinds.Share, **kw: Any) -> F.Ack:
        """Share a card (a link, an image reference, or a mini-app card) into ``conv``,
        end-to-end encrypted like any message."""
        kw.setdefault("to", ())
        return await self.send(conv, card, **kw)

    async def forward(self, message: Message, to_conv: int, *, origin: bool = True) -> F.Ack:
        """Forward ``message`` (as this client decrypted it) into ``to_conv``, with attribution
        (its author and time; ``origin``: its conversation and seq too). It is encrypted again
        for the target conversation: the server sees one more ``e2e`` message. A forwarded
        message keeps its original attribution when forwarded again."""
        if message.kind in (E2E_KIND, kinds.WITHHELD):
            raise ChatClientError("only a decrypted message can be forwarded")
        fwd = message.content
        if not isinstance(fwd, kinds.Forward):
            fwd = kinds.Forward(
                sender=message.sender,
                ts=message.ts,
                kind=message.kind,
                body=message.body,
                conv=message.conv,
                seq=message.seq,
            )
        if not origin:
            fwd = msgspec.structs.replace(fwd, conv=0, seq=0)
        blob = self.media.blob_of(fwd)  # a file: its blob becomes readable in to_conv (no upload)
        if blob:
            await self.media.attach(to_conv, blob)
        ack = await self.send(to_conv, fwd, to=())
        if blob:
            await self.media.attach(to_conv, blob, ack.seq)
        return ack

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

    # ------------------------------------------------------------------ events

    async def events(self) -> AsyncIterator[Event]:
        """Every event in order; ends when the client closes or stops for good.

        A conversation's read position is committed to the key store as its message is handed
        over here, so a process killed at any point does not show it again."""
        while True:
            event = await self._events.get()
            if event is None:
                if self._fatal is not None:
                    raise self._fatal
                return
            self._seen((event,))
            yield event

    def events_nowait(self) -> list[Event]:
        """The events queued now (their read positions committed in one transaction)."""
        out = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event is not None:
                out.append(event)
        self._seen(out)
        return out

    def _seen(self, events: Iterable[Event]) -> None:
        """Commit the read positions the application was just handed (one write per handover;
        none for events that do not move one)."""
        if not self.save_read_positions or self.is_bot:
            return
        moved: dict[int, int] = {}
        for ev in events:
            if isinstance(ev, Message | Undecryptable) and (
                ev.seq > self._saved_cursors.get(ev.conv, 0)
            ):
                moved[ev.conv] = max(ev.seq, moved.get(ev.conv, 0))
        if moved:
            self._saved_cursors.update(moved)
            self.keystore.save_cursors(moved)

    # ------------------------------------------------------------------ test hooks

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

    async def drop_connection(self) -> None:
        """Abort the socket as a network failure would (tests and demos): the client reconnects."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen (an outbox entry nobody waits for any more)."""
    if not future.cancelled():
        future.exception()


def _retryable(code: int) -> bool:
    try:
        return ErrorCode(code).retryable
    except ValueError:
        return False


def _plain(kind: str) -> bool:
    """A client kind sent outside ``e2e``: allowed, but nothing authenticates it (SPEC 9)."""
    return kind != E2E_KIND and kinds.client_may_send(kind)


def _content(kind: str, body: bytes) -> kinds.Content | None:
    try:
        return kinds.decode_content(kind, body)
    except ProtocolError:
        return None
