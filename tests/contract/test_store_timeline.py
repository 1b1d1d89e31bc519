"""The store contract for the timeline's reads (``Timelines``, SPEC.md 20.8), on every
backend: followed channels only, ordered by the server's time of first storing (not the signed
time, not the seq), the current version of each post and no deleted one, paged by a key bound
that neither repeats nor skips a post, and the same answer whichever channel holds the newest
posts (the per-channel heads and the rank bound of ``store.timeline``)."""

from __future__ import annotations

import random

import pytest

from chatd.core import timeline as timeline_rules
from chatd.errors import Invalid
from chatd.store import Store

from .conftest import MakeAccount
from .postkit import NOW, post


async def _walk(store: Store, account: int, limit: int) -> list[tuple[int, int, int]]:
    """Every post of ``account``'s timeline as ``(at, channel, seq)``, page by page."""
    seen: list[tuple[int, int, int]] = []
    before = None
    while True:
        page = await store.timeline_posts(account, before, limit)
        seen += [(t.at, t.post.channel, t.post.seq) for t in page]
        if len(page) < limit:
            return seen
        before = seen[-1]


async def test_the_timeline_merges_followed_channels_by_server_time_current_versions_only(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    a = (await store.create_channel(alice.id, "a_news", "A", "", NOW)).id
    b = (await store.create_channel(alice.id, "b_news", "B", "", NOW)).id
    c = (await store.create_channel(alice.id, "c_news", "C", "", NOW)).id
    for ch in (a, b):
        await store.follow(ch, bob.id, NOW)
    await store.put_post(post(a, 1, alice.id), NOW + 10)
    await store.put_post(post(c, 1, alice.id), NOW + 15)  # not followed: never listed
    await store.put_post(post(b, 1, alice.id), NOW + 20)
    await store.put_post(post(a, 2, alice.id), NOW + 20)  # the same time: channel b first
    await store.put_post(post(b, 2, alice.id), NOW + 30)
    await store.put_post(post(a, 1, alice.id, ver=1, text="edited"), NOW + 40)  # keeps its place
    await store.put_post(post(b, 2, alice.id, ver=1, text=""), NOW + 50)  # deleted: gone
    page = await store.timeline_posts(bob.id, None, 10)
    assert [(t.at, t.post.channel, t.post.seq) for t in page] == [
        (NOW + 20, b, 1),
        (NOW + 20, a, 2),
        (NOW + 10, a, 1),
    ]
    assert (page[2].post.ver, page[2].post.content) == (1, b"edited")
    assert await store.timeline_posts(bob.id, (NOW + 20, b, 1), 10) == page[1:]
    assert await store.timeline_posts(bob.id, (NOW + 10, a, 1), 10) == []
    assert await store.timeline_posts(alice.id, None, 10) == []  # follows nothing
    assert await store.live_post(a, 1) and not await store.live_post(b, 2)
    assert not await store.live_post(a, 9)


async def test_pages_of_any_size_walk_every_post_once_whichever_channel_is_busiest(
    store: Store, make_account: MakeAccount
) -> None:
    """One channel posts a lot, others rarely, with many ties: every page size walks the same
    list, each post once, newest first (the rank bound cuts nothing it needs)."""
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    rng = random.Random(19)
    channels = [(await store.create_channel(alice.id, f"ch{i}", "C", "", NOW)).id for i in range(6)]
    for ch in channels[:5]:
        await store.follow(ch, bob.id, NOW)
    seqs = dict.fromkeys(channels, 0)
    expected: list[tuple[int, int, int]] = []
    for step in range(60):
        ch = channels[0] if step % 2 else rng.choice(channels)
        seqs[ch] += 1
        at = NOW + step // 3  # three posts per millisecond: ties across channels
        await store.put_post(post(ch, seqs[ch], alice.id), at)
        if ch != channels[5]:
            expected.append((at, ch, seqs[ch]))
    expected.sort(reverse=True)
    for limit in (1, 2, 3, 7, 50):
        assert await _walk(store, bob.id, limit) == expected, limit


async def test_an_account_follows_a_bounded_number_of_channels(
    store: Store, make_account: MakeAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page reads one index entry per followed channel, so follows are bounded; following
    again one already followed is still the idempotent answer, and an unfollow frees a place."""
    monkeypatch.setattr(timeline_rules, "MAX_FOLLOWS", 3)
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    chs = [(await store.create_channel(alice.id, f"ch{i}", "C", "", NOW)).id for i in range(4)]
    for ch in chs[:3]:
        await store.follow(ch, bob.id, NOW)
    with pytest.raises(Invalid):
        await store.follow(chs[3], bob.id, NOW)
    assert (await store.follow(chs[0], bob.id, NOW)).following  # again: no change, no refusal
    await store.unfollow(chs[0], bob.id)
    assert (await store.follow(chs[3], bob.id, NOW)).followers == 1
