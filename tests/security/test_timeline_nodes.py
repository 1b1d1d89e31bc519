"""Watching across nodes (issue 19.2 and 19.4, SPEC.md 20.7): three nodes sharing PostgreSQL
and Redis. A node subscribes to a channel's (or a post's) topic only while one of its own
connections watches it, and the ``ok`` of a watch comes once that subscription is in effect, so
a watcher on node 3 gets what is published or commented on node 1; an unfollow made on node 2
stops the feed on the account's connection on node 3; the timeline read on any node is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client
from chatproto import frames as F
from redisd import RedisServer
from serverkit import three_nodes
from testkit import Raw


@pytest.fixture
async def nodes(pg_dsn: str, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Three nodes; their URLs."""
    async with three_nodes(pg_dsn, redis_server.url, tmp_path) as urls:
        yield urls


async def quiet(raw: Raw, kind: type[F.Frame]) -> None:
    """Nothing of ``kind`` reached ``raw``: called once another connection on the same node got
    the push, this round trip's answer comes after anything pushed to ``raw`` with it."""
    await raw.request(F.GetTimeline(id=raw.next_id(), limit=1), F.Timeline)
    assert [f for f in raw.backlog if isinstance(f, kind)] == []


async def test_a_watcher_on_node_3_gets_what_is_published_and_said_on_node_1(
    nodes: list[str], tmp_path: Path
) -> None:
    one, two, three = nodes
    async with Client(one) as alice:
        await alice.register("alice", "Alice")
        bob = await Raw.open(three)  # follows, watches the feed, on node 3
        await bob.register("bob")
        bob_two = await Raw.open(two)  # bob again, on node 2: unfollows there
        await bob_two.login(bob.device, bob.key)
        carol = await Raw.open(three)  # follows nothing: the channel's page and post 1
        await carol.register("carol")
        dave = await Raw.open(three)  # follows, watches nothing: the control
        await dave.register("dave")
        try:
            ch = (await alice.channels.create("daily", "Daily")).channel
            for raw in (bob, dave):
                await raw.request(F.Follow(id=raw.next_id(), channel=ch), F.ChannelAnswer)
            await bob.request(F.WatchFeed(id=bob.next_id()), F.Ok)
            await carol.request(F.WatchChannel(id=carol.next_id(), channel=ch), F.Ok)

            seq = await alice.channels.publish_text(ch, "from node 1")
            for raw in (bob, carol):
                got = await raw.expect(F.PostEvent)
                assert (got.post.channel, got.post.seq) == (ch, seq)
            await quiet(dave, F.PostEvent)

            await carol.request(F.WatchPost(id=carol.next_id(), channel=ch, seq=seq), F.Ok)
            said = await alice.channels.comment(ch, seq, "said on node 1")
            assert (await carol.expect(F.CommentEvent)).comment.comment == said.comment
            await alice.channels.react(ch, seq, "👍")
            counts = await carol.expect(F.ReactionsEvent)
            assert [(c.emoji, c.count) for c in counts.counts] == [("👍", 1)]
            await quiet(bob, F.CommentEvent)

            timelines = []
            for raw in (bob, bob_two):
                page = await raw.request(F.GetTimeline(id=raw.next_id()), F.Timeline)
                timelines.append([(i.post.channel, i.post.seq) for i in page.items if i.post])
            assert timelines == [[(ch, seq)], [(ch, seq)]]

            # bob unfollows on node 2: once answered, node 3 stops his feed of the channel.
            await bob_two.request(F.Unfollow(id=bob_two.next_id(), channel=ch), F.ChannelAnswer)
            await alice.channels.publish_text(ch, "after the unfollow")
            await carol.expect(F.PostEvent)
            await quiet(bob, F.PostEvent)
        finally:
            for raw in (bob, bob_two, carol, dave):
                await raw.close()
