"""Public channels, their followers and their signed posts (``Channels``, SPEC.md 20),
written once for both databases.

A post is ONE row whatever the number of followers (``pub_posts``; an edit moves the version it
replaces to ``pub_post_versions``): followers read history from it, and only their connected
devices get a live push. The directory is ``pub_terms`` (word, channel): a search scans the
primary key's range of the longest query word as a prefix, and checks the other words with the
same index; the only dialect difference is in the migration (PostgreSQL's column is COLLATE "C",
so both databases order terms by their bytes and a prefix is one range).
"""

from __future__ import annotations

from chatproto import frames as F
from chatproto import posts
from chatproto.limits import MAX_REACTION_COUNTS

from chatd.core import timeline as timeline_rules
from chatd.core.handles import SKELETON_SQL, skeleton
from chatd.core.publishing import SearchCursor, check_publish, same_post
from chatd.errors import Forbidden, HandleTaken, NotFound
from chatd.store.base import ChannelRow
from chatd.store.channel_moderation import comment_gate
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

_CHANNEL = (
    "SELECT c.id, c.handle, c.title, c.about, c.owner, c.followers, c.last_seq,"
    " EXISTS (SELECT 1 FROM pub_follows f WHERE f.account=? AND f.channel=c.id), c.slow_mode"
    " FROM pub_channels c WHERE "
)
_POST = "channel, seq, ver, ts, author, device, kind, content, sig, paid"


def _channel(r: Row | None) -> ChannelRow | None:
    if r is None:
        return None
    return ChannelRow(
        id=int(r[0]),
        handle=str(r[1]),
        title=str(r[2]),
        about=str(r[3]),
        owner=int(r[4]),
        followers=int(r[5]),
        last_seq=int(r[6]),
        following=bool(r[7]),
        slow_mode=int(r[8]),
    )


def post_row(r: Row) -> F.Post:
    """A ``_POST`` row (and its ``views`` after, where selected)."""
    return F.Post(
        channel=int(r[0]),
        seq=int(r[1]),
        ver=int(r[2]),
        ts=int(r[3]),
        author=int(r[4]),
        device=int(r[5]),
        kind=str(r[6]),
        content=bytes(r[7]),
        sig=bytes(r[8]),
        paid=bool(r[9]),
        views=int(r[10]) if len(r) > 10 else 0,
    )


async def create_channel(
    tx: Tx, owner: int, handle: str, title: str, about: str, now: int
) -> ChannelRow:
    """Create a public channel with ``owner`` as its first admin. ``HandleTaken`` when another
    channel has the handle or a lookalike of it, or an account other than ``owner`` has a
    lookalike (a channel cannot pose as someone else's account)."""
    db = tx.sql
    key = skeleton(handle)
    if await db.fetchval("SELECT 1 FROM pub_channels WHERE handle=? OR skeleton=?", handle, key):
        raise HandleTaken(f"channel handle {handle!r} is taken or looks like one that is")
    if await db.fetchval(f"SELECT 1 FROM accounts WHERE {SKELETON_SQL}=? AND id<>?", key, owner):
        raise HandleTaken(f"channel handle {handle!r} looks like another account's handle")
    channel = int(
        await db.fetchval(
            "INSERT INTO pub_channels (handle, skeleton, title, about, owner, created_at)"
            " VALUES (?,?,?,?,?,?) RETURNING id",
            *(handle, key, title, about, owner, now),
        )
    )
    await db.execute("INSERT INTO pub_admins (channel, account) VALUES (?,?)", channel, owner)
    terms = posts.channel_terms(handle, title, about)
    await db.executemany(
        "INSERT INTO pub_terms (term, channel) VALUES (?,?)", [(t, channel) for t in terms]
    )
    return ChannelRow(channel, handle, title, about, owner, 0, 0, False)


async def channel(db: Sql, channel: int, viewer: int) -> ChannelRow | None:
    """The channel as ``viewer`` sees it (``following``), or None when there is none."""
    return _channel(await db.fetchrow(_CHANNEL + "c.id=?", viewer, channel))


async def channel_by_handle(db: Sql, handle: str, viewer: int) -> ChannelRow | None:
    """As ``channel``, by its handle."""
    return _channel(await db.fetchrow(_CHANNEL + "c.handle=?", viewer, handle))


