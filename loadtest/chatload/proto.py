"""Raw chatd.v1 protocol clients for load generation (no SDK): one WebSocket per account, real
Ed25519 device keys, pipelined requests, open-model sends written straight into the socket
buffer, and exact accounting of acks and deliveries.

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
from collections.abc import Callable
from typing import Any

import msgspec
from chatproto import auth, codec
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from .hist import Latency

MAGIC = b"CLD1"
HEADER = struct.Struct("<4sIqQI")
RETRYABLE = frozenset(int(c) for c in ErrorCode if c.retryable)  # resend, same cmid


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


class Client:
    """One device of an account and its connection (re-established on churn or drops)."""

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
        self.ws: ClientConnection | None = None
        self.reader: asyncio.Task[None] | None = None
        self.rid = 0
        self.pending: dict[int, asyncio.Future[F.ServerFrame]] = {}
        self.send_rids: dict[int, str] = {}
        self.unacked: dict[str, tuple[int, bytes, int]] = {}  # cmid -> (conv, body, intended)
        self.cursor: dict[int, int] = {}  # highest seq with no gap below
        self.ahead: dict[int, set[int]] = {}  # seqs seen above cursor + 1
        self.syncing: dict[int, int] = {}  # conv -> ``after`` of the sync in progress
        self.sync_rids: dict[int, int] = {}  # request id of a sync in progress -> conv
        self.synced: dict[int, int] = {}  # conv -> highest ``synced.seq`` answered
        self.closing = False
        self.connected = False
        self.reconnecting: asyncio.Task[None] | None = None
        self.kind = "text"
        self.on_frame: Callable[[Client, Fast, bytes], None] | None = None

    # ----------------------------------------------------------------- connection

    async def open(
        self,
        register_handle: str | None = None,
        link: tuple[str, int, SigningKey] | None = None,
    ) -> F.Welcome:
        """Connect, take the challenge, then register (new account), link this device's key to
        an existing account (``link`` = (handle, approver device, approver key); ``self.account``
        is that account) or log in (known device)."""
        ws = await connect(self.url, **_ws_options())
        self.ws = ws
        challenge = codec.decode_server(await ws.recv())  # type: ignore[arg-type]
        if not isinstance(challenge, F.Challenge):
            raise RuntimeError(f"expected challenge, got {challenge!r}")
        key = self.key
        sig = key.sign(auth.login_payload(challenge.server, challenge.nonce, key.public_key))
        self.closing = False
        self.reader = asyncio.create_task(self._read(ws))
        if register_handle is not None:
            frame: Any = lambda rid: F.Register(  # noqa: E731
                id=rid,
                handle=register_handle,
                name=register_handle,
                device_key=key.public_key,
                device_name="chatload",
                sig=sig,
            )
        elif link is not None:
            handle, approver, approver_key = link
            approval = approver_key.sign(
                auth.device_approval_payload(challenge.server, self.account, key.public_key)
            )
            frame = lambda rid: F.LinkDevice(  # noqa: E731
                id=rid,
                handle=handle,
                device_key=key.public_key,
                device_name="chatload",
                approver=approver,
                approval=approval,
                sig=sig,
            )
        else:
            frame = lambda rid: F.Login(id=rid, device=self.device, sig=sig)  # noqa: E731
        welcome = await self.request(frame)
        if not isinstance(welcome, F.Welcome):
            raise RuntimeError(f"login failed: {welcome!r}")
        self.account, self.device, self.handle = welcome.account, welcome.device, welcome.handle
        self.connected = True
        self.stats.conn_delta(+1)
        return welcome

    async def load_cursors(self) -> None:
        """list_convs: start each conversation's cursor at its last seq (client algorithm 3)."""
        convs = await self.request(lambda rid: F.ListConvs(id=rid))
        if isinstance(convs, F.Convs):
            for c in convs.convs:
                if c.last_seq > self.cursor.get(c.conv, 0):
                    self.cursor[c.conv] = c.last_seq
                    self.ahead.pop(c.conv, None)

    async def reconnect(self, backoff: float = 0.05) -> None:
        """Drop the connection (if any), log in again, sync every conversation from its cursor,
        resend unacked messages with the same cmid (the server deduplicates)."""
        self.stats.reconnects += 1
        await self.close()
        attempt = 0
        while True:
            try:
                await self.open()
                break
            except Exception:
                attempt += 1
                await asyncio.sleep(random.uniform(0, min(2.0, backoff * 2**attempt)))
        syncs = [self.sync(c) for c in self.convs]
        for cmid, (conv, body, _intended) in list(self.unacked.items()):
            self._write_send(conv, cmid, body)
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
        self.rid = self.rid + 1 if self.rid < 4_000_000_000 else 1
        return self.rid

    def write(self, data: bytes) -> bool:
        """Put one frame into the socket buffer without awaiting; False if not connected."""
        ws = self.ws
        if ws is None:
            return False
        try:
            ws.protocol.send_binary(data)
            ws.send_data()
        except Exception:
            return False
        return True

    def request_nowait(self, make: Callable[[int], Any]) -> asyncio.Future[F.ServerFrame]:
        rid = self.next_rid()
        frame = make(rid)
        fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.count_sent(frame)
        if not self.write(codec.encode(frame)):
            self.pending.pop(rid, None)
            fut.set_exception(ConnectionError("not connected"))
        return fut

    def sync(self, conv: int) -> asyncio.Future[F.ServerFrame]:
        """``sync`` conv from the cursor; until ``synced``, a seq sent again is an overlap."""
        after = self.cursor.get(conv, 0)
        fut = self.request_nowait(with_id(F.Sync, conv=conv, after=after))
        if not fut.done():
            self.syncing[conv] = after
            self.sync_rids[self.rid] = conv
        return fut

    async def request(self, make: Callable[[int], Any], timeout: float = 60.0) -> F.ServerFrame:
        return await asyncio.wait_for(self.request_nowait(make), timeout)

    def count_sent(self, frame: Any) -> None:
        t = type(frame).__struct_config__.tag
        fs = self.stats.frames_sent
        fs[t] = fs.get(t, 0) + 1

    def send_message(self, conv: int, intended_ns: int, msg_id: int, size: int) -> str:
        """One open-model send of a ``size``-byte body (already the ciphertext size for kind
        ``e2e``): recorded as unacked (resent after a reconnect) and written now if
        connected."""
        cmid = f"{self.stats.run:x}.{msg_id:x}"  # unique across runs reusing provisioning
        body = make_body(self.stats.run, intended_ns, msg_id, self.idx, size, self.kind == "e2e")
        self.unacked[cmid] = (conv, body, intended_ns)
        self.stats.sent += 1
        fs = self.stats.frames_sent
        fs["send"] = fs.get("send", 0) + 1
        self._write_send(conv, cmid, body)
        return cmid

    def _write_send(self, conv: int, cmid: str, body: bytes) -> None:
        rid = self.next_rid()
        self.send_rids[rid] = cmid
        frame = F.Send(id=rid, conv=conv, cmid=cmid, kind=self.kind, body=body)
        if not self.write(codec.encode(frame)):
            self.send_rids.pop(rid, None)

    def _resend_later(self, cmid: str) -> None:
        async def later() -> None:
            await asyncio.sleep(0.2)
            u = self.unacked.get(cmid)
            if u is not None and self.connected:
                self._write_send(u[0], cmid, u[1])

        asyncio.get_running_loop().create_task(later())

    # ----------------------------------------------------------------- receiving

    def _advance(self, conv: int, seq: int) -> bool:
        """Apply seq to conv's cursor; False if it was already seen (a duplicate)."""
        cur = self.cursor.get(conv, 0)
        if seq <= cur:
            return False
        if seq == cur + 1:
            ahead = self.ahead.get(conv)
            cur = seq
            while ahead and cur + 1 in ahead:
                cur += 1
                ahead.discard(cur)
            self.cursor[conv] = cur
            return True
        ahead = self.ahead.setdefault(conv, set())
        if seq in ahead:
            return False
        ahead.add(seq)
        return True

    def _sync_done(self, rid: int, seq: int) -> None:
        conv = self.sync_rids.pop(rid)
        self.syncing.pop(conv, None)
        if seq > self.synced.get(conv, 0):
            self.synced[conv] = seq

    def horizon(self, conv: int) -> int:
        """The highest seq of conv this client has seen (received, acked or synced to)."""
        ahead = self.ahead.get(conv)
        return max(self.cursor.get(conv, 0), max(ahead) if ahead else 0, self.synced.get(conv, 0))

    async def _read(self, ws: ClientConnection) -> None:
        stats = self.stats
        now = time.time_ns
        unpack = HEADER.unpack_from
        prefix = stats.prefix
        recv = stats.frames_recv
        try:
            async for data in ws:
                if not isinstance(data, bytes):
                    continue
                f = _fast.decode(data)
                t = f.t
                recv[t] = recv.get(t, 0) + 1
                if self.on_frame is not None:
                    self.on_frame(self, f, data)
                if t == "deliver":
                    fresh = self._advance(f.conv, f.seq)
                    if f.body[:8] == prefix:
                        _m, _r, intended, mid, sender = unpack(f.body)
                        if sender == self.idx:  # its own message, back in a sync
                            stats.own += 1
                            continue
                        if not fresh:
                            if f.seq > self.syncing.get(f.conv, f.seq):
                                stats.sync_overlaps += 1
                            else:
                                stats.dup_delivers += 1
                            continue
                        stats.delivers += 1
                        if stats.deliver_log is not None:
                            stats.deliver_log[mid] = stats.deliver_log.get(mid, 0) + 1
                        lat = now() - intended
                        stats.del_i.record_ns(lat)
                        if intended >= stats.steady_from_ns:
                            stats.del_t.record_ns(lat)
                elif t == "ack":
                    self.send_rids.pop(f.re, None)
                    u = self.unacked.pop(f.cmid or "", None)
                    self._advance(f.conv, f.seq)
                    if u is None:
                        stats.dup_acks += 1
                        continue
                    stats.acks += 1
                    if stats.ack_log is not None:
                        mid = unpack(u[1])[3]
                        stats.ack_log.append((f.conv, f.seq, now(), self.idx, mid))
                    abc = stats.acked_by_conv
                    abc[f.conv] = abc.get(f.conv, 0) + 1
                    lat = now() - u[2]
                    stats.ack_i.record_ns(lat)
                    if u[2] >= stats.steady_from_ns:
                        stats.ack_t.record_ns(lat)
                elif f.re:
                    if f.re in self.sync_rids:
                        self._sync_done(f.re, f.seq if t == "synced" else 0)
                    fut = self.pending.pop(f.re, None)
                    if fut is not None:
                        if not fut.done():
                            fut.set_result(codec.decode_server(data))
                        if t == "error":
                            stats.error(f.code)
                        continue
                    if t == "error":
                        stats.error(f.code)
                        cmid = self.send_rids.pop(f.re, None)
                        if cmid is not None:
                            if f.code in RETRYABLE:
                                self._resend_later(cmid)
                            elif self.unacked.pop(cmid, None) is not None:
                                stats.failed += 1
                elif t == "error":
                    stats.error(f.code)
        except Exception:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))
            self.pending.clear()
            self.send_rids.clear()
            self.syncing.clear()
            self.sync_rids.clear()
            if self.ws is ws and not self.closing:
                self.ws = None
                self._lost()


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
