"""Watching and the timeline (issue 19.2 and 19.4, SPEC.md 20.7 and 20.8) against a real server
with several clients: a channel's posts reach only the connections that watch the feed of a
follower or the channel's page, a post's comments and counts only those that watch its thread;
an unfollow stops the feed on every connection of the account; the timeline merges the followed
channels newest first and pages without a gap or a repeat while posts keep arriving; and the
SDK says again what it watched after a reconnect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import RequestError
from chatclient.events import ChannelPost
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import RunningServer
from serverkit import sdk_user, sdk_users, serving
from testkit import Raw


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with serving(tmp_path) as s:
        yield s


async def _raw(server: RunningServer, handle: str) -> Raw:
    raw = await Raw.open(server.url)
    await raw.register(handle)
    return raw


async def _again(server: RunningServer, first: Raw) -> Raw:
    """A second connection of ``first``'s account (the same device logs in again)."""
    raw = await Raw.open(server.url)
    await raw.login(first.device, first.key)
    return raw


async def _ok(raw: Raw, frame: F.Frame) -> None:
    await raw.request(frame, F.Ok)


async def _quiet(raw: Raw, kind: type[F.Frame]) -> None:
    """Nothing of ``kind`` reached ``raw``: asked after another connection of the same node got
    the push, this round trip's answer comes after anything pushed to ``raw`` with it."""
    await raw.request(F.GetTimeline(id=raw.next_id(), limit=1), F.Timeline)
    assert [f for f in raw.backlog if isinstance(f, kind)] == []


