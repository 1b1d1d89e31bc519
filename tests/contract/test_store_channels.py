"""The store contract for public channels (``Channels``, SPEC.md 20), on every backend:
handles and lookalikes, the directory's prefix search paged without gaps or repeats, follows
counted once, the seq and version rules of posts inside the write, history and tombstones, and
a post that costs the same few rows whatever the number of followers."""

from __future__ import annotations

import sqlite3

import asyncpg
import msgspec
import pytest
from chatproto import posts

from chatd.errors import Conflict, Forbidden, HandleTaken, Invalid, NotFound
from chatd.store import Store
from chatd.store.migrate import migrate_postgres

from .conftest import MakeAccount, StoreBackend, Stores, device_key
from .postkit import NOW, SIG, post


async def test_handles_are_unique_among_channels_and_never_another_accounts_lookalike(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    await store.create_channel(alice.id, "news", "News", "", NOW)
    for taken in ("news", "news_", "n.ews"):
        with pytest.raises(HandleTaken):
            await store.create_channel(bob.id, taken, "Mine", "", NOW)
    with pytest.raises(HandleTaken):  # bob's channel cannot pose as alice
        await store.create_channel(bob.id, "a1ice", "Alice", "", NOW)
    mine = await store.create_channel(alice.id, "alice", "Alice's own", "", NOW)
    assert (await store.channel_by_handle("alice", bob.id)) == mine


async def test_the_directory_pages_by_prefix_without_gaps_or_repeats(
    store: Store, make_account: MakeAccount
) -> None:
    alice, _ = await make_account("alice")
    made = []
    for i in range(45):
        about = "Straße" if i % 3 == 0 else "garden"
        made.append(
            (await store.create_channel(alice.id, f"chan{i}", f"Tomato {i}", about, NOW)).id
        )
    other = await store.create_channel(alice.id, "tomatoes", "Potatoes", "", NOW)
    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = await store.search_channels(["tomato"], cursor, 10, alice.id)
        seen += [c.id for c in page]
        if cursor is None:
            break
    assert seen == [*made, other.id]
    both, _ = await store.search_channels(posts.query_words("gard tomato"), None, 50, alice.id)
    assert [c.id for c in both] == [m for i, m in enumerate(made) if i % 3 != 0]
    umlaut, _ = await store.search_channels(posts.query_words("STRASSE"), None, 50, alice.id)
    assert len(umlaut) == 15
    assert await store.search_channels(["tomatoesx"], None, 50, alice.id) == ([], None)


async def test_a_channel_matching_a_prefix_twice_is_listed_once(
    store: Store, make_account: MakeAccount
) -> None:
    """Pages walk (word, channel) order: a channel with two words of the prefix shows at its
    first one only, however small the pages."""
    alice, _ = await make_account("alice")
    a = await store.create_channel(alice.id, "aa", "Gardening garden", "gardens", NOW)
    b = await store.create_channel(alice.id, "bb", "Gardenia", "", NOW)
    c = await store.create_channel(alice.id, "cc", "Garden", "", NOW)
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        page, cursor = await store.search_channels(["garden"], cursor, 1, alice.id)
        seen += [x.id for x in page]
        if cursor is None:
            break
    assert seen == [a.id, c.id, b.id]  # "garden" (a, c), then "gardenia" (b)


async def test_follows_count_once_and_admins_see_their_channels(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = (await store.create_channel(alice.id, "news", "News", "", NOW)).id
    for _ in range(2):
        row = await store.follow(ch, bob.id, NOW)
        assert row.following and row.followers == 1
    assert await store.followed_channels(bob.id) == [ch]
    assert await store.followed_channels(alice.id) == [ch]  # the owner administers it
    for _ in range(2):
        row = await store.unfollow(ch, bob.id)
        assert not row.following and row.followers == 0
    assert await store.followed_channels(bob.id) == []
    with pytest.raises(NotFound):
        await store.follow(999_999, bob.id, NOW)


async def test_posts_take_the_next_seq_and_version_and_keep_their_history(
    store: Store, make_account: MakeAccount
) -> None:
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = (await store.create_channel(alice.id, "news", "News", "", NOW)).id
    assert await store.put_post(post(ch, 1, alice.id), NOW)
    assert not await store.put_post(post(ch, 1, alice.id), NOW)  # a resend: nothing new
    with pytest.raises(Conflict):
        await store.put_post(post(ch, 3, alice.id), NOW)
    with pytest.raises(Conflict):
        await store.put_post(post(ch, 1, alice.id, text="another"), NOW)
    with pytest.raises(Forbidden):
        await store.put_post(post(ch, 2, bob.id), NOW)
    with pytest.raises(Invalid):
        await store.put_post(post(ch, 2, alice.id, text=""), NOW)  # a tombstone as ver 0
    with pytest.raises(Invalid):
        await store.put_post(msgspec.structs.replace(post(ch, 2, alice.id), ts=NOW - 600_000), NOW)
    assert await store.put_post(post(ch, 1, alice.id, ver=1, text="edited"), NOW)
    with pytest.raises(Conflict):
        await store.put_post(post(ch, 1, alice.id, ver=3, text="skipped"), NOW)
    assert await store.put_post(post(ch, 1, alice.id, ver=2, text=""), NOW)
    with pytest.raises(NotFound):  # deleted: no more versions
        await store.put_post(post(ch, 1, alice.id, ver=3, text="back"), NOW)
    assert await store.put_post(post(ch, 2, alice.id, text="two"), NOW)
    history = await store.post_history(ch, 1)
    assert [(p.ver, p.content) for p in history] == [(0, b"hi"), (1, b"edited"), (2, b"")]
    page = await store.posts_before(ch, 0, 10)
    assert [(p.seq, p.ver) for p in page] == [(2, 0), (1, 2)]
    assert [p.seq for p in await store.posts_before(ch, 2, 10)] == [1]
    assert (await store.channel(ch, bob.id)).last_seq == 2  # type: ignore[union-attr]
    await store.set_channel_admin(ch, alice.id, bob.id, True)
    assert await store.put_post(post(ch, 3, bob.id), NOW)
    assert not await store.set_channel_admin(ch, bob.id, bob.id, True)  # not the owner


async def test_a_post_costs_the_same_rows_with_a_thousand_followers(
    store: Store, make_account: MakeAccount, backend: StoreBackend
) -> None:
    """Fan-out on read: publishing adds one row to the whole database (and updates the
    channel's last seq), whatever the number of followers: every row of every table is counted
    before and after, on SQLite and on PostgreSQL."""
    alice, _ = await make_account("alice")
    quiet = (await store.create_channel(alice.id, "quiet", "Quiet", "", NOW)).id
    busy = (await store.create_channel(alice.id, "busy", "Busy", "", NOW)).id
    for i in range(1000):
        reader, _ = await make_account(f"reader{i}")
        await store.follow(busy, reader.id, NOW)

    async def rows() -> int:
        """Every row of every table of the database."""
        if backend.name == "sqlite":
            con = sqlite3.connect(backend.path)  # type: ignore[attr-defined]
            try:
                names = con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                tables = [t for (t,) in names.fetchall()]
                return sum(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
            finally:
                con.close()
        pg = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
        try:
            names = await pg.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
            return sum([await pg.fetchval(f'SELECT count(*) FROM "{t[0]}"') for t in names])
        finally:
            await pg.close()

    counts = []
    for channel in (quiet, busy):
        before = await rows()
        await store.put_post(post(channel, 1, alice.id), NOW)
        counts.append(await rows() - before)
    assert counts == [1, 1]
    assert (await store.channel(busy, alice.id)).followers == 1000  # type: ignore[union-attr]


async def test_comments_and_reaction_counts(store: Store, make_account: MakeAccount) -> None:
    """Threads page by id; replies stay under their post; counts are kept per emoji in the
    write, so a thousand reactions read back as one row per emoji."""
    (alice, _), (bob, _) = await make_account("alice"), await make_account("bob")
    ch = (await store.create_channel(alice.id, "news", "News", "", NOW)).id
    other = (await store.create_channel(alice.id, "other", "Other", "", NOW)).id
    await store.put_post(post(ch, 1, alice.id), NOW)
    await store.put_post(post(other, 1, alice.id), NOW)
    first = await store.add_comment(ch, 1, bob.id, 0, "text", b"a", NOW)
    with pytest.raises(NotFound):  # a reply must be under the same post
        await store.add_comment(other, 1, bob.id, first.comment, "text", b"x", NOW)
    with pytest.raises(NotFound):
        await store.add_comment(ch, 2, bob.id, 0, "text", b"x", NOW)
    ids = [first.comment]
    for _ in range(4):
        ids.append((await store.add_comment(ch, 1, alice.id, ids[-1], "text", b"r", NOW)).comment)
    page, total = await store.comments(ch, 1, ids[1], 2)
    assert [c.comment for c in page] == ids[2:4] and total == 5
    with pytest.raises(Forbidden):
        await store.delete_comment(ch, ids[1], bob.id)  # alice's, and bob is no admin
    await store.delete_comment(ch, first.comment, bob.id)
    page, total = await store.comments(ch, 1, 0, 10)
    assert page[0].deleted and page[0].content == b"" and total == 4
    readers = [(await make_account(f"r{i}"))[0].id for i in range(30)]
    for i, r in enumerate(readers):
        await store.react(ch, 1, r, "👍" if i % 3 else "🎉", False, now=NOW)
    await store.react(ch, 1, readers[1], "👍", False, now=NOW)  # again: no change
    counts = await store.react(ch, 1, readers[1], "👍", True, now=NOW)
    assert [(c.emoji, c.count, c.mine) for c in counts] == [("👍", 19, False), ("🎉", 10, False)]
    assert [c.mine for c in await store.reactions(ch, 1, readers[0])] == [False, True]
    # Any short string is an emoji: one account's 150 of them list the 100 largest counts.
    for i in range(150):
        counts = await store.react(ch, 1, bob.id, f"{i:03d}", False, now=NOW)
    assert len(counts) == 100 and [c.emoji for c in counts[:3]] == ["👍", "🎉", "000"]


async def _language_collated(backend: StoreBackend) -> None:
    """Recreate the test's PostgreSQL database with a language's default collation (ICU
    ``en-US``, as ``createdb --locale-provider=icu`` on an operator's machine), migrated. The
    test server is initialised without a locale (``C``), where text sorts by code point anyway,
    so only such a database shows a query that leaves the order to the collation."""
    server = backend.server  # type: ignore[attr-defined]
    name = backend.dsn.rsplit("/", 1)[1]  # type: ignore[attr-defined]
    admin = await asyncpg.connect(server.dsn())
    try:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.execute(
            f'CREATE DATABASE "{name}" TEMPLATE template0'
            " LOCALE_PROVIDER icu ICU_LOCALE 'en-US' ENCODING 'UTF8'"
        )
    finally:
        await admin.close()
    conn = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
    try:
        await migrate_postgres(conn)
        # A language orders "a" before "B" before "é"; code points put "B" (0x42) first.
        assert await conn.fetchval(
            "SELECT array_agg(x ORDER BY x) FROM unnest($1::text[]) x", ["é", "a", "B"]
        ) == ["a", "B", "é"]
    finally:
        await conn.close()


async def test_reaction_ties_list_in_code_point_order_whatever_the_collation(
    backend: StoreBackend, stores: Stores
) -> None:
    """SPEC.md 20.6: equal counts list by emoji in code point order, on every database; a
    PostgreSQL created with a language's collation would otherwise sort them as words."""
    if backend.name == "postgres":
        await _language_collated(backend)
    store = await stores.open()
    alice = (await store.create_account("alice", "Alice", "user", device_key(), "laptop", 1))[0]
    ch = (await store.create_channel(alice.id, "news", "News", "", NOW)).id
    await store.put_post(post(ch, 1, alice.id), NOW)
    emojis = ["é", "a", "B", "😂", "❤️", "👍", "🎉", "z", "Z"]
    for emoji in emojis:
        await store.react(ch, 1, alice.id, emoji, False, now=NOW)
    expected = sorted(emojis)  # Python compares str by code point
    assert expected[:3] == ["B", "Z", "a"]
    counts = await store.reactions(ch, 1, alice.id)
    assert [c.emoji for c in counts] == expected


async def test_a_post_stored_by_a_node_of_the_previous_version_takes_its_time_in_the_timeline(
    store: Store, make_account: MakeAccount, backend: StoreBackend
) -> None:
    """During a rolling upgrade a node still on schema 22 inserts posts without ``created``:
    the post takes its signed time (a trigger of migration 23), so a follower's timeline shows
    it in its place, not below every other post."""
    alice, _ = await make_account("alice")
    bob, _ = await make_account("bob")
    ch = (await store.create_channel(alice.id, "news", "News", "", NOW)).id
    await store.follow(ch, bob.id, NOW)
    await store.put_post(post(ch, 1, alice.id), NOW + 1000)  # a new node: its clock
    old = post(ch, 2, alice.id)  # what a node of version 22 writes: every column but created
    old_row = (ch, 2, 0, NOW + 2000, alice.id, 1, "text", b"old node", SIG)
    insert = (
        "INSERT INTO pub_posts (channel, seq, ver, ts, author, device, kind, content, sig)"
        " VALUES ({})"
    )
    if backend.name == "sqlite":
        con = sqlite3.connect(backend.path)  # type: ignore[attr-defined]
        try:
            with con:
                con.execute(insert.format(",".join("?" * 9)), old_row)
        finally:
            con.close()
    else:
        pg = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
        try:
            await pg.execute(insert.format(",".join(f"${i}" for i in range(1, 10))), *old_row)
        finally:
            await pg.close()
    assert old.seq == 2
    page = await store.timeline_posts(bob.id, None, 10)
    assert [(t.post.seq, t.at) for t in page] == [(2, NOW + 2000), (1, NOW + 1000)]
