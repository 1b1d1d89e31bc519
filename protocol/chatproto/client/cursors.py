"""Cursors per conversation, and the receive rule of SPEC.md 13 step 4.

A conversation's *cursor* is the highest seq this client has with no gap below it. Every
message that reaches the client (a live ``deliver``, one replayed by ``sync``, the ``ack`` of
its own send, a page of a gap ``fetch``) goes through ``Cursors.receive``:

* seq <= cursor: a duplicate, dropped (several nodes deliver a resend again, SPEC.md 7.7; a
  sync overlaps live delivery, 7.4 point 4);
* seq == cursor + 1: handed over, and so is every buffered seq that now follows;
* seq > cursor + 1: buffered; the gap below it is reported unless a sync of the conversation
  is running (the sync fills it).

``ordered=False`` hands a message over as it arrives instead of in seq order (still once): a
load generator measures arrival time and never waits for a gap to close. The cursor and the
"seen above the cursor" set are kept the same way in both modes, so duplicates are dropped in
both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Conv(Generic[T]):
    cursor: int = 0
    ahead: dict[int, T | None] = field(default_factory=dict)
    """Seqs received above ``cursor + 1`` (with their item when ordered)."""
    sync_after: int | None = None
    """``after`` of the sync in progress on this connection (None: no sync running)."""
    synced: int = 0
    """The highest ``synced.seq`` answered: every seq up to it was sent to this client."""


@dataclass(slots=True)  # not frozen: one is made per message, and frozen ones are slower to make
class Received(Generic[T]):
    """What ``Cursors.receive`` did with one message."""

    ready: list[tuple[int, T]]
    """(seq, item) to hand over now, in this order (empty: dropped or buffered)."""
    duplicate: bool = False
    """The seq was seen before (dropped)."""
    overlap: bool = False
    """A duplicate sent again by a sync this client asked for (SPEC.md 7.4 point 4): allowed,
    not a fault of the server."""
    gap: bool = False
    """The message lies past a gap no sync is filling: fetch the gap (``Cursors.gap``)."""


class Cursors(Generic[T]):
    """The cursors of every conversation this client reads, and what is buffered above them."""

    def __init__(self, cursors: Mapping[int, int] | None = None, *, ordered: bool = True) -> None:
        self.ordered = ordered
        self._convs: dict[int, _Conv[T]] = {}
        for conv, seq in (cursors or {}).items():
            self._convs[conv] = _Conv(cursor=seq)

    def _state(self, conv: int) -> _Conv[T]:
        state = self._convs.get(conv)
        if state is None:
            state = self._convs[conv] = _Conv()
        return state

    def cursor(self, conv: int) -> int:
        """The highest seq of ``conv`` handed over with none missing below (0: none)."""
        state = self._convs.get(conv)
        return 0 if state is None else state.cursor

    def cursors(self) -> dict[int, int]:
        return {conv: s.cursor for conv, s in self._convs.items() if s.cursor}

    def convs(self) -> list[int]:
        return list(self._convs)

    def advance_to(self, conv: int, seq: int) -> None:
        """Move the cursor of ``conv`` up to ``seq`` without handing anything over (a client
        that starts reading at the conversation's end, or one restoring its saved cursor)."""
        state = self._state(conv)
        if seq > state.cursor:
            state.cursor = seq
            for s in [s for s in state.ahead if s <= seq]:
                del state.ahead[s]

    def reset(self, conv: int, seq: int) -> None:
        """Set the cursor of ``conv`` to ``seq`` exactly, also backwards (a client told by
        ``synced`` that the server's conversation ends lower, SPEC.md 7.4 point 2; tests)."""
        state = self._state(conv)
        state.cursor = seq
        for s in [s for s in state.ahead if s <= seq]:
            del state.ahead[s]

    def drop_buffered(self, conv: int) -> None:
        """Forget what is buffered above the cursor of ``conv`` (it comes again by sync)."""
        state = self._convs.get(conv)
        if state is not None:
            state.ahead.clear()

    def sync_after(self, conv: int) -> int | None:
        """``after`` of the sync of ``conv`` in progress (None: none)."""
        state = self._convs.get(conv)
        return None if state is None else state.sync_after

    def receive(self, conv: int, seq: int, item: T) -> Received[T]:
        """Apply the receive rule to message ``seq`` of ``conv`` (see the module docstring)."""
        state = self._state(conv)
        if seq <= state.cursor or seq in state.ahead:
            overlap = state.sync_after is not None and seq > state.sync_after
            return Received([], duplicate=True, overlap=overlap)
        if seq > state.cursor + 1:
            state.ahead[seq] = item if self.ordered else None
            ready = [] if self.ordered else [(seq, item)]
            return Received(ready, gap=state.sync_after is None)
        ready = [(seq, item)]
        cursor = seq
        while cursor + 1 in state.ahead:
            cursor += 1
            held = state.ahead.pop(cursor)
            if self.ordered:
                ready.append((cursor, held))  # type: ignore[arg-type]  # ordered: never None
        state.cursor = cursor
        return Received(ready)

    def gap(self, conv: int) -> tuple[int, int] | None:
        """The range to fetch, (after, before), when something is buffered past the cursor:
        ``fetch{conv, after, before}`` returns exactly the missing seqs (None: no gap)."""
        state = self._convs.get(conv)
        if state is None or not state.ahead:
            return None
        return state.cursor, min(state.ahead)

    def begin_sync(self, conv: int) -> int:
        """A ``sync`` of ``conv`` is written: returns its ``after`` (the cursor). Until it is
        answered, a seq seen twice is an overlap and gaps are left to it."""
        state = self._state(conv)
        state.sync_after = state.cursor
        return state.cursor

    def end_sync(self, conv: int, synced: int | None) -> None:
        """The sync of ``conv`` finished (``synced``: its ``synced.seq``; None: it failed or the
        connection went)."""
        state = self._state(conv)
        state.sync_after = None
        if synced is not None and synced > state.synced:
            state.synced = synced

    def syncing(self, conv: int) -> bool:
        state = self._convs.get(conv)
        return state is not None and state.sync_after is not None

    def end_all_syncs(self) -> None:
        """The connection is gone: no sync is running any more."""
        for state in self._convs.values():
            state.sync_after = None

    def horizon(self, conv: int) -> int:
        """The highest seq of ``conv`` this client knows exists (received, acked or synced)."""
        state = self._convs.get(conv)
        if state is None:
            return 0
        return max(state.cursor, max(state.ahead, default=0), state.synced)

    def buffered(self, conv: int) -> int:
        """How many messages of ``conv`` wait above a gap."""
        state = self._convs.get(conv)
        return 0 if state is None else len(state.ahead)
