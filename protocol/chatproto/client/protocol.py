"""``ClientProtocol``: the chatd.v1 client as a state machine, with no I/O (SPEC.md 13).

Bytes and time go in, events and bytes come out, in the shape of python-websockets' sans-I/O
``Protocol`` and h11::

    core = ClientProtocol(cursors=saved_cursors)
    core.connection_made()                      # the WebSocket is open
    for message in websocket:                   # each binary message is one frame
        core.receive_data(message, now=clock())
        for event in core.events_received():
            match event: ...                    # Challenged -> core.login(...), Delivery, ...
        for data in core.data_to_send():
            websocket.send(data)
    core.connection_lost()                      # then reconnect: connection_made() again

The core spans connections: cursors and the outbox survive a drop, requests do not. Time is a
parameter (``now``), never read: ``handle_timer(now)`` runs what is due and ``next_timer()``
says when to call it next, so tests drive time by hand (aioquic's ``handle_timer``). Jitter
comes from a ``random.Random`` passed in, seeded in tests.

What the core decides, and only here: request ids and where each answer goes; the login
steps and the check of the server's name (SPEC.md 6.1); cursors and the receive rule; the
sync/live boundary (7.4); the outbox, its order and its resends by cmid (7.3, 13 steps 5-6).
What the driver decides: when to connect and to whom, backoff between connections, what to
sync, whether to fill gaps, how to show things.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from chatproto import auth, codec, kinds
from chatproto import frames as F
from chatproto.client import events as E
from chatproto.client.cursors import Cursors, Received
from chatproto.client.outbox import Entry, Outbox, new_cmid
from chatproto.client.requests import Purpose, PurposeKind, Requests
from chatproto.errors import ChatProtoError, ErrorCode, ProtocolError
from chatproto.limits import MAX_PAGE


class State(Enum):
    """Where a connection is in the handshake (SPEC.md 6.1)."""

    CLOSED = "closed"
    """No connection (before the first, or after ``connection_lost``)."""
    CONNECTING = "connecting"
    """The WebSocket is open; the challenge has not arrived."""
    CHALLENGED = "challenged"
    """The challenge arrived: register, log in or link."""
    AUTHENTICATING = "authenticating"
    """A register, login or link is written and not answered."""
    OPEN = "open"
    """Logged in as ``account``/``device``."""


class Signer(Protocol):
    """A device key (``chatproto.e2e.primitives.SigningKey`` is one)."""

    @property
    def public_key(self) -> bytes: ...

    def sign(self, data: bytes) -> bytes: ...


class WrongServer(ChatProtoError):
    """The challenge names another service than the one this client belongs to: nothing was
    signed (SPEC.md 6.1). Close the connection and tell the user."""

    code = ErrorCode.AUTH_FAILED


class NotConnected(ChatProtoError):
    """A frame was to be written while no connection is open (the driver's mistake)."""

    code = ErrorCode.INTERNAL


LOGIN_FRAMES = (F.Register, F.Login, F.LinkDevice)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a client uses the protocol's freedoms. The defaults are an application's."""

    ordered: bool = True
    """Hand messages over in seq order (``Cursors``); False: as they arrive."""
    strict_order: bool = True
    """Outbox: sends of a conversation stored in the order sent (``Outbox``)."""
    send_window: int | None = 64
    """Sends of one conversation in flight at a time (None: no limit)."""
    settle_from_history: bool = True
    """A message of this device that comes back by sync or fetch before its ack (same cmid,
    same bytes) is stored: it acknowledges its outbox entry."""


class ClientProtocol:
    """One chatd client device: its connection state, requests, cursors and outbox."""

    def __init__(
        self,
        *,
        cursors: Mapping[int, int] | None = None,
        policy: Policy = Policy(),
        expected_server: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.expected_server = expected_server
        """The service's name (pinned at the first login); None: not known yet."""
        self.state = State.CLOSED
        self.challenge: F.Challenge | None = None
        self.welcome: F.Welcome | None = None
        """The last login's answer (kept across connections: the same device)."""
        self._server_clock: float | None = None
        """The server's time (``welcome.server_time``, seconds) minus the caller's clock then;
        None before the first login."""
        self.connections = 0
        """Connections made so far (the current one's number while connected)."""
        self.requests = Requests()
        self.cursors: Cursors[E.Item] = Cursors(cursors, ordered=policy.ordered)
        self.outbox = Outbox(strict_order=policy.strict_order, window=policy.send_window)
        self._sending = False
        """``start_sending`` was called on this connection."""
        self._filling: set[int] = set()
        """Conversations with a gap fetch in flight."""
        self._rng = rng or random.Random()
        self._events: list[E.Event] = []
        self._out: list[bytes] = []
        self._now = 0.0

    # ------------------------------------------------------------------ the I/O boundary

    def connection_made(self, now: float = 0.0) -> None:
        """A WebSocket to the server is open: the challenge comes next."""
        self._now = now
        self.connections += 1
        self.state = State.CONNECTING
        self.challenge = None  # ``welcome`` stays: the device is the same on every connection
        self._sending = False

    def connection_lost(self, now: float = 0.0) -> None:
        """The connection is gone. Every waiting request gets ``Unanswered``; syncs and gap
        fetches end (the next connection catches up); the outbox keeps everything."""
        self._now = now
        self.state = State.CLOSED
        self._sending = False
        self._filling.clear()
        self.cursors.end_all_syncs()
        self.outbox.connection_lost()
        self._out.clear()
        for rid, purpose in self.requests.drop_all():
            if purpose.kind in ("app", "login", "sync"):
                self._events.append(E.Unanswered(rid, "connection_lost"))

    def receive_data(self, data: bytes, now: float = 0.0) -> None:
        """One binary WebSocket message from the server. Never raises: bytes that are not a
        frame become a ``BadFrame`` event."""
        try:
            frame = codec.decode_server(data)
        except ProtocolError as exc:
            self._events.append(E.BadFrame(exc))
            return
        self.receive_frame(frame, now)

    def events_received(self) -> list[E.Event]:
        """The events since the last call, in order (the list is handed over, not copied)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[bytes]:
        """The frames to write, in order, each one binary WebSocket message."""
        out, self._out = self._out, []
        return out

    def handle_timer(self, now: float) -> None:
        """Run what is due at ``now``: request deadlines, deferred resends."""
        self._now = now
        for rid, purpose in self.requests.expired(now):
            if purpose.kind == "sync":
                self.cursors.end_sync(purpose.conv, None)
            elif purpose.kind == "gap":
                self._filling.discard(purpose.conv)
            if purpose.kind in ("app", "login", "sync"):
                self._events.append(E.Unanswered(rid, "timeout"))
        for conv in self.outbox.retry_due(now):
            self._flush(conv)

    def next_timer(self) -> float | None:
        """When ``handle_timer`` has something to do next (None: nothing pending)."""
        times = [t for t in (self.requests.next_deadline(), self.outbox.next_retry()) if t]
        return min(times, default=None)

    @property
    def account(self) -> int:
        return 0 if self.welcome is None else self.welcome.account

    @property
    def device(self) -> int:
        return 0 if self.welcome is None else self.welcome.device

    # ------------------------------------------------------------------ writing frames

    def next_id(self) -> int:
        return self.requests.next_id()

    def _write(self, frame: F.Frame) -> None:
        if self.state is State.CLOSED:
            raise NotConnected("not connected")
        self._out.append(codec.encode(frame))

    def request(self, frame: F.Frame, *, timeout: float | None = None) -> int:
        """Write a request made with an id from ``next_id()``; its answer comes as ``Answer``
        (or ``Unanswered``). Returns the id. ``NotConnected`` when no connection is open."""
        rid: int = frame.id  # type: ignore[attr-defined]
        kind: PurposeKind = "login" if isinstance(frame, LOGIN_FRAMES) else "app"
        deadline = None if timeout is None else self._now + timeout
        self._write(frame)
        self.requests.wait(rid, Purpose(kind, deadline=deadline))
        if kind == "login":
            self.state = State.AUTHENTICATING
        return rid

    def request_with(self, make: Callable[[int], F.Frame], *, timeout: float | None = None) -> int:
        """``request(make(next_id()))``: for frames built around their id."""
        return self.request(make(self.next_id()), timeout=timeout)

    def notify(self, frame: F.Frame) -> None:
        """Write a frame that has no answer (``typing``)."""
        self._write(frame)

    # ------------------------------------------------------------------ login (SPEC.md 6.1)

    def login_signature(self, key: Signer) -> bytes:
        """The device's signature over this connection's challenge, after checking that the
        challenge names the expected service (``WrongServer`` otherwise: sign nothing)."""
        challenge = self.challenge
        if challenge is None:
            raise NotConnected("no challenge on this connection yet")
        if self.expected_server is not None and challenge.server != self.expected_server:
            raise WrongServer(
                f"the server calls itself {challenge.server!r}, not {self.expected_server!r}"
                " (the server this device belongs to): not signing in"
            )
        return key.sign(auth.login_payload(challenge.server, challenge.nonce, key.public_key))

    def login(self, device: int, key: Signer) -> int:
        """Log in as a known device."""
        return self.request(
            F.Login(id=self.next_id(), device=device, sig=self.login_signature(key))
        )

    def register(
        self, handle: str, name: str, key: Signer, *, bot: bool = False, device_name: str = ""
    ) -> int:
        """Create an account with ``key`` as its first device."""
        return self.request(
            F.Register(
                id=self.next_id(),
                handle=handle,
                name=name,
                type="bot" if bot else "user",
                device_key=key.public_key,
                device_name=device_name or "device",
                sig=self.login_signature(key),
            )
        )

    def link(
        self, handle: str, key: Signer, approver: int, approval: bytes, *, device_name: str = ""
    ) -> int:
        """Add ``key`` as a device of account ``handle`` with another device's approval."""
        return self.request(
            F.LinkDevice(
                id=self.next_id(),
                handle=handle,
                device_key=key.public_key,
                device_name=device_name or "device",
                approver=approver,
                approval=approval,
                sig=self.login_signature(key),
            )
        )

    # ------------------------------------------------------------------ catching up

    def sync(self, conv: int) -> int | None:
        """Catch ``conv`` up from its cursor (SPEC.md 7.4); its end comes as ``Synced``. None
        when a sync of ``conv`` is running already (one at a time, 7.4)."""
        if self.cursors.syncing(conv):
            return None
        rid = self.next_id()
        after = self.cursors.cursor(conv)
        self._write(F.Sync(id=rid, conv=conv, after=after))
        self.cursors.begin_sync(conv)
        self.requests.wait(rid, Purpose("sync", conv=conv))
        return rid

    def fill_gap(self, conv: int) -> int | None:
        """Fetch what is missing below the messages buffered past the cursor of ``conv``,
        page by page, until the gap is closed (None: no gap, or a fetch is running)."""
        gap = self.cursors.gap(conv)
        if gap is None or conv in self._filling or self.state is not State.OPEN:
            return None
        after, before = gap
        rid = self.next_id()
        self._write(F.Fetch(id=rid, conv=conv, after=after, before=before, limit=MAX_PAGE))
        self._filling.add(conv)
        self.requests.wait(rid, Purpose("gap", conv=conv))
        return rid

    # ------------------------------------------------------------------ sending

    def send(
        self,
        conv: int,
        cmid: str,
        kind: str = "",
        body: bytes = b"",
        *,
        to: Iterable[int] = (),
        ready: bool = True,
        data: object = None,
    ) -> Entry:
        """Put a message in the outbox and write it if the connection and the window allow.
        ``ready=False``: its wire bytes come later (``prepare``). A cmid already in the
        outbox returns that entry (``ValueError`` when it waits in another conversation)."""
        entry = self.outbox.add(Entry(conv, cmid, kind, body, tuple(to), ready, data))
        self._flush(conv)
        return entry

    def new_cmid(self, now: float) -> str:
        """A fresh cmid for a message made at ``now`` (the caller's clock, as given to
        ``receive_data``): ``outbox.new_cmid`` of the server's time then, estimated from the last
        ``welcome``, so that cmids sort by when they were made without telling the server
        anything of this device's own clock (SPEC.md 7.3); random before the first login."""
        if self._server_clock is None:
            return new_cmid(None)
        return new_cmid(now + self._server_clock)

    def prepare(
        self, cmid: str, kind: str, body: bytes, to: Iterable[int] = (), fc: bytes | None = None
    ) -> None:
        """Give an outbox entry its wire bytes (same bytes on every resend) and its franking
        commitment (SPEC.md 18.7)."""
        entry = self.outbox.prepare(cmid, kind, body, tuple(to), fc)
        if entry is not None:
            self._flush(entry.conv)

    def discard(self, cmid: str) -> Entry | None:
        """Take a message out of the outbox (it may be stored already if it was written)."""
        entry = self.outbox.discard(cmid)
        if entry is not None:
            self._flush(entry.conv)
        return entry

    def start_sending(self) -> None:
        """Write the outbox on this connection (after catching up: SPEC.md 13 step 6)."""
        if self.state is not State.OPEN or self._sending:
            return
        self._sending = True
        self.outbox.connection_made(self.connections)
        for conv in self.outbox.convs_to_write():
            self._flush(conv)

    @property
    def sending(self) -> bool:
        return self._sending

    def _flush(self, conv: int) -> None:
        if not self._sending or not self.outbox.has_unwritten(conv):
            return  # the common case after an ack: nothing waits to be written
        for entry in self.outbox.writable(conv):
            rid = self.next_id()
            if entry.to:
                frame = F.Send(
                    id=rid,
                    conv=conv,
                    cmid=entry.cmid,
                    kind=entry.kind,
                    body=entry.body,
                    to=list(entry.to),
                    fc=entry.fc,
                )
            else:
                frame = F.Send(
                    id=rid,
                    conv=conv,
                    cmid=entry.cmid,
                    kind=entry.kind,
                    body=entry.body,
                    fc=entry.fc,
                )
            self._write(frame)
            self.outbox.written(entry)
            self.requests.wait(rid, Purpose("send", conv=conv, cmid=entry.cmid))

    # ------------------------------------------------------------------ receiving

    def receive_frame(self, frame: F.ServerFrame, now: float = 0.0) -> None:
        """``receive_data`` for a frame the driver decoded itself."""
        self._now = now
        match frame:
            case F.Deliver():
                self._receive_stored(frame.conv, frame.seq, frame)
            case F.Ack():
                self._on_ack(frame)
            case F.Challenge():
                self.challenge = frame
                if self.state is State.CONNECTING:
                    self.state = State.CHALLENGED
                self._events.append(E.Challenged(frame))
            case F.Error() if frame.re == 0:
                self._events.append(E.Pushed(frame))
            case F.Error():
                self._on_answer(frame.re, frame)
            case (
                F.ReceiptEvent()
                | F.TypingEvent()
                | F.PresenceEvent()
                | F.DeviceListChanged()
                | F.ToDeviceEvent()
                | F.Resync()
                | F.RequestEvent()
                | F.InvitationAnswered()
                | F.JoinRequestEvent()
                | F.PostEvent()
                | F.CommentEvent()
                | F.ReactionsEvent()
                | F.TipEvent()
                | F.SubscriptionEvent()
                | F.MomentEvent()
                | F.MomentCommentEvent()
            ):
                self._events.append(E.Pushed(frame))
            case _:
                self._on_answer(frame.re, frame)

    def _receive(self, conv: int, seq: int, item: E.Item) -> None:
        got: Received[E.Item] = self.cursors.receive(conv, seq, item)
        if got.duplicate:
            self._events.append(E.Duplicate(conv, seq, item, got.overlap))
            return
        self._events.extend(E.Delivery(conv, s, it) for s, it in got.ready)
        if got.gap and conv not in self._filling:
            gap = self.cursors.gap(conv)
            if gap is not None:
                self._events.append(E.Gap(conv, *gap))

    def _own_join(self, conv: int, m: F.Deliver | F.Message) -> None:
        """History starts at this account's own join (SPEC.md 7.8): its ``joined`` message
        moves the cursor to just below it, as nothing before it will ever come."""
        if m.kind != "system" or m.sender != 0 or m.seq <= self.cursors.cursor(conv) + 1:
            return
        try:
            event = kinds.decode_content("system", m.body)
        except ChatProtoError:
            return
        if (
            isinstance(event, kinds.SystemEvent)
            and event.event == "joined"
            and event.account == self.account
        ):
            self.cursors.advance_to(conv, m.seq - 1)

    def settle_from_history(self, conv: int, seq: int, m: F.Deliver | F.Message) -> E.Acked | None:
        """A message of this device still in the outbox came back (sync, fetch, another node)
        before its ack: it is stored, so it is acknowledged (returned, not queued as an event:
        a driver reading history calls this itself and needs the answer at once). Matched by
        cmid and by its bytes, so only the very message written is taken."""
        if not (self.policy.settle_from_history and m.cmid and m.device == self.device):
            return None
        entry = self.outbox.get(m.cmid)
        if entry is None or entry.conv != conv or (entry.kind, entry.body) != (m.kind, m.body):
            return None
        self.outbox.acked(conv, m.cmid)
        self._flush(conv)
        return E.Acked(F.Ack(re=0, conv=conv, cmid=m.cmid, seq=seq, ts=m.ts), entry)

    def _receive_stored(self, conv: int, seq: int, m: F.Deliver | F.Message) -> None:
        """A stored message (pushed, synced or fetched): its outbox entry settled if it is this
        device's own, then the receive rule."""
        acked = self.settle_from_history(conv, seq, m)
        if acked is not None:
            self._events.append(acked)
        self._own_join(conv, m)
        self._receive(conv, seq, m)

    def _on_ack(self, ack: F.Ack) -> None:
        self.requests.answered(ack.re)
        entry = self.outbox.acked(ack.conv, ack.cmid)
        if entry is None:
            self._events.append(E.AckedAgain(ack))
            return
        self._events.append(E.Acked(ack, entry))
        self._receive(ack.conv, ack.seq, E.Own(ack, entry))
        self._flush(ack.conv)

    def _on_answer(self, rid: int, frame: F.ServerFrame) -> None:
        purpose = self.requests.answered(rid)
        if purpose is None:
            if isinstance(frame, F.Error):
                self._events.append(E.Pushed(frame))
            return  # an answer nobody waits for (timed out): dropped
        match purpose.kind:
            case "app":
                self._events.append(E.Answer(rid, frame))
            case "login":
                self._on_login_answer(rid, frame)
            case "send":
                self._on_send_error(purpose, frame)
            case "sync":
                self._on_sync_answer(rid, purpose.conv, frame)
            case "gap":
                self._on_gap_page(purpose.conv, frame)

    def _on_login_answer(self, rid: int, frame: F.ServerFrame) -> None:
        if isinstance(frame, F.Welcome):
            self.welcome = frame
            self._server_clock = frame.server_time / 1000 - self._now
            self.state = State.OPEN
            if self.expected_server is None and self.challenge is not None:
                self.expected_server = self.challenge.server  # pinned (SPEC.md 6.1)
            self._events.append(E.LoggedIn(frame))
        else:
            self.state = State.CHALLENGED
            if isinstance(frame, F.Error):
                self._events.append(E.LoginFailed(frame))
        self._events.append(E.Answer(rid, frame))

    def _on_send_error(self, purpose: Purpose, frame: F.ServerFrame) -> None:
        """A send is answered by ``ack`` (``_on_ack``) or by ``error``: retryable codes are
        resent later with the same cmid, any other is final (SPEC.md 13 step 5)."""
        entry = self.outbox.get(purpose.cmid)
        if not isinstance(frame, F.Error) or entry is None:
            return
        if retryable(frame.code):
            retry_at = self.outbox.defer(entry.cmid, self._now, self._rng.random())
            if retry_at is not None:
                self._events.append(E.SendDeferred(entry, frame, retry_at))
            return
        self.outbox.refused(entry.cmid)
        self._events.append(E.SendFailed(entry, frame))
        self._flush(entry.conv)

    def _on_sync_answer(self, rid: int, conv: int, frame: F.ServerFrame) -> None:
        if isinstance(frame, F.Synced):
            self.cursors.end_sync(conv, frame.seq)
            self._events.append(E.Synced(conv, frame.seq, rid))
            gap = self.cursors.gap(conv)
            if gap is not None and conv not in self._filling:
                self._events.append(E.Gap(conv, *gap))
        else:
            self.cursors.end_sync(conv, None)
            error = (
                frame if isinstance(frame, F.Error) else F.Error(re=rid, code=ErrorCode.INTERNAL)
            )
            self._events.append(E.SyncFailed(conv, rid, error))

    def _on_gap_page(self, conv: int, frame: F.ServerFrame) -> None:
        """One page of a gap fetch: each message goes through the receive rule; the next page
        is asked for while the gap stays and the server had something."""
        self._filling.discard(conv)
        if not isinstance(frame, F.Messages):
            return  # refused or failed: the next sync repairs it
        for m in frame.messages:
            self._receive_stored(conv, m.seq, m)
        if frame.messages:
            self.fill_gap(conv)


def retryable(code: int) -> bool:
    """Whether the same request may succeed later unchanged (SPEC.md 5). Unknown codes are
    final."""
    try:
        return ErrorCode(code).retryable
    except ValueError:
        return False
