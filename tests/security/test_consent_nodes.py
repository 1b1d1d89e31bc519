"""Issue 14.5, what a stranger may take of someone's keys and to-device queue, on three nodes
sharing PostgreSQL and Redis: no more than on one node (``tests/security/test_consent.py``).

These budgets used to be counted by each node alone (the claims per claimer, the one-time
prekeys per target handed to strangers, the items and bytes all strangers may queue for a device
per hour), and a stranger's items queued at once were counted before the insert, outside its
transaction: a stranger with a connection on each of 3 nodes got up to 3 times each budget.
Now the windows are counted in Redis, and the queue quota under the device's queue lock.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatproto import codec
from chatproto import frames as F
from chatproto.errors import ErrorCode
from redisd import RedisServer
from serverkit import three_nodes
from testkit import Raw

DEFAULTS = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
"""chatd's own defaults (tests/conftest.py opens them up for the other suites)."""
SIG = bytes(range(64))


async def upload(r: Raw, kids: range) -> int:
    """Upload one-time prekeys ``kids`` (the same identity every time); the pool's size."""
    count: F.KeyCount = await r.request(
        F.UploadKeys(
            id=r.next_id(),
            identity_key=bytes(32),
            identity_sig=SIG,
            signed_prekey=F.SignedPrekey(kid=1, key=os.urandom(32), sig=SIG),
            one_time=[F.OneTimePrekey(kid=k, key=os.urandom(32)) for k in kids],
        ),
        F.KeyCount,
    )
    return count.one_time


async def direct(a: Raw, b: Raw) -> None:
    """``a`` opens a direct conversation with ``b`` (who becomes ``a``'s contact)."""
    await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv)


@pytest.fixture
async def nodes(pg_dsn: str, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[str]]:
    """Three nodes with chatd's own consent defaults; their URLs."""
    async with three_nodes(pg_dsn, redis_server.url, tmp_path, consent=DEFAULTS) as urls:
        yield urls


async def logged_in(urls: list[str], first: Raw) -> list[Raw]:
    """``first``'s device logged in once more on each node."""
    out = []
    for url in urls:
        c = await Raw.open(url)
        await c.login(first.device, first.key)
        out.append(c)
    return out


async def burst(c: Raw, frames: list[F.Frame]) -> list[F.ServerFrame]:
    """Send every frame at once (no waiting for answers), then read the answers in order."""
    for f in frames:
        await c.ws.send(codec.encode(f))
    return [await c._reply(f.id, timeout=30) for f in frames]  # type: ignore[attr-defined]


async def test_a_stranger_on_three_nodes_claims_no_more_than_on_one(nodes: list[str]) -> None:
    victim = await Raw.open(nodes[0])
    await victim.register("victim")
    assert await upload(victim, range(100)) == 100
    first = await Raw.open(nodes[1])
    await first.register("mallory")
    conns = await logged_in(nodes, first)

    async def claims(c: Raw) -> list[F.ServerFrame]:
        return await burst(
            c, [F.ClaimKeys(id=c.next_id(), account=victim.account) for _ in range(50)]
        )

    answers = [a for got in await asyncio.gather(*(claims(c) for c in conns)) for a in got]
    bundles = [a for a in answers if isinstance(a, F.Bundles)]
    refused = [a for a in answers if isinstance(a, F.Error)]
    assert all(a.code == ErrorCode.RATE_LIMITED for a in refused)
    # 150 claims: the claimer's 120 a minute, on every node together (before: 120 on each).
    assert len(bundles) == 120, (len(bundles), len(refused))
    # The strangers' 10 one-time prekeys of the victim an hour (before: 10 on each node); the
    # other bundles carry the signed prekey, the last resort.
    assert sum(b.bundles[0].one_time is not None for b in bundles) == 10
    assert all(b.bundles[0].signed_prekey is not None for b in bundles)
    assert await upload(victim, range(0)) == 90
    for c in [victim, first, *conns]:
        await c.close()


async def test_a_stranger_on_three_nodes_queues_no_more_than_on_one(nodes: list[str]) -> None:
    victim = await Raw.open(nodes[0])
    await victim.register("victim")
    first = await Raw.open(nodes[1])
    await first.register("mallory")
    conns = await logged_in(nodes, first)

    async def items(c: Raw) -> list[F.ServerFrame]:
        return await burst(
            c,
            [
                F.ToDevice(id=c.next_id(), device=victim.device, body=os.urandom(1024))
                for _ in range(20)
            ],
        )

    answers = [a for got in await asyncio.gather(*(items(c) for c in conns)) for a in got]
    refused = [a for a in answers if isinstance(a, F.Error)]
    assert all(a.code == ErrorCode.RATE_LIMITED for a in refused)
    # A stranger's 32 items queued at once, whatever the connections and nodes they come from.
    assert sum(isinstance(a, F.Ok) for a in answers) == 32
    got: F.ToDeviceBatch = await victim.request(
        F.FetchToDevice(id=victim.next_id(), after=0, limit=100), F.ToDeviceBatch
    )
    assert len(got.events) == 32
    # A friend's key share still lands.
    friend = await Raw.open(nodes[2])
    await friend.register("friend")
    await direct(victim, friend)
    assert isinstance(
        await friend.request(F.ToDevice(id=friend.next_id(), device=victim.device, body=b"k")),
        F.Ok,
    )
    for c in [victim, first, friend, *conns]:
        await c.close()


async def test_throwaway_strangers_on_three_nodes_together_queue_no_more_than_on_one(
    nodes: list[str],
) -> None:
    victim = await Raw.open(nodes[0])
    await victim.register("victim")
    accepted = 0
    for i in range(9):  # 9 accounts x 30 items, 3 on each node, each within its own quota
        s = await Raw.open(nodes[i % 3])
        await s.register(f"throwaway{i}")
        got = await burst(
            s,
            [
                F.ToDevice(id=s.next_id(), device=victim.device, body=os.urandom(512))
                for _ in range(30)
            ],
        )
        accepted += sum(isinstance(a, F.Ok) for a in got)
        await s.close()
    # What all strangers together may queue for one device per hour (before: 200 on each node).
    assert accepted == 200
    await victim.close()
