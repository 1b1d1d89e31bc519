"""Comment moderation and views of a public channel on three nodes sharing PostgreSQL and Redis
(issue 19.2, SPEC.md 20.9): the rules live in the store's transaction, not in a node's memory,
so a commenter with a connection on every node gets no more than on one. Slow mode admits one
comment of a burst sent through all three; a ban answered on one node stops comments on the
others at once, and none sent before it stands; a view reported through every node counts once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatproto import codec, kinds
from chatproto import frames as F
from chatproto.errors import ErrorCode
from redisd import RedisServer
from serverkit import three_nodes
from testkit import Raw

TEXT = kinds.encode_content(kinds.Text(text="spam"))[1]


@pytest.fixture
async def nodes(pg_dsn: str, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Three nodes on one database and one Redis; their URLs."""
    async with three_nodes(pg_dsn, redis_server.url, tmp_path) as urls:
        yield urls


async def everywhere(urls: list[str], handle: str) -> list[Raw]:
    """``handle`` registered on the first node and logged in with the same device on each."""
    first = await Raw.open(urls[0], max_queue=None)
    await first.register(handle)
    out = [first]
    for url in urls[1:]:
        c = await Raw.open(url, max_queue=None)
        await c.login(first.device, first.key)
        out.append(c)
    return out


async def burst(c: Raw, frames: list[F.Frame]) -> list[F.ServerFrame]:
    """Send every frame at once, then read the answers in order."""
    for f in frames:
        await c.ws.send(codec.encode(f))
    return [await c._reply(f.id, timeout=30) for f in frames]  # type: ignore[attr-defined]


def comments(c: Raw, ch: int, seq: int, n: int) -> list[F.Frame]:
    return [
        F.Comment(id=c.next_id(), channel=ch, seq=seq, kind="text", content=TEXT) for _ in range(n)
    ]


async def test_three_nodes_hold_one_slow_mode_one_ban_and_one_view_per_account(
    nodes: list[str], tmp_path: Path
) -> None:
    alice = Client(nodes[0], KeyStore.open(tmp_path / "alice.key"))
    await alice.__aenter__()
    await alice.register("alice", "Alice")
    mallory = await everywhere(nodes, "mallory")
    try:
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        seq = await alice.channels.publish_text(ch, "hello")
        # A view reported through each node, many times: one view.
        for c in mallory:
            await burst(c, [F.ViewPosts(id=c.next_id(), channel=ch, seqs=[seq]) for _ in range(20)])
        assert (await alice.channels.posts(ch)).posts[0].views == 1

        # Slow mode: 20 comments through each of the three nodes at once, one stored.
        await alice.channels.set_slow_mode(ch, 600)
        got = await asyncio.gather(*(burst(c, comments(c, ch, seq, 20)) for c in mallory))
        answers = [a for node in got for a in node]
        stored = [a for a in answers if isinstance(a, F.Commented)]
        assert len(stored) == 1, len(stored)
        assert all(
            a.code == ErrorCode.RATE_LIMITED and 0 < a.retry_after <= 600_000
            for a in answers
            if isinstance(a, F.Error)
        )
        await alice.channels.set_slow_mode(ch, 0)

        # A ban answered on node 0 while mallory floods nodes 1 and 2: nothing of hers stands
        # once it is answered, and every node refuses her from then on.
        flood = [asyncio.ensure_future(burst(c, comments(c, ch, seq, 150))) for c in mallory[1:]]
        await asyncio.sleep(0.02)
        await alice.channels.ban_commenter(ch, mallory[0].account, delete_comments=True)
        thread = await alice.channels.comments(ch, seq, limit=500)
        assert [c for c in thread.items if not c.deleted] == []
        results = [a for f in await asyncio.gather(*flood) for a in f]
        refused = [a for a in results if isinstance(a, F.Error)]
        assert refused and all(a.code == ErrorCode.FORBIDDEN for a in refused)
        for c in mallory:
            late = await c.request(comments(c, ch, seq, 1)[0])
            assert isinstance(late, F.Error) and late.code == ErrorCode.FORBIDDEN, late
        thread = await alice.channels.comments(ch, seq, limit=500)
        assert [c for c in thread.items if not c.deleted] == []
    finally:
        for c in mallory:
            await c.ws.close()
        await alice.aclose()
