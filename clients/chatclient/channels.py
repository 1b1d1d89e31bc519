"""Public channels in the SDK (SPEC.md 20): create, find, search, follow, unfollow, publish,
edit, delete, read; every post verified before the application sees it.

Posts are public (not end-to-end encrypted) but signed by the publishing device over
``chatproto.posts.post_payload``. This module signs what it publishes with this device's key,
and checks every post it reads or is pushed against the key of the device the publisher's
signed device list names (``E2E.devices``, pinned on first use, E2E.md 3): a post the server
forged, altered, replayed under another seq, channel or version, or attributed to a device that
is not on the list is refused (``RejectedPost`` in a page, ``SecurityWarning`` when pushed), so
the server is trusted with availability only.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from chatproto import frames as F
from chatproto import kinds, links, posts
from chatproto import limits as L
from chatproto.errors import ChatProtoError, CryptoError, ErrorCode

from chatclient.connection import Connection
from chatclient.e2e import E2E
from chatclient.errors import ChatClientError, RequestError
from chatclient.events import ChannelPost, LockedPost, SecurityWarning

PUBLISH_ATTEMPTS = 5
"""Times ``publish`` signs anew after another admin took the seq it signed (``CONFLICT``)."""


@dataclass(frozen=True, slots=True)
class RejectedPost:
    """A post the server returned that does not verify: never shown as the publisher's."""

    post: F.Post
    reason: str


@dataclass(frozen=True, slots=True)
class PostPage:
    """Posts newest first; ``next`` is the ``before`` of the next older page (0: no more)."""

    posts: list[ChannelPost]
    rejected: list[RejectedPost]
    next: int
    locked: list[LockedPost] = field(default_factory=list)
    """Paid posts this account may not read now (SPEC.md 15.14): no content, not verifiable."""


def _text(p: F.Post) -> str | None:
    if p.kind != "text":
        return None
    try:
        content = kinds.decode_content(p.kind, p.content)
    except ChatProtoError:
        return None
    return content.text if isinstance(content, kinds.Text) else None


def verified_post(p: F.Post) -> ChannelPost:
    return ChannelPost(
        channel=p.channel,
        seq=p.seq,
        ver=p.ver,
        ts=p.ts,
        author=p.author,
        device=p.device,
        kind=p.kind,
        content=p.content,
        text=_text(p),
        deleted=posts.is_tombstone(p),
        paid=p.paid,
        views=p.views,
    )


def locked_post(p: F.Post) -> LockedPost:
    return LockedPost(
        channel=p.channel, seq=p.seq, ver=p.ver, ts=p.ts, author=p.author, kind=p.kind
    )


