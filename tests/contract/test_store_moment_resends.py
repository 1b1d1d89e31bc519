"""The store contract for resent Moments, comments and likes (SPEC.md 22.1, "Resends"), on every
backend: the same cmid again is answered with the stored row and writes nothing, even when the
resends race each other through two nodes (PostgreSQL: the unique index makes the loser's batch
run again and find the winner); another request under a used cmid is CONFLICT."""

from __future__ import annotations

import asyncio

import pytest

from chatd.errors import Conflict
from chatd.store import Store

from .conftest import MakeAccount, StoreBackend, Stores

NOW = 1_700_000_000_000


async def _nodes(backend: StoreBackend, stores: Stores, store: Store) -> tuple[Store, Store]:
    """Two writers on one database where the backend has them (PostgreSQL), else one twice."""
    if backend.one_writer_per_location:
        return store, store
    return store, await stores.open()


async def _friends(store: Store, make_account: MakeAccount) -> tuple[int, int]:
    a, b = [(await make_account(h))[0].id for h in ("alice", "bob")]
    await store.add_contact(a, b, NOW)
    await store.add_contact(b, a, NOW)
    return a, b


async def test_concurrent_resends_of_a_moment_store_one_row(
    backend: StoreBackend, stores: Stores, store: Store, make_account: MakeAccount
) -> None:
    a, b = await _friends(store, make_account)
    one, two = await _nodes(backend, stores, store)
    got = await asyncio.gather(
        *(
            s.post_moment(a, 1, [b], False, b"ct", NOW + i, "c-1")
            for i, s in enumerate([one, two] * 3)
        )
    )
    assert len({row.moment for row, _, _ in got}) == 1
    assert sum(wrote for _, _, wrote in got) == 1  # stored once, answered six times
    assert {row.ts_ms for row, _, _ in got} == {got[0][0].ts_ms}
    assert all(audience == [b] for _, audience, _ in got)
    assert [m.moment for m in await store.moments_for(b, None, 10)] == [got[0][0].moment]
    # A resend still answers after the contact ended (the audience is not checked again) ...
    await store.block(a, b, NOW)  # ends the contact
    row, audience, wrote = await store.post_moment(a, 1, [b], False, b"ct", NOW + 9, "c-1")
    assert (row.moment, audience, wrote) == (got[0][0].moment, [b], False)
    # ... another body under the same cmid is refused; another author's cmid is its own.
    with pytest.raises(Conflict):
        await store.post_moment(a, 1, [], True, b"other", NOW + 9, "c-1")
    mine, _, wrote = await store.post_moment(b, 1, [], False, b"ct", NOW + 9, "c-1")
    assert wrote and mine.moment != row.moment
    assert len(await store.moments_for(a, None, 10)) == 1


async def test_concurrent_resends_of_a_comment_or_like_store_one_row(
    backend: StoreBackend, stores: Stores, store: Store, make_account: MakeAccount
) -> None:
    a, b = await _friends(store, make_account)
    one, two = await _nodes(backend, stores, store)
    m, _, _ = await store.post_moment(a, 1, [b], False, b"ct", NOW)
    for kind, cmid in (("comment", "k-1"), ("like", "k-2")):
        got = await asyncio.gather(
            *(s.comment_moment(m.moment, b, 2, 0, kind, b"x", NOW + i, cmid)
              for i, s in enumerate([one, two] * 3))
        )  # fmt: skip
        assert len({c.comment for c, _, _ in got}) == 1
        assert sum(wrote for _, _, wrote in got) == 1
    seen = await store.moment_comments(m.moment, a, 0, 10)
    assert sorted(c.kind for c in seen) == ["comment", "like"]
    for moment, kind, reply_to, body in (
        (m.moment, "comment", 0, b"y"),  # another body
        (m.moment, "like", 0, b"x"),  # a comment's cmid on a like
        (m.moment, "comment", seen[0].comment, b"x"),  # another reply_to
    ):
        with pytest.raises(Conflict):
            await store.comment_moment(moment, b, 2, reply_to, kind, body, NOW + 9, "k-1")
    assert len(await store.moment_comments(m.moment, a, 0, 10)) == 2
