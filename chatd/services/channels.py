"""Public channels (SPEC.md 20): create, find, search, follow, unfollow, publish and read.

A post is checked (its signature under the publishing device's key, then the channel's next
seq or the post's next version, inside the write) and stored ONCE; its ``post_event`` is
encoded once and published on the channel's topic, which only nodes with a connection watching
it subscribe to (SPEC.md 20.7: the feed of a follower, or the channel's page), so a post costs
one row and one push per watching connection, never a write per follower; comments and reaction
counts go on the post's own topic, to the connections watching its thread. Followers who were
offline read the channel's history (``get_posts``) when they come back; anyone may read it
before following (the preview).

The server cannot make or alter a post that verifies: the signature covers every field a reader
shows (``chatproto.posts``), and readers check it against the publisher's signed device list.
"""

from __future__ import annotations

import asyncio
import logging

from chatproto import codec, kinds, posts
from chatproto import frames as F
from chatproto.errors import ChatProtoError, ErrorCode, SignatureError

from chatd import envelope
from chatd.core import pages
from chatd.core.publishing import decode_cursor
from chatd.errors import ChatdError, Forbidden, Invalid, NotFound, RateLimited
from chatd.services.creators import CreatorService
from chatd.services.deps import Deps
from chatd.services.limits import Limits
from chatd.store.base import ChannelRow

log = logging.getLogger(__name__)

COUNTS_EVERY = 1.0
"""Seconds between two pushes of one post's reaction counts (per node)."""


def _info(r: ChannelRow) -> F.ChannelInfo:
    return F.ChannelInfo(
        channel=r.id,
        handle=r.handle,
        title=r.title,
        about=r.about,
        owner=r.owner,
        followers=r.followers,
        last_seq=r.last_seq,
        following=r.following,
        slow_mode=r.slow_mode,
    )


