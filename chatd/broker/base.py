"""The broker carries envelopes from the node that committed a message to every node whose
connections watch the conversation. It is a fast path only: at-most-once, and the store repairs
whatever it loses (clients sync from their cursors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

Handler = Callable[[str, bytes], None]
"""Called with ``(topic, data)`` for every envelope published to a subscribed topic."""


class Broker(Protocol):
    def publish(self, topic: str, data: bytes) -> None:
        """Queue ``data`` for every subscriber of ``topic``. Never blocks; may drop under
        overload or outage (the store is the truth)."""
        ...

    def subscribe(self, topic: str, handler: Handler) -> None: ...
    def unsubscribe(self, topic: str) -> None: ...
    async def aclose(self) -> None: ...
    def healthy(self) -> bool: ...
