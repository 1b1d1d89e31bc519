"""The timeline's order, cursor and merge (``chatd.core.timeline``, SPEC.md 20.8), without a
socket or a database: paging with any interleaving of new items between the reads never repeats
an item and never skips one that existed when the first page was read."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core import timeline as tl
from chatd.errors import Invalid


@dataclass
class World:
    """Two sources as a store would hold them; ``page`` reads like the service does."""

    items: set[tl.Key] = field(default_factory=set)

    def source(self, source: int, cursor: tl.Key | None, limit: int) -> list[tl.Entry[tl.Key]]:
        bound = tl.source_bound(cursor, source)
        mine = [k for k in self.items if k.source == source]
        if bound is not None:
            mine = [k for k in mine if (k.at, k.ident) < bound]
        mine.sort(key=lambda k: (k.at, k.ident), reverse=True)
        return [tl.Entry(k, k) for k in mine[:limit]]

    def page(self, before: str, limit: int) -> tl.Page[tl.Key]:
        cursor = tl.decode_cursor(before)
        return tl.merge(limit, [self.source(s, cursor, limit) for s in (tl.POSTS, tl.MOMENTS)])


def _key(at: int, source: int, a: int, b: int) -> tl.Key:
    return tl.Key(at, source, (a, b) if source == tl.POSTS else (a,))


keys = st.builds(
    _key,
    st.integers(0, 6),  # few times: many ties between sources and within one
    st.sampled_from([tl.POSTS, tl.MOMENTS]),
    st.integers(1, 4),
    st.integers(1, 4),
)


@settings(max_examples=150, deadline=None)
@given(
    first=st.sets(keys, max_size=40),
    arrivals=st.lists(st.sets(keys, max_size=5), max_size=12),
    limit=st.integers(1, 6),
)
def test_paging_never_repeats_nor_skips_what_existed_whatever_arrives_between_pages(
    first: set[tl.Key], arrivals: list[set[tl.Key]], limit: int
) -> None:
    world = World(set(first))
    seen: list[tl.Key] = []
    before = ""
    reads = 0
    while True:
        page = world.page(before, limit)
        got = [e.item for e in page.entries]
        assert len(got) <= limit
        seen += got
        if not page.next:
            break
        before = page.next
        if reads < len(arrivals):  # new items, older or newer than the cursor, arrive
            world.items |= arrivals[reads]
        reads += 1
    assert len(seen) == len(set(seen)), "an item was shown twice"
    assert set(first) <= set(seen), "an item that existed at the first read was skipped"
    orders = [k.order() for k in seen]
    assert orders == sorted(orders, reverse=True), "not newest first"


def test_at_the_same_time_posts_come_before_moments_and_ids_descend() -> None:
    world = World(
        {_key(5, tl.MOMENTS, 9, 0), _key(5, tl.POSTS, 1, 2), _key(5, tl.POSTS, 2, 1)}
        | {_key(6, tl.MOMENTS, 1, 0), _key(4, tl.POSTS, 9, 9)}
    )
    walk: list[tl.Key] = []
    before = ""
    while True:
        page = world.page(before, 2)
        walk += [e.item for e in page.entries]
        if not page.next:
            break
        before = page.next
    assert [(k.at, k.source, k.ident) for k in walk] == [
        (6, tl.MOMENTS, (1,)),
        (5, tl.POSTS, (2, 1)),
        (5, tl.POSTS, (1, 2)),
        (5, tl.MOMENTS, (9,)),
        (4, tl.POSTS, (9, 9)),
    ]


def test_a_cursor_round_trips_and_a_short_page_ends_the_walk() -> None:
    key = tl.Key(1_767_225_600_200, tl.POSTS, (7, 1))
    assert key.encode() == "1767225600200.0.7.1"
    assert tl.decode_cursor(key.encode()) == key
    assert tl.decode_cursor("") is None
    page = tl.merge(3, [[tl.Entry(key, "a")]])
    assert page.next == ""  # fewer than the limit: nothing older
    biggest = tl.Key(2**63 - 1, tl.POSTS, (2**63 - 1, 2**63 - 1))
    assert tl.decode_cursor(biggest.encode()) == biggest


@pytest.mark.parametrize(
    "text",
    [
        "x",
        "1.0.7",  # a post's ident has two numbers
        "1.1.7.1",  # a Moment's has one
        "1.2.7",  # no such source
        "-1.0.7.1",
        "1.0.7.1.",
        "1..7.1",
        "1.0.7.\u0661",  # a digit, but not an ASCII one
        f"{2**63}.0.7.1",
        "1." * 40 + "1",
    ],
)
def test_anything_but_a_cursor_this_server_makes_is_invalid(text: str) -> None:
    with pytest.raises(Invalid):
        tl.decode_cursor(text)
