"""chatd.v1 protocol clients for load generation (no SDK): one WebSocket per account, real
Ed25519 device keys, pipelined requests, open-model sends written straight into the socket
buffer, and exact accounting of acks and deliveries.

The protocol itself (login steps, request ids, cursors and the receive rule, the sync/live
boundary, the outbox and its resends by cmid, retryable errors) is ``chatproto.client``'s
sans-I/O core, the one the SDK drives too; this module is its asyncio driver plus the counting.
The core runs with a load generator's policy: messages are counted as they arrive (not held
for order), gaps are not fetched (a fetched message is not a live delivery), and every send is
written at once (an open model never waits for the server).

Every message this tool sends carries a 28-byte header in its body::

    magic b"CLD1" | run id u32 | intended send time (time.time_ns) i64 | message id u64 | client u32

so a receiver measures delivery latency from the *intended* send time (no coordinated omission)
and counts only this run's messages. With kind ``e2e`` the rest of the body is random bytes (as
opaque as a ciphertext) and its size is that of a real sender-key ciphertext (scenario.body_size);
no cryptography is done. Wall-clock nanoseconds are used so that workers in other
processes (and, with synchronised clocks, other hosts) share one time base.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
import time
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import msgspec
from chatproto import auth, codec
from chatproto import client as core
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode, ProtocolError
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from .hist import Latency

MAGIC = b"CLD1"
HEADER = struct.Struct("<4sIqQI")


def with_id(cls: Any, **fields: Any) -> Callable[[int], Any]:
    """A frame maker for ``Client.request``: ``cls(id=rid, **fields)``."""
    return lambda rid: cls(id=rid, **fields)


def error_name(code: int | str) -> str:
    """chatproto's name of a wire error code (the number itself for a code it does not know)."""
    try:
        return ErrorCode(int(code)).name
    except ValueError:
        return str(code)


class Fast(msgspec.Struct):
    """Only the fields the hot path reads; msgspec skips the rest of the map."""

    t: str
    re: int = 0
    conv: int = 0
    seq: int = 0
    cmid: str | None = None
    body: bytes = b""
    code: int = 0


_fast = msgspec.msgpack.Decoder(Fast)


_OPAQUE = os.urandom(2**16)  # filler of e2e bodies: incompressible, like ciphertext


def make_body(
    run: int, intended_ns: int, msg_id: int, client: int, size: int, opaque: bool = False
) -> bytes:
    head = HEADER.pack(MAGIC, run, intended_ns, msg_id, client)
    if size <= len(head):
        return head
    n = size - len(head)
    return head + (_OPAQUE[:n] if opaque else b"x" * n)


def run_prefix(run: int) -> bytes:
    return HEADER.pack(MAGIC, run, 0, 0, 0)[:8]


