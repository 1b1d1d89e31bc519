"""The presence directory contract: in-process and Redis (against this test's own
redis-server). Two Redis directories are two nodes sharing one Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redisd import RedisServer

from chatd.broker.presence import LocalPresence, PresenceDirectory, RedisPresence


@pytest.fixture(params=["local", "redis"])
async def directory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[PresenceDirectory]:
    if request.param == "local":
        yield LocalPresence()
        return
    server = RedisServer(tmp_path)
    server.start()
    d = RedisPresence(server.url, "node-a")
    try:
        yield d
    finally:
        await d.aclose()
        server.kill()


async def test_an_account_is_online_from_arrival_to_departure(
    directory: PresenceDirectory,
) -> None:
    assert await directory.online([1, 2]) == set()
    await directory.arrive(1)
    await directory.arrive(2)
    assert await directory.online([1, 2, 3]) == {1, 2}
    assert await directory.depart(1) is True  # its only node: now offline everywhere
    assert await directory.online([1, 2]) == {2}


@pytest.fixture
async def two_nodes(
    tmp_path: Path,
) -> AsyncIterator[tuple[RedisServer, RedisPresence, RedisPresence]]:
    server = RedisServer(tmp_path)
    server.start()
    a = RedisPresence(server.url, "node-a", ttl=0.6)
    b = RedisPresence(server.url, "node-b", ttl=0.6)
    try:
        yield server, a, b
    finally:
        await a.aclose()
        await b.aclose()
        server.kill()


async def test_nodes_see_each_others_accounts_and_the_last_departure_decides(
    two_nodes: tuple[RedisServer, RedisPresence, RedisPresence],
) -> None:
    _, a, b = two_nodes
    await a.arrive(7)
    assert await b.online([7]) == {7}
    await b.arrive(7)  # a second connection, on the other node
    assert await a.depart(7) is False  # still on node b: not offline
    assert await a.online([7]) == {7}
    assert await b.depart(7) is True
    assert await a.online([7]) == set()


async def test_a_dead_nodes_accounts_expire_and_live_ones_are_renewed(
    two_nodes: tuple[RedisServer, RedisPresence, RedisPresence],
) -> None:
    _, a, b = two_nodes
    renewing = asyncio.create_task(b.run())
    try:
        await a.arrive(1)  # node a then "dies": it never renews
        await b.arrive(2)
        await asyncio.sleep(1.2)  # two leases long
        assert await b.online([1, 2]) == {2}
    finally:
        await b.aclose()
        await renewing


async def test_redis_down_answers_from_this_node_and_recovers(
    two_nodes: tuple[RedisServer, RedisPresence, RedisPresence],
) -> None:
    server, a, b = two_nodes
    await a.arrive(1)
    await b.arrive(2)
    server.kill()
    assert await a.online([1, 2]) == {1}  # its own only; no error, no long wait
    assert await a.depart(1) is True
    await a.arrive(3)
    server.start()  # empty: it kept nothing
    renewing = asyncio.create_task(b.run())
    try:
        await asyncio.sleep(0.5)  # one renewal (ttl / 3) refills node b's accounts
        assert await a.online([2]) == {2}
    finally:
        await b.aclose()
        await renewing
