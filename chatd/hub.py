"""Which local connections watch which conversation, and delivery to them.

The hub subscribes the node to a conversation's broker topic while at least one local connection
watches it, to an account's topic while that account has a local connection, and to a device's
topic (to-device items) while that device has one. For every
envelope it returns at once when nobody local watches; otherwise it hands the SAME frame bytes to
each watcher's ``push`` (a synchronous write to the socket buffer; the outlet disconnects itself
as a slow consumer when its buffer passes the bound).

Sync interplay: an outlet's ``floors[conv]`` holds back live messages with seq <= floor. While a
sync of ``conv`` runs the floor is ``HOLD`` (everything held back; the sync reads it from the
store), and after ``Synced`` it is the synced seq, so the boundary has no gap and no duplicate.
"""

from __future__ import annotations

from typing import Protocol

from chatd import envelope
from chatd.broker.base import Broker
from chatd.metrics import HotCounters

HOLD = 2**63
"""Floor of a conversation whose sync is in progress on an outlet."""


class Outlet(Protocol):
    """A local authenticated connection, as the hub sees it."""

    conn_id: int
    account: int
    device: int
    floors: dict[int, int]
    watching: dict[int, None]
    """The conversations routed to this outlet (a dict used as an ordered set)."""

    def push(self, data: bytes) -> None:
        """Write ``data`` now, without waiting; a slow consumer is disconnected."""
        ...


class Hub:
    def __init__(self, broker: Broker, hot: HotCounters) -> None:
        self._broker = broker
        self._hot = hot
        self._watchers: dict[int, set[Outlet]] = {}
        self._accounts: dict[int, list[Outlet]] = {}  # lists: a few devices each
        self._devices: dict[int, list[Outlet]] = {}  # usually one connection each
        self._latest: dict[int, int] = {}

    # ------------------------------------------------------------------ membership of outlets

    def attach(self, outlet: Outlet, convs: list[int]) -> bool:
        """Start routing ``convs``, the account's events and the device's events to ``outlet``.
        True when this is the account's first local connection (it just came online here)."""
        first = outlet.account not in self._accounts
        if first:
            self._accounts[outlet.account] = []
            self._broker.subscribe(envelope.account_topic(outlet.account), self._on_account)
        self._accounts[outlet.account].append(outlet)
        same_device = self._devices.get(outlet.device)
        if same_device is None:
            self._devices[outlet.device] = [outlet]
            self._broker.subscribe(envelope.device_topic(outlet.device), self._on_device)
        else:
            same_device.append(outlet)
        for conv in convs:
            self._watch(outlet, conv)
        return first

    def detach(self, outlet: Outlet) -> bool:
        """Stop routing to ``outlet``. True when it was the account's last local connection."""
        for conv in tuple(outlet.watching):
            self._unwatch(outlet, conv)
        same_device = self._devices.get(outlet.device)
        if same_device is not None and outlet in same_device:
            same_device.remove(outlet)
            if not same_device:
                del self._devices[outlet.device]
                self._broker.unsubscribe(envelope.device_topic(outlet.device))
        outlets = self._accounts.get(outlet.account)
        if outlets is None:
            return False
        if outlet in outlets:
            outlets.remove(outlet)
        if outlets:
            return False
        del self._accounts[outlet.account]
        self._broker.unsubscribe(envelope.account_topic(outlet.account))
        return True

    def watch_account(self, account: int, conv: int) -> None:
        """``account`` joined ``conv``: route it to the account's local connections."""
        for outlet in self._accounts.get(account, ()):
            self._watch(outlet, conv)

    def unwatch_account(self, account: int, conv: int) -> None:
        for outlet in self._accounts.get(account, ()):
            self._unwatch(outlet, conv)
            outlet.floors.pop(conv, None)

    def online(self, account: int) -> bool:
        return account in self._accounts

    def outlets_of(self, account: int) -> frozenset[Outlet]:
        return frozenset(self._accounts.get(account, ()))

    def latest_seq(self, conv: int) -> int:
        """Highest seq of ``conv`` this node has seen published (0 if none)."""
        return self._latest.get(conv, 0)

    def _watch(self, outlet: Outlet, conv: int) -> None:
        watchers = self._watchers.get(conv)
        if watchers is None:
            watchers = self._watchers[conv] = set()
            self._broker.subscribe(envelope.conv_topic(conv), self._on_conv)
        watchers.add(outlet)
        outlet.watching[conv] = None

    def _unwatch(self, outlet: Outlet, conv: int) -> None:
        outlet.watching.pop(conv, None)
        watchers = self._watchers.get(conv)
        if watchers is None:
            return
        watchers.discard(outlet)
        if not watchers:
            del self._watchers[conv]
            self._latest.pop(conv, None)
            self._broker.unsubscribe(envelope.conv_topic(conv))

    # ------------------------------------------------------------------ delivery

    def _on_conv(self, topic: str, data: bytes) -> None:
        kind, seq, origin, frame = envelope.unpack(data)
        conv = int(topic[2:])
        watchers = self._watchers.get(conv)
        if not watchers:
            return
        if kind == envelope.MESSAGE:
            if seq > self._latest.get(conv, 0):
                self._latest[conv] = seq
            sent = 0
            for outlet in tuple(watchers):
                if outlet.conn_id == origin:
                    continue
                floor = outlet.floors.get(conv)
                if floor is not None and seq <= floor:
                    continue
                outlet.push(frame)
                sent += 1
            self._hot.deliveries += sent
        else:
            for outlet in tuple(watchers):
                if outlet.conn_id != origin:
                    outlet.push(frame)

    def _on_account(self, topic: str, data: bytes) -> None:
        _, _, origin, frame = envelope.unpack(data)
        for outlet in tuple(self._accounts.get(int(topic[2:]), ())):
            if outlet.conn_id != origin:
                outlet.push(frame)

    def _on_device(self, topic: str, data: bytes) -> None:
        _, _, origin, frame = envelope.unpack(data)
        for outlet in tuple(self._devices.get(int(topic[2:]), ())):
            if outlet.conn_id != origin:
                outlet.push(frame)
