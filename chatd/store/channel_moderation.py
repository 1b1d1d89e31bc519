"""Moderation of public channels' comments and the view counts of posts
(``ChannelModeration``, SPEC.md 20.9), written once for both databases.

Every rule runs inside the write's transaction, so it holds on every node at once, never from a
cache: a comment, a new reaction and a ban of one account in one channel each lock that pair's
``pub_commenters`` row (created by whichever comes first), so they are ordered; once a ban has
committed (and been answered), no comment or reaction of the banned account commits after it,
and a burst of comments from one account in slow mode admits exactly one per interval.

A view is a 16-byte keyed hash of (account, channel, seq) in ``pub_views`` (the account is not
stored) and one more in ``pub_posts.views``, in the same write: the same tag twice counts once.
"""

from __future__ import annotations

from chatproto import frames as F
from chatproto import posts

from chatd.core.channel_moderation import check_ban, check_comment, check_slow_mode
from chatd.errors import Forbidden, NotFound
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, server_key, writes


async def _admin(db: Sql, channel: int, account: int) -> bool:
    return bool(
        await db.fetchval(
            "SELECT 1 FROM pub_admins WHERE channel=? AND account=?", channel, account
        )
    )


async def _locked(db: Sql, channel: int, account: int) -> Row | None:
    return await db.fetchrow(
        "SELECT banned, ban_until, last_comment FROM pub_commenters"
        " WHERE channel=? AND account=? FOR UPDATE",
        channel,
        account,
    )


async def comment_gate(db: Sql, channel: int, account: int, now: int, *, commenting: bool) -> None:
    """Refuse ``account``'s comment (``commenting``) or new reaction in ``channel`` while it is
    banned there (``Forbidden``), and a comment within slow mode (``RateLimited``, with the
    wait); else record the comment's time. Call it last before the comment's or reaction's own
    insert: it writes only when it lets the caller through.

    The (channel, account) row is locked (or created, which locks it too) whatever the outcome,
    so a ban of the same account on another node waits for this transaction, and this one,
    started after the ban committed, reads it. Admins are never banned nor slowed: they lock
    nothing."""
    head = await db.fetchrow(
        "SELECT c.slow_mode, EXISTS (SELECT 1 FROM pub_admins a WHERE a.channel=c.id"
        " AND a.account=?) FROM pub_channels c WHERE c.id=?",
        account,
        channel,
    )
    if head is None:
        raise NotFound("no such channel")
    slow_mode, admin = int(head[0]), bool(head[1])
    if admin:
        return
    row = await _locked(db, channel, account)
    if row is None:
        # The account's first comment or reaction here: the new row is the lock (a ban racing
        # it waits on the key until this commits), and a new row has no ban and no comment.
        first = now if commenting else 0
        if await db.execute(
            "INSERT INTO pub_commenters (channel, account, last_comment) VALUES (?,?,?)"
            " ON CONFLICT DO NOTHING",
            *(channel, account, first),
        ):
            return
        row = await _locked(db, channel, account)  # another node made it meanwhile
        assert row is not None
    check_comment(
        is_admin=False,
        banned=bool(row[0]),
        ban_until=int(row[1]),
        last_comment=int(row[2]),
        slow_mode=slow_mode,
        now=now,
        commenting=commenting,
    )
    if commenting:
        await db.execute(
            "UPDATE pub_commenters SET last_comment=? WHERE channel=? AND account=?",
            *(now, channel, account),
        )


async def _channel_admin(db: Sql, channel: int, actor: int) -> bool:
    """Whether ``actor`` administers ``channel``; ``NotFound`` without the channel."""
    if not await db.fetchval("SELECT 1 FROM pub_channels WHERE id=?", channel):
        raise NotFound("no such channel")
    return await _admin(db, channel, actor)


