"""chatd with ``[broker] url`` pointing at a throwaway redis-server: messages between SDK clients
travel through Redis, /readyz says "degraded" while Redis is down, and the broker metrics count."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from chatclient import Client, Message
from conftest import make_settings, run_server
from redisd import RedisServer
from testkit import http_get


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def _texts(client: Client, n: int, conv: int, timeout: float = 10) -> list[str]:
    out: list[str] = []

    async def collect() -> None:
        async for ev in client.events():
            if isinstance(ev, Message) and ev.kind != "system" and ev.conv == conv and not ev.own:
                assert ev.text is not None
                out.append(ev.text)
                if len(out) == n:
                    return

    await asyncio.wait_for(collect(), timeout)
    return out


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_direct_conversation_through_the_redis_broker(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    settings = make_settings(tmp_path, broker={"url": redis_server.url})
    async with run_server(settings) as server:
        port = server.app.port
        assert port is not None
        async with asyncio.timeout(10):
            while (await http_get(port, "/readyz"))[0] != 200:
                await asyncio.sleep(0.02)
        async with (
            Client(server.url, encrypt=False) as alice,
            Client(server.url, encrypt=False) as bob,
        ):
            await alice.register("alice", "Alice")
            await bob.register("bob", "Bob")
            conv = await alice.direct(await alice.lookup("@bob"))
            assert await bob.direct(alice.account) == conv
            sent = [f"hi {i}" for i in range(20)]
            acks = [await alice.send_text(conv, text) for text in sent]
            assert [a.seq for a in acks] == list(range(2, 22))
            assert await _texts(bob, 20, conv) == sent
            await bob.send_text(conv, "hello back")
            assert await _texts(alice, 1, conv) == ["hello back"]

        # Every envelope went through Redis and came back to this node's subscription (it
        # delivered its own connections first, so the last echo may still be on its way).
        async with asyncio.timeout(10):
            while True:
                _, metrics = await http_get(port, "/metrics")
                if _metric(metrics, "chatd_broker_received_total") >= 21:
                    break
                await asyncio.sleep(0.02)
        assert _metric(metrics, "chatd_broker_up") == 1.0
        assert _metric(metrics, "chatd_broker_published_total") >= 21
        assert _metric(metrics, "chatd_broker_dropped_total") == 0

        redis_server.kill()  # the node stays ready (it still stores and acks), degraded
        async with asyncio.timeout(10):
            while _metric((await http_get(port, "/metrics"))[1], "chatd_broker_up") != 0.0:
                await asyncio.sleep(0.02)
        assert await http_get(port, "/readyz") == (200, "ready, degraded: broker down\n")
        redis_server.start()
        async with asyncio.timeout(10):
            while (await http_get(port, "/readyz")) != (200, "ready\n"):
                await asyncio.sleep(0.05)


def test_check_config_takes_broker_flag_and_redacts_its_password() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatd",
            "check-config",
            "--broker",
            "rediss://chatd:s3cret-pw@redis.example:6380/2",
        ],
        env={"PATH": "/usr/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "s3cret-pw" not in out.stdout
    assert json.loads(out.stdout)["broker"]["url"] == "rediss://chatd:***@redis.example:6380/2"
