"""Two chatd nodes sharing one PostgreSQL database and one Redis: membership changes made on one
node re-route the other node's connections live (WATCH/UNWATCH on the account's topic), and a
node keeps delivering to its own connections while Redis is down (local-first delivery); the
other node's clients catch up through sync once Redis is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, Message
from chatproto import kinds
from conftest import RunningServer, make_settings, run_server
from redisd import RedisServer

from .conftest import PostgresServer

TIMEOUT = 10


@pytest.fixture
async def nodes(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[tuple[RunningServer, RunningServer]]:
    dsn = await postgres_server.create_database()
    try:
        settings = make_settings(tmp_path, store={"db": dsn}, broker={"url": redis_server.url})
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            for node in (node_a, node_b):
                async with asyncio.timeout(TIMEOUT):
                    while not node.app.broker.healthy():
                        await asyncio.sleep(0.01)
            yield node_a, node_b
    finally:
        await postgres_server.drop_database(dsn)


async def next_messages(client: Client, n: int, timeout: float = TIMEOUT) -> list[Message]:
    """The next ``n`` messages (text or system) this client shows, in order, its own apart."""
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        async for ev in client.events():
            if isinstance(ev, Message) and ev.kind in ("text", "system") and not ev.own:
                got.append(ev)
                if len(got) == n:
                    return got
    raise AssertionError(f"client closed after {got}")


def describe(m: Message) -> str:
    if isinstance(m.content, kinds.SystemEvent):
        return f"system:{m.content.event}"
    return f"text:{m.text}"


async def quiet(client: Client, seconds: float = 0.5) -> list[str]:
    """What the client shows in the next ``seconds`` (expected: nothing)."""
    await asyncio.sleep(seconds)
    events = client.events_nowait()
    return [describe(ev) for ev in events if isinstance(ev, Message) and not ev.own]


async def test_group_created_on_one_node_reaches_a_member_on_the_other_live(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    async with Client(node_a.url, encrypt=False) as alice, Client(node_b.url, encrypt=False) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        info = await alice.create("group", "team", [await alice.lookup("bob")])
        assert [describe(m) for m in await next_messages(bob, 1)] == ["system:created"]
        for i in range(5):
            await alice.send_text(info.conv, f"a{i}")
        got = await next_messages(bob, 5)
        assert [describe(m) for m in got] == [f"text:a{i}" for i in range(5)]
        await bob.send_text(info.conv, "b0")
        assert [describe(m) for m in await next_messages(alice, 2)] == [
            "system:created",
            "text:b0",
        ]


async def test_invited_on_one_node_then_removed_while_on_the_other(
    nodes: tuple[RunningServer, RunningServer],
) -> None:
    node_a, node_b = nodes
    async with Client(node_a.url, encrypt=False) as alice, Client(node_b.url, encrypt=False) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        bob_id = await alice.lookup("bob")
        conv = (await alice.create("group", "team")).conv
        await alice.send_text(conv, "before")
        await alice.invite(conv, bob_id)
        # The live "joined" (seq 3) is where bob's history starts (SPEC 7.8): nothing from before.
        assert [describe(m) for m in await next_messages(bob, 1)] == ["system:joined"]
        for i in range(3):
            await alice.send_text(conv, f"in{i}")
        assert [describe(m) for m in await next_messages(bob, 3)] == [
            f"text:in{i}" for i in range(3)
        ]
        await alice.remove(conv, bob_id)
        assert [describe(m) for m in await next_messages(bob, 1)] == ["system:removed"]
        for i in range(3):
            await alice.send_text(conv, f"after{i}")
        assert await quiet(bob) == []
        assert not node_b.app.broker._handlers.get(f"c.{conv}")


async def test_redis_down_same_node_live_other_node_resyncs_when_it_returns(
    nodes: tuple[RunningServer, RunningServer], redis_server: RedisServer
) -> None:
    node_a, node_b = nodes
    async with (
        Client(node_a.url, encrypt=False) as alice,
        Client(node_a.url, encrypt=False) as carol,
        Client(node_b.url, encrypt=False) as bob,
    ):
        await alice.register("alice", "Alice")
        await carol.register("carol", "Carol")
        await bob.register("bob", "Bob")
        members = [await alice.lookup("carol"), await alice.lookup("bob")]
        conv = (await alice.create("group", "team", members)).conv
        assert [describe(m) for m in await next_messages(alice, 1)] == ["system:created"]
        await alice.send_text(conv, "up")
        for c in (carol, bob):
            assert [describe(m) for m in await next_messages(c, 2)] == [
                "system:created",
                "text:up",
            ]

        redis_server.kill()
        async with asyncio.timeout(TIMEOUT):
            while node_a.app.broker.healthy() or node_b.app.broker.healthy():
                await asyncio.sleep(0.01)
        down = [f"down{i}" for i in range(5)]
        for text in down:
            await alice.send_text(conv, text)  # acked: the store is the truth
        got = await next_messages(carol, 5)
        assert [describe(m) for m in got] == [f"text:{t}" for t in down]
        await carol.send_text(conv, "carol-down")
        assert [describe(m) for m in await next_messages(alice, 1)] == ["text:carol-down"]

        redis_server.start()
        async with asyncio.timeout(TIMEOUT):
            while not (node_a.app.broker.healthy() and node_b.app.broker.healthy()):
                await asyncio.sleep(0.01)
        # No reconnect needed: node B tells its clients to resync once Redis is back.
        expected = [f"text:{t}" for t in [*down, "carol-down"]]
        assert [describe(m) for m in await next_messages(bob, 6)] == expected
        await alice.send_text(conv, "back")
        assert [describe(m) for m in await next_messages(bob, 1)] == ["text:back"]
        assert await quiet(bob, 0.2) == []
