"""The outbox: messages sent and not yet acknowledged, resent by cmid (SPEC.md 7.2, 7.3, 13).

A message enters the outbox when the application sends it and leaves it only when the server
acknowledges it (``ack``: stored as seq N), refuses it for good (an ``error`` that is not
retryable), or the application discards it. While it is there it is written once per
connection, always with the same cmid and the same bytes: the server stores a (device, conv,
cmid) once and answers a resend with the first ack, so resending after a reconnect never makes
a duplicate, and never loses a message whose ack was lost with the connection.

Order. With ``strict_order`` (an application), a conversation's messages are written in the
order sent, and while a backlog from before a (re)connect drains, or after a retryable refusal,
only one is in flight at a time, so the server never stores a message ahead of one sent before
it. Otherwise (a load generator) every entry is written at once, up to ``window`` per
conversation in flight.

An entry may be added before its wire bytes are known (``ready=False``: the SDK encrypts it
first, which needs requests of its own); nothing of its conversation is written past it until
``prepare`` gives its bytes, so preparing never reorders.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

RETRY_FIRST = 0.05
RETRY_MAX = 2.0
"""A retryable refusal is resent after RETRY_FIRST * 2**attempts seconds (capped at RETRY_MAX),
jittered to [0.5, 1.5) of that, so clients refused together do not come back together."""


def new_cmid(server_now: float | None) -> str:
    """A fresh cmid: the server's time ``server_now`` (Unix seconds) in milliseconds, 12 hex
    digits, then 80 random bits, 20 hex digits (a UUIDv7's layout, as text), or 32 random hex
    digits when the server's time is not known (None). Unique as a random one, and cmids made
    later sort after it: chatd on SQLite keys its cmid index by cmid first, so the entries of
    one commit's messages share the index's last pages instead of one page per conversation
    (SPEC.md 7.3). The server's clock, not the device's: a device's own clock, to the
    millisecond, would tell the server which accounts share a device."""
    if server_now is None:
        return secrets.token_hex(16)
    return f"{round(server_now * 1000) & 0xFFFF_FFFF_FFFF:012x}{secrets.token_hex(10)}"


@dataclass(slots=True, eq=False)
class Entry:
    """One unacknowledged message.

    ``kind``/``body``/``to`` are what goes on the wire (for an encrypting client: the ``e2e``
    ciphertext, made once and kept, so every resend is the same bytes). ``data`` is the
    application's own (the plaintext, the intended send time of a load generator...)."""

    conv: int
    cmid: str
    kind: str = ""
    body: bytes = b""
    to: tuple[int, ...] = ()
    ready: bool = True
    """False until ``Outbox.prepare`` gives the wire bytes."""
    data: Any = None
    order: int = 0
    """Position in the outbox (assigned by ``add``): the order sends are written in."""
    attempts: int = 0
    """Retryable refusals so far (the resend backs off by it)."""
    connection: int = 0
    """The connection this entry was last written on (0: not written on the current one)."""
    retry_at: float | None = None
    """A retryable refusal: written again at this time (it counts as in flight until then)."""
    fc: bytes | None = None
    """The franking commitment sent beside the wire bytes (SPEC.md 18.7), if any."""


class Outbox:
    """Every unacknowledged message, by cmid, in the order sent per conversation."""

    def __init__(self, *, strict_order: bool = True, window: int | None = 64) -> None:
        self.strict_order = strict_order
        self.window = window
        self._entries: dict[str, Entry] = {}
        self._unwritten: dict[int, dict[str, Entry]] = {}
        """Per conversation, the entries to write on the current connection."""
        self._in_flight: dict[int, int] = {}
        """Per conversation, entries written on the current connection and not answered."""
        self._narrow: set[int] = set()
        """Conversations sending one at a time for now (strict order: a backlog, a retry)."""
        self._connection = 0
        self._orders = itertools.count(1)

    # ------------------------------------------------------------------ contents

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        """Every entry, oldest first."""
        return iter(self._entries.values())

    def get(self, cmid: str) -> Entry | None:
        return self._entries.get(cmid)

    def entries(self, conv: int) -> list[Entry]:
        return [e for e in self._entries.values() if e.conv == conv]

    def add(self, entry: Entry) -> Entry:
        """Put ``entry`` in the outbox; a cmid already there returns the entry there (the same
        message sent again: nothing is added). ``ValueError`` for a cmid waiting in another
        conversation."""
        known = self._entries.get(entry.cmid)
        if known is not None:
            if known.conv != entry.conv:
                raise ValueError(f"cmid {entry.cmid} is waiting for another conversation")
            return known
        entry.order = next(self._orders)
        entry.connection = 0
        self._entries[entry.cmid] = entry
        self._unwritten.setdefault(entry.conv, {})[entry.cmid] = entry
        return entry

    def prepare(
        self,
        cmid: str,
        kind: str,
        body: bytes,
        to: tuple[int, ...] = (),
        fc: bytes | None = None,
    ) -> Entry | None:
        """Give an entry its wire bytes (and franking commitment); it can be written from now
        on."""
        entry = self._entries.get(cmid)
        if entry is not None:
            entry.kind, entry.body, entry.to, entry.ready, entry.fc = kind, body, to, True, fc
        return entry

    def unprepared(self, conv: int) -> list[Entry]:
        """The entries of ``conv`` still waiting for their wire bytes, oldest first."""
        return [e for e in self.entries(conv) if not e.ready]

    # ------------------------------------------------------------------ writing

    def connection_made(self, connection: int) -> None:
        """A new connection is logged in: everything is written again on it. With strict
        order, conversations with a backlog send it one at a time."""
        self._connection = connection
        self._in_flight.clear()
        self._unwritten.clear()
        self._narrow.clear()
        for entry in self._entries.values():
            entry.connection = 0
            entry.retry_at = None
            self._unwritten.setdefault(entry.conv, {})[entry.cmid] = entry
            if self.strict_order:
                self._narrow.add(entry.conv)

    def connection_lost(self) -> None:
        self._connection = 0
        self._in_flight.clear()

    def _limit(self, conv: int) -> int | None:
        return 1 if conv in self._narrow else self.window

    def has_unwritten(self, conv: int) -> bool:
        return bool(self._unwritten.get(conv))

    def writable(self, conv: int) -> list[Entry]:
        """The entries of ``conv`` to write now, in order: not yet written on this connection,
        up to the window, and none past one that is not prepared."""
        if not self._connection:
            return []
        unwritten = self._unwritten.get(conv)
        if not unwritten:
            return []
        entries = list(unwritten.values())
        if len(entries) > 1:
            entries.sort(key=lambda e: e.order)
        limit = self._limit(conv)
        room = len(entries) if limit is None else limit - self._in_flight.get(conv, 0)
        out: list[Entry] = []
        for entry in entries:
            if len(out) >= room or not entry.ready:
                break
            out.append(entry)
        return out

    def convs_to_write(self) -> list[int]:
        return [conv for conv, unwritten in self._unwritten.items() if unwritten]

    def written(self, entry: Entry) -> None:
        """``entry`` was written on the current connection."""
        self._unwritten.get(entry.conv, {}).pop(entry.cmid, None)
        entry.connection = self._connection
        self._in_flight[entry.conv] = self._in_flight.get(entry.conv, 0) + 1

    # ------------------------------------------------------------------ answers

    def _leave(self, entry: Entry) -> None:
        del self._entries[entry.cmid]
        self._unwritten.get(entry.conv, {}).pop(entry.cmid, None)
        if entry.connection and entry.connection == self._connection:
            self._in_flight[entry.conv] -= 1
        if self._narrow and not any(e.conv == entry.conv for e in self._entries.values()):
            self._narrow.discard(entry.conv)  # drained: the whole window again

    def acked(self, conv: int, cmid: str) -> Entry | None:
        """The server stored ``cmid`` in ``conv``: the entry leaves (None: not here, e.g. a
        resend answered again, or another conversation's cmid)."""
        entry = self._entries.get(cmid)
        if entry is None or entry.conv != conv:
            return None
        self._leave(entry)
        return entry

    def refused(self, cmid: str) -> Entry | None:
        """The server refused ``cmid`` for good (or the application gave up on it)."""
        entry = self._entries.get(cmid)
        if entry is not None:
            self._leave(entry)
        return entry

    discard = refused

    def defer(self, cmid: str, now: float, jitter: float) -> float | None:
        """A retryable refusal (``RATE_LIMITED``, ``UNAVAILABLE``, ``INTERNAL``): the entry is
        written again at the time returned (``jitter`` in [0, 1) spreads it). With strict
        order nothing of its conversation overtakes it meanwhile."""
        entry = self._entries.get(cmid)
        if entry is None:
            return None
        entry.attempts += 1
        delay = min(RETRY_MAX, RETRY_FIRST * 2 ** min(entry.attempts, 6)) * (0.5 + jitter)
        entry.retry_at = now + delay
        if self.strict_order:
            self._narrow.add(entry.conv)
        return entry.retry_at

    def retry_due(self, now: float) -> list[int]:
        """Deferred entries whose time came are to be written again; returns their
        conversations."""
        convs = []
        for entry in self._entries.values():
            if entry.retry_at is not None and entry.retry_at <= now:
                entry.retry_at = None
                if entry.connection and entry.connection == self._connection:
                    self._in_flight[entry.conv] -= 1
                entry.connection = 0
                if self._connection:
                    self._unwritten.setdefault(entry.conv, {})[entry.cmid] = entry
                convs.append(entry.conv)
        return convs

    def next_retry(self) -> float | None:
        return min(
            (e.retry_at for e in self._entries.values() if e.retry_at is not None), default=None
        )
