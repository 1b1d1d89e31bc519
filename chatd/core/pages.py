"""Answers that fit in one frame by construction (issue 14.6, SPEC.md 11.5).

Every answer that lists things (conversations, members, messages, requests, contacts, ...) is
built by ``fit``: items are encoded one by one and counted in bytes, and the page stops before
the one that would take the frame past ``FRAME_BUDGET``. Rows are no measure: 500 messages of
64 KiB are 32 MB, 1,600 conversation titles 320 KB. What a page leaves out is asked for again
with the page's cursor (the last item's key), so ``more`` is true when items were cut.

The budget leaves ``ENVELOPE`` bytes for the answer's own fields (``t``, ``re``, ``conv``,
``more``, an array header per list): a page of items within ``FRAME_BUDGET`` plus those is a
legal frame whatever the item count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import msgspec
from chatproto.limits import MAX_FRAME_BYTES

ENVELOPE = 1024
"""Bytes kept for an answer's fields besides its list of items (at most a few dozen are used)."""
FRAME_BUDGET = MAX_FRAME_BYTES - ENVELOPE
"""Encoded bytes the items of one answer may take."""
READ_BUDGET = 4 * MAX_FRAME_BYTES
"""Bytes of message bodies one page read from the store may hold (``sync`` streams one frame
per message, so its pages need not fit in a frame, only bound the memory of a read)."""

T = TypeVar("T")

_encoder = msgspec.msgpack.Encoder()


def encoded_size(item: object) -> int:
    """Bytes ``item`` takes in a msgpack frame (as an element of an array)."""
    return len(_encoder.encode(item))


def fit(
    items: Iterable[T],
    budget: int = FRAME_BUDGET,
    size: Callable[[T], int] = encoded_size,
) -> tuple[list[T], bool]:
    """The longest prefix of ``items`` whose sizes add up to at most ``budget``, and whether
    items were left out. At least one item is kept when there is one and it alone fits."""
    kept: list[T] = []
    used = 0
    for item in items:
        used += size(item)
        if used > budget:
            return kept, True
        kept.append(item)
    return kept, False


def fit_from_end(
    items: Sequence[T],
    budget: int = FRAME_BUDGET,
    size: Callable[[T], int] = encoded_size,
) -> tuple[list[T], bool]:
    """The longest suffix of ``items`` within ``budget`` (paging backwards: the newest that fit),
    in the original order, and whether items were left out."""
    kept, cut = fit(reversed(items), budget, size)
    kept.reverse()
    return kept, cut