async def _driver(db: Sql, words: list[str]) -> int:
    """The query word whose prefix range holds the fewest terms (counted up to a bound): the
    scan walks it and checks the others."""
    if len(words) == 1:
        return 0
    counts = []
    for w in words:
        n = await db.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM pub_terms WHERE term >= ? AND term < ?"
            " LIMIT ?) AS x",
            w,
            posts.prefix_bound(w),
            _COUNT_BOUND,
        )
        counts.append(int(n))
    return counts.index(min(counts))


_COUNT_BOUND = 2000


async def search_channels(
    db: Sql, words: list[str], cursor: SearchCursor | None, limit: int, viewer: int
) -> tuple[list[ChannelRow], SearchCursor | None]:
    """A page of the channels with a term starting with each of ``words``, and the cursor of
    the next page (None: this page was the last).

    The scan walks the driving word's prefix range of the (term, channel) index in its order,
    so it stops after ``limit`` channels whatever the number of matches; a channel is listed
    at its first matching term only (``NOT EXISTS`` an earlier one: a probe of the (channel,
    term) index), so pages never repeat a channel; each other word is one more probe."""
    driver = cursor.driver if cursor is not None else await _driver(db, words)
    lead = words[driver]
    where = ["t.term >= ?", "t.term < ?"]
    args: list[object] = [lead, posts.prefix_bound(lead)]
    if cursor is not None:
        where.append("(t.term > ? OR (t.term = ? AND t.channel > ?))")
        args += [cursor.term, cursor.term, cursor.channel]
    where.append(
        "NOT EXISTS (SELECT 1 FROM pub_terms d WHERE d.channel=t.channel"
        " AND d.term >= ? AND d.term < t.term)"
    )
    args.append(lead)
    for i, w in enumerate(words):
        if i == driver:
            continue
        where.append(
            "EXISTS (SELECT 1 FROM pub_terms u WHERE u.channel=t.channel"
            " AND u.term >= ? AND u.term < ?)"
        )
        args += [w, posts.prefix_bound(w)]
    hits = await db.fetch(
        f"SELECT t.term, t.channel FROM pub_terms t WHERE {' AND '.join(where)}"
        " ORDER BY t.term, t.channel LIMIT ?",
        *args,
        limit,
    )
    if not hits:
        return [], None
    ids = [int(h[1]) for h in hits]
    rows = await db.fetch(_CHANNEL + "c.id = ANY(?)", viewer, ids)
    by_id = {r.id: r for r in map(_channel, rows) if r is not None}
    found = [by_id[i] for i in ids if i in by_id]
    last = SearchCursor(driver, str(hits[-1][0]), ids[-1])
    return found, (last if len(hits) == limit else None)


async def follow(tx: Tx, channel: int, account: int, now: int) -> ChannelRow:
    """``account`` follows ``channel`` (again: nothing changes). ``NotFound`` without it;
    ``Invalid`` when it follows ``core.timeline.MAX_FOLLOWS`` channels already."""
    db = tx.sql
    if not await db.fetchval("SELECT 1 FROM pub_channels WHERE id=?", channel):
        raise NotFound("no such channel")
    if not await db.fetchval(
        "SELECT 1 FROM pub_follows WHERE account=? AND channel=?", account, channel
    ):
        following = await db.fetchval(
            "SELECT count(*) FROM (SELECT 1 FROM pub_follows WHERE account=? LIMIT ?) AS x",
            account,
            timeline_rules.MAX_FOLLOWS,
        )
        timeline_rules.check_follows(int(following))
    added = await db.execute(
        "INSERT INTO pub_follows (account, channel, since) VALUES (?,?,?) ON CONFLICT DO NOTHING",
        account,
        channel,
        now,
    )
    if added:
        await db.execute("UPDATE pub_channels SET followers=followers+1 WHERE id=?", channel)
    found = _channel(await db.fetchrow(_CHANNEL + "c.id=?", account, channel))
    assert found is not None
    return found


