"""The chatd SDK client.

    async with Client("ws://127.0.0.1:8765/ws", KeyStore.open("alice.key")) as c:
        await c.register("alice", "Alice")          # first run only; later runs log in
        conv = await c.direct(await c.lookup("bob"))
        await c.send_text(conv, "hi")
        async for event in c.events(): ...

One supervisor task owns the connection: it connects, logs in with the device key, resyncs
every conversation from the stored cursors, resends unacknowledged sends with their original
cmid, then pumps frames until the socket drops, and reconnects with exponential backoff and
jitter. Given several URLs (the nodes of one service), each reconnect goes to the next one. Policy closes (1008) and failed logins stop it and surface as ``AuthError``.

Delivery to the application is exactly once and in seq order per conversation: the client keeps
a cursor per conversation (highest contiguous seq), drops repeats, buffers what arrives early and
fetches the gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

from chatproto import PROTOCOL_VERSION, auth, codec, kinds
from chatproto import frames as F
from chatproto.e2e.payload import E2E_KIND
from chatproto.errors import ChatProtoError, ErrorCode, ProtocolError
from chatproto.limits import MAX_PAGE
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from chatclient.e2e import E2E, MissingKey, content_of
from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    ConnectionLost,
    RequestError,
    error_for,
)
from chatclient.events import (
    Connected,
    DevicesChanged,
    Disconnected,
    Event,
    MasterKeyReceived,
    Message,
    SecurityWarning,
    Undecryptable,
)
from chatclient.keystore import KeyStore
from chatclient.payments import Payments, Receipt

log = logging.getLogger(__name__)
T = TypeVar("T", bound=F.Frame)

PARK_SECONDS = 10.0
"""How long a message waits for its sender key before it is reported as undecryptable."""
MEMBERSHIP_EVENTS = frozenset({"created", "joined", "left", "removed"})


@dataclass
class _Pending:
    conv: int
    cmid: str
    kind: str
    body: bytes
    future: asyncio.Future[F.Ack]
    attempts: int = 0
    plain_kind: str = ""
    plain_body: bytes = b""


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
        backoff_max: float = 10.0,
        encrypt: bool = True,
    ) -> None:
        self.urls: tuple[str, ...] = (url,) if isinstance(url, str) else tuple(url)
        """Every node of the service; after a drop the client tries the next one in turn."""
        if not self.urls:
            raise ValueError("at least one server URL is needed")
        self._url_index = 0
        self.keystore = keystore or KeyStore.memory()
        self.reconnect = reconnect
        self.request_timeout = request_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._events: asyncio.Queue[Event | None] = asyncio.Queue(max_events)
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[F.Frame]] = {}
        self._outbox: dict[str, _Pending] = {}
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
        self.e2e = E2E(self.keystore, self._request, self._next_id)
        self.payments = Payments(self)
        """Payments (``pay``, ``red_packet``, ...: chatclient/payments.py); verifies receipts."""
        self._members: dict[int, tuple[int, ...]] = {}
        self._joined: dict[int, int] = {}
        """Seq at which this account joined each conversation (keys exist only from there)."""
        self._parked: dict[int, list[Message]] = {}
        self._to_device: asyncio.Queue[F.ToDeviceEvent | F.ToDeviceItem] = asyncio.Queue(10_000)
        self._to_device_paused = False
        """Set when an item could not be processed: later live ones wait for the next fetch."""

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
        for p in self._outbox.values():
            if not p.future.done():
                p.future.set_exception(ClientClosed("client closed before the ack"))
        self._outbox.clear()
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
                        await pump
                    code, reason = ws.close_code, ws.close_reason or ""
            except AuthError as exc:
                self._fatal = exc
            except InvalidStatus as exc:
                code, reason = None, f"HTTP {exc.response.status_code}"
                if exc.response.status_code in (400, 403, 404):
                    self._fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason)
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                reason = repr(exc)
            finally:
                self._ws = None
                self._ready.clear()
                self._fail_waiting(ConnectionLost("connection lost"))
            if code == 1008 and self._fatal is None:
                self._fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason or "policy close")
            will_retry = self.reconnect and self._fatal is None and not self._closed
            # Next attempt on the next node: the one that dropped us may be gone (killed, or
            # draining with 1001); the others share its store, so the session resumes there.
            self._url_index = (self._url_index + 1) % len(self.urls)
            await self._emit(Disconnected(code, reason, will_retry))
            if not will_retry:
                if self._fatal is not None:
                    for p in self._outbox.values():
                        if not p.future.done():
                            p.future.set_exception(self._fatal)
                    self._outbox.clear()
                with contextlib.suppress(asyncio.QueueFull):
                    self._events.put_nowait(None)
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
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
        reconnect = self._connected_once
        self._connected_once = True
        self._ready.set()
        await self._emit(Connected(self.keystore.account, self.keystore.device, reconnect))
        await self.payments.load_key()  # before any receipt is delivered: they are verified
        if self.encrypt:
            await self.e2e.setup(first_device=first_device)
            await self._fetch_to_device()  # sender keys first, so synced messages open
        await self.resync()
        for p in list(self._outbox.values()):
            self._transmit(p)

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
                    )
                )
            case F.Ack():
                pending = self._outbox.pop(frame.cmid, None)
                self._resolve(frame)
                if pending is not None:
                    if not pending.future.done():
                        pending.future.set_result(frame)
                    kind = pending.plain_kind or pending.kind
                    body = pending.plain_body if pending.plain_kind else pending.body
                    if pending.plain_kind:
                        self.e2e.remember_own(frame.conv, frame.seq, kind, body)
                    await self._on_message(
                        Message(
                            frame.conv,
                            frame.seq,
                            frame.ts,
                            self.keystore.account,
                            self.keystore.device,
                            kind,
                            body,
                            _content(kind, body),
                            own=True,
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
        parked = self._parked.get(m.conv)
        if parked:
            parked.append(m)
            return
        content = m.content
        if isinstance(content, kinds.SystemEvent) and content.event in MEMBERSHIP_EVENTS:
            self._members.pop(m.conv, None)
            self.e2e.rotate(m.conv)  # a member came or went: the next send uses a new key
        try:
            opened = self._open(m)
        except MissingKey:
            self._parked[m.conv] = [m]
            if self._tasks is not None:
                self._tasks.create_task(self._park_deadline(m.conv, m.seq))
            return
        await self._emit(opened)

    def _open(self, m: Message) -> Message | Undecryptable:
        if m.kind != E2E_KIND:
            return m
        try:
            d = self.e2e.decrypt(m.conv, m.seq, m.sender, m.device, m.body)
        except MissingKey as exc:
            if m.seq < self._joined.get(m.conv, 0):
                reason = "sent before you joined: its key was never shared with you"
                return Undecryptable(m.conv, m.seq, m.sender, m.device, reason)
            if self.e2e.given_up(m.conv, m.device, m.body):
                return Undecryptable(m.conv, m.seq, m.sender, m.device, exc.message)
            raise
        except ChatProtoError as exc:
            return Undecryptable(m.conv, m.seq, m.sender, m.device, exc.message)
        return Message(
            m.conv, m.seq, m.ts, m.sender, m.device, d.kind, d.body, content_of(d), m.own
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
            await self._emit(opened)
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
                self._to_device_paused = True

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

    async def _members_of(self, conv: int) -> tuple[int, ...]:
        members = self._members.get(conv)
        if members is None:
            info = await self.conversation(conv)
            members = self._members[conv] = tuple(m.account for m in info.members)
        return members

    async def publish_devices(self, approve: Sequence[int] = ()) -> int:
        """Sign the account's device list with its master key (on the device that holds it),
        adding the devices in ``approve``; returns the new version."""
        await self._wait_connected()
        return await self.e2e.publish_device_list(list(approve))

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
        try:
            return self._open(raw)
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
        )

    async def _emit(self, event: Event) -> None:
        await self._events.put(self.payments.checked(event))  # a bad receipt: a warning

    # ------------------------------------------------------------------ requests

    def _next_id(self) -> int:
        return next(self._ids) % 0xFFFFFFFF + 1

    def _write(self, frame: F.Frame) -> None:
        ws = self._ws
        if ws is None:
            raise ConnectionLost("not connected")
        ws.protocol.send_binary(codec.encode(frame))
        ws.send_data()

    async def _request(self, frame: Any, expect: type[T] | None = None) -> Any:
        rid: int = frame.id
        future: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            self._write(frame)
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
        key = self.keystore.key
        return key.sign(auth.login_payload(challenge.server, challenge.nonce, key.public_key))

    def approve_device(self, device_key: bytes) -> bytes:
        """Signature by this (logged-in) device approving ``device_key`` for its account."""
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
        reply = await self._call(
            F.CreateConv(id=self._next_id(), kind=kind, title=title, members=list(members)),  # type: ignore[arg-type]
            F.Conv,
        )
        return reply.info

    async def conversations(self) -> list[F.ConvInfo]:
        return (await self._call(F.ListConvs(id=self._next_id()), F.Convs)).convs

    async def conversation(self, conv: int) -> F.ConvInfo:
        info = (await self._call(F.GetConv(id=self._next_id(), conv=conv), F.Conv)).info
        self._joined[conv] = info.joined
        return info

    async def invite(self, conv: int, account: int) -> None:
        await self._call(F.Invite(id=self._next_id(), conv=conv, account=account), F.Ok)

    async def remove(self, conv: int, account: int) -> None:
        await self._call(F.Remove(id=self._next_id(), conv=conv, account=account), F.Ok)

    async def leave(self, conv: int) -> None:
        await self._call(F.Leave(id=self._next_id(), conv=conv), F.Ok)

    async def set_role(self, conv: int, account: int, role: str) -> None:
        await self._call(F.SetRole(id=self._next_id(), conv=conv, account=account, role=role), F.Ok)  # type: ignore[arg-type]

    async def rename(self, conv: int, title: str) -> None:
        await self._call(F.Rename(id=self._next_id(), conv=conv, title=title), F.Ok)

    # ------------------------------------------------------------------ messages

    async def send(
        self,
        conv: int,
        content: kinds.Content,
        *,
        cmid: str | None = None,
    ) -> F.Ack:
        """Send typed content; returns the ``Ack`` once the server has stored it.

        Survives reconnects: until acked, the send is repeated with the same ``cmid`` after every
        reconnect, and the server stores it once. Bound the wait with ``asyncio.timeout``."""
        kind, body = kinds.encode_content(content)
        return await self.send_raw(conv, kind, body, cmid=cmid)

    async def send_text(self, conv: int, text: str, **kw: Any) -> F.Ack:
        return await self.send(conv, kinds.Text(text=text), **kw)

    async def send_raw(
        self,
        conv: int,
        kind: str,
        body: bytes,
        *,
        cmid: str | None = None,
    ) -> F.Ack:
        if self._fatal is not None:
            raise self._fatal
        if self._closed:
            raise ClientClosed("client closed")
        cmid = cmid or uuid.uuid4().hex
        future: asyncio.Future[F.Ack] = asyncio.get_running_loop().create_future()
        if self.encrypt and kind != E2E_KIND:
            await self._wait_connected()
            sealed = await self.e2e.encrypt(conv, kind, body, await self._members_of(conv))
            pending = _Pending(
                conv, cmid, E2E_KIND, sealed, future, plain_kind=kind, plain_body=body
            )
        else:
            pending = _Pending(conv, cmid, kind, body, future)
        self._outbox[cmid] = pending
        if self._ready.is_set():
            self._transmit(pending)
        try:
            return await future
        finally:
            # Acked, refused, or the caller gave up (cancelled, e.g. by asyncio.timeout).
            self._outbox.pop(cmid, None)

    def _transmit(self, p: _Pending) -> None:
        """Write one (re)send; its ``Error``, if any, reaches ``_send_answered``."""
        rid = self._next_id()
        waiter: asyncio.Future[F.Frame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = waiter
        waiter.add_done_callback(lambda w: self._send_answered(rid, p.cmid, w))
        try:
            self._write(F.Send(id=rid, conv=p.conv, cmid=p.cmid, kind=p.kind, body=p.body))
        except ConnectionLost:
            self._waiting.pop(rid, None)

    def _send_answered(self, rid: int, cmid: str, waiter: asyncio.Future[F.Frame]) -> None:
        """An ``Error`` for a send is final (except retryable codes, which the outbox repeats)."""
        self._waiting.pop(rid, None)
        if waiter.cancelled() or waiter.exception() is not None:
            return
        reply = waiter.result()
        if not isinstance(reply, F.Error):
            return
        if _retryable(reply.code):
            pending = self._outbox.get(cmid)
            if pending is not None and self._tasks is not None and not self._closed:
                self._tasks.create_task(self._retry_later(pending))
            return
        pending = self._outbox.pop(cmid, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error_for(reply.code, reply.msg))

    async def _retry_later(self, p: _Pending) -> None:
        """Send again after a rate-limit or overload refusal, with jittered backoff."""
        p.attempts += 1
        await asyncio.sleep(min(2.0, 0.05 * 2 ** min(p.attempts, 6)) * (0.5 + random.random()))
        if self._outbox.get(p.cmid) is p and self._ready.is_set():
            self._transmit(p)

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
        page = (
            await self.fetch(conv, before=before, limit=limit)
            if before
            else await self.fetch(
                conv, before=(await self.conversation(conv)).last_seq + 1, limit=limit
            )
        )
        return [self.message_from(conv, m) for m in page.messages]

    async def mark_read(self, conv: int, seq: int) -> None:
        await self._call(F.Receipt(id=self._next_id(), conv=conv, type="read", seq=seq), F.Ok)

    async def mark_delivered(self, conv: int, seq: int) -> None:
        await self._call(F.Receipt(id=self._next_id(), conv=conv, type="delivered", seq=seq), F.Ok)

    async def typing(self, conv: int, on: bool = True) -> None:
        await self._wait_connected()
        self._write(F.Typing(conv=conv, on=on))

    async def presence(self, accounts: Sequence[int]) -> list[F.PresenceInfo]:
        reply = await self._call(
            F.GetPresence(id=self._next_id(), accounts=list(accounts)), F.PresenceList
        )
        return reply.presence

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
        """Every event in order; ends when the client closes or stops for good."""
        while True:
            event = await self._events.get()
            if event is None:
                if self._fatal is not None:
                    raise self._fatal
                return
            yield event

    def events_nowait(self) -> list[Event]:
        out = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event is not None:
                out.append(event)
        return out

    # ------------------------------------------------------------------ test hooks

    async def drop_connection(self) -> None:
        """Abort the socket as a network failure would (tests and demos): the client reconnects."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()


def _retryable(code: int) -> bool:
    try:
        return ErrorCode(code).retryable
    except ValueError:
        return False


def _content(kind: str, body: bytes) -> kinds.Content | None:
    try:
        return kinds.decode_content(kind, body)
    except ProtocolError:
        return None