class ChannelService:
    def __init__(self, deps: Deps, limits: Limits, creators: CreatorService) -> None:
        self._d = deps
        self._limits = limits
        self._creators = creators
        """Who may read a paid post's content (SPEC.md 15.14)."""
        self._server = deps.settings.server.name
        self._dirty: set[tuple[int, int]] = set()
        """Posts whose reaction counts changed and are due to be pushed."""
        self._flushing: set[asyncio.Task[None]] = set()

    async def handle(self, account: int, device: int, conn: int, f: F.ClientFrame) -> F.Frame:
        """Serve one public-channel frame of ``account``'s connection ``conn``."""
        match f:
            case F.CreateChannel():
                return await self.create(account, f)
            case F.FindChannel():
                found = await self._d.store.channel_by_handle(f.handle, account)
                if found is None:
                    raise NotFound("no such channel")
                return F.ChannelAnswer(re=f.id, info=_info(found))
            case F.SearchChannels():
                return await self.search(account, f)
            case F.Follow():
                row = await self._d.store.follow(f.channel, account, self._d.clock.now_ms())
                self._d.hub.follow(account, f.channel)
                await self._d.hub.published()  # answered once every node has been told
                return F.ChannelAnswer(re=f.id, info=_info(row))
            case F.Unfollow():
                row = await self._d.store.unfollow(f.channel, account)
                if not await self._d.store.is_channel_admin(f.channel, account):
                    self._d.hub.unfollow(account, f.channel)  # an admin still sees its posts
                    # Answered once it has left this node: a post published anywhere after the
                    # answer reaches each node after the UNFOLLOW (Redis keeps the order).
                    await self._d.hub.published()
                return F.ChannelAnswer(re=f.id, info=_info(row))
            case F.SetChannelAdmin():
                return await self.set_admin(account, f)
            case F.Publish():
                return await self.publish(account, device, conn, f)
            case F.GetPosts():
                return await self.read(account, f)
            case F.GetPostHistory():
                return await self.history(account, f)
            case F.Comment():
                if not kinds.client_may_send(f.kind) or f.kind == posts.TOMBSTONE:
                    raise Invalid(f"a comment cannot be of kind {f.kind!r}")
                info = await self._d.store.add_comment(
                    f.channel, f.seq, account, f.reply_to, f.kind, f.content, self._d.clock.now_ms()
                )
                event = F.CommentEvent(channel=f.channel, seq=f.seq, comment=info)
                self._push(envelope.post_topic(f.channel, f.seq), event, conn)
                return F.Commented(re=f.id, channel=f.channel, seq=f.seq, comment=info)
            case F.GetComments():
                rows, total = await self._d.store.comments(f.channel, f.seq, f.after, f.limit)
                items, cut = pages.fit(rows)  # comments are up to 64 KiB each (SPEC.md 11.5)
                more = (cut or len(rows) == f.limit) and bool(items)
                return F.Comments(
                    re=f.id,
                    channel=f.channel,
                    seq=f.seq,
                    items=items,
                    next=items[-1].comment if more else 0,
                    total=total,
                )
            case F.DeleteComment():
                await self._d.store.delete_comment(f.channel, f.comment, account)
                return F.Ok(re=f.id)
            case F.ReactPost():
                counts = await self._d.store.react(
                    f.channel, f.seq, account, f.emoji, f.remove, now=self._d.clock.now_ms()
                )
                self._counts_changed(f.channel, f.seq)
                return F.Reactions(re=f.id, channel=f.channel, seq=f.seq, counts=counts)
            case F.GetReactions():
                counts = await self._d.store.reactions(f.channel, f.seq, account)
                return F.Reactions(re=f.id, channel=f.channel, seq=f.seq, counts=counts)
        raise ChatdError("not a channel frame", ErrorCode.UNKNOWN_FRAME)

    def _push(self, topic: str, frame: F.Frame, origin: int = 0) -> None:
        """Encode ``frame`` once and hand it to the connections watching ``topic`` (SPEC.md
        20.7): a channel's (``channel_topic``: those watching the feed of an account that
        follows it, and those watching the channel) or one post's thread only (``post_topic``:
        a comment under a post of a channel with 100,000 connected followers reaches the few
        that show that thread)."""
        self._d.hub.publish(topic, envelope.EVENT, 0, origin, codec.encode(frame))

    def _counts_changed(self, channel: int, seq: int) -> None:
        """Push the post's counts once ``COUNTS_EVERY`` seconds have passed, whatever the
        number of reactions meanwhile: one push per post and node per period, not one per
        reaction per follower."""
        key = (channel, seq)
        if key in self._dirty:
            return
        self._dirty.add(key)
        asyncio.get_running_loop().call_later(COUNTS_EVERY, self._flush_counts, key)

    def _flush_counts(self, key: tuple[int, int]) -> None:
        task = asyncio.ensure_future(self._send_counts(key))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send_counts(self, key: tuple[int, int]) -> None:
        self._dirty.discard(key)  # a reaction from now on schedules the next push
        channel, seq = key
        try:
            counts = await self._d.store.reactions(channel, seq, 0)
        except ChatdError:
            return  # the post is gone
        except Exception:
            log.exception("reaction counts not pushed", extra={"channel": channel})
            return
        event = F.ReactionsEvent(channel=channel, seq=seq, counts=counts)
        self._push(envelope.post_topic(channel, seq), event)

    async def create(self, account: int, f: F.CreateChannel) -> F.ChannelAnswer:
        row = await self._d.store.create_channel(
            account, f.handle, f.title, f.about, self._d.clock.now_ms()
        )
        self._d.hub.follow(account, row.id)  # the owner's devices see what its admins publish
        return F.ChannelAnswer(re=f.id, info=_info(row))

    async def search(self, account: int, f: F.SearchChannels) -> F.ChannelList:
        """The directory (SPEC.md 20.2), counted against the account's search budget first."""
        retry = await self._limits.search(account)
        if retry is not None:
            raise RateLimited(f"too many searches; retry in {retry:.1f} s")
        words = posts.query_words(f.query)
        if not words:
            raise Invalid("the query has no word")
        cursor = decode_cursor(f.after, len(words))
        rows, nxt = await self._d.store.search_channels(words, cursor, f.limit, account)
        return F.ChannelList(
            re=f.id, items=[_info(r) for r in rows], next="" if nxt is None else nxt.encode()
        )

    async def set_admin(self, account: int, f: F.SetChannelAdmin) -> F.Ok:
        if await self._d.store.channel(f.channel, account) is None:
            raise NotFound("no such channel")
        if not await self._d.store.set_channel_admin(f.channel, account, f.account, f.admin):
            raise Forbidden("only the channel's owner names its admins")
        store = self._d.store
        if f.admin:
            self._d.hub.follow(f.account, f.channel)
        elif not await store.is_channel_admin(f.channel, f.account):
            # A feed carries what the account follows or administers (SPEC.md 20.7): one that
            # no longer administers the channel and never followed it stops getting its posts,
            # on every node, for every post published after the answer (as for an unfollow).
            row = await store.channel(f.channel, f.account)
            if row is not None and not row.following:
                self._d.hub.unfollow(f.account, f.channel)
                await self._d.hub.published()
        return F.Ok(re=f.id)

    async def publish(self, account: int, device: int, conn: int, f: F.Publish) -> F.Published:
        """Check the signature, store the post (the rules run inside the write), then push it
        once to the connections watching it (SPEC.md 20.7)."""
        d = self._d
        post = F.Post(
            channel=f.channel,
            seq=f.seq,
            ver=f.ver,
            ts=f.ts,
            author=account,
            device=device,
            kind=f.kind,
            content=f.content,
            sig=f.sig,
            paid=f.paid,
        )
        key = await d.store.device(device)
        try:
            if key is None or key.account != account:
                raise SignatureError("no such device")
            posts.verify_post(key.public_key, self._server, post)
        except SignatureError as exc:
            raise ChatdError(f"the post's signature: {exc}", ErrorCode.BAD_SIGNATURE) from exc
        except ChatProtoError as exc:
            raise Invalid(str(exc)) from exc
        if await d.store.put_post(post, d.clock.now_ms()):  # a paid post's event: no content
            pushed = posts.locked(post) if post.paid and not posts.is_tombstone(post) else post
            self._push(envelope.channel_topic(f.channel), F.PostEvent(post=pushed), conn)
        return F.Published(re=f.id, channel=f.channel, seq=f.seq, ver=f.ver)

    async def read(self, account: int, f: F.GetPosts) -> F.Posts:
        """A page of posts, newest first: anyone may read a public channel (the preview)."""
        if await self._d.store.channel(f.channel, 0) is None:
            raise NotFound("no such channel")
        rows = await self._d.store.posts_before(f.channel, f.before, f.limit)
        rows = await self._creators.readable(account, f.channel, rows)
        # Cut to fit one frame (SPEC.md 11.5): a post is up to 64 KiB, a page up to 500 posts.
        items, cut = pages.fit(rows)
        more = (cut or len(rows) == f.limit) and bool(items) and items[-1].seq > 1
        return F.Posts(re=f.id, channel=f.channel, items=items, next=items[-1].seq if more else 0)

    async def history(self, account: int, f: F.GetPostHistory) -> F.Posts:
        items = await self._d.store.post_history(f.channel, f.seq)
        if not items:
            raise NotFound("no such post")
        items = await self._creators.readable(account, f.channel, items)
        # The newest versions that fit one frame (SPEC.md 11.5): a version is up to 64 KiB and
        # their number has no bound, and the current one is what an editor (the next ``ver``)
        # and a subscriber reading a paid post need.
        items, _ = pages.fit_from_end(items)
        return F.Posts(re=f.id, channel=f.channel, items=items)