class Stats:
    """Counters of one process (a worker, or replay): per interval, and cumulative totals.

    Latencies go into interval histograms (every sample, for the live p50/p99) and into total
    histograms (only messages whose intended send time is at or after ``steady_from_ns``).

    Counted apart from deliveries and duplicates, because the SPEC allows them: a connection's
    own message coming back in a ``sync`` (after a reconnect: ``own``), and a seq the
    connection already had that a ``sync`` it asked for sends again (``sync_overlaps``, SPEC
    7.4 point 4). ``ack_log`` (replay) keeps (conv, seq, time, client, message id) of every
    first ack, ``deliver_log`` the deliveries per message id.
    """

    def __init__(self, run: int = 0, steady_from_ns: int = 0) -> None:
        self.run = run
        self.prefix = run_prefix(run)
        self.steady_from_ns = steady_from_ns
        self.ack_i, self.del_i = Latency(), Latency()
        self.ack_t, self.del_t = Latency(), Latency()
        self.sent = self.acks = self.delivers = self.reconnects = self.drops = 0
        self.dup_delivers = self.dup_acks = self.failed = 0
        self.own = self.sync_overlaps = 0
        self.errors: dict[int, int] = {}
        self.frames_sent: dict[str, int] = {}
        self.frames_recv: dict[str, int] = {}
        self.acked_by_conv: dict[int, int] = {}
        self.conns = self.conns_peak = self.conns_low = 0
        self.cum: dict[str, int] = {}
        self.cum_errors: dict[int, int] = {}
        self.ack_log: list[tuple[int, int, int, int, int]] | None = None
        self.deliver_log: dict[int, int] | None = None  # message id -> deliveries (replay)

    def error(self, code: int) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def conn_delta(self, d: int) -> None:
        """A connection logged in (+1) or went away (-1): the interval's peak and low follow."""
        self.conns += d
        self.conns_peak = max(self.conns_peak, self.conns)
        self.conns_low = min(self.conns_low, self.conns)

    def snapshot(self) -> dict[str, Any]:
        """This interval's counters and encoded histograms; resets the interval part."""
        snap: dict[str, Any] = {
            "sent": self.sent,
            "acks": self.acks,
            "delivers": self.delivers,
            "dup_delivers": self.dup_delivers,
            "dup_acks": self.dup_acks,
            "failed": self.failed,
            "reconnects": self.reconnects,
            "drops": self.drops,
            "own": self.own,
            "sync_overlaps": self.sync_overlaps,
            "errors": {str(k): v for k, v in self.errors.items()},
            "conns": max(self.conns_peak, self.conns),  # the most held during the interval
            "conns_low": min(self.conns_low, self.conns),
            "ack_hist": self.ack_i.encode(),
            "del_hist": self.del_i.encode(),
        }
        self.conns_peak = self.conns_low = self.conns
        for k in CUM_KEYS:
            self.cum[k] = self.cum.get(k, 0) + snap[k]
        for code, n in self.errors.items():
            self.cum_errors[code] = self.cum_errors.get(code, 0) + n
        self.sent = self.acks = self.delivers = self.reconnects = self.drops = 0
        self.dup_delivers = self.dup_acks = self.failed = 0
        self.own = self.sync_overlaps = 0
        self.errors = {}
        self.ack_i.reset()
        self.del_i.reset()
        return snap


CUM_KEYS = (
    "sent", "acks", "delivers", "dup_delivers", "dup_acks", "failed", "reconnects", "own",
    "sync_overlaps",
)  # fmt: skip
"""Counters summed over intervals (and workers) into the totals."""


LOAD_POLICY = core.Policy(
    ordered=False, strict_order=False, send_window=None, settle_from_history=False
)
"""A load generator's use of the protocol (see the module docstring)."""


def _ws_options() -> dict[str, Any]:
    return {
        "subprotocols": [Subprotocol("chatd.v1")],
        "compression": None,
        "max_size": 2**20,
        "max_queue": 4096,
        "ping_interval": None,
        "open_timeout": 60,
        "close_timeout": 2,
    }


def write_nowait(ws: ClientConnection, data: bytes) -> bool:
    """Put one frame into ``ws``'s socket buffer without awaiting; False if it cannot be.

    This bypasses websockets' ``send`` on purpose: ``send`` is a coroutine that waits while the
    socket's write buffer drains, and an open-model load generator must write each frame at its
    intended time whatever the server does (no coordinated omission). The frame goes into the
    connection's sans-I/O ``protocol`` (websockets' public ``send_binary``) and ``send_data``
    hands it to the transport, as ``send`` itself does before it waits."""
    try:
        ws.protocol.send_binary(data)
        ws.send_data()
    except Exception:
        return False
    return True


class _CursorView(MutableMapping[int, int]):
    """``Client.cursor``: the core's cursors as a dict (conv -> highest seq with no gap)."""

    def __init__(self, cursors: core.Cursors[core.Item]) -> None:
        self._c = cursors

    def __getitem__(self, conv: int) -> int:
        if conv not in self._c.convs():
            raise KeyError(conv)
        return self._c.cursor(conv)

    def __setitem__(self, conv: int, seq: int) -> None:
        self._c.reset(conv, seq)

    def __delitem__(self, conv: int) -> None:
        self._c.reset(conv, 0)

    def __iter__(self) -> Iterator[int]:
        return iter(self._c.convs())

    def __len__(self) -> int:
        return len(self._c.convs())


