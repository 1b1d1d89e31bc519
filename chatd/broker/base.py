"""The broker carries envelopes from the node that committed a message to every node whose
connections watch the conversation. It is a fast path only: at-most-once, and the store repairs
whatever it loses (clients sync from their cursors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Handler = Callable[[str, bytes], None]
"""Called with ``(topic, data)`` for every envelope published to a subscribed topic."""


class BrokerStats:
    """Plain integer counters (read by Prometheus at scrape time; one attribute add each)."""

    __slots__ = ("dropped", "published", "received")

    def __init__(self) -> None:
        self.published = 0
        """Envelopes handed to the transport (Redis accepted them; in-process: published)."""
        self.received = 0
        """Envelopes dispatched to a local handler."""
        self.dropped = 0
        """Envelopes lost on this node's side: buffer overflow, a failed send, or shutdown."""


@dataclass(frozen=True, slots=True)
class BrokerStatistics:
    """What health and metrics report about a broker beyond ``BrokerStats``."""

    kind: str
    """``memory`` or ``redis``."""
    url: str = ""
    """The remote broker's URL, password included (redact it before showing it)."""
    pending: int = 0
    """Envelopes buffered, not yet handed to the remote broker."""
    flushes: int | None = None
    """Pipelines of envelopes written to the remote broker (None in-process)."""
    lag: float | None = None
    """The latest heartbeat's round trip in seconds (None until one is measured)."""
    heartbeats: int | None = None
    """Heartbeats measured (None in-process)."""
    refusal: str | None = None
    """What the remote broker refuses this node's user (an ACL), while it does: the broker is
    down until the permissions are fixed (docs/operations.md, "Redis permissions")."""


class Broker(Protocol):
    stats: BrokerStats

    on_lag: Callable[[float], None] | None
    """Called with each measured round trip through the remote broker (never in-process)."""

    remote: bool
    """True when the broker reaches other nodes. An in-process broker only hands envelopes back
    to this node's hub, which already delivered them, so the hub does not publish to it."""

    def publish(self, topic: str, data: bytes) -> None:
        """Queue ``data`` for every subscriber of ``topic``. Never blocks; may drop under
        overload or outage (the store is the truth)."""
        ...

    def after_flush(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once, in the event loop) when every envelope published before
        this call has reached the remote broker, or cannot: the broker is down (at once) or the
        send failed. Nodes ack a message only then, so a node killed right after an ack has
        already handed its envelope on; what an outage loses, the resync repairs."""
        ...

    def ignore_own(self, offset: int, marker: bytes) -> None:
        """Envelopes carrying ``marker`` at ``offset`` are this node's own, which its hub
        delivered when it published them: a remote broker counts them as received and hands
        them to no handler (Redis sends a publisher its own copy on a topic it subscribes to)."""
        ...

    def subscribe(self, topic: str, handler: Handler) -> None: ...
    async def barrier(self) -> bool:
        """Return once every ``subscribe`` made before the call is in effect (envelopes
        published from then on reach this node), or at once while the broker is down (the
        resync after the outage repairs what is missed): True. False when the broker, though
        up, did not confirm in time (the caller must not count on live delivery)."""
        ...

    def unsubscribe(self, topic: str) -> None: ...
    async def aclose(self) -> None: ...
    def healthy(self) -> bool: ...
    def statistics(self) -> BrokerStatistics: ...
