"""The in-process broker: publish calls the subscriber directly, in order, synchronously."""

from __future__ import annotations

from collections.abc import Callable

from chatd.broker.base import BrokerStatistics, BrokerStats, Handler


class MemoryBroker:
    """Single-node fan-out. One handler per topic (the node's hub)."""

    remote = False
    on_lag: Callable[[float], None] | None = None

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self.stats = BrokerStats()

    def publish(self, topic: str, data: bytes) -> None:
        self.stats.published += 1
        handler = self._handlers.get(topic)
        if handler is not None:
            self.stats.received += 1
            handler(topic, data)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler

    def ignore_own(self, offset: int, marker: bytes) -> None:
        """Nothing comes back in-process: the hub does not publish to this broker."""

    def after_flush(self, callback: Callable[[], None]) -> None:
        """``publish`` delivers synchronously: everything is flushed already."""
        callback()

    async def barrier(self) -> bool:
        """Subscriptions take effect at once in-process."""
        return True

    def unsubscribe(self, topic: str) -> None:
        self._handlers.pop(topic, None)

    async def aclose(self) -> None:
        self._handlers.clear()

    def healthy(self) -> bool:
        return True

    def statistics(self) -> BrokerStatistics:
        return BrokerStatistics("memory")
