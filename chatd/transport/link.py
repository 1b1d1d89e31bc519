"""A session's way to write to its WebSocket, with the slow-consumer bound."""

from __future__ import annotations

import time

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from chatd.metrics import Metrics
from chatd.settings import LimitSettings


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
    the buffer IS the bounded send queue. A peer whose unsent bytes stay above
    ``limits.max_outbound_bytes`` for ``limits.slow_consumer_grace`` seconds, or ever pass
    ``HARD_FACTOR`` times it, is a slow consumer: the
    connection is aborted and the client reconnects and syncs from its cursors. The grace lets a
    healthy reader absorb one group commit's burst without being mistaken for a slow one."""

    HARD_FACTOR = 4

    __slots__ = ("_dropped", "_limits", "_metrics", "_over_since", "_ws")

    def __init__(self, ws: ServerConnection, limits: LimitSettings, metrics: Metrics) -> None:
        self._ws = ws
        self._limits = limits
        self._metrics = metrics
        self._over_since: float | None = None
        self._dropped = False

    def push(self, data: bytes) -> None:
        ws = self._ws
        if self._dropped or ws.protocol.state is not State.OPEN:
            return
        # A complete, unfragmented binary frame written straight to the transport: websockets
        # keeps no per-frame state for outgoing data frames, and we never fragment.
        transport = ws.transport
        transport.write(_wire.frame(data))
        self._metrics.hot.frames_out += 1
        pending = transport.get_write_buffer_size()
        bound = self._limits.max_outbound_bytes
        if pending <= bound:
            self._over_since = None
            return
        now = time.monotonic()
        if self._over_since is None:
            self._over_since = now
        if (
            pending > bound * self.HARD_FACTOR
            or now - self._over_since > self._limits.slow_consumer_grace
        ):
            self._dropped = True
            self._metrics.slow_consumers.inc()
            transport.abort()

    async def send(self, data: bytes) -> None:
        await self._ws.send(data)
        self._metrics.hot.frames_out += 1

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)
