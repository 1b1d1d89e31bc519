"""A session's way to write to its WebSocket, with the slow-consumer bound."""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from chatd.metrics import HotCounters


class WsLink:
    """Writes go straight into the socket's transport buffer (no per-connection task or queue):
    the buffer IS the bounded send queue. Past ``max_outbound`` bytes the peer is a slow consumer
    and the connection is aborted; the client reconnects and syncs from its cursors."""

    __slots__ = ("_hot", "_on_slow", "_ws", "max_outbound")

    def __init__(
        self,
        ws: ServerConnection,
        max_outbound: int,
        on_slow: Callable[[], None],
        hot: HotCounters,
    ) -> None:
        self._ws = ws
        self.max_outbound = max_outbound
        self._on_slow = on_slow
        self._hot = hot

    def push(self, data: bytes) -> None:
        ws = self._ws
        if ws.protocol.state is not State.OPEN:
            return
        ws.protocol.send_binary(data)
        ws.send_data()
        self._hot.frames_out += 1
        transport = ws.transport
        if transport.get_write_buffer_size() > self.max_outbound:
            self._on_slow()
            transport.abort()

    async def send(self, data: bytes) -> None:
        await self._ws.send(data)
        self._hot.frames_out += 1

    async def close(self, code: int, reason: str) -> None:
        await self._ws.close(code, reason)
