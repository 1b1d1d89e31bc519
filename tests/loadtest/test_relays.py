"""The two bare relays ``bench_relay.py`` measures chatd against (``loadtest/bare_relay.py``):
python-websockets and picows must relay the same way, or their figures compare nothing. A
message reaches every member of its room, its sender included (the copy that stands for
chatd's ack), in order, and no member of another room."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from testkit import free_port
from websockets.asyncio.client import ClientConnection, connect

BARE_RELAY = Path(__file__).resolve().parents[2] / "loadtest" / "bare_relay.py"


def _bare_relay() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bare_relay", BARE_RELAY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def _drain(ws: ClientConnection, n: int) -> list[bytes]:
    got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(n)]
    return [m if isinstance(m, bytes) else m.encode() for m in got]


async def _nothing_more(clients: list[ClientConnection]) -> None:
    """No client gets anything more: no copy twice, none across rooms."""
    for ws in clients:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.2)


async def _close(clients: list[ClientConnection]) -> None:
    for ws in clients:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), 5)


@pytest.mark.parametrize("serve", ["serve_rooms", "serve_rooms_picows", "picows on uvloop"])
async def test_a_relay_sends_each_message_to_its_whole_room_and_nowhere_else(serve: str) -> None:
    bare_relay = _bare_relay()
    relay: Callable[..., Coroutine[Any, Any, None]] = (
        functools.partial(bare_relay.serve_rooms_picows, aiofastnet=False)
        if serve == "picows on uvloop"
        else getattr(bare_relay, serve)
    )
    port = free_port()
    ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    server = asyncio.create_task(relay(port, ready))
    clients: list[ClientConnection] = []
    try:
        await asyncio.wait({ready, server}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if server.done():
            server.result()  # the relay's own error (a port taken, picows missing)
        assert ready.done(), "the relay did not start listening"
        for room in ("1", "1", "1", "2", "2"):
            clients.append(await connect(f"ws://127.0.0.1:{port}/room/{room}", compression=None))
        room_a, room_b = clients[:3], clients[3:]
        await asyncio.sleep(0.05)  # every member joined before the first message
        for i in range(5):
            await room_a[0].send(b"a%d" % i)
        await room_b[1].send(b"b0")
        expected_a = [b"a%d" % i for i in range(5)]
        for ws in room_a:  # the sender's own copy included, in the order sent
            assert await _drain(ws, 5) == expected_a
        for ws in room_b:
            assert await _drain(ws, 1) == [b"b0"]
        await _nothing_more(clients)
    finally:
        await _close(clients)
        server.cancel()
        await asyncio.wait({server}, timeout=10)
    assert server.done(), "the relay did not stop when cancelled"


async def _subscribed(url: str, channels: list[str], nodes: int) -> None:
    """Wait until every channel has ``nodes`` subscribers at the Redis of ``url``."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        async with asyncio.timeout(10):
            while True:
                counts = dict(await client.pubsub_numsub(*channels))
                if all(counts.get(c.encode(), 0) >= nodes for c in channels):
                    return
                await asyncio.sleep(0.02)
    finally:
        await client.aclose()


@pytest.mark.parametrize("window", [0.0, 0.005])
@pytest.mark.parametrize("nodes", [1, 2])
async def test_the_batched_relay_alone_or_as_two_nodes_through_redis_relays_as_one(
    tmp_path: Path, nodes: int, window: float
) -> None:
    """``serve_rooms_batched``, the floor ``bench_relay --servers picows-1node@W,picows-2node@W``
    sets beside chatd's one and two nodes: alone, or with a room's members and senders split
    over two nodes through Redis, every member gets every message once, in order, its sender
    included, none before the batch's window has passed, and no other room's member gets any.
    A node that delivered its own copies back from Redis would show each message twice; one
    that never answered the sender would leave it waiting."""
    from redisd import RedisServer

    bare_relay = _bare_relay()
    redis = RedisServer(tmp_path) if nodes == 2 else None
    if redis is not None:
        redis.start()
    ports = [free_port() for _ in range(nodes)]
    loop = asyncio.get_running_loop()
    readies: list[asyncio.Future[None]] = [loop.create_future() for _ in ports]
    servers = [
        asyncio.create_task(
            bare_relay.serve_rooms_batched(  # type: ignore[attr-defined]
                port, window, redis.url if redis else None, node, ready
            )
        )
        for node, (port, ready) in enumerate(zip(ports, readies, strict=True), 1)
    ]
    clients: list[ClientConnection] = []
    try:
        pending: set[asyncio.Future[Any]] = {*readies, *servers}
        async with asyncio.timeout(10):  # until every node listens, or one of them failed
            while not all(r.done() for r in readies) and not any(t.done() for t in servers):
                _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for server in servers:
            if server.done():
                server.result()  # a node's own error
        assert all(r.done() for r in readies), "a node stopped without listening"
        # room 1: two members on the first node, one on the last; room 2: one on each, its
        # sender on the last node (with two nodes, each node publishes)
        for room, at in (("1", 0), ("1", -1), ("1", 0), ("2", -1), ("2", 0)):
            clients.append(
                await connect(f"ws://127.0.0.1:{ports[at]}/room/{room}", compression=None)
            )
        room_a, room_b = clients[:3], clients[3:]
        if redis is not None:  # every SUBSCRIBE in effect before the first message
            await _subscribed(redis.url, ["/room/1", "/room/2"], nodes)
        sent_at = loop.time()
        for i in range(5):
            await room_a[0].send(b"a%d" % i)
        await room_b[0].send(b"b0")
        # a member on the sender's node: its copy needs no Redis, yet waits for the batch
        first = await asyncio.wait_for(room_a[2].recv(), 5)
        assert loop.time() - sent_at >= window * 0.9, "a copy left before its batch closed"
        expected_a = [b"a%d" % i for i in range(5)]
        assert [first, *await _drain(room_a[2], 4)] == expected_a
        for ws in (room_a[0], room_a[1]):  # the sender's own copy included, in the order sent
            assert await _drain(ws, 5) == expected_a
        for ws in room_b:
            assert await _drain(ws, 1) == [b"b0"]
        await _nothing_more(clients)  # no own copy back from Redis either
    finally:
        await _close(clients)
        for server in servers:
            server.cancel()
        await asyncio.wait(set(servers), timeout=10)
        if redis is not None:
            redis.kill()
    assert all(server.done() for server in servers), "a node did not stop when cancelled"
