"""The store contract for moderating public channels' comments and counting post views
(``ChannelModeration``, SPEC.md 20.9), on SQLite and PostgreSQL: bans with and without an
end, by admins only and never of an admin, optionally emptying the banned account's comments;
slow mode inside the write (a burst from one account admits exactly one, on one store or two);
a comment racing a ban on another node is ordered against it; views counted once per tag."""

from __future__ import annotations

import asyncio
import sqlite3

import asyncpg
import pytest
from chatproto import frames as F

from chatd.core.channel_moderation import view_tag
from chatd.errors import Forbidden, Invalid, NotFound, RateLimited
from chatd.store import Store

from .conftest import MakeAccount, StoreBackend, Stores
from .postkit import NOW, post

SECRET = bytes(range(32))


async def _channel(store: Store, owner: int, handle: str = "news", n_posts: int = 2) -> int:
    ch = (await store.create_channel(owner, handle, handle.title(), "", NOW)).id
    for seq in range(1, n_posts + 1):
        await store.put_post(post(ch, seq, owner), NOW)
    return ch


async def _live_comments(store: Store, ch: int, seq: int, author: int) -> int:
    items, _ = await store.comments(ch, seq, 0, 500)
    return sum(1 for c in items if c.author == author and not c.deleted)


async def test_a_ban_refuses_comments_and_new_reactions_until_it_ends_or_is_lifted(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    ch = await _channel(store, alice.id)
    await store.react(ch, 1, bob.id, "👍", False, now=NOW)
    await store.ban_commenter(ch, alice.id, bob.id, NOW + 60_000, False, NOW)
    with pytest.raises(Forbidden):
        await store.add_comment(ch, 1, bob.id, 0, "text", b"x", NOW + 1)
    with pytest.raises(Forbidden):
        await store.react(ch, 1, bob.id, "🎉", False, now=NOW + 1)
    # Taking a reaction back, and anyone else, pass.
    counts = await store.react(ch, 1, bob.id, "👍", True, now=NOW + 1)
    assert counts == []
    await store.add_comment(ch, 1, carol.id, 0, "text", b"ok", NOW + 1)
    bans = await store.comment_bans(ch, alice.id, 0, 50, NOW + 1)
    assert [(b.account, b.handle, b.until, b.by) for b in bans] == [
        (bob.id, "bob", NOW + 60_000, alice.id)
    ]
    # The ban ends by itself: listed no more, and bob comments again.
    assert await store.comment_bans(ch, alice.id, 0, 50, NOW + 60_000) == []
    await store.add_comment(ch, 1, bob.id, 0, "text", b"back", NOW + 60_000)
    # Banned until lifted; lifted (twice: nothing changes the second time).
    await store.ban_commenter(ch, alice.id, bob.id, 0, False, NOW + 70_000)
    with pytest.raises(Forbidden):
        await store.add_comment(ch, 1, bob.id, 0, "text", b"x", NOW + 10**12)
    await store.unban_commenter(ch, alice.id, bob.id)
    await store.unban_commenter(ch, alice.id, bob.id)
    await store.add_comment(ch, 2, bob.id, 0, "text", b"free", NOW + 80_000)
    assert await store.comment_bans(ch, alice.id, 0, 50, NOW + 80_000) == []


async def test_only_admins_ban_list_and_lift_and_never_an_admin(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    ch = await _channel(store, alice.id)
    assert await store.set_channel_admin(ch, alice.id, carol.id, True)
    with pytest.raises(Forbidden):  # bob is no admin
        await store.ban_commenter(ch, bob.id, alice.id, 0, True, NOW)
    with pytest.raises(Forbidden):  # not even of someone who is not an admin either
        await store.ban_commenter(ch, bob.id, bob.id, 0, False, NOW)
    for admin in (alice.id, carol.id):  # the owner and an admin cannot be banned
        with pytest.raises(Forbidden):
            await store.ban_commenter(ch, carol.id, admin, 0, False, NOW)
    with pytest.raises(NotFound):
        await store.ban_commenter(ch + 100, alice.id, bob.id, 0, False, NOW)
    with pytest.raises(NotFound):
        await store.ban_commenter(ch, alice.id, bob.id + 100, 0, False, NOW)
    with pytest.raises(Invalid):
        await store.ban_commenter(ch, alice.id, bob.id, NOW, False, NOW)
    with pytest.raises(Forbidden):
        await store.comment_bans(ch, bob.id, 0, 50, NOW)
    with pytest.raises(Forbidden):
        await store.unban_commenter(ch, bob.id, bob.id)
    with pytest.raises(Forbidden):
        await store.set_slow_mode(ch, bob.id, 60)
    # Nothing changed: the admins comment, and so does bob; no ban, no slow mode.
    for who in (alice.id, carol.id, bob.id):
        await store.add_comment(ch, 1, who, 0, "text", b"fine", NOW)
    assert await store.comment_bans(ch, alice.id, 0, 50, NOW) == []
    row = await store.channel(ch, bob.id)
    assert row is not None and row.slow_mode == 0


async def test_a_ban_can_empty_the_accounts_comments_in_that_channel_only(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _), (carol, _) = [await make_account(h) for h in ("alice", "bob", "carol")]
    ch = await _channel(store, alice.id)
    other = await _channel(store, alice.id, "other", 1)
    for seq in (1, 1, 2):
        await store.add_comment(ch, seq, bob.id, 0, "text", b"spam", NOW)
    await store.add_comment(ch, 1, carol.id, 0, "text", b"kind", NOW)
    await store.add_comment(other, 1, bob.id, 0, "text", b"elsewhere", NOW)
    assert await store.ban_commenter(ch, alice.id, bob.id, 0, True, NOW) == 3
    items, total = await store.comments(ch, 1, 0, 50)
    assert [(c.author, c.deleted, c.content) for c in items] == [
        (bob.id, True, b""),
        (bob.id, True, b""),
        (carol.id, False, b"kind"),
    ]
    assert total == 1
    assert await _live_comments(store, other, 1, bob.id) == 1


async def test_bans_page_by_account(store: Store, make_account: MakeAccount) -> None:
    alice, _ = await make_account("alice")
    ch = await _channel(store, alice.id)
    ids = [(await make_account(f"user{i}"))[0].id for i in range(5)]
    for i, a in enumerate(ids):
        await store.ban_commenter(ch, alice.id, a, 0 if i % 2 else NOW + 1000, False, NOW)
    seen: list[int] = []
    after = 0
    while True:
        page = await store.comment_bans(ch, alice.id, after, 2, NOW)
        seen += [b.account for b in page]
        if len(page) < 2:
            break
        after = page[-1].account
    assert seen == sorted(ids)
    # Past the timed bans' end only the bans without one are listed.
    later = await store.comment_bans(ch, alice.id, 0, 50, NOW + 1000)
    assert [b.account for b in later] == [ids[1], ids[3]]


async def test_slow_mode_lets_a_member_comment_once_per_interval_and_admins_always(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = await _channel(store, alice.id)
    await store.add_comment(ch, 1, bob.id, 0, "text", b"before", NOW)  # slow mode off
    await store.add_comment(ch, 1, bob.id, 0, "text", b"again", NOW)
    await store.set_slow_mode(ch, alice.id, 30)
    row = await store.channel(ch, bob.id)
    assert row is not None and row.slow_mode == 30
    with pytest.raises(RateLimited) as refused:  # his last comment was at NOW
        await store.add_comment(ch, 2, bob.id, 0, "text", b"x", NOW + 10_000)
    assert refused.value.retry_after == 20.0
    await store.add_comment(ch, 2, bob.id, 0, "text", b"later", NOW + 30_000)
    with pytest.raises(RateLimited):  # per channel: another post does not help
        await store.add_comment(ch, 1, bob.id, 0, "text", b"x", NOW + 31_000)
    for i in range(3):  # the owner is never slowed
        await store.add_comment(ch, 1, alice.id, 0, "text", b"admin", NOW + i)
    await store.react(ch, 1, bob.id, "👍", False, now=NOW + 31_000)  # reactions are not
    with pytest.raises(Invalid):
        await store.set_slow_mode(ch, alice.id, 3601)
    await store.set_slow_mode(ch, alice.id, 0)
    await store.add_comment(ch, 1, bob.id, 0, "text", b"off", NOW + 31_000)


async def test_a_burst_of_comments_in_slow_mode_admits_exactly_one(
    stores: Stores, store: Store, make_account: MakeAccount, backend: StoreBackend
) -> None:
    """50 comments at once from one account: one passes. On PostgreSQL half go through a
    second store (another node) on the same database."""
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = await _channel(store, alice.id)
    await store.add_comment(ch, 2, bob.id, 0, "text", b"an hour ago", NOW - 3_600_000)
    await store.set_slow_mode(ch, alice.id, 60)
    nodes = [store] if backend.one_writer_per_location else [store, await stores.open()]
    results = await asyncio.gather(
        *(
            nodes[i % len(nodes)].add_comment(ch, 1, bob.id, 0, "text", b"me", NOW + i)
            for i in range(50)
        ),
        return_exceptions=True,
    )
    passed = [r for r in results if isinstance(r, F.CommentInfo)]
    assert len(passed) == 1
    assert all(isinstance(r, RateLimited) for r in results if r not in passed)
    assert await _live_comments(store, ch, 1, bob.id) == 1


async def _race_a_ban(store: Store, node: Store, ch: int, admin: int, account: int) -> int:
    """``account`` comments through ``node`` as fast as it can while ``admin`` bans it (with
    its comments deleted) through ``store``; the comments refused."""
    banned = asyncio.Event()
    refused = 0

    async def spam() -> None:
        nonlocal refused
        while True:
            try:
                await node.add_comment(ch, 1, account, 0, "text", b"spam", NOW)
            except Forbidden:
                refused += 1
                if banned.is_set():
                    return

    async def ban() -> None:
        await asyncio.sleep(0)  # let the spam start
        await store.ban_commenter(ch, admin, account, 0, True, NOW)
        banned.set()
        # Right after the answer: nothing of the account's stands.
        assert await _live_comments(store, ch, 1, account) == 0

    await asyncio.gather(spam(), ban())
    return refused


async def test_no_comment_outlives_a_ban_that_races_it(
    stores: Stores, store: Store, make_account: MakeAccount, backend: StoreBackend
) -> None:
    """A ban that deletes comments, made while the account comments as fast as it can (on
    PostgreSQL through another store, another node): every comment either committed before the
    ban (and is deleted by it) or is refused; none is left standing after the ban's answer."""
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = await _channel(store, alice.id)
    node = store if backend.one_writer_per_location else await stores.open()
    for _ in range(10):
        assert await _race_a_ban(store, node, ch, alice.id, bob.id) >= 1
        assert await _live_comments(store, ch, 1, bob.id) == 0
        await store.unban_commenter(ch, alice.id, bob.id)


async def test_views_count_each_tag_once_and_ignore_what_is_not_a_live_post(
    store: Store, make_account: MakeAccount, backend: StoreBackend
) -> None:
    alice, _ = await make_account("alice")
    ch = await _channel(store, alice.id, n_posts=3)
    await store.put_post(post(ch, 3, alice.id, ver=1, text=""), NOW)  # deleted

    def tag(account: int, seq: int) -> bytes:
        return view_tag(SECRET, account, ch, seq)

    assert await store.view_posts(ch, [(1, tag(10, 1)), (2, tag(10, 2))]) == 2
    for _ in range(1000):  # one reader reloading
        assert await store.view_posts(ch, [(1, tag(10, 1))]) == 0
    assert await store.view_posts(ch, [(1, tag(11, 1)), (3, tag(11, 3)), (9, tag(11, 9))]) == 1
    with pytest.raises(NotFound):
        await store.view_posts(ch + 100, [(1, tag(10, 1))])
    got = {p.seq: p.views for p in await store.posts_before(ch, 0, 10)}
    assert got == {1: 2, 2: 1, 3: 0}
    # What is stored: the tags and the counts, no account id.
    if backend.name == "sqlite":
        con = sqlite3.connect(backend.path)  # type: ignore[attr-defined]
        try:
            columns = [r[1] for r in con.execute("PRAGMA table_info(pub_views)")]
            rows = con.execute("SELECT count(*) FROM pub_views").fetchone()[0]
        finally:
            con.close()
    else:
        pg = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
        try:
            columns = [
                r[0]
                for r in await pg.fetch(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name='pub_views' ORDER BY ordinal_position"
                )
            ]
            rows = await pg.fetchval("SELECT count(*) FROM pub_views")
        finally:
            await pg.close()
    assert columns == ["channel", "seq", "tag"] and rows == 3


async def test_the_view_secret_is_made_once(store: Store) -> None:
    first = await store.view_secret(SECRET)
    assert first == SECRET
    assert await store.view_secret(bytes(32)) == SECRET