class _AheadView:
    """``Client.ahead``: only ``pop(conv)``, which forgets what is buffered above the cursor."""

    def __init__(self, cursors: core.Cursors[core.Item]) -> None:
        self._c = cursors

    def pop(self, conv: int, default: object = None) -> object:
        self._c.drop_buffered(conv)
        return default


class _SyncingView:
    """``Client.syncing``: conv -> ``after`` of the sync in progress."""

    def __init__(self, cursors: core.Cursors[core.Item]) -> None:
        self._c = cursors

    def __contains__(self, conv: object) -> bool:
        return isinstance(conv, int) and self._c.syncing(conv)

    def get(self, conv: int, default: int | None = None) -> int | None:
        after = self._c.sync_after(conv)
        return default if after is None else after


class _UnackedView(MutableMapping[str, tuple[int, bytes, int]]):
    """``Client.unacked``: the core's outbox as cmid -> (conv, body, intended send time)."""

    def __init__(self, outbox: core.Outbox) -> None:
        self._o = outbox

    def __getitem__(self, cmid: str) -> tuple[int, bytes, int]:
        e = self._o.get(cmid)
        if e is None:
            raise KeyError(cmid)
        return e.conv, e.body, e.data

    def __contains__(self, cmid: object) -> bool:
        return isinstance(cmid, str) and self._o.get(cmid) is not None

    def __setitem__(self, cmid: str, value: tuple[int, bytes, int]) -> None:
        raise TypeError("send with Client.send_message")

    def __delitem__(self, cmid: str) -> None:
        if self._o.discard(cmid) is None:
            raise KeyError(cmid)

    def __iter__(self) -> Iterator[str]:
        return iter([e.cmid for e in self._o])

    def __len__(self) -> int:
        return len(self._o)


