"""Watching and the timeline under attack (issue 19.2 and 19.4, SPEC.md 20.7 and 20.8), on
SQLite and PostgreSQL: a stranger watching a thousand posts holds at most a hundred (the oldest
give way, so its cost on the server is bounded), watching what does not exist changes nothing;
a stranger's timeline, with any cursor it forges, lists nothing of channels it does not follow
nor of Moments it does not see, and no watch of its own brings it their live events."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

from chatclient.events import ChannelPost, MomentPost
from chatproto import frames as F
from chatproto.errors import ErrorCode
from serverkit import sdk_user, serving
from testkit import Raw

from chatd.hub import WATCHED_POSTS


async def answers(raw: Raw, n: int) -> list[F.ServerFrame]:
    """The next ``n`` answers (frames with ``re``) of ``raw``, in order; pushes are kept."""
    got: list[F.ServerFrame] = []
    while len(got) < n:
        f = await raw.recv(timeout=60)
        if getattr(f, "re", None) is None:
            raw.backlog.append(f)
        else:
            got.append(f)
    return got


async def quiet(raw: Raw, kind: type[F.Frame]) -> None:
    """Nothing of ``kind`` reached ``raw`` up to a round trip made after another connection of
    the same node got its push."""
    await raw.request(F.GetTimeline(id=raw.next_id(), limit=1), F.Timeline)
    assert [f for f in raw.backlog if isinstance(f, kind)] == []


async def test_a_stranger_watching_a_thousand_posts_holds_only_the_newest_hundred(
    tmp_path: Path, db: str
) -> None:
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        mallory = await Raw.open(server.url)
        await mallory.register("mallory")
        try:
            ch = (await alice.channels.create("alice_news", "Alice News")).channel
            count = WATCHED_POSTS + 10
            for i in range(count):
                await alice.channels.publish_text(ch, f"post {i}")
            order = [i % count + 1 for i in range(1000)]
            for seq in order:
                await mallory.send_frame(F.WatchPost(id=mallory.next_id(), channel=ch, seq=seq))
            assert all(isinstance(a, F.Ok) for a in await answers(mallory, len(order)))
            for seq in range(count + 1, count + 1001):  # no such posts: refused, nothing held
                await mallory.send_frame(F.WatchPost(id=mallory.next_id(), channel=ch, seq=seq))
            refused = await answers(mallory, 1000)
            assert {(type(a), getattr(a, "code", None)) for a in refused} == {
                (F.Error, ErrorCode.NOT_FOUND)
            }
            held: dict[int, None] = {}
            for seq in order:  # the server's rule: the oldest watch gives way
                held.pop(seq, None)
                held[seq] = None
                if len(held) > WATCHED_POSTS:
                    del held[next(iter(held))]
            dropped = sorted(set(range(1, count + 1)) - set(held))
            assert len(dropped) == count - WATCHED_POSTS
            await alice.channels.comment(ch, dropped[0], "nobody watches this here")
            kept = next(iter(held))
            said = await alice.channels.comment(ch, kept, "mallory watches this")
            got = await mallory.expect(F.CommentEvent)
            assert (got.seq, got.comment.comment) == (kept, said.comment)
            await quiet(mallory, F.CommentEvent)
        finally:
            await mallory.close()
            await alice.aclose()


async def test_a_strangers_timeline_and_watches_show_nothing_it_does_not_follow_or_see(
    tmp_path: Path, db: str
) -> None:
    async with serving(tmp_path, db) as server:
        alice = await sdk_user(server, tmp_path, "alice")
        bob = await sdk_user(server, tmp_path, "bob")
        mallory = await Raw.open(server.url)
        await mallory.register("mallory")
        try:
            await alice.direct(bob.account)  # alice and bob: mutual contacts
            await bob.direct(alice.account)
            chs = [(await alice.channels.create(f"news_{n}", "News")).channel for n in "abc"]
            for ch in chs:
                await alice.channels.publish_text(ch, "public, but not followed by mallory")
            await bob.channels.follow(chs[0])
            await mallory.request(F.Follow(id=mallory.next_id(), channel=chs[1]), F.ChannelAnswer)
            await mallory.request(F.Unfollow(id=mallory.next_id(), channel=chs[1]), F.ChannelAnswer)
            moment = await alice.moments.post("for my contacts")
            await bob.timeline.watch_feed()
            for frame in (
                F.WatchFeed(id=mallory.next_id()),
                F.WatchChannel(id=mallory.next_id(), channel=chs[2]),  # public: allowed
                F.WatchPost(id=mallory.next_id(), channel=moment.moment, seq=1),
            ):
                await mallory.request(frame)

            # A thousand timeline reads with cursors mallory forges around what exists.
            now = int(time.time() * 1000)
            rng = random.Random(19)
            forged = [""] + [
                rng.choice(
                    [
                        f"{now + rng.randint(-(10**6), 10**6)}.1.{moment.moment}",
                        f"{now + rng.randint(-(10**6), 10**6)}.0.{rng.choice(chs)}.1",
                        f"{2**63 - 1}.0.{2**63 - 1}.{2**63 - 1}",
                        f"{now}.{rng.randint(2, 9)}.1",
                        "0.0.0.0",
                        "é",
                    ]
                )
                for _ in range(999)
            ]
            for cursor in forged:
                await mallory.send_frame(F.GetTimeline(id=mallory.next_id(), before=cursor))
            for got in await answers(mallory, len(forged)):
                if isinstance(got, F.Error):
                    assert got.code == ErrorCode.INVALID, got
                else:
                    assert isinstance(got, F.Timeline) and (got.items, got.next) == ([], "")
            assert len((await bob.timeline.page()).entries) == 2  # the post and the Moment

            await alice.channels.publish_text(chs[0], "live, to bob's feed")
            await alice.channels.publish_text(chs[1], "live, mallory unfollowed")
            await alice.moments.post("live, to contacts")
            wanted = {ChannelPost, MomentPost}
            async with asyncio.timeout(10):
                async for ev in bob.events():  # bob gets the post and the Moment live
                    wanted.discard(type(ev))
                    if not wanted:
                        break
            await quiet(mallory, F.PostEvent)
            await quiet(mallory, F.MomentEvent)
        finally:
            await mallory.close()
            await alice.aclose()
            await bob.aclose()
