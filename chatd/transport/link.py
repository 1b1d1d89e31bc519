"""A session's way to write to its WebSocket, with the slow-consumer bound."""

from __future__ import annotations

import time
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from chatd.metrics import HotCounters


class _WireCache:
    """The WebSocket framing of the last payload written, keyed by identity.

    Server-to-client frames are unmasked, so one payload has the same wire bytes on every
    connection. The hub hands the SAME bytes object to every watcher of a fan-out; framing it
    once here (instead of once per connection inside websockets) makes a delivery one
    ``transport.write`` of shared bytes.
    """

    __slots__ = ("payload", "wire")

    def __init__(self) -> None:
        self.payload: bytes | None = None
        self.wire = b""

    def frame(self, payload: bytes) -> bytes:
        if payload is not self.payload:
            # permessage-deflate is never negotiated (compression=None), so no extensions apply.
            self.wire = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
            self.payload = payload
        return self.wire


_wire = _WireCache()


class WsLink:
    """Writes go straight into the socket's transport buffer (no per-connection task or queue):
    the buffer IS the bounded send queue. A peer whose unsent bytes stay above ``max_outbound``
    for ``grace`` seconds, or ever pass ``HARD_FACTOR`` times it, is a slow consumer: the
    connection is aborted and the client reconnects and syncs from its cursors. The grace lets a
    healthy reader absorb one group commit's burst without being mistaken for a slow one."""

    HARD_FACTOR = 4

    __slots__ = ("_dropped", "_hot", "_on_slow", "_over_since", "_ws", "grace", "max_outbound")

    def __init__(
        self,
        ws: ServerConnection,
        max_outbound: int,
        on_slow: Callable[[], None],
        hot: HotCounters,
        grace: float = 2.0,
    ) -> None:
        self._ws = ws
        self.max_outbound = max_outbound
        self.grace = grace
        self._over_since: float | None = None
        self._dropped = False
        self._on_slow = on_slow
        self._hot = hot

    def push(self, data: bytes) -> None:
        ws = self._ws
        if self._dropped or ws.protocol.state is not State.OPEN:
            return
        # A complete, unfragmented binary frame written straight to the transport: websockets
        # keeps no per-frame state for outgoing data frames, and we never fragment.
        transport = ws.transport
        transport.write(_wire.frame(data))
        self._hot.frames_out += 1
        pending = transport.get_write_buffer_size()
        if pending <= self.max_outbound:
            self._over_since = None
            return
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        if pending > self.max_outbound * self.HARD_FACTOR or now - self._over_since > self.grace:
            self._dropped = True
            self._on_slow()
            transport.abort()

    async def send(self, data: bytes) -> None:
        await self._ws.send(data)
        self._hot.frames_out += 1

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)
