"""The limits' Lua script does in Redis exactly what ``chatd.core.ratelimit.take`` does in
memory (the same grants and waits for the same calls), against a real redis-server."""

from __future__ import annotations

import random

from redisd import RedisServer

from chatd.core.ratelimit import Buckets, Budget
from chatd.services.limits import RedisBuckets


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