async def test_posts_reach_only_connections_watching_the_feed_or_the_channel(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await _raw(server, "bob")
    bob_elsewhere = await _again(server, bob)  # follows too (same account), watches nothing
    carol = await _raw(server, "carol")  # follows nothing, has the channel's page open
    dave = await _raw(server, "dave")  # follows, watched the feed and stopped
    try:
        ch = (await alice.channels.create("daily", "Daily")).channel
        for raw in (bob, dave):
            await raw.request(F.Follow(id=raw.next_id(), channel=ch), F.ChannelAnswer)
        await _ok(bob, F.WatchFeed(id=bob.next_id()))
        await _ok(carol, F.WatchChannel(id=carol.next_id(), channel=ch))
        await _ok(dave, F.WatchFeed(id=dave.next_id()))
        await _ok(dave, F.WatchFeed(id=dave.next_id(), on=False))

        seq = await alice.channels.publish_text(ch, "hello")
        for raw in (bob, carol):
            got = await raw.expect(F.PostEvent)
            assert (got.post.channel, got.post.seq) == (ch, seq)
        await _quiet(bob_elsewhere, F.PostEvent)
        await _quiet(dave, F.PostEvent)

        await _ok(carol, F.WatchChannel(id=carol.next_id(), channel=ch, on=False))
        await alice.channels.publish_text(ch, "again")
        await bob.expect(F.PostEvent)
        await _quiet(carol, F.PostEvent)
    finally:
        await alice.aclose()
        for raw in (bob, bob_elsewhere, carol, dave):
            await raw.close()


async def test_a_posts_comments_and_counts_reach_only_connections_watching_its_thread(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await _raw(server, "bob")  # watches post 1
    carol = await _raw(server, "carol")  # watches post 2 and the feed: not post 1's thread
    try:
        ch = (await alice.channels.create("daily", "Daily")).channel
        one = await alice.channels.publish_text(ch, "one")
        two = await alice.channels.publish_text(ch, "two")
        await carol.request(F.Follow(id=carol.next_id(), channel=ch), F.ChannelAnswer)
        await _ok(bob, F.WatchPost(id=bob.next_id(), channel=ch, seq=one))
        await _ok(carol, F.WatchPost(id=carol.next_id(), channel=ch, seq=two))
        await _ok(carol, F.WatchFeed(id=carol.next_id()))

        said = await alice.channels.comment(ch, one, "first!")
        got = await bob.expect(F.CommentEvent)
        assert (got.seq, got.comment.comment) == (one, said.comment)
        await alice.channels.react(ch, one, "👍")
        counts = await bob.expect(F.ReactionsEvent, timeout=5)
        assert [(c.emoji, c.count) for c in counts.counts] == [("👍", 1)]
        await _quiet(carol, F.CommentEvent)
        await _quiet(carol, F.ReactionsEvent)

        await alice.channels.comment(ch, two, "second")
        assert (await carol.expect(F.CommentEvent)).seq == two
        await _quiet(bob, F.CommentEvent)
    finally:
        await alice.aclose()
        await bob.close()
        await carol.close()


async def test_an_admin_who_does_not_follow_loses_the_feed_when_no_longer_an_admin(
    server: RunningServer, tmp_path: Path
) -> None:
    """SPEC.md 20.7: the feed carries the channels the account follows or administers; an
    admin the owner demotes, and who never followed, stops getting the channel's posts."""
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await _raw(server, "bob")  # an admin, watches its feed, follows nothing
    carol = await _raw(server, "carol")  # has the channel's page open
    try:
        ch = (await alice.channels.create("daily", "Daily")).channel
        await alice.channels.set_admin(ch, bob.account)
        await _ok(bob, F.WatchFeed(id=bob.next_id()))
        await _ok(carol, F.WatchChannel(id=carol.next_id(), channel=ch))
        await alice.channels.publish_text(ch, "while bob is an admin")
        await bob.expect(F.PostEvent)
        await carol.expect(F.PostEvent)

        await alice.channels.set_admin(ch, bob.account, admin=False)
        await alice.channels.publish_text(ch, "after")
        await carol.expect(F.PostEvent)
        await _quiet(bob, F.PostEvent)
    finally:
        await alice.aclose()
        await bob.close()
        await carol.close()


async def test_an_unfollow_stops_the_feed_on_every_connection_of_the_account(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    bob = await _raw(server, "bob")
    bob_phone = await _again(server, bob)
    carol = await _raw(server, "carol")
    try:
        ch = (await alice.channels.create("daily", "Daily")).channel
        for raw in (bob, carol):
            await raw.request(F.Follow(id=raw.next_id(), channel=ch), F.ChannelAnswer)
        for raw in (bob, bob_phone, carol):
            await _ok(raw, F.WatchFeed(id=raw.next_id()))
        await alice.channels.publish_text(ch, "before")
        for raw in (bob, bob_phone, carol):
            await raw.expect(F.PostEvent)

        await bob_phone.request(F.Unfollow(id=bob_phone.next_id(), channel=ch), F.ChannelAnswer)
        await alice.channels.publish_text(ch, "after")
        await carol.expect(F.PostEvent)
        await _quiet(bob, F.PostEvent)
        await _quiet(bob_phone, F.PostEvent)
    finally:
        await alice.aclose()
        for raw in (bob, bob_phone, carol):
            await raw.close()


async def test_the_timeline_merges_three_channels_and_pages_without_gaps_while_posts_arrive(
    server: RunningServer, tmp_path: Path
) -> None:
    async with sdk_users(server, tmp_path, "alice", "bob") as [alice, bob]:
        chs = [(await alice.channels.create(f"ch_{n}", n.title())).channel for n in "abcd"]
        for ch in chs[:3]:  # not the fourth
            await bob.channels.follow(ch)
        published: list[tuple[int, int]] = []
        for i in range(9):
            ch = chs[i % 4]
            seq = await alice.channels.publish_text(ch, f"post {i}")
            if ch != chs[3]:
                published.append((ch, seq))

        seen: list[tuple[int, int]] = []
        ats: list[int] = []
        before = ""
        arrivals = 0
        while True:
            page = await bob.timeline.page(before=before, limit=2)
            assert page.rejected == []
            for e in page.entries:
                assert e.post is not None
                seen.append((e.post.channel, e.post.seq))
                ats.append(e.at)
            if not page.next:
                break
            before = page.next
            # Alice publishes between the pages: nothing is skipped nor shown twice.
            await alice.channels.publish_text(chs[arrivals % 3], f"new {arrivals}")
            arrivals += 1
        assert len(seen) == len(set(seen))
        assert set(published) <= set(seen)
        assert seen[: len(published)] == published[::-1]  # newest first
        assert ats == sorted(ats, reverse=True)
        fresh = await bob.timeline.page(limit=1)  # a new walk starts at the newest
        assert fresh.entries[0].post is not None and fresh.entries[0].post.text == (
            f"new {arrivals - 1}"
        )
        walked = [e.post.seq for e in [e async for e in bob.timeline.entries(limit=3)] if e.post]
        assert len(walked) == len(published) + arrivals


async def test_watching_what_does_not_exist_and_a_forged_cursor_are_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    alice = await sdk_user(server, tmp_path, "alice")
    try:
        ch = (await alice.channels.create("daily", "Daily")).channel
        seq = await alice.channels.publish_text(ch, "soon gone")
        await alice.channels.delete(ch, seq)
        for call in (
            alice.timeline.watch_channel(ch + 1),
            alice.timeline.watch_post(ch, seq),  # deleted
            alice.timeline.watch_post(ch, seq + 1),
        ):
            with pytest.raises(RequestError) as err:
                await call
            assert err.value.code == ErrorCode.NOT_FOUND
        assert alice.timeline.watching == (False, [], [])
        await alice.timeline.watch_post(ch, seq, on=False)  # stopping is always fine
        for cursor in ("x", "1.0.7", "1.5.1.1"):
            with pytest.raises(RequestError) as err:
                await alice.timeline.page(before=cursor)
            assert err.value.code == ErrorCode.INVALID
    finally:
        await alice.aclose()


async def test_the_sdk_watches_the_feed_again_after_a_reconnect(
    server: RunningServer, tmp_path: Path
) -> None:
    async with sdk_users(server, tmp_path, "alice", "bob") as [alice, bob]:
        ch = (await alice.channels.create("daily", "Daily")).channel
        notes = (await bob.create("group", "notes")).conv
        await bob.channels.follow(ch)
        await bob.timeline.watch_feed()
        await bob.drop_connection()
        # Acked once the new connection resumed the outbox, which it does after watching again.
        await bob.send_text(notes, "back")
        await alice.channels.publish_text(ch, "while you were away, and after")
        async with asyncio.timeout(10):
            async for ev in bob.events():
                if isinstance(ev, ChannelPost):
                    assert ev.text == "while you were away, and after"
                    break


async def test_the_timeline_merges_a_followed_channel_with_a_contacts_moments(
    server: RunningServer, tmp_path: Path
) -> None:
    """A follows B's channel and is B's contact: A's timeline has B's posts and B's Moment, in
    the order they were stored; C, neither follower nor contact, has nothing of either."""
    a = await sdk_user(server, tmp_path, "anna")
    b = await sdk_user(server, tmp_path, "boris")
    c = await sdk_user(server, tmp_path, "chloe")
    try:
        await a.direct(b.account)  # mutual contacts (SPEC.md 18.1)
        await b.direct(a.account)
        ch = (await b.channels.create("boris_news", "Boris News")).channel
        await a.channels.follow(ch)
        await b.channels.publish_text(ch, "a post")
        moment = await b.moments.post("a moment")
        await b.channels.publish_text(ch, "another post")
        page = await a.timeline.page(limit=2)
        older = await a.timeline.page(before=page.next, limit=2)
        got = [
            e.post.text if e.post is not None else e.moment.text if e.moment else None
            for e in page.entries + older.entries
        ]
        assert got == ["another post", "a moment", "a post"]
        assert older.next == ""
        assert page.entries[1].moment is not None
        assert page.entries[1].moment.moment == moment.moment
        assert (await c.timeline.page()).entries == []
    finally:
        for client in (a, b, c):
            await client.aclose()