async def unfollow(tx: Tx, channel: int, account: int) -> ChannelRow:
    """``account`` stops following ``channel`` (again: nothing changes); the channel as it
    sees it now. ``NotFound`` without the channel."""
    db = tx.sql
    if not await db.fetchval("SELECT 1 FROM pub_channels WHERE id=?", channel):
        raise NotFound("no such channel")
    gone = await db.execute(
        "DELETE FROM pub_follows WHERE account=? AND channel=?", account, channel
    )
    if gone:
        await db.execute("UPDATE pub_channels SET followers=followers-1 WHERE id=?", channel)
    found = _channel(await db.fetchrow(_CHANNEL + "c.id=?", account, channel))
    assert found is not None
    return found


async def followed_channels(db: Sql, account: int) -> list[int]:
    """The channels ``account`` follows or administers (its live posts reach its devices)."""
    rows = await db.fetch(
        "SELECT channel FROM pub_follows WHERE account=?"
        " UNION SELECT channel FROM pub_admins WHERE account=?",
        account,
        account,
    )
    return sorted(int(r[0]) for r in rows)


async def is_channel_admin(db: Sql, channel: int, account: int) -> bool:
    """``account`` may publish in ``channel`` (its owner, or an admin it named)."""
    return bool(
        await db.fetchval(
            "SELECT 1 FROM pub_admins WHERE channel=? AND account=?", channel, account
        )
    )


async def set_channel_admin(tx: Tx, channel: int, owner: int, account: int, admin: bool) -> bool:
    """The owner grants or takes ``account``'s right to publish; False when ``owner`` is not
    the channel's owner (or there is no such channel). The owner stays an admin."""
    db = tx.sql
    found = await db.fetchval("SELECT owner FROM pub_channels WHERE id=?", channel)
    if found is None or int(found) != owner:
        return False
    if account == owner:
        return True
    if admin:
        await db.execute(
            "INSERT INTO pub_admins (channel, account) VALUES (?,?) ON CONFLICT DO NOTHING",
            channel,
            account,
        )
    else:
        await db.execute("DELETE FROM pub_admins WHERE channel=? AND account=?", channel, account)
    return True


async def put_post(tx: Tx, p: F.Post, now: int) -> bool:
    """Store version ``p.ver`` of post ``p.seq`` (the signature was checked by the caller),
    after ``core.publishing.check_publish``. True when stored, False when it is a resend of
    exactly what is stored (nothing written). ``NotFound`` without the channel."""
    db = tx.sql
    last = await db.fetchval("SELECT last_seq FROM pub_channels WHERE id=? FOR UPDATE", p.channel)
    if last is None:
        raise NotFound("no such channel")
    cur = await db.fetchrow(
        f"SELECT {_POST} FROM pub_posts WHERE channel=? AND seq=?", p.channel, p.seq
    )
    offered = (p.ver, p.ts, p.author, p.device, p.kind, p.content, p.sig, p.paid)
    if cur is not None:
        c = post_row(cur)
        stored = (c.ver, c.ts, c.author, c.device, c.kind, c.content, c.sig, c.paid)
        if same_post(stored, offered):
            return False
    admin = await db.fetchval(
        "SELECT 1 FROM pub_admins WHERE channel=? AND account=?", p.channel, p.author
    )
    check_publish(
        is_admin=bool(admin),
        last_seq=int(last),
        current_ver=None if cur is None else int(cur[2]),
        current_kind="" if cur is None else str(cur[6]),
        seq=p.seq,
        ver=p.ver,
        kind=p.kind,
        content=p.content,
        ts=p.ts,
        now=now,
    )
    row = (p.channel, p.seq, p.ver, p.ts, p.author, p.device, p.kind, p.content, p.sig, int(p.paid))
    if p.ver == 0:
        await db.execute(  # created: the server's clock, the timeline's order (SPEC.md 20.8)
            f"INSERT INTO pub_posts ({_POST}, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)", *row, now
        )
        await db.execute("UPDATE pub_channels SET last_seq=? WHERE id=?", p.seq, p.channel)
        return True
    await db.execute(
        f"INSERT INTO pub_post_versions ({_POST}) SELECT {_POST} FROM pub_posts"
        " WHERE channel=? AND seq=?",
        p.channel,
        p.seq,
    )
    await db.execute(
        "UPDATE pub_posts SET ver=?, ts=?, author=?, device=?, kind=?, content=?, sig=?, paid=?"
        " WHERE channel=? AND seq=?",
        *(p.ver, p.ts, p.author, p.device, p.kind, p.content, p.sig, int(p.paid), p.channel, p.seq),
    )
    return True


