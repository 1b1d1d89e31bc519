"""Moderation of public channels' comments and the view counts of posts (SPEC.md 20.9).

Views: a reader's client reports the posts it showed (``view_posts``); each (account, post)
counts once. The service turns each into a keyed hash under the server's view secret (made on
first use, kept in ``server_keys``, shared by every node) before it reaches the store, so no
row names a viewer. Reports take from the account's view budget (``VIEWS_PER_MINUTE`` post
views, on every node together); beyond the budget a report is refused whole.

Bans and slow mode are checked where the comment is written (``store.channel_moderation``),
not here: a cache on one node could not order a comment on another node against a ban.
"""

from __future__ import annotations

import asyncio
import os

from chatproto import frames as F
from chatproto.errors import ErrorCode

from chatd.core.channel_moderation import VIEW_SECRET_BYTES, VIEWS_PER_MINUTE, view_tag
from chatd.errors import ChatdError, NotFound, RateLimited
from chatd.services.channels import _info as channel_info
from chatd.services.deps import Deps
from chatd.services.limits import Limits

ChannelModerationFrame = (
    F.ViewPosts | F.BanCommenter | F.UnbanCommenter | F.ListCommentBans | F.SetSlowMode
)


class ChannelModerationService:
    def __init__(self, deps: Deps, limits: Limits) -> None:
        self._d = deps
        self._limits = limits
        self._secret: bytes | None = None
        self._loading = asyncio.Lock()

    async def handle(self, account: int, f: ChannelModerationFrame) -> F.Frame:
        """Serve one moderation or view frame of ``account``."""
        store = self._d.store
        match f:
            case F.ViewPosts():
                await self.view(account, f)
                return F.Ok(re=f.id)
            case F.BanCommenter():
                now = self._d.clock.now_ms()
                await store.ban_commenter(
                    f.channel, account, f.account, f.until, f.delete_comments, now
                )
                return F.Ok(re=f.id)
            case F.UnbanCommenter():
                await store.unban_commenter(f.channel, account, f.account)
                return F.Ok(re=f.id)
            case F.ListCommentBans():
                now = self._d.clock.now_ms()
                items = await store.comment_bans(f.channel, account, f.after, f.limit, now)
                more = len(items) == f.limit
                return F.CommentBans(
                    re=f.id, channel=f.channel, items=items, next=items[-1].account if more else 0
                )
            case F.SetSlowMode():
                await store.set_slow_mode(f.channel, account, f.seconds)
                row = await store.channel(f.channel, account)
                if row is None:
                    raise NotFound("no such channel")
                return F.ChannelAnswer(re=f.id, info=channel_info(row))
        raise ChatdError("not a channel moderation frame", ErrorCode.UNKNOWN_FRAME)

    async def _view_secret(self) -> bytes:
        if self._secret is None:
            async with self._loading:
                if self._secret is None:
                    fresh = os.urandom(VIEW_SECRET_BYTES)
                    self._secret = await self._d.store.view_secret(fresh)
        return self._secret

    async def view(self, account: int, f: F.ViewPosts) -> int:
        """Count ``account``'s views of ``f.seqs`` (each post once, ever); the number of views
        that were new. ``RATE_LIMITED`` past the account's view budget (nothing counted)."""
        seqs = sorted(set(f.seqs))
        if not await self._limits.window(f"pv:{account}", VIEWS_PER_MINUTE, 60.0, len(seqs)):
            raise RateLimited(f"more than {VIEWS_PER_MINUTE} post views a minute")
        secret = await self._view_secret()
        viewed = [(seq, view_tag(secret, account, f.channel, seq)) for seq in seqs]
        return await self._d.store.view_posts(f.channel, viewed)
