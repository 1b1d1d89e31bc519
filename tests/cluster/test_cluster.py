"""Three real chatd nodes sharing PostgreSQL and Redis: clients spread over the nodes see each
other's direct, group and channel messages (end-to-end encrypted, keys travelling between
nodes), presence, typing and read receipts, exactly as on one node."""

from __future__ import annotations

import asyncio
from typing import TypeVar

from chatclient import Client, Message, Presence, Receipt, Typing
from testkit import Raw

from .conftest import PG_PASSWORD, REDIS_PASSWORD, Cluster, Fleet

E = TypeVar("E")
TIMEOUT = 15


async def next_event(client: Client, kind: type[E], **match: object) -> E:
    """The next event of type ``kind`` whose attributes equal ``match`` (others skipped)."""
    async with asyncio.timeout(TIMEOUT):
        async for ev in client.events():
            if isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in match.items()):
                return ev
    raise AssertionError("event stream ended")


async def texts(client: Client, conv: int, n: int) -> list[str]:
    """The next ``n`` texts of ``conv`` this client shows, its own apart."""
    got: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        async for ev in client.events():
            if isinstance(ev, Message) and ev.conv == conv and ev.text and not ev.own:
                got.append(ev.text)
                if len(got) == n:
                    return got
    raise AssertionError(f"event stream ended after {got}")


async def test_direct_group_and_channel_traffic_reaches_every_node_encrypted(
    cluster: Cluster, fleet: Fleet
) -> None:
    # Six people, two on each node; everything end-to-end encrypted.
    people = [
        await fleet.add(f"person{i}", home=i % 3, encrypt=True, record=False) for i in range(6)
    ]
    clients = [p.client for p in people]
    assert len({c.url for c in clients}) == 3
    accounts = [c.account for c in clients]

    direct = await clients[0].direct(accounts[1])  # node 1 -> node 2
    await clients[0].send_text(direct, "hello across nodes")
    assert await texts(clients[1], direct, 1) == ["hello across nodes"]
    await clients[1].send_text(direct, "hello back")
    assert await texts(clients[0], direct, 1) == ["hello back"]

    group = (await clients[2].create("group", "all", accounts[:2] + accounts[3:])).conv
    for i, c in enumerate(clients):
        await c.send_text(group, f"from person{i}")
    for i, c in enumerate(clients):
        assert sorted(await texts(c, group, 5)) == sorted(
            f"from person{j}" for j in range(6) if j != i
        )

    channel = (await clients[5].create("channel", "news", accounts[:5])).conv
    for i in range(3):
        await clients[5].send_text(channel, f"post {i}")
    for c in clients[:5]:
        assert await texts(c, channel, 3) == [f"post {i}" for i in range(3)]

    # The nodes reached PostgreSQL and Redis with the passwords in their URLs, and never
    # logged them; each log line names its node.
    for i, node in enumerate(cluster.nodes):
        log = node.log.read_text()
        assert f'"node": "node-{i + 1}"' in log
        assert PG_PASSWORD not in log and REDIS_PASSWORD not in log


async def test_presence_typing_and_receipts_cross_nodes(cluster: Cluster, fleet: Fleet) -> None:
    alice = (await fleet.add("alice", home=0, record=False)).client
    bob = (await fleet.add("bob", home=1, record=False)).client
    conv = await alice.direct(bob.account)
    # Bob is online on node 2: alice, on node 1, is told so when asked.
    [info] = await alice.presence([bob.account])
    assert info.online is True

    await bob.typing(conv, True)
    ev = await next_event(alice, Typing, conv=conv)
    assert (ev.account, ev.on) == (bob.account, True)

    ack = await alice.send_text(conv, "read me")
    assert await texts(bob, conv, 1) == ["read me"]
    await bob.mark_read(conv, ack.seq)
    receipt = await next_event(alice, Receipt, conv=conv, type="read")
    assert (receipt.account, receipt.seq) == (bob.account, ack.seq)

    # Bob also connects on node 3 (same device, raw frames), then leaves node 2: he is still
    # online, so nobody is told otherwise.
    extra = await Raw.open(cluster.nodes[2].url)
    await extra.login(bob.device, bob.keystore.key)
    await bob.aclose()
    await asyncio.sleep(1)
    assert not [ev for ev in alice.events_nowait() if isinstance(ev, Presence) and not ev.online]
    [info] = await alice.presence([bob.account])
    assert info.online is True
    # His last connection closes: alice sees him go offline, and asking agrees.
    await extra.close()
    off = await next_event(alice, Presence, account=bob.account, online=False)
    assert off.last_seen > 0
    [info] = await alice.presence([bob.account])
    assert (info.online, info.last_seen) == (False, off.last_seen)
    # He comes back on node 1, where alice is.
    back = await Raw.open(cluster.nodes[0].url)
    await back.login(bob.device, bob.keystore.key)
    assert (await next_event(alice, Presence, account=bob.account)).online is True
    [info] = await alice.presence([bob.account])
    assert info.online is True
    await back.close()