class Client:
    """One device of an account and its connection (re-established on churn or drops): the
    asyncio driver of one ``chatproto.client.ClientProtocol``."""

    def __init__(
        self,
        idx: int,
        url: str,
        stats: Stats,
        seed: bytes | None = None,
        device: int = 0,
        account: int = 0,
        convs: list[int] | None = None,
    ) -> None:
        self.idx = idx
        self.url = url
        self.stats = stats
        self.key = SigningKey(seed) if seed else SigningKey.generate()
        self.device = device
        self.account = account
        self.handle = ""
        self.convs = convs or []
        self.core = core.ClientProtocol(policy=LOAD_POLICY)
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.pending: dict[int, asyncio.Future[F.ServerFrame]] = {}
        """Requests made here (request id -> its answer)."""
        self.cursor = _CursorView(self.core.cursors)
        self.ahead = _AheadView(self.core.cursors)
        self.syncing = _SyncingView(self.core.cursors)
        self.unacked = _UnackedView(self.core.outbox)
        self.closing = False
        self.connected = False
        self.reconnecting: asyncio.Task[None] | None = None
        self.kind = "text"
        self.on_frame: Callable[[Client, Fast, bytes], None] | None = None
        self._challenge: asyncio.Future[F.Challenge] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # ----------------------------------------------------------------- connection

    async def open(
        self,
        register_handle: str | None = None,
        link: tuple[str, int, SigningKey] | None = None,
        *,
        resume: bool = True,
    ) -> F.Welcome:
        """Connect, take the challenge, then register (new account), link this device's key to
        an existing account (``link`` = (handle, approver device, approver key); ``self.account``
        is that account) or log in (known device). ``resume``: write the outbox at once (a
        reconnect syncs first)."""
        ws = await connect(self.url, **_ws_options())
        self.ws = ws
        loop = asyncio.get_running_loop()
        self._challenge = loop.create_future()
        self.core.connection_made(loop.time())
        self.closing = False
        self.reader = asyncio.create_task(self._read(ws))
        challenge = await asyncio.wait_for(asyncio.shield(self._challenge), 60)
        key = self.key
        tag = "register" if register_handle is not None else "link_device" if link else "login"
        fs = self.stats.frames_sent
        fs[tag] = fs.get(tag, 0) + 1
        if register_handle is not None:
            rid = self.core.register(register_handle, register_handle, key, device_name="chatload")
        elif link is not None:
            handle, approver, approver_key = link
            approval = approver_key.sign(
                auth.device_approval_payload(challenge.server, self.account, key.public_key)
            )
            rid = self.core.link(handle, key, approver, approval, device_name="chatload")
        else:
            rid = self.core.login(self.device, key)
        welcome = await asyncio.wait_for(self._answer(rid), 60)
        if not isinstance(welcome, F.Welcome):
            raise RuntimeError(f"login failed: {welcome!r}")
        self.account, self.device, self.handle = welcome.account, welcome.device, welcome.handle
        self.connected = True
        self.stats.conn_delta(+1)
        if resume:
            self.core.start_sending()
            self._flush()
        return welcome

    async def load_cursors(self) -> None:
        """list_convs: start each conversation's cursor at its last seq (client algorithm 3)."""
        after = 0
        while True:  # the server answers in pages (SPEC 8.4)
            page = await self.request(with_id(F.ListConvs, after=after))
            if not isinstance(page, F.Convs):
                return
            for c in page.convs:
                self.core.cursors.advance_to(c.conv, c.last_seq)
            if not page.more or not page.convs:
                return
            after = page.convs[-1].conv

    async def reconnect(self, backoff: float = 0.05) -> None:
        """Drop the connection (if any), log in again, sync every conversation from its cursor,
        then resend unacked messages with the same cmid (the server deduplicates)."""
        self.stats.reconnects += 1
        await self.close()
        attempt = 0
        while True:
            try:
                await self.open(resume=False)
                break
            except Exception:
                attempt += 1
                await asyncio.sleep(random.uniform(0, min(2.0, backoff * 2**attempt)))
        syncs = [self.sync(c) for c in self.convs]
        self.core.start_sending()
        self._flush()
        if syncs:
            await asyncio.gather(*syncs, return_exceptions=True)

    async def close(self) -> None:
        """Close the WebSocket and read what the server sent before its close frame (the frames
        of messages committed before the server saw the close are still counted)."""
        self.closing = True
        ws, self.ws = self.ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
        if self.reader is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.reader, 3)
            self.reader = None
        if self.connected:
            self.connected = False
            self.stats.conn_delta(-1)

    def _lost(self) -> None:
        """The connection dropped by itself: reconnect in the background."""
        if self.connected:
            self.connected = False
            self.stats.conn_delta(-1)
        self.stats.drops += 1
        if not self.closing and (self.reconnecting is None or self.reconnecting.done()):
            self.reconnecting = asyncio.get_running_loop().create_task(self.reconnect())

    # ----------------------------------------------------------------- requests

    def next_rid(self) -> int:
        return self.core.next_id()

    def write(self, data: bytes) -> bool:
        """Put one frame into the socket buffer without awaiting; False if not connected."""
        return self.ws is not None and write_nowait(self.ws, data)

    def _flush(self) -> None:
        """Write what the core has to send."""
        for data in self.core.data_to_send():
            self.write(data)

    def _answer(self, rid: int) -> asyncio.Future[F.ServerFrame]:
        fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self._flush()
        return fut

    def request_nowait(self, make: Callable[[int], Any]) -> asyncio.Future[F.ServerFrame]:
        frame = make(self.core.next_id())
        self.count_sent(frame)
        try:
            rid = self.core.request(frame)
        except core.NotConnected:
            fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
            fut.set_exception(ConnectionError("not connected"))
            return fut
        return self._answer(rid)

    def sync(self, conv: int) -> asyncio.Future[F.ServerFrame]:
        """``sync`` conv from the cursor; until ``synced``, a seq sent again is an overlap."""
        fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        try:
            rid = self.core.sync(conv)
        except core.NotConnected:
            fut.set_exception(ConnectionError("not connected"))
            return fut
        if rid is None:  # one is running already (SPEC 7.4: never two at once)
            fut.set_result(F.Synced(re=1, conv=conv, seq=self.core.cursors.cursor(conv)))
            return fut
        fs = self.stats.frames_sent
        fs["sync"] = fs.get("sync", 0) + 1
        return self._answer(rid)

    async def request(self, make: Callable[[int], Any], timeout: float = 60.0) -> F.ServerFrame:
        return await asyncio.wait_for(self.request_nowait(make), timeout)

    def count_sent(self, frame: Any) -> None:
        t = type(frame).__struct_config__.tag
        fs = self.stats.frames_sent
        fs[t] = fs.get(t, 0) + 1

    def send_message(self, conv: int, intended_ns: int, msg_id: int, size: int) -> str:
        """One open-model send of a ``size``-byte body (already the ciphertext size for kind
        ``e2e``): into the core's outbox (resent after a reconnect, same cmid) and written now
        if connected."""
        cmid = self.core.new_cmid(asyncio.get_running_loop().time())  # as the SDK makes them
        body = make_body(self.stats.run, intended_ns, msg_id, self.idx, size, self.kind == "e2e")
        self.stats.sent += 1
        fs = self.stats.frames_sent
        fs["send"] = fs.get("send", 0) + 1
        self.core.send(conv, cmid, self.kind, body, data=intended_ns)
        self._flush()
        return cmid

    def _write_send(self, conv: int, cmid: str, body: bytes) -> None:
        """Make sure ``cmid`` goes out on this connection (the core resends the outbox once
        per connection by itself: an entry already written is not written twice)."""
        if self.core.outbox.get(cmid) is None:
            self.core.send(conv, cmid, self.kind, body)
        self.core.start_sending()
        self._flush()

    def horizon(self, conv: int) -> int:
        """The highest seq of conv this client has seen (received, acked or synced to)."""
        return self.core.cursors.horizon(conv)

    # ----------------------------------------------------------------- receiving

    async def _read(self, ws: ClientConnection) -> None:
        stats = self.stats
        recv = stats.frames_recv
        loop = asyncio.get_running_loop()
        protocol = self.core
        try:
            async for data in ws:
                if not isinstance(data, bytes):
                    continue
                try:
                    frame = codec.decode_server(data)
                except ProtocolError:
                    recv["?"] = recv.get("?", 0) + 1
                    continue
                t = str(frame.__struct_config__.tag)
                recv[t] = recv.get(t, 0) + 1
                if self.on_frame is not None:
                    self.on_frame(self, _fast.decode(data), data)
                protocol.receive_frame(frame, loop.time())
                self._handle(protocol.events_received())
                if protocol.sending:
                    self._flush()
        except Exception:
            pass
        finally:
            protocol.connection_lost(loop.time())
            self._handle(protocol.events_received())
            if self.ws is ws and not self.closing:
                self.ws = None
                self._lost()

    def _handle(self, events: list[core.Event]) -> None:
        """Count what happened (and settle the futures of requests made here)."""
        stats = self.stats
        for ev in events:
            match ev:
                case core.Delivery(item=F.Deliver() as d):
                    self._count_deliver(d, fresh=True, overlap=False)
                case core.Duplicate(item=F.Deliver() as d, overlap=overlap):
                    self._count_deliver(d, fresh=False, overlap=overlap)
                case core.Acked(ack=ack, entry=entry):
                    self._count_ack(ack, entry)
                case core.AckedAgain():
                    stats.dup_acks += 1
                case core.SendDeferred(error=error):
                    stats.error(error.code)
                    self._arm_timer()
                case core.SendFailed(error=error):
                    stats.error(error.code)
                    stats.failed += 1
                case core.Answer(rid=rid, frame=frame):
                    if isinstance(frame, F.Error):
                        stats.error(frame.code)
                    self._settle(rid, frame)
                case core.Synced(conv=conv, seq=seq, rid=rid):
                    self._settle(rid, F.Synced(re=rid, conv=conv, seq=seq))
                case core.SyncFailed(rid=rid, error=error):
                    stats.error(error.code)
                    self._settle(rid, error)
                case core.Challenged(challenge=challenge):
                    if self._challenge is not None and not self._challenge.done():
                        self._challenge.set_result(challenge)
                case core.Unanswered(rid=rid):
                    fut = self.pending.pop(rid, None)
                    if fut is not None and not fut.done():
                        fut.set_exception(ConnectionError("connection closed"))
                case core.Pushed(frame=F.Error() as error):
                    stats.error(error.code)
                case _:
                    pass  # gaps are not fetched; other pushes are not counted

    def _settle(self, rid: int, frame: F.ServerFrame) -> None:
        fut = self.pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result(frame)

    def _count_deliver(self, d: F.Deliver, *, fresh: bool, overlap: bool) -> None:
        stats = self.stats
        if d.body[:8] != stats.prefix:
            return  # not this run's
        _m, _r, intended, mid, sender = HEADER.unpack_from(d.body)
        if sender == self.idx:  # its own message, back in a sync
            stats.own += 1
        elif not fresh:
            if overlap:
                stats.sync_overlaps += 1
            else:
                stats.dup_delivers += 1
        else:
            stats.delivers += 1
            if stats.deliver_log is not None:
                stats.deliver_log[mid] = stats.deliver_log.get(mid, 0) + 1
            lat = time.time_ns() - intended
            stats.del_i.record_ns(lat)
            if intended >= stats.steady_from_ns:
                stats.del_t.record_ns(lat)

    def _count_ack(self, ack: F.Ack, entry: core.Entry) -> None:
        stats = self.stats
        stats.acks += 1
        now = time.time_ns()
        if stats.ack_log is not None:
            mid = HEADER.unpack_from(entry.body)[3]
            stats.ack_log.append((ack.conv, ack.seq, now, self.idx, mid))
        abc = stats.acked_by_conv
        abc[ack.conv] = abc.get(ack.conv, 0) + 1
        intended = entry.data if isinstance(entry.data, int) else now
        lat = now - intended
        stats.ack_i.record_ns(lat)
        if intended >= stats.steady_from_ns:
            stats.ack_t.record_ns(lat)

    def _arm_timer(self) -> None:
        """Call the core back when a deferred resend is due."""
        when = self.core.next_timer()
        if when is None:
            return
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(asyncio.get_running_loop().time())
        self._handle(self.core.events_received())
        self._flush()
        if self.core.next_timer() is not None:
            self._arm_timer()


class TargetError(Exception):
    """A target that cannot be used; the message names it."""


async def check_target(url: str, timeout: float = 10.0) -> None:
    """Connect to ``url`` and read its ``challenge``: a chatd.v1 server answers there, or
    ``TargetError`` says what is wrong, in one line."""
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, **{**_ws_options(), "open_timeout": timeout}) as ws:
                first = codec.decode_server(await ws.recv())  # type: ignore[arg-type]
    except TimeoutError:
        raise TargetError(f"{url}: no chatd.v1 answer within {timeout:g} s") from None
    except Exception as e:  # refused, bad URL, HTTP error, not msgpack: all one line
        raise TargetError(f"{url}: cannot connect ({type(e).__name__}: {e})") from None
    if not isinstance(first, F.Challenge):
        raise TargetError(f"{url}: not a chatd.v1 server (first frame {type(first).__name__})")


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """Run coroutines with at most ``limit`` in flight; results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c

    return list(await asyncio.gather(*(one(c) for c in coros)))