async def posts_before(db: Sql, channel: int, before: int, limit: int) -> list[F.Post]:
    """The current versions of ``channel``'s posts with a seq below ``before`` (0: all),
    newest first."""
    bound = before if before > 0 else 2**62
    rows = await db.fetch(
        f"SELECT {_POST}, views FROM pub_posts WHERE channel=? AND seq<? ORDER BY seq DESC LIMIT ?",
        channel,
        bound,
        limit,
    )
    return [post_row(r) for r in rows]


async def post_history(db: Sql, channel: int, seq: int) -> list[F.Post]:
    """Every version of post ``seq``, oldest first (empty: no such post)."""
    rows = await db.fetch(
        f"SELECT {_POST} FROM pub_post_versions WHERE channel=? AND seq=?"
        f" UNION ALL SELECT {_POST} FROM pub_posts WHERE channel=? AND seq=? ORDER BY ver",
        *(channel, seq, channel, seq),
    )
    return [post_row(r) for r in rows]


class Channels(Scripts):
    create_channel = writes(create_channel)
    channel = reads(channel)
    channel_by_handle = reads(channel_by_handle)
    search_channels = reads(search_channels)
    follow = writes(follow)
    unfollow = writes(unfollow)
    followed_channels = reads(followed_channels)
    is_channel_admin = reads(is_channel_admin)
    set_channel_admin = writes(set_channel_admin)
    put_post = writes(put_post)
    posts_before = reads(posts_before)
    post_history = reads(post_history)


# --------------------------------------------------------------------------- comments, reactions

_COMMENT = (
    "SELECT m.id, m.author, a.handle, m.ts, m.reply_to, m.kind, m.content, m.deleted"
    " FROM pub_comments m JOIN accounts a ON a.id = m.author WHERE "
)


def _comment(r: Row) -> F.CommentInfo:
    return F.CommentInfo(
        comment=int(r[0]),
        author=int(r[1]),
        handle=str(r[2]),
        ts=int(r[3]),
        reply_to=int(r[4]),
        kind=str(r[5]),
        content=bytes(r[6]),
        deleted=bool(r[7]),
    )


async def live_post(db: Sql, channel: int, seq: int) -> bool:
    """Post ``seq`` of ``channel`` exists and is not deleted."""
    kind = await db.fetchval("SELECT kind FROM pub_posts WHERE channel=? AND seq=?", channel, seq)
    return kind is not None and kind != posts.TOMBSTONE


async def check_post(db: Sql, channel: int, seq: int) -> None:
    """``NotFound`` unless post ``seq`` of ``channel`` exists (deleted or not)."""
    if not await db.fetchval("SELECT 1 FROM pub_posts WHERE channel=? AND seq=?", channel, seq):
        raise NotFound("no such post")


async def check_live_post(db: Sql, channel: int, seq: int) -> None:
    """``NotFound`` unless post ``seq`` of ``channel`` exists and is not deleted."""
    if not await live_post(db, channel, seq):
        raise NotFound("no such post")


async def add_comment(
    tx: Tx, channel: int, seq: int, author: int, reply_to: int, kind: str, content: bytes, now: int
) -> F.CommentInfo:
    """Store a comment under post ``seq`` (``reply_to``: a comment under the same post, 0: the
    post). ``NotFound`` without the post (or deleted) or the comment it answers."""
    db = tx.sql
    await check_live_post(db, channel, seq)
    if reply_to and not await db.fetchval(
        "SELECT 1 FROM pub_comments WHERE id=? AND channel=? AND seq=?", reply_to, channel, seq
    ):
        raise NotFound("no such comment under this post")
    await comment_gate(db, channel, author, now, commenting=True)  # bans, slow mode (20.9)
    cid = int(
        await db.fetchval(
            "INSERT INTO pub_comments (channel, seq, author, reply_to, ts, kind, content)"
            " VALUES (?,?,?,?,?,?,?) RETURNING id",
            *(channel, seq, author, reply_to, now, kind, content),
        )
    )
    row = await db.fetchrow(_COMMENT + "m.id=?", cid)
    assert row is not None
    return _comment(row)


