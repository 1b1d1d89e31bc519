"""The timeline's reads (``Timelines``, SPEC.md 20.8), written once for both databases.

Fan-out on read: publishing writes one row whatever the number of followers, and a timeline
page walks the followed channels' posts by the server time they were stored at
(``pub_posts.created``, indexed per channel as ``(channel, created, seq)``).

A page costs a bounded number of rows however many channels the account follows and however
long they are, in two steps:

1. the head of each followed channel: its newest live post below the cursor, ONE index seek per
   followed channel (a correlated ``ORDER BY ... LIMIT 1``); the ``limit`` channels with the
   newest heads are the only ones that can have an item on the page (any other channel's head,
   and so all its posts, is below ``limit`` heads);
2. from the channel ranked ``r`` (0: the newest head) at most ``limit - r`` posts: the ``r``
   channels before it each put their head above all of its posts.

Rows read: one per followed channel, then at most ``limit * (limit + 1) / 2`` (210 for a page of
20), all index range scans. The other shape, walking every post by time and keeping the followed
ones, reads a number of rows that grows with the posts of channels the account does NOT follow:
``loadtest/bench_timeline_read.py`` (SQLite, 1,000 followed channels of 5,000) measured a page
at 5-9 ms this way (a ``get_timeline`` round trip) whatever the mix, and the walk by time at
0.2 ms when a fifth of all posts are followed but 947 ms when the followed channels are quiet
and the others busy (it passed 240,000 posts). A bounded worst case wins over a faster usual
case.
"""

from __future__ import annotations

from chatproto import posts

from chatd.store.base import TimelinePost
from chatd.store.channels import live_post, post_row
from chatd.store.sql import Row, Scripts, Sql, reads

_MAX = 2**63 - 1
_COLS = (
    "p.channel, p.seq, p.ver, p.ts, p.author, p.device, p.kind, p.content, p.sig, p.paid,"
    " p.views, p.created"
)
"""``store.channels``' post columns and ``views`` (what ``channels.post_row`` reads), then
``created``."""
_BELOW = (
    "p.created <= ? AND (p.created < ? OR p.channel < ? OR (p.channel = ? AND p.seq < ?))"
    " AND p.kind <> ?"
)
"""A live post whose key (created, channel, seq) is below the cursor's."""


def _below(before: tuple[int, int, int]) -> tuple[object, ...]:
    at, channel, seq = before
    return (at, at, channel, channel, seq, posts.TOMBSTONE)


def _row(r: Row) -> TimelinePost:
    return TimelinePost(at=int(r[11]), post=post_row(r))


async def timeline_posts(
    db: Sql, account: int, before: tuple[int, int, int] | None, limit: int
) -> list[TimelinePost]:
    """The newest ``limit`` live posts (current version, not deleted) of the channels
    ``account`` follows whose key ``(created, channel, seq)`` is below ``before`` (None: all),
    newest first."""
    bound = _below(before if before is not None else (_MAX, _MAX, _MAX))
    heads = await db.fetch(
        "SELECT h.channel FROM (SELECT f.channel AS channel,"
        f" (SELECT p.created FROM pub_posts p WHERE p.channel = f.channel AND {_BELOW}"
        "   ORDER BY p.created DESC, p.seq DESC LIMIT 1) AS head"
        " FROM pub_follows f WHERE f.account = ?) AS h"
        " WHERE h.head IS NOT NULL ORDER BY h.head DESC, h.channel DESC LIMIT ?",
        *bound,
        account,
        limit,
    )
    if not heads:
        return []
    parts: list[str] = []
    args: list[object] = []
    for rank, (channel,) in enumerate(heads):
        parts.append(
            f"SELECT * FROM (SELECT {_COLS} FROM pub_posts p WHERE p.channel = ? AND {_BELOW}"
            f" ORDER BY p.created DESC, p.seq DESC LIMIT ?) AS t{rank}"
        )
        args += [int(channel), *bound, limit - rank]
    rows = [_row(r) for r in await db.fetch(" UNION ALL ".join(parts), *args)]
    rows.sort(key=lambda t: (t.at, t.post.channel, t.post.seq), reverse=True)
    return rows[:limit]


class Timelines(Scripts):
    """The timeline's reads: fan-out on read, nothing per follower."""

    timeline_posts = reads(timeline_posts)
    live_post = reads(live_post)
