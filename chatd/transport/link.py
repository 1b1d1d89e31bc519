"""A session's way to write to its WebSocket: writes coalesced per loop turn, with the
slow-consumer bound."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from chatd.metrics import Metrics
from chatd.settings import LimitSettings

_SHORT = [bytes((0x82, n)) for n in range(126)]


def frame_header(size: int) -> bytes:
    """The header of an unfragmented, unmasked binary WebSocket frame of ``size`` bytes (FIN,
    opcode 2; RFC 6455 5.2): the same bytes as websockets' ``Frame.serialize`` without its
    per-frame objects. Server frames are never masked and permessage-deflate is never
    negotiated (``compression=None``), so the payload follows as it is."""
    if size < 126:
        return _SHORT[size]
    if size < 65536:
        return b"\x82\x7e" + size.to_bytes(2, "big")
    return b"\x82\x7f" + size.to_bytes(8, "big")


class _Header:
    """The frame header of the last payload asked for: a fan-out pushes the same bytes object
    to every watcher, so its header is made once."""

    __slots__ = ("header", "payload")

    def __init__(self) -> None:
        self.payload = b""
        self.header = _SHORT[0]

    def of(self, payload: bytes) -> bytes:
        if payload is not self.payload:
            self.header = frame_header(len(payload))
            self.payload = payload
        return self.header


_header = _Header()


class Outbox:
    """Coalesces writes: everything pushed to a connection during one turn of the event loop
    leaves in ONE ``transport.write`` at the end of the turn (a commit's deliveries and acks,
    a burst of live messages), instead of one write (one ``send`` syscall, one wake-up of the
    reader) per frame. One outbox per server; links register themselves when they first have
    something to send in a turn."""

    __slots__ = ("_loop", "dirty", "scheduled")

    def __init__(self) -> None:
        self.dirty: list[WsLink] = []
        """Links with something to send this turn (``WsLink.push`` appends itself)."""
        self.scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def add(self, link: WsLink) -> None:
        self.dirty.append(link)
        if not self.scheduled:
            self.schedule()

    def schedule(self) -> None:
        """Flush at the end of this turn of the loop."""
        self.scheduled = True
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self.scheduled = False
        dirty, self.dirty = self.dirty, []
        for link in dirty:
            link.flush()


class WsLink:
    """Writes go into the socket's transport buffer at the end of the loop turn (``Outbox``; no
    per-connection task or queue): the buffer IS the bounded send queue. A peer whose unsent
    bytes stay above ``limits.max_outbound_bytes`` for ``limits.slow_consumer_grace`` seconds, or
    whose backlog from earlier turns passes ``HARD_FACTOR`` times it, is a slow consumer: the
    connection is aborted and the client reconnects and syncs from its cursors. The grace lets a
    healthy reader absorb one group commit's burst (it leaves in one write, however large)
    without being mistaken for a slow one."""

    HARD_FACTOR = 4

    __slots__ = ("_dropped", "_limits", "_metrics", "_out", "_outbox", "_over_since", "_ws")

    def __init__(
        self, ws: ServerConnection, limits: LimitSettings, metrics: Metrics, outbox: Outbox
    ) -> None:
        self._ws = ws
        self._limits = limits
        self._metrics = metrics
        self._outbox = outbox
        self._out: list[bytes] | None = None
        self._over_since: float | None = None
        self._dropped = False

    def push(self, data: bytes) -> None:
        if self._dropped:
            return
        # A complete, unfragmented binary frame: websockets keeps no per-frame state for
        # outgoing data frames, and we never fragment. The payload is not copied here: a
        # fan-out's one bytes object is shared by every watcher until the flush joins it, and
        # so is its header (``_Header``: made once for the watchers of one fan-out).
        self._metrics.hot.frames_out += 1
        cached = _header  # _Header.of, inline: this runs once per delivery
        if data is cached.payload:
            header = cached.header
        else:
            size = len(data)  # frame_header, its common case inline (acks, small frames)
            header = cached.header = _SHORT[size] if size < 126 else frame_header(size)
            cached.payload = data
        out = self._out
        if out is None:
            self._out = [header, data]
            outbox = self._outbox  # Outbox.add, inline: this runs once per delivery
            outbox.dirty.append(self)
            if not outbox.scheduled:
                outbox.schedule()
        else:
            out += (header, data)

    def flush(self) -> None:
        """Write what this turn owes the peer, then apply the slow-consumer rule."""
        out, self._out = self._out, None
        ws = self._ws
        # ``_state``: what websockets' ``state`` property returns, without its call (once per
        # delivery; tests/unit/test_ws_internals.py checks the property still is that).
        if not out or self._dropped or ws.protocol._state is not State.OPEN:
            return  # a closing connection sends nothing after its close frame
        transport = ws.transport
        data = b"".join(out)
        transport.write(data)
        pending = transport.get_write_buffer_size()
        bound = self._limits.max_outbound_bytes
        if pending <= bound:
            self._over_since = None
            return
        # Unsent from earlier turns, not asked for before the write (one call per delivery
        # saved): exact when the transport only buffered this write (uvloop's does until the
        # end of the loop iteration, and always behind a backlog), a lower bound when it sent
        # part of it at once.
        backlog = pending - len(data)
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        if (
            backlog > bound * self.HARD_FACTOR
            or now - self._over_since > self._limits.slow_consumer_grace
        ):
            self._dropped = True
            self._metrics.slow_consumers.inc()
            transport.abort()

    async def send(self, data: bytes) -> None:
        self.flush()  # what was pushed before goes first
        await self._ws.send(data)
        self._metrics.hot.frames_out += 1

    async def close(self, code: int, reason: str) -> None:
        self.flush()
        await self._ws.close(code, reason)
