"""What every service is built from, passed in once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from chatd.broker.base import Broker
from chatd.broker.presence import PresenceDirectory
from chatd.clock import Clock
from chatd.hub import Hub
from chatd.metrics import Metrics
from chatd.settings import Settings
from chatd.store import Store


@dataclass(frozen=True, slots=True)
class Deps:
    settings: Settings
    store: Store
    broker: Broker
    hub: Hub
    metrics: Metrics
    clock: Clock
    presence: PresenceDirectory
    """Who is online on any node (this node's own connections are in ``hub``)."""