async def comments(
    db: Sql, channel: int, seq: int, after: int, limit: int
) -> tuple[list[F.CommentInfo], int]:
    """Comments of post ``seq`` with an id above ``after``, oldest first, and how many of the
    post's comments are not deleted. ``NotFound`` without the post."""
    await check_post(db, channel, seq)
    rows = await db.fetch(
        _COMMENT + "m.channel=? AND m.seq=? AND m.id>? ORDER BY m.id LIMIT ?",
        *(channel, seq, after, limit),
    )
    total = await db.fetchval(
        "SELECT count(*) FROM pub_comments WHERE channel=? AND seq=? AND deleted=0", channel, seq
    )
    return [_comment(r) for r in rows], int(total)


async def delete_comment(tx: Tx, channel: int, comment: int, account: int) -> None:
    """Empty comment ``comment`` (it keeps its place in the thread): by its author or an admin
    of the channel. ``NotFound`` / ``Forbidden``."""
    db = tx.sql
    author = await db.fetchval(
        "SELECT author FROM pub_comments WHERE id=? AND channel=?", comment, channel
    )
    if author is None:
        raise NotFound("no such comment")
    if int(author) != account and not await db.fetchval(
        "SELECT 1 FROM pub_admins WHERE channel=? AND account=?", channel, account
    ):
        raise Forbidden("only its author or the channel's admins delete a comment")
    await db.execute("UPDATE pub_comments SET deleted=1, content=? WHERE id=?", b"", comment)


async def _counts(db: Sql, channel: int, seq: int, account: int) -> list[F.ReactionCount]:
    """A post's counts, largest first, ties by emoji in code point order (SPEC.md 20.6):
    ``COLLATE "C"`` so that a PostgreSQL database created with a language's collation does
    not sort them as words (SQLite's runner reads it as BINARY, the same order for UTF-8)."""
    rows = await db.fetch(
        "SELECT c.emoji, c.count, EXISTS (SELECT 1 FROM pub_reactions r WHERE r.channel=c.channel"
        " AND r.seq=c.seq AND r.emoji=c.emoji AND r.account=?) FROM pub_reaction_counts c"
        " WHERE c.channel=? AND c.seq=? AND c.count>0"
        ' ORDER BY c.count DESC, c.emoji COLLATE "C" LIMIT ?',
        *(account, channel, seq, MAX_REACTION_COUNTS),
    )
    return [F.ReactionCount(emoji=str(e), count=int(n), mine=bool(m)) for e, n, m in rows]


async def react(
    tx: Tx, channel: int, seq: int, account: int, emoji: str, remove: bool, *, now: int
) -> list[F.ReactionCount]:
    """Add or take back ``account``'s ``emoji`` on post ``seq`` (again: no change) and keep
    the post's count per emoji with it; the counts after. An account banned from the
    channel's comments at ``now`` adds none (``Forbidden``); it may take one back."""
    db = tx.sql
    await check_live_post(db, channel, seq)
    if remove:
        changed = await db.execute(
            "DELETE FROM pub_reactions WHERE channel=? AND seq=? AND account=? AND emoji=?",
            *(channel, seq, account, emoji),
        )
        delta = -1
    else:
        await comment_gate(db, channel, account, now, commenting=False)
        changed = await db.execute(
            "INSERT INTO pub_reactions (channel, seq, account, emoji) VALUES (?,?,?,?)"
            " ON CONFLICT DO NOTHING",
            *(channel, seq, account, emoji),
        )
        delta = 1
    if changed:
        await db.execute(
            "INSERT INTO pub_reaction_counts (channel, seq, emoji, count) VALUES (?,?,?,?)"
            " ON CONFLICT (channel, seq, emoji)"
            " DO UPDATE SET count = pub_reaction_counts.count + excluded.count",
            *(channel, seq, emoji, delta),
        )
    return await _counts(db, channel, seq, account)


async def reactions(db: Sql, channel: int, seq: int, account: int) -> list[F.ReactionCount]:
    """The reaction counts of post ``seq`` of ``channel``, largest first (with ``account``'s own marked);
    ``NotFound`` without the post."""
    await check_post(db, channel, seq)
    return await _counts(db, channel, seq, account)


class PostComments(Scripts):
    """Comments and reactions under public posts (``Channels`` too)."""

    add_comment = writes(add_comment)
    comments = reads(comments)
    delete_comment = writes(delete_comment)
    react = writes(react)
    reactions = reads(reactions)
