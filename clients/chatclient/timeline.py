"""The timeline and what this connection watches, in the SDK (SPEC.md 20.7, 20.8).

The server pushes a channel's posts only to connections that watch them (the feed: every channel
the account follows; or one channel's page), and a post's comments and reaction counts only to
connections that watch its thread. Watching belongs to the connection, so this module keeps what
the application asked to watch and says it again after every reconnect (``rewatch``).

The timeline is read in pages, newest first, with the server's opaque cursor; every post in it
is verified like any other (``Channels.verify``): one that does not verify is listed apart,
never shown as its publisher's; every Moment in it is decrypted like any other
(``Moments.open``: one whose key never came is ``readable`` False, never text).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from chatproto import frames as F
from chatproto.errors import ChatProtoError, ErrorCode

from chatclient.channels import Channels, RejectedPost, locked_post
from chatclient.connection import Connection
from chatclient.errors import ChatClientError, RequestError
from chatclient.events import ChannelPost, LockedPost, MomentPost

K = TypeVar("K")

WATCHED_CHANNELS = 10
"""Channels the server lets one connection watch (one more: it stops the oldest)."""
WATCHED_POSTS = 100
"""Posts the server lets one connection watch (one more: it stops the oldest)."""


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One item of the timeline: ``at`` is the server's time it is ordered by; one of ``post``
    (a verified channel post) and ``moment`` (a contact's Moment, decrypted) is set."""

    at: int
    post: ChannelPost | None = None
    moment: MomentPost | None = None
    locked: LockedPost | None = None
    """A paid post this account may not read now (SPEC.md 15.14): its placeholder."""


@dataclass(frozen=True, slots=True)
class TimelinePage:
    """Entries newest first; ``next`` is the ``before`` of the next older page ("": none)."""

    entries: list[TimelineEntry]
    rejected: list[RejectedPost]
    next: str


class Timeline:
    def __init__(
        self,
        conn: Connection,
        channels: Channels,
        open_moment: Callable[[F.MomentInfo], Awaitable[MomentPost]],
    ) -> None:
        self._c = conn
        self._channels = channels
        self._open_moment = open_moment
        self._feed = False
        self._open: dict[int, None] = {}
        self._threads: dict[tuple[int, int], None] = {}

    # ------------------------------------------------------------------ watching

    async def watch_feed(self, on: bool = True) -> None:
        """Get the new posts of every channel this account follows (``ChannelPost`` events) on
        this connection, and after every reconnect; ``on`` false: no longer."""
        self._feed = on
        await self._c.call(F.WatchFeed(id=self._c.next_id(), on=on), F.Ok)

    async def watch_channel(self, channel: int, on: bool = True) -> None:
        """Get ``channel``'s new posts (its page is shown), following it or not; the server
        keeps the newest 10 channels watched."""
        _remember(self._open, channel, on, WATCHED_CHANNELS)
        await self._watch(F.WatchChannel(id=self._c.next_id(), channel=channel, on=on))

    async def watch_post(self, channel: int, seq: int, on: bool = True) -> None:
        """Get post ``seq``'s new comments (``ChannelComment``) and reaction counts
        (``PostReactions``), its thread being shown; the server keeps the newest 100 posts."""
        _remember(self._threads, (channel, seq), on, WATCHED_POSTS)
        await self._watch(F.WatchPost(id=self._c.next_id(), channel=channel, seq=seq, on=on))

    async def _watch(self, frame: F.WatchChannel | F.WatchPost) -> None:
        try:
            await self._c.call(frame, F.Ok)
        except RequestError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                self._forget(frame)
            raise

    @property
    def watching(self) -> tuple[bool, list[int], list[tuple[int, int]]]:
        """(the feed, the channels, the posts) this client watches, oldest first."""
        return self._feed, list(self._open), list(self._threads)

    async def rewatch(self) -> None:
        """Say again, on a new connection, what this client watches (the server forgets it when
        a connection ends). A channel or post gone meanwhile is dropped."""
        if self._feed:
            await self._c.request(F.WatchFeed(id=self._c.next_id()), F.Ok)
        for channel in list(self._open):
            await self._again(F.WatchChannel(id=self._c.next_id(), channel=channel))
        for channel, seq in list(self._threads):
            await self._again(F.WatchPost(id=self._c.next_id(), channel=channel, seq=seq))

    async def _again(self, frame: F.WatchChannel | F.WatchPost) -> None:
        try:
            await self._c.request(frame, F.Ok)
        except RequestError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                raise
            self._forget(frame)

    def _forget(self, frame: F.WatchChannel | F.WatchPost) -> None:
        """The server said the channel or post ``frame`` watches is gone: no longer kept."""
        if isinstance(frame, F.WatchChannel):
            self._open.pop(frame.channel, None)
        else:
            self._threads.pop((frame.channel, frame.seq), None)

    # ------------------------------------------------------------------ reading

    async def page(self, *, before: str = "", limit: int = 20) -> TimelinePage:
        """One page of this account's timeline after the cursor ``before`` ("": the newest),
        newest first, each post verified."""
        got = await self._c.call(
            F.GetTimeline(id=self._c.next_id(), before=before, limit=limit), F.Timeline
        )
        entries: list[TimelineEntry] = []
        rejected: list[RejectedPost] = []
        for item in got.items:
            if item.moment is not None:
                moment = await self._open_moment(item.moment)
                entries.append(TimelineEntry(item.at, moment=moment))
            if item.post is None:
                continue  # a Moment, or a kind of item this SDK does not know yet
            if item.post.locked:  # no content to verify: shown as locked, in its place
                entries.append(TimelineEntry(item.at, locked=locked_post(item.post)))
                continue
            try:
                entries.append(TimelineEntry(item.at, await self._channels.verify(item.post)))
            except (ChatProtoError, ChatClientError) as exc:
                rejected.append(RejectedPost(item.post, str(exc)))
        return TimelinePage(entries, rejected, got.next)

    async def entries(self, *, limit: int = 20) -> AsyncIterator[TimelineEntry]:
        """Every entry of the timeline, newest first, read a page of ``limit`` at a time: no
        entry twice and none skipped, whatever is published meanwhile (new ones start a fresh
        walk)."""
        before = ""
        while True:
            got = await self.page(before=before, limit=limit)
            for entry in got.entries:
                yield entry
            if not got.next:
                return
            before = got.next


def _remember(kept: dict[K, None], key: K, on: bool, bound: int) -> None:
    """Keep ``key`` as the newest watched (or forget it), at most ``bound``: the server's rule."""
    kept.pop(key, None)
    if on:
        kept[key] = None
        while len(kept) > bound:
            del kept[next(iter(kept))]