async def ban_commenter(
    tx: Tx,
    channel: int,
    actor: int,
    account: int,
    until: int,
    delete_comments: bool,
    now: int,
) -> int:
    """``actor`` (an admin) bans ``account`` from commenting and reacting in ``channel`` until
    ``until`` (0: until lifted; again: the new end replaces the old), with
    ``delete_comments`` emptying its comments there. The number of comments deleted.
    ``NotFound`` (channel, or account, the latter told to admins only), ``Forbidden`` (not an
    admin, or banning one), ``Invalid`` (an end in the past)."""
    db = tx.sql
    actor_admin = await _channel_admin(db, channel, actor)
    if not actor_admin:
        raise Forbidden("only the channel's admins ban from its comments")
    if not await db.fetchval("SELECT 1 FROM accounts WHERE id=?", account):
        raise NotFound("no such account")
    check_ban(
        actor_admin=actor_admin,
        target_admin=await _admin(db, channel, account),
        until=until,
        now=now,
    )
    # The upsert locks the pair's row: a comment of ``account`` in flight on another node
    # commits first (and is deleted below when asked), any later one reads the ban.
    await db.execute(
        "INSERT INTO pub_commenters (channel, account, banned, ban_until, banned_by, banned_at)"
        " VALUES (?,?,1,?,?,?) ON CONFLICT (channel, account) DO UPDATE SET banned=1,"
        " ban_until=excluded.ban_until, banned_by=excluded.banned_by,"
        " banned_at=excluded.banned_at",
        *(channel, account, until, actor, now),
    )
    if not delete_comments:
        return 0
    return await db.execute(
        "UPDATE pub_comments SET deleted=1, content=? WHERE channel=? AND author=? AND deleted=0",
        *(b"", channel, account),
    )


async def unban_commenter(tx: Tx, channel: int, actor: int, account: int) -> None:
    """``actor`` (an admin) lifts ``account``'s ban (none: nothing changes)."""
    db = tx.sql
    if not await _channel_admin(db, channel, actor):
        raise Forbidden("only the channel's admins lift bans from its comments")
    await db.execute(
        "UPDATE pub_commenters SET banned=0, ban_until=0 WHERE channel=? AND account=?",
        channel,
        account,
    )


async def comment_bans(
    db: Sql, channel: int, actor: int, after: int, limit: int, now: int
) -> list[F.CommentBan]:
    """The bans in force in ``channel`` (``actor`` must be an admin), by account id above
    ``after``; an expired ban is not listed."""
    if not await _channel_admin(db, channel, actor):
        raise Forbidden("only the channel's admins list its bans")
    rows = await db.fetch(
        "SELECT p.account, a.handle, p.ban_until, p.banned_by, p.banned_at"
        " FROM pub_commenters p JOIN accounts a ON a.id = p.account"
        " WHERE p.channel=? AND p.banned=1 AND (p.ban_until=0 OR p.ban_until>?) AND p.account>?"
        " ORDER BY p.account LIMIT ?",
        *(channel, now, after, limit),
    )
    return [
        F.CommentBan(account=int(a), handle=str(h), until=int(u), by=int(b), ts=int(t))
        for a, h, u, b, t in rows
    ]


async def set_slow_mode(tx: Tx, channel: int, actor: int, seconds: int) -> None:
    """``actor`` (an admin) sets ``channel``'s slow mode (0: off)."""
    db = tx.sql
    check_slow_mode(actor_admin=await _channel_admin(db, channel, actor), seconds=seconds)
    await db.execute("UPDATE pub_channels SET slow_mode=? WHERE id=?", seconds, channel)


async def view_secret(tx: Tx, secret: bytes) -> bytes:
    """The server's view secret, storing ``secret`` if there is none (the first node wins)."""
    return await server_key(tx, "views", secret)


async def view_posts(tx: Tx, channel: int, viewed: list[tuple[int, bytes]]) -> int:
    """Count each (seq, tag) of ``viewed`` once: a post of ``channel`` that exists and is not
    deleted gets one more view the first time its tag is stored; anything else is ignored. The
    number of views counted. ``NotFound`` without the channel."""
    db = tx.sql
    if not await db.fetchval("SELECT 1 FROM pub_channels WHERE id=?", channel):
        raise NotFound("no such channel")
    live = {
        int(r[0])
        for r in await db.fetch(
            "SELECT seq FROM pub_posts WHERE channel=? AND seq = ANY(?) AND kind<>?",
            channel,
            [seq for seq, _ in viewed],
            posts.TOMBSTONE,
        )
    }
    counted = 0
    for seq, tag in viewed:
        if seq in live and await db.execute(
            "INSERT INTO pub_views (channel, seq, tag) VALUES (?,?,?) ON CONFLICT DO NOTHING",
            *(channel, seq, tag),
        ):
            await db.execute(
                "UPDATE pub_posts SET views=views+1 WHERE channel=? AND seq=?", channel, seq
            )
            counted += 1
    return counted


class ChannelModeration(Scripts):
    """Bans from comments, slow mode and post views. ``add_comment`` and ``react`` check the
    bans and slow mode inside their own writes."""

    ban_commenter = writes(ban_commenter)
    unban_commenter = writes(unban_commenter)
    comment_bans = reads(comment_bans)
    set_slow_mode = writes(set_slow_mode)
    view_secret = writes(view_secret)
    view_posts = writes(view_posts)
