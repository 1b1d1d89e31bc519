"""The merged timeline's order, its cursor, and the merge of its sources (SPEC.md 20.8).

An account's timeline merges several sources (the posts of the channels it follows; its
contacts' Moments), each read newest first from the store. Every item has a key that never
changes once the item exists: ``(at, source, ident)``, where ``at`` is the SERVER's time when
the item was first stored (not a client's clock: a new item then sorts after every item stored
before it on that clock), ``source`` a small rank, and ``ident`` the item's id within its source
(a post: ``(channel, seq)``; a Moment: ``(moment,)``). The order is ``at`` descending, then
``source`` ascending, then ``ident`` descending: a total order.

A page ends with the key of its last item; the cursor of the next page is that key, and the
next page is the items whose key is below it. Because keys are fixed and the order is total,
paging this way never repeats an item and never skips one that existed when the first page
was read, whatever is stored between the reads (new items sort above the first page, so they
show on a fresh first page; one stored meanwhile with an older ``at``, by a node whose clock
lags, shows at most once).

Each source is asked for at most ``limit`` items below ITS bound (``source_bound``), so a page
costs ``limit`` items per source before the merge, however long the sources are.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from chatproto import limits

from chatd.errors import Invalid

POSTS: Final = 0
"""Source rank of channel posts (at the same ``at``, before Moments)."""
MOMENTS: Final = 1
"""Source rank of contacts' Moments."""

ARITY: Final = {POSTS: 2, MOMENTS: 1}
"""How many integers an ident of each source has."""

MAX_IDENT: Final = 2**63 - 1
"""Above every id: a bound ``(at, (MAX_IDENT, ...))`` lets through everything at ``at``."""

MAX_FOLLOWS: Final = 2000
"""Channels one account follows at most: a timeline page reads one index entry per followed
channel (``store.timeline``), so this bounds what any page costs."""

T = TypeVar("T")


def check_follows(following: int) -> None:
    """Refuse one more follow of an account that follows ``following`` channels already
    (``INVALID``): its timeline's pages would cost more than the bound allows."""
    if following >= MAX_FOLLOWS:
        raise Invalid(f"an account follows at most {MAX_FOLLOWS} channels")


@dataclass(frozen=True, slots=True)
class Key:
    """Where an item sits in the timeline (see the module's docstring)."""

    at: int
    source: int
    ident: tuple[int, ...]

    def order(self) -> tuple[int, int, tuple[int, ...]]:
        """Larger is newer: the timeline lists items by this, descending."""
        return (self.at, -self.source, self.ident)

    def encode(self) -> str:
        """The cursor's text: ``"AT.SOURCE.ID[.ID]"``, opaque to clients."""
        return ".".join(str(n) for n in (self.at, self.source, *self.ident))


def decode_cursor(text: str) -> Key | None:
    """The key of a cursor (``""``: the first page, None); ``INVALID`` when ``text`` is not a
    cursor this server makes."""
    if not text:
        return None
    parts = text.split(".")
    if len(text) > limits.MAX_TIMELINE_CURSOR_CHARS or not all(
        p.isdigit() and p.isascii() for p in parts
    ):
        raise Invalid("not a timeline cursor")
    numbers = [int(p) for p in parts]
    if len(numbers) < 3 or any(n > MAX_IDENT for n in numbers):
        raise Invalid("not a timeline cursor")
    at, source, *ident = numbers
    if ARITY.get(source) != len(ident):
        raise Invalid("not a timeline cursor")
    return Key(at, source, tuple(ident))


def source_bound(cursor: Key | None, source: int) -> tuple[int, tuple[int, ...]] | None:
    """The exclusive upper bound, in ``source``'s own ``(at, ident)`` order, of its items that
    come after ``cursor`` (None: the first page, no bound). At the cursor's ``at``, a source
    ranked after the cursor's has all its items still to come, one ranked before has none."""
    if cursor is None:
        return None
    if source == cursor.source:
        return (cursor.at, cursor.ident)
    if source > cursor.source:
        return (cursor.at, (MAX_IDENT,) * ARITY[source])
    return (cursor.at, (0,) * ARITY[source])


@dataclass(frozen=True, slots=True)
class Entry(Generic[T]):
    """One item of a source with its key."""

    key: Key
    item: T


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """A page of the merged timeline, newest first; ``next`` is the cursor of the next page
    (``""``: this page was not full, there is nothing older)."""

    entries: list[Entry[T]]
    next: str


def merge(limit: int, sources: Iterable[Sequence[Entry[T]]]) -> Page[T]:
    """The first ``limit`` entries of the sources' union, newest first. Each source must be
    sorted newest first and hold its first ``limit`` entries below its ``source_bound`` (fewer
    only when it has no more): then the page is exactly the timeline's next ``limit`` items."""
    merged = heapq.merge(*sources, key=lambda e: e.key.order(), reverse=True)
    entries = list(itertools.islice(merged, limit))
    return Page(entries, entries[-1].key.encode() if len(entries) == limit else "")
