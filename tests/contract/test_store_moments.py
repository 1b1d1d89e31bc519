"""The store contract for Moments (``Moments``, SPEC.md 22), on every backend: the audience
checked against mutual contacts inside the write, WeChat's comment visibility evaluated at each
read, a Moment hidden (as if it did not exist) from anyone it was not posted to or who is no
longer a contact, the timeline's newest-first paging by (ts, moment) without gaps or repeats,
and deletes that leave nothing behind."""

from __future__ import annotations

import random

import pytest
from chatproto.errors import ErrorCode

from chatd.core.moments import MAX_AUDIENCE, sees_comment, sees_moment
from chatd.errors import ChatdError, Forbidden, Invalid, NotFound
from chatd.store import Store

from .conftest import MakeAccount

NOW = 1_700_000_000_000


async def befriend(store: Store, a: int, b: int) -> None:
    await store.add_contact(a, b, NOW)
    await store.add_contact(b, a, NOW)


async def test_an_audience_of_mutual_contacts_only_and_all_resolved_in_the_write(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d = [(await make_account(h))[0].id for h in ("alice", "bob", "carol", "dave")]
    await befriend(store, a, b)
    await befriend(store, a, c)
    await store.add_contact(a, d, NOW)  # one way only: alice messaged dave, he never accepted
    with pytest.raises(ChatdError) as refused:
        await store.post_moment(a, 1, [b, d], False, b"x", NOW)
    assert refused.value.code == ErrorCode.CONSENT_REQUIRED
    assert await store.moments_for(a, None, 10) == []  # nothing stored
    row, audience, _ = await store.post_moment(a, 1, [], True, b"ct", NOW)
    assert audience == sorted([b, c]) and row.audience == 2 and row.ciphertext == b"ct"
    for bad in ([a], [b, b]):
        with pytest.raises(Invalid):
            await store.post_moment(a, 1, bad, False, b"x", NOW)
    with pytest.raises(Invalid):
        await store.post_moment(a, 1, [b], True, b"x", NOW)
    with pytest.raises(Invalid):
        await store.post_moment(a, 1, list(range(1, MAX_AUDIENCE + 2)), False, b"x", NOW)


async def test_comments_are_seen_by_the_commenters_mutual_contacts_only(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d = [(await make_account(h))[0].id for h in ("alice", "bob", "carol", "dave")]
    await befriend(store, a, b)
    await befriend(store, a, c)
    m, _, _ = await store.post_moment(a, 1, [b, c], False, b"post", NOW)
    ca, _, _ = await store.comment_moment(m.moment, a, 1, 0, "comment", b"A", NOW + 1)
    cb, _, _ = await store.comment_moment(m.moment, b, 1, 0, "comment", b"B", NOW + 2)
    with pytest.raises(NotFound):  # carol cannot answer a comment she does not see
        await store.comment_moment(m.moment, c, 1, cb.comment, "comment", b"C", NOW + 3)
    cc, _, _ = await store.comment_moment(m.moment, c, 1, ca.comment, "comment", b"C", NOW + 3)
    lb, _, wrote = await store.comment_moment(m.moment, b, 1, 0, "like", b"", NOW + 4)
    again, _, wrote_again = await store.comment_moment(m.moment, b, 1, 0, "like", b"", NOW + 5)
    assert wrote and not wrote_again and again == lb

    async def seen(viewer: int) -> list[bytes]:
        return [x.ciphertext for x in await store.moment_comments(m.moment, viewer, 0, 50)]

    assert await seen(a) == [b"A", b"B", b"C", b""]
    assert await seen(b) == [b"A", b"B", b""]
    assert await seen(c) == [b"A", b"C"]
    with pytest.raises(NotFound):
        await seen(d)
    assert await store.comment_readers(m.moment, b) == sorted([a, b])
    assert await store.comment_readers(m.moment, a) == sorted([a, b, c])
    # bob and carol become contacts: each now sees the other's comments (read at each read)
    await befriend(store, b, c)
    assert await seen(c) == [b"A", b"B", b"C", b""]
    assert (await store.moment(m.moment, c))[1] == sorted([a, b, c])
    assert (await store.moment(m.moment, a))[1] == sorted([b, c])
    page = await store.moment_comments(m.moment, a, ca.comment, 2)
    assert [x.comment for x in page] == [cb.comment, cc.comment]
    assert await store.unlike_moment(m.moment, b) == lb
    assert await store.unlike_moment(m.moment, b) is None


async def test_a_moment_is_not_found_for_strangers_and_for_a_contact_ended_since(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, d = [(await make_account(h))[0].id for h in ("alice", "bob", "dave")]
    await befriend(store, a, b)
    await befriend(store, a, d)
    m, _, _ = await store.post_moment(a, 1, [b], False, b"post", NOW)
    for call in (
        store.moment(m.moment, d),
        store.moment(m.moment + 1000, b),
        store.comment_moment(m.moment, d, 1, 0, "comment", b"x", NOW),
        store.delete_moment(m.moment, d),
        store.moment_comments(m.moment, d, 0, 10),
    ):
        with pytest.raises(NotFound):
            await call
    assert await store.moments_for(d, None, 10) == []
    with pytest.raises(Forbidden):
        await store.delete_moment(m.moment, b)
    assert [x.moment for x in await store.moments_for(b, None, 10)] == [m.moment]
    await store.block(b, a, NOW)  # bob ends the contact: the moment is gone for him
    assert await store.moments_for(b, None, 10) == []
    with pytest.raises(NotFound):
        await store.moment(m.moment, b)
    assert await store.moment_readers(m.moment) == [a]
    assert [x.moment for x in await store.moments_for(a, None, 10)] == [m.moment]


async def test_the_feed_pages_newest_first_by_time_then_id_without_gaps_or_repeats(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c = [(await make_account(h))[0].id for h in ("alice", "bob", "carol")]
    await befriend(store, a, b)
    await befriend(store, c, b)
    made = []
    for i in range(23):  # several at the same ms: the id breaks the tie
        author = (a, c)[i % 2]
        row, _, _ = await store.post_moment(author, 1, [b], False, bytes([i]), NOW + i // 3)
        made.append(row)
    await store.post_moment(a, 1, [], False, b"only mine", NOW + 100)
    expected = sorted(made, key=lambda r: (r.ts_ms, r.moment), reverse=True)
    got, before = [], None
    while True:
        page = await store.moments_for(b, before, 5)
        got += page
        if len(page) < 5:
            break
        before = (page[-1].ts_ms, page[-1].moment)
    assert got == expected
    mine = await store.moments_of(a, b, None, 50)
    assert mine == [r for r in expected if r.author == a]
    assert len(await store.moments_for(a, None, 50)) == 13


async def test_deletes_leave_nothing_and_only_the_authors_may_delete(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c = [(await make_account(h))[0].id for h in ("alice", "bob", "carol")]
    await befriend(store, a, b)
    await befriend(store, a, c)
    await befriend(store, b, c)
    m, _, _ = await store.post_moment(a, 1, [b, c], False, b"post", NOW)
    cb, _, _ = await store.comment_moment(m.moment, b, 1, 0, "comment", b"B", NOW)
    with pytest.raises(Forbidden):
        await store.delete_moment_comment(m.moment, cb.comment, c)
    cc, _, _ = await store.comment_moment(m.moment, c, 1, 0, "comment", b"C", NOW)
    await store.delete_moment_comment(m.moment, cb.comment, b)  # its author
    await store.delete_moment_comment(m.moment, cc.comment, a)  # the moment's author
    assert await store.moment_comments(m.moment, a, 0, 10) == []
    await store.comment_moment(m.moment, c, 1, 0, "comment", b"C2", NOW)
    assert sorted(await store.delete_moment(m.moment, a)) == sorted([b, c])
    for viewer in (a, b):
        with pytest.raises(NotFound):
            await store.moment(m.moment, viewer)
    assert await store.moments_for(b, None, 10) == []
    n, _, _ = await store.post_moment(a, 1, [b], False, b"next", NOW)
    assert n.moment > m.moment  # ids are never reused


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_store_sees_exactly_what_the_rules_of_core_moments_say(
    store: Store, make_account: MakeAccount, seed: int
) -> None:
    """A random contact graph (one-way contacts included), the author posting to all its mutual
    contacts, everyone in it commenting: each viewer's Moment and comments are exactly those
    ``core.moments.sees_moment`` / ``sees_comment`` grant."""
    rng = random.Random(seed)
    people = [(await make_account(f"p{seed}x{i}"))[0].id for i in range(7)]
    author = people[0]
    for a in people:
        for b in people:
            if a != b and rng.random() < 0.6:
                await store.add_contact(a, b, NOW)

    async def mutual(a: int, b: int) -> bool:
        return a in await store.contact_list(b, False, 0, 100) and b in await store.contact_list(
            a, False, 0, 100
        )

    row, audience, _ = await store.post_moment(author, 1, [], True, b"m", NOW)
    for x in [author, *audience]:
        await store.comment_moment(row.moment, x, 1, 0, "comment", bytes([x % 256]), NOW)
    for viewer in people:
        in_audience = viewer in audience
        if not sees_moment(
            viewer, author, in_audience=in_audience, mutual=await mutual(viewer, author)
        ):
            with pytest.raises(NotFound):
                await store.moment_comments(row.moment, viewer, 0, 100)
            continue
        got = [c.author for c in await store.moment_comments(row.moment, viewer, 0, 100)]
        want = [
            x
            for x in [author, *audience]
            if sees_comment(viewer, author, x, mutual=await mutual(viewer, x))
        ]
        assert got == want, (viewer, got, want)
