"""The limits' Lua scripts do in Redis exactly what ``chatd.core.ratelimit.take`` and
``chatd.core.consent.Window`` do in memory (the same grants and waits for the same calls),
against a real redis-server."""

from __future__ import annotations

import asyncio
import random

from redisd import RedisServer

from chatd.core.ratelimit import Buckets, Budget
from chatd.services.limits import MemoryWindows, RedisBuckets


async def test_redis_buckets_grant_what_memory_buckets_grant(redis_server: RedisServer) -> None:
    redis = RedisBuckets(redis_server.url)
    memory = Buckets()
    rng = random.Random(14)
    budget = Budget(rate=150.0, burst=300.0)
    now = 1_765_000_000.0
    try:
        for _ in range(400):
            now += rng.choice((0.0, 0.0, 0.001, 0.01, 0.2))
            want = rng.randint(1, 20)
            got = await redis.take("a:1", now, budget, want)
            expected = memory.take("a:1", now, budget, want)
            assert got[0] == expected[0]
            assert abs(got[1] - expected[1]) < 1e-5
    finally:
        await redis.aclose()


async def test_redis_down_counts_on_this_node_alone(redis_server: RedisServer) -> None:
    redis = RedisBuckets(redis_server.url, io_timeout=0.5)
    budget = Budget(rate=1.0, burst=2.0)
    try:
        redis_server.kill()
        assert [(await redis.take("r:x", 10.0, budget, 1))[0] for _ in range(3)] == [1, 1, 0]
    finally:
        await redis.aclose()


async def test_redis_windows_spend_what_memory_windows_spend(redis_server: RedisServer) -> None:
    """A window (key claims, prekeys and to-device items per hour) takes all its units or
    none, in Redis as in memory; the units that do not fit are not spent."""
    redis = RedisBuckets(redis_server.url)
    memory = MemoryWindows()
    rng = random.Random(145)
    try:
        for _ in range(300):
            units = rng.choice((1, 1, 2, 7, 40))
            got = await redis.window("tb:9", 0.0, 100, 3600.0, units)
            assert got == memory.take("tb:9", 0.0, 100, 3600.0, units)
        assert not await redis.window("tb:9", 0.0, 100, 3600.0, 1)  # spent, to the unit
        assert await redis.window("tb:10", 0.0, 100, 3600.0, 100)  # another key: its own
        # The window ends when its period does (Redis' clock): then a new one starts.
        assert await redis.window("kc:1", 0.0, 1, 0.2, 1)
        assert not await redis.window("kc:1", 0.0, 1, 0.2, 1)
        await asyncio.sleep(0.5)
        assert await redis.window("kc:1", 0.0, 1, 0.2, 1)
    finally:
        await redis.aclose()