class Channels:
    def __init__(self, conn: Connection, e2e: E2E, emit: Callable[[Any], Awaitable[None]]) -> None:
        self._c = conn
        self._e2e = e2e
        self._emit = emit

    # ------------------------------------------------------------------ the directory

    async def create(self, handle: str, title: str, about: str = "") -> F.ChannelInfo:
        """Create a public channel this account owns and publishes in."""
        frame = F.CreateChannel(id=self._c.next_id(), handle=handle, title=title, about=about)
        return (await self._c.call(frame, F.ChannelAnswer)).info

    async def find(self, ref: str) -> F.ChannelInfo:
        """A channel by its link (``chatd://channel/<handle>``), ``@handle`` or handle, as a
        user pastes it (``NotFound``; text that names no handle raises ``ChatProtoError``
        INVALID before anything is sent). The lookup is ``find_channel``: a link is only the
        handle, so it finds exactly what the handle finds (SPEC.md 20.1)."""
        handle = links.parse_channel_ref(ref)
        frame = F.FindChannel(id=self._c.next_id(), handle=handle)
        return (await self._c.call(frame, F.ChannelAnswer)).info

    @staticmethod
    def link(info: F.ChannelInfo) -> str:
        """The shareable link of channel ``info``: ``chatd://channel/<handle>``."""
        return links.channel_link(info.handle)

    async def search(
        self, query: str, *, after: str = "", limit: int = 20
    ) -> tuple[list[F.ChannelInfo], str]:
        """One page of the directory and the ``after`` of the next page ("": no more); the
        order is the matched word's, then the channel's id."""
        frame = F.SearchChannels(id=self._c.next_id(), query=query, after=after, limit=limit)
        got = await self._c.call(frame, F.ChannelList)
        return list(got.items), got.next

    async def follow(self, channel: int) -> F.ChannelInfo:
        """Follow ``channel``: its new posts arrive as ``ChannelPost`` events."""
        frame = F.Follow(id=self._c.next_id(), channel=channel)
        return (await self._c.call(frame, F.ChannelAnswer)).info

    async def unfollow(self, channel: int) -> F.ChannelInfo:
        frame = F.Unfollow(id=self._c.next_id(), channel=channel)
        return (await self._c.call(frame, F.ChannelAnswer)).info

    async def set_admin(self, channel: int, account: int, admin: bool = True) -> None:
        """The owner lets ``account`` publish in ``channel`` (or no longer)."""
        frame = F.SetChannelAdmin(
            id=self._c.next_id(), channel=channel, account=account, admin=admin
        )
        await self._c.call(frame, F.Ok)

    # ------------------------------------------------------------------ publishing

    def _signed(
        self, channel: int, seq: int, ver: int, kind: str, content: bytes, paid: bool = False
    ) -> F.Publish:
        ks = self._c.keystore
        post = F.Post(
            channel=channel,
            seq=seq,
            ver=ver,
            ts=int(time.time() * 1000),
            author=ks.account,
            device=ks.device,
            kind=kind,
            content=content,
            sig=bytes(64),
            paid=paid,
        )
        sig = posts.sign_post(ks.key, self._c.server_name, post)
        return F.Publish(
            id=self._c.next_id(),
            channel=channel,
            seq=seq,
            ver=ver,
            ts=post.ts,
            kind=kind,
            content=content,
            sig=sig,
            paid=paid,
        )

    async def publish(self, channel: int, content: kinds.Content, *, paid: bool = False) -> int:
        """Publish a new post (``paid``: for the channel's subscribers only, SPEC.md 15.14); its
        seq. Another admin publishing meanwhile: signed again."""
        kind, body = kinds.encode_content(content)
        for _ in range(PUBLISH_ATTEMPTS):
            newest = await self._c.call(
                F.GetPosts(id=self._c.next_id(), channel=channel, limit=1), F.Posts
            )
            seq = newest.items[0].seq + 1 if newest.items else 1
            try:
                await self._c.call(self._signed(channel, seq, 0, kind, body, paid), F.Published)
            except RequestError as exc:
                if exc.code == ErrorCode.CONFLICT:
                    continue
                raise
            return seq
        raise ChatClientError(f"channel {channel}: the next seq kept being taken")

    async def publish_text(self, channel: int, text: str, *, paid: bool = False) -> int:
        return await self.publish(channel, kinds.Text(text=text), paid=paid)

    async def _new_version(self, channel: int, seq: int, kind: str, body: bytes) -> int:
        for _ in range(PUBLISH_ATTEMPTS):
            versions = await self._c.call(
                F.GetPostHistory(id=self._c.next_id(), channel=channel, seq=seq), F.Posts
            )
            ver = max(p.ver for p in versions.items) + 1
            paid = versions.items[-1].paid  # an edit of a paid post stays paid
            try:
                signed = self._signed(channel, seq, ver, kind, body, paid)
                await self._c.call(signed, F.Published)
            except RequestError as exc:
                if exc.code == ErrorCode.CONFLICT:
                    continue
                raise
            return ver
        raise ChatClientError(f"post {seq} of channel {channel}: kept being edited meanwhile")

    async def edit(self, channel: int, seq: int, content: kinds.Content) -> int:
        """Publish a new version of post ``seq`` (the old ones stay in its history); its ver."""
        kind, body = kinds.encode_content(content)
        return await self._new_version(channel, seq, kind, body)

    async def edit_text(self, channel: int, seq: int, text: str) -> int:
        return await self.edit(channel, seq, kinds.Text(text=text))

    async def delete(self, channel: int, seq: int) -> int:
        """Replace post ``seq`` by its signed tombstone; the tombstone's ver."""
        return await self._new_version(channel, seq, posts.TOMBSTONE, b"")

    # ------------------------------------------------------------------ comments, reactions

    async def comment(
        self, channel: int, seq: int, text: str, *, reply_to: int = 0
    ) -> F.CommentInfo:
        """Comment on post ``seq`` (``reply_to``: answer that comment under it instead)."""
        kind, body = kinds.encode_content(kinds.Text(text=text))
        frame = F.Comment(
            id=self._c.next_id(),
            channel=channel,
            seq=seq,
            reply_to=reply_to,
            kind=kind,
            content=body,
        )
        return (await self._c.call(frame, F.Commented)).comment

    async def comments(
        self, channel: int, seq: int, *, after: int = 0, limit: int = 50
    ) -> F.Comments:
        """A page of post ``seq``'s thread, oldest first (``next``: the ``after`` of the next
        page, 0: no more; ``total``: the comments not deleted)."""
        frame = F.GetComments(
            id=self._c.next_id(), channel=channel, seq=seq, after=after, limit=limit
        )
        return await self._c.call(frame, F.Comments)

    async def delete_comment(self, channel: int, comment: int) -> None:
        """Delete a comment: your own, or any under a channel you administer."""
        frame = F.DeleteComment(id=self._c.next_id(), channel=channel, comment=comment)
        await self._c.call(frame, F.Ok)

    async def react(
        self, channel: int, seq: int, emoji: str, *, remove: bool = False
    ) -> list[F.ReactionCount]:
        """React to post ``seq`` (or take it back); the post's counts per emoji after."""
        frame = F.ReactPost(
            id=self._c.next_id(), channel=channel, seq=seq, emoji=emoji, remove=remove
        )
        return list((await self._c.call(frame, F.Reactions)).counts)

    async def reactions(self, channel: int, seq: int) -> list[F.ReactionCount]:
        frame = F.GetReactions(id=self._c.next_id(), channel=channel, seq=seq)
        return list((await self._c.call(frame, F.Reactions)).counts)

    # ------------------------------------------------------------------ views, moderation

    async def view(self, channel: int, seqs: Iterable[int]) -> None:
        """Tell the server this account was shown posts ``seqs`` of ``channel`` (each counts
        once per account, ever; the server keeps no list of who viewed). Sent in frames of at
        most ``MAX_VIEW_SEQS`` posts; ``RateLimited`` past the account's view budget."""
        todo = sorted(set(seqs))
        for i in range(0, len(todo), L.MAX_VIEW_SEQS):
            chunk = todo[i : i + L.MAX_VIEW_SEQS]
            await self._c.call(F.ViewPosts(id=self._c.next_id(), channel=channel, seqs=chunk), F.Ok)

    async def ban_commenter(
        self, channel: int, account: int, *, until: int = 0, delete_comments: bool = False
    ) -> None:
        """Ban ``account`` from commenting and reacting in ``channel`` (you administer it)
        until ``until`` (ms since the epoch; 0: until lifted), emptying its comments there with
        ``delete_comments``. Admins cannot be banned (``Forbidden``)."""
        frame = F.BanCommenter(
            id=self._c.next_id(),
            channel=channel,
            account=account,
            until=until,
            delete_comments=delete_comments,
        )
        await self._c.call(frame, F.Ok)

    async def unban_commenter(self, channel: int, account: int) -> None:
        frame = F.UnbanCommenter(id=self._c.next_id(), channel=channel, account=account)
        await self._c.call(frame, F.Ok)

    async def comment_bans(self, channel: int) -> list[F.CommentBan]:
        """Every ban in force in ``channel`` (you administer it), by account id."""
        found: list[F.CommentBan] = []
        after = 0
        while True:
            frame = F.ListCommentBans(id=self._c.next_id(), channel=channel, after=after)
            page = await self._c.call(frame, F.CommentBans)
            found += page.items
            if not page.next:
                return found
            after = page.next

    async def set_slow_mode(self, channel: int, seconds: int) -> F.ChannelInfo:
        """Let non-admins comment once per ``seconds`` in ``channel`` (0: off); a comment
        sooner raises ``RateLimited`` with ``retry_after``."""
        frame = F.SetSlowMode(id=self._c.next_id(), channel=channel, seconds=seconds)
        return (await self._c.call(frame, F.ChannelAnswer)).info

    # ------------------------------------------------------------------ reading

    async def _key(self, p: F.Post, refresh: bool) -> bytes:
        ks = self._c.keystore
        if p.author == ks.account and p.device == ks.device:
            return ks.key.public_key
        devices = await self._e2e.devices(p.author, refresh=refresh)
        entry = next((d for d in devices if d.device == p.device), None)
        if entry is None:
            raise CryptoError(f"device {p.device} is not on account {p.author}'s device list")
        return entry.signing_key

    async def verify(self, p: F.Post) -> ChannelPost:
        """``p`` as a ``ChannelPost`` if its signature is its publisher's listed device's;
        ``ChatProtoError`` (``SignatureError``) or ``ChatClientError`` otherwise. A device not
        on the pinned list is looked up again once (it may be newer than the pin)."""
        try:
            key = await self._key(p, refresh=False)
        except CryptoError:
            key = await self._key(p, refresh=True)
        posts.verify_post(key, self._c.server_name, p)
        return verified_post(p)

    async def _checked(self, items: list[F.Post], cursor: int = 0) -> PostPage:
        good: list[ChannelPost] = []
        bad: list[RejectedPost] = []
        shut: list[LockedPost] = []
        for p in items:
            if p.locked:
                shut.append(locked_post(p))
                continue
            try:
                good.append(await self.verify(p))
            except (ChatProtoError, ChatClientError) as exc:
                bad.append(RejectedPost(p, str(exc)))
        return PostPage(good, bad, cursor, shut)

    async def posts(self, channel: int, *, before: int = 0, limit: int = 20) -> PostPage:
        """A page of ``channel``'s posts, newest first, each verified (following or not)."""
        got = await self._c.call(
            F.GetPosts(id=self._c.next_id(), channel=channel, before=before, limit=limit), F.Posts
        )
        return await self._checked(list(got.items), got.next)

    async def history(self, channel: int, seq: int) -> PostPage:
        """Every version of post ``seq``, oldest first, each verified."""
        got = await self._c.call(
            F.GetPostHistory(id=self._c.next_id(), channel=channel, seq=seq), F.Posts
        )
        return await self._checked(list(got.items))

    def on_post_event(self, frame: F.PostEvent) -> None:
        """A pushed post: emitted as a ``ChannelPost`` once verified, else a warning (checked
        off the receive path: the publisher's device list may have to be fetched)."""
        self._c.spawn(self._pushed(frame.post), name="verify-post")

    async def _pushed(self, p: F.Post) -> None:
        if p.locked:  # a paid post's event carries no content: read it, if this account may
            await self._emit(await self._unlocked(p))
            return
        try:
            event: ChannelPost | SecurityWarning = await self.verify(p)
        except (ChatProtoError, ChatClientError) as exc:
            event = SecurityWarning(p.author, f"post {p.seq} of channel {p.channel} refused: {exc}")
        await self._emit(event)

    async def _unlocked(self, p: F.Post) -> ChannelPost | LockedPost | SecurityWarning:
        """A pushed paid post: its content read with ``get_post_history`` when this account
        has access (verified then as any post), else the ``LockedPost`` placeholder."""
        try:
            page = await self.history(p.channel, p.seq)
        except ChatClientError:
            return locked_post(p)
        for good in page.posts:
            if good.ver == p.ver:
                return good
        for bad in page.rejected:
            if bad.post.ver == p.ver:
                return SecurityWarning(
                    p.author, f"post {p.seq} of channel {p.channel} refused: {bad.reason}"
                )
        return locked_post(p)
