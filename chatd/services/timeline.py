"""What a connection watches, and the account's timeline (SPEC.md 20.7, 20.8).

Watching is a property of the connection, never stored: a connection that shows the feed, a
channel's page or a post's thread says so, and only then gets their live events; everything it
missed it reads (``get_timeline``, ``get_posts``, ``get_comments``). So a post of a channel with
100,000 followers is pushed to the connections that watch it, not to every connected follower,
and a comment to the few that show its thread.

The timeline is fan-out on read: a post is one row whatever the number of followers, and a page
merges each source's newest items below the cursor (``core.timeline``): the followed channels'
posts (``store.timeline``) and the Moments the account sees (``store.moments``, which applies
the visibility rule of SPEC.md 22.2 at the read), each source bounded by the page's size.
"""

from __future__ import annotations

from chatproto import frames as F

from chatd.core import pages
from chatd.core import timeline as tl
from chatd.errors import NotFound
from chatd.hub import Outlet
from chatd.services.creators import CreatorService
from chatd.services.deps import Deps
from chatd.services.moments import moment_info
from chatd.store.base import MomentRow, TimelinePost


class TimelineService:
    def __init__(self, deps: Deps, creators: CreatorService) -> None:
        self._d = deps
        self._creators = creators
        """Who may read a paid post's content (SPEC.md 15.14): others get its placeholder."""

    async def watch(self, outlet: Outlet, f: F.WatchFeed | F.WatchChannel | F.WatchPost) -> F.Ok:
        """Start or stop watching; once ``ok`` is answered, every node routes what is watched
        to this connection (the node's subscription is in effect at the broker)."""
        hub = self._d.hub
        match f:
            case F.WatchFeed():
                hub.watch_feed(outlet, f.on)
            case F.WatchChannel():
                if f.on and await self._d.store.channel(f.channel, 0) is None:
                    raise NotFound("no such channel")
                hub.watch_channel(outlet, f.channel, f.on)
            case F.WatchPost():
                if f.on and not await self._d.store.live_post(f.channel, f.seq):
                    raise NotFound("no such post")
                hub.watch_post(outlet, f.channel, f.seq, f.on)
        if f.on:
            await hub.barrier()
        return F.Ok(re=f.id)

    async def timeline(self, account: int, f: F.GetTimeline) -> F.Timeline:
        """A page of ``account``'s timeline after the cursor ``f.before`` (SPEC.md 20.8)."""
        cursor = tl.decode_cursor(f.before)
        store = self._d.store
        posts = await store.timeline_posts(account, _posts_below(cursor), f.limit)
        posts = await self._readable(account, posts)
        moments = await store.moments_for(account, _moments_below(cursor), f.limit)
        page = tl.merge(
            f.limit, [[_post_entry(r) for r in posts], [_moment_entry(m) for m in moments]]
        )
        # Cut to fit one frame (SPEC.md 11.5): posts and Moments are up to 64 KiB each, so a
        # full page may not fit; the next page starts after the last item that did.
        entries, cut = pages.fit(page.entries, size=lambda e: pages.encoded_size(e.item))
        nxt = entries[-1].key.encode() if cut and entries else page.next
        return F.Timeline(re=f.id, items=[e.item for e in entries], next=nxt)

    async def _readable(self, account: int, rows: list[TimelinePost]) -> list[TimelinePost]:
        """Paid posts as ``account`` may read them: one access read per channel with one."""
        out = list(rows)
        for channel in {r.post.channel for r in rows if r.post.paid}:
            at = [i for i, r in enumerate(rows) if r.post.channel == channel]
            shown = await self._creators.readable(account, channel, [rows[i].post for i in at])
            for i, post in zip(at, shown, strict=True):
                out[i] = TimelinePost(at=rows[i].at, post=post)
        return out


def _post_entry(r: TimelinePost) -> tl.Entry[F.TimelineItem]:
    key = tl.Key(r.at, tl.POSTS, (r.post.channel, r.post.seq))
    return tl.Entry(key, F.TimelineItem(at=r.at, post=r.post))


def _moment_entry(m: MomentRow) -> tl.Entry[F.TimelineItem]:
    """A Moment the viewer sees (``store.moments_for`` checks the visibility rule, SPEC.md 22.2)
    as ``get_moments`` gives it."""
    info = moment_info(m)  # the same map as get_moments (the author's handle included)
    return tl.Entry(
        tl.Key(m.ts_ms, tl.MOMENTS, (m.moment,)), F.TimelineItem(at=m.ts_ms, moment=info)
    )


def _posts_below(cursor: tl.Key | None) -> tuple[int, int, int] | None:
    """The posts' bound as the store takes it: ``(at, channel, seq)``."""
    bound = tl.source_bound(cursor, tl.POSTS)
    if bound is None:
        return None
    at, (channel, seq) = bound
    return (at, channel, seq)


def _moments_below(cursor: tl.Key | None) -> tuple[int, int] | None:
    """The Moments' bound as the store takes it: ``(ts_ms, moment)``, exclusive."""
    bound = tl.source_bound(cursor, tl.MOMENTS)
    if bound is None:
        return None
    at, (moment,) = bound
    return (at, moment)
