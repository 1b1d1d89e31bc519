"""One contract for every broker: the in-process MemoryBroker and the RedisBroker (against a
throwaway redis-server this file starts). Outage tests run against Redis only."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis.asyncio
from redisd import RedisServer

from chatd.broker.base import Broker
from chatd.broker.memory import MemoryBroker
from chatd.broker.redis import RedisBroker

PROBE = b"probe"


class Inbox:
    """A handler that records what each topic received (probes apart)."""

    def __init__(self) -> None:
        self.got: dict[str, list[bytes]] = defaultdict(list)
        self.probed: set[str] = set()

    def __call__(self, topic: str, data: bytes) -> None:
        if data == PROBE:
            self.probed.add(topic)
        else:
            self.got[topic].append(data)

    async def settle(self, broker: Broker, topics: list[str], timeout: float = 10) -> None:
        """Publish probes until every topic's subscription is in effect (a Redis SUBSCRIBE
        lands asynchronously; anything published before it is not for this subscriber)."""
        self.probed.difference_update(topics)
        async with asyncio.timeout(timeout):
            while missing := [t for t in topics if t not in self.probed]:
                for topic in missing:
                    broker.publish(topic, PROBE)
                await asyncio.sleep(0.02)

    async def wait_for(self, topic: str, n: int, timeout: float = 10) -> list[bytes]:
        async with asyncio.timeout(timeout):
            while len(self.got[topic]) < n:
                await asyncio.sleep(0.005)
        return self.got[topic]


@dataclass
class Rig:
    broker: Broker
    redis: RedisServer | None = None
    reconnects: list[float] = field(default_factory=list)


@contextlib.asynccontextmanager
async def running(broker: RedisBroker) -> AsyncIterator[RedisBroker]:
    task = asyncio.create_task(broker.run())
    try:
        async with asyncio.timeout(10):
            while not broker.healthy():
                await asyncio.sleep(0.01)
        yield broker
    finally:
        await broker.aclose()
        await asyncio.wait_for(task, 10)


def redis_broker(url: str, rig_reconnects: list[float], **kw: float) -> RedisBroker:
    return RedisBroker(
        url,
        on_reconnect=lambda: rig_reconnects.append(time.monotonic()),
        backoff_max=0.2,
        ping_interval=1.0,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def redis_rig_on(tmp_path: Path) -> AsyncIterator[Rig]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        reconnects: list[float] = []
        async with running(redis_broker(server.url, reconnects)) as broker:
            yield Rig(broker, server, reconnects)
    finally:
        server.kill()


@pytest.fixture(params=["memory", "redis"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    if request.param == "memory":
        yield Rig(MemoryBroker())
        return
    async with redis_rig_on(tmp_path) as redis_rig:
        yield redis_rig


@pytest.fixture
async def redis_rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with redis_rig_on(tmp_path) as rig:
        yield rig


async def test_publish_reaches_the_topics_subscriber_in_order(rig: Rig) -> None:
    inbox = Inbox()
    rig.broker.subscribe("c.1", inbox)
    await inbox.settle(rig.broker, ["c.1"])
    sent = [f"m{i}".encode() for i in range(200)]
    for data in sent:
        rig.broker.publish("c.1", data)
    assert await inbox.wait_for("c.1", 200) == sent
    assert rig.broker.stats.dropped == 0
    assert rig.broker.stats.received >= 200


async def test_a_node_hands_its_own_envelopes_to_no_handler(redis_rig: Rig) -> None:
    """Redis sends a publisher its own copy on a topic it subscribes to: with ``ignore_own``
    the broker counts it as received and drops it before any handler (the hub delivered it when
    it published it), while another node gets it and the node still gets everyone else's."""
    assert redis_rig.redis is not None
    me = redis_rig.broker
    offset, marker = 3, b"node-one"
    me.ignore_own(offset, marker)
    async with running(redis_broker(redis_rig.redis.url, [])) as other:
        mine, theirs = Inbox(), Inbox()
        me.subscribe("c.own", mine)
        other.subscribe("c.own", theirs)
        await mine.settle(other, ["c.own"])
        await theirs.settle(other, ["c.own"])
        received = me.stats.received
        own = [b"abc" + marker + b"-%d" % i for i in range(3)]
        for data in own:
            me.publish("c.own", data)
        other.publish("c.own", b"abc" + b"node-two" + b"-x")
        assert await theirs.wait_for("c.own", 4) == [*own, b"abcnode-two-x"]
        assert await mine.wait_for("c.own", 1) == [b"abcnode-two-x"]
        async with asyncio.timeout(5):
            while me.stats.received < received + 4:
                await asyncio.sleep(0.01)
        assert mine.got["c.own"] == [b"abcnode-two-x"]


async def test_after_barrier_the_first_publish_from_another_node_arrives(
    rig: Rig, tmp_path: Path
) -> None:
    """No probing: ``barrier()`` alone says the subscription is in effect (what a sync relies
    on before it reads the store for the last time)."""
    publisher: Broker = rig.broker
    other: RedisBroker | None = None
    if rig.redis is not None:
        other = redis_broker(rig.redis.url, [])
    async with contextlib.AsyncExitStack() as stack:
        if other is not None:
            publisher = await stack.enter_async_context(running(other))
        admin = redis.asyncio.Redis.from_url(rig.redis.url) if rig.redis else None
        if admin is not None:
            stack.push_async_callback(admin.aclose)
            await admin.ping()  # connected before the race below
        for round_ in range(3):
            inbox = Inbox()
            topics = [f"b.{round_}.{i}" for i in range(3000)]
            for topic in topics:
                rig.broker.subscribe(topic, inbox)
            assert await rig.broker.barrier()  # confirmed
            if admin is not None:  # Redis itself already counts the subscriber
                counts = await admin.pubsub_numsub(*topics[-10:])
                assert [n for _, n in counts] == [1] * 10
            for topic in topics:
                publisher.publish(topic, b"first")
            for topic in topics:
                assert await inbox.wait_for(topic, 1) == [b"first"]


async def test_after_flush_runs_once_everything_before_it_was_handed_on(rig: Rig) -> None:
    """What a node waits for before acking: every envelope published before the call has
    been accepted by the broker (counted in ``stats.published``), in call order."""
    fired: list[tuple[int, int]] = []
    for round_ in range(5):
        for i in range(1000):
            rig.broker.publish(f"f.{i % 7}", b"x" * 32)
        rig.broker.after_flush(lambda r=round_: fired.append((r, rig.broker.stats.published)))
    async with asyncio.timeout(10):
        while len(fired) < 5:
            await asyncio.sleep(0.005)
    assert [r for r, _ in fired] == list(range(5))
    assert all(published >= 1000 * (r + 1) for r, published in fired)


async def test_unsubscribed_and_never_subscribed_topics_get_nothing(rig: Rig) -> None:
    inbox = Inbox()
    rig.broker.subscribe("c.1", inbox)
    rig.broker.subscribe("c.2", inbox)
    await inbox.settle(rig.broker, ["c.1", "c.2"])
    rig.broker.unsubscribe("c.1")
    rig.broker.unsubscribe("c.404")  # never subscribed: a no-op
    for i in range(20):
        rig.broker.publish("c.1", f"gone{i}".encode())
        rig.broker.publish("c.3", f"never{i}".encode())
    rig.broker.publish("c.2", b"last")
    assert await inbox.wait_for("c.2", 1) == [b"last"]
    await asyncio.sleep(0.1)  # anything still in flight would have arrived by now
    assert set(inbox.got) == {"c.2"}
    # Subscribing again works (the topic was really released, not just hidden).
    rig.broker.subscribe("c.1", inbox)
    await inbox.settle(rig.broker, ["c.1"])
    rig.broker.publish("c.1", b"back")
    assert await inbox.wait_for("c.1", 1) == [b"back"]


async def test_many_topics_each_get_only_their_own(rig: Rig) -> None:
    inbox = Inbox()
    topics = [f"c.{i}" for i in range(300)] + [f"a.{i}" for i in range(100)]
    for topic in topics:
        rig.broker.subscribe(topic, inbox)
    await inbox.settle(rig.broker, topics)
    for round_ in range(3):
        for topic in topics:
            rig.broker.publish(topic, f"{topic}:{round_}".encode())
    for topic in topics:
        assert await inbox.wait_for(topic, 3) == [f"{topic}:{r}".encode() for r in range(3)]


async def test_a_burst_of_10000_is_delivered_in_order_without_loss(rig: Rig) -> None:
    inbox = Inbox()
    rig.broker.subscribe("c.7", inbox)
    await inbox.settle(rig.broker, ["c.7"])
    sent = [i.to_bytes(4, "big") * 16 for i in range(10_000)]
    started = time.perf_counter()
    for data in sent:
        rig.broker.publish("c.7", data)
    publish_seconds = time.perf_counter() - started
    got = await inbox.wait_for("c.7", 10_000, timeout=30)
    assert len(got) == 10_000 and got == sent
    assert rig.broker.stats.dropped == 0
    assert publish_seconds < 1.0  # publish only appends (or calls the hub, in-process)


async def test_an_overflow_while_redis_is_up_makes_the_other_nodes_resync(
    redis_rig: Rig,
) -> None:
    """Envelopes dropped at the bound never reach the other nodes, which cannot tell: the
    overflowing node says so through Redis and every other node runs its resync hook."""
    assert redis_rig.redis is not None
    own: list[float] = []
    overflowing = redis_broker(redis_rig.redis.url, own, max_pending=10)
    async with running(overflowing):
        inbox = Inbox()
        redis_rig.broker.subscribe("c.over", inbox)
        await inbox.settle(overflowing, ["c.over"])
        assert redis_rig.reconnects == []
        for i in range(100):  # all at once: the flusher has not run yet
            overflowing.publish("c.over", f"m{i}".encode())
        assert overflowing.stats.dropped == 90
        got = await inbox.wait_for("c.over", 10)
        assert got == [f"m{i}".encode() for i in range(90, 100)]
        async with asyncio.timeout(5):
            while not redis_rig.reconnects:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert own == []  # the overflowing node's own clients had everything (local first)


async def test_a_batch_lost_with_its_connection_makes_the_other_nodes_resync(
    redis_rig: Rig,
) -> None:
    """A node's connection can die with a batch sent and not answered (killed, or gone stale
    while idle through an outage and found dead only by that batch, after Redis is back): the
    other nodes saw nothing go wrong, yet the batch never reached them. Their resync hook runs."""
    assert redis_rig.redis is not None
    own: list[float] = []
    url = f"{redis_rig.redis.url}?client_name=lone"
    publisher = redis_broker(url, own, heartbeat_interval=3600)  # no heartbeat finds it first
    async with running(publisher), redis.asyncio.from_url(redis_rig.redis.url) as admin:
        inbox = Inbox()
        redis_rig.broker.subscribe("c.lone", inbox)
        await inbox.settle(publisher, ["c.lone"])
        clients = await admin.client_list(_type="pubsub")
        lone = [c["id"] for c in clients if c["name"] == "lone"]
        assert len(lone) == 1
        await admin.client_pause(5000, all=False)  # WRITE: a PUBLISH waits, unanswered
        try:
            publisher.publish("c.lone", b"lost")
            async with asyncio.timeout(5):
                while publisher.pending():
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # sent, waiting for its reply
            assert await admin.client_kill_filter(_id=lone[0]) == 1
            async with asyncio.timeout(5):
                while not publisher.stats.dropped:
                    await asyncio.sleep(0.01)
        finally:
            await admin.client_unpause()
        assert redis_rig.broker.healthy()  # the other node saw no outage of its own
        async with asyncio.timeout(5):
            while not redis_rig.reconnects:
                await asyncio.sleep(0.01)
        assert inbox.got["c.lone"] == []
        publisher.publish("c.lone", b"after")
        assert await inbox.wait_for("c.lone", 1) == [b"after"]


async def test_redis_outage_publish_never_blocks_then_reconnects_resubscribes_and_delivers(
    redis_rig: Rig,
) -> None:
    rig = redis_rig
    broker, redis = rig.broker, rig.redis
    assert redis is not None
    inbox = Inbox()
    topics = [f"c.{i}" for i in range(50)]
    for topic in topics:
        broker.subscribe(topic, inbox)
    await inbox.settle(broker, topics)
    assert broker.healthy() and rig.reconnects == []

    redis.kill()
    async with asyncio.timeout(5):
        while broker.healthy():
            await asyncio.sleep(0.01)
    broker.subscribe("c.late", inbox)  # subscribed during the outage
    released: list[int] = []
    broker.after_flush(lambda: released.append(1))
    assert released == [1]  # nothing waits for a broker that is down: acks keep flowing
    took = []
    for i in range(5_000):
        started = time.perf_counter()
        broker.publish(topics[i % len(topics)], b"during outage")
        took.append(time.perf_counter() - started)
    # Publishing only appends to a buffer: no call waits for Redis. Measured as the median and
    # the sum (not the worst call, which a busy machine's scheduler can stretch by itself).
    assert statistics.median(took) < 0.001 and sum(took) < 1.0
    await asyncio.sleep(0.5)  # the tasks keep retrying, nothing raises
    assert not broker.healthy()

    redis.start()
    async with asyncio.timeout(10):
        while not (broker.healthy() and rig.reconnects):
            await asyncio.sleep(0.01)
    assert len(rig.reconnects) == 1
    for topic in [*topics, "c.late"]:
        inbox.got.pop(topic, None)  # envelopes buffered during the outage may or may not arrive
        broker.publish(topic, f"after {topic}".encode())
    for topic in [*topics, "c.late"]:  # (the buffered ones may come first, never after it)
        async with asyncio.timeout(10):
            while f"after {topic}".encode() not in inbox.got[topic]:
                await asyncio.sleep(0.005)
        assert inbox.got[topic][-1] == f"after {topic}".encode()


async def test_redis_down_at_start_is_unhealthy_buffers_and_recovers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # not started yet
    reconnects: list[float] = []
    broker = redis_broker(redis.url, reconnects)
    task = asyncio.create_task(broker.run())
    try:
        inbox = Inbox()
        broker.subscribe("c.1", inbox)
        broker.publish("c.1", b"early")
        await asyncio.sleep(0.3)
        assert not broker.healthy()
        redis.start()
        async with asyncio.timeout(10):
            while not (broker.healthy() and reconnects):
                await asyncio.sleep(0.01)
        await inbox.settle(broker, ["c.1"])
        # "early" was buffered and may have been delivered (before the probes, in order).
        assert inbox.got["c.1"] in ([], [b"early"])
        inbox.got["c.1"].clear()
        broker.publish("c.1", b"now")
        assert await inbox.wait_for("c.1", 1) == [b"now"]
    finally:
        await broker.aclose()
        await asyncio.wait_for(task, 10)
        redis.kill()


def test_the_buffer_drops_the_oldest_at_its_bound_and_counts_them() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0", max_pending=10)  # never run: nothing is sent
    for i in range(50):
        broker.publish("c.1", bytes([i]))
    assert broker.stats.dropped == 40
    assert [d for _, d in broker._pending] == [bytes([i]) for i in range(40, 50)]
    assert not broker.healthy()


async def test_aclose_flushes_what_is_pending_and_later_publishes_are_dropped(
    redis_server: RedisServer,
) -> None:
    watcher = RedisBroker(redis_server.url)
    reconnects: list[float] = []
    async with running(watcher):
        inbox = Inbox()
        watcher.subscribe("c.9", inbox)
        await inbox.settle(watcher, ["c.9"])
        sender = redis_broker(redis_server.url, reconnects)
        task = asyncio.create_task(sender.run())
        for i in range(1_000):
            sender.publish("c.9", str(i).encode())
        await asyncio.sleep(0)  # run() has started; its flusher has not connected yet
        await sender.aclose()
        await asyncio.wait_for(task, 10)
        assert sender.stats.published == 1_000 and sender.stats.dropped == 0
        assert await inbox.wait_for("c.9", 1_000) == [str(i).encode() for i in range(1_000)]
        sender.publish("c.9", b"after close")  # never raises
        assert sender.stats.dropped == 1


async def test_aclose_is_bounded_while_redis_is_down(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)  # never started
    broker = RedisBroker(redis.url, close_timeout=0.3, backoff_max=0.1)
    task = asyncio.create_task(broker.run())
    broker.publish("c.1", b"x")
    await asyncio.sleep(0.1)
    started = time.monotonic()
    await broker.aclose()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 2
    assert broker.stats.dropped == 1


async def test_the_urls_password_acl_user_database_and_client_name_are_honoured(
    tmp_path: Path,
) -> None:
    """The broker's connection logs in as the URL says (its own RESP connection, not
    redis-py's): ``requirepass``, an ACL user, a database other than 0 and ``client_name``. A
    wrong password leaves the node unhealthy (reconnecting), never crashed."""
    server = RedisServer(tmp_path, password="pw-1")
    server.start()
    try:
        async with redis.asyncio.from_url(server.url) as admin:
            await admin.acl_setuser(
                "chatd", enabled=True, passwords=["+pw-2"], commands=["+@all"], channels=["*"]
            )
        base = f"127.0.0.1:{server.port}"
        got: list[float] = []
        for url in (f"redis://:pw-1@{base}/0", f"redis://chatd:pw-2@{base}/3?client_name=n1"):
            inbox = Inbox()
            async with running(redis_broker(url, got)) as a, running(redis_broker(url, got)) as b:
                a.subscribe("c.1", inbox)
                await inbox.settle(b, ["c.1"])
                b.publish("c.1", b"hello")
                assert await inbox.wait_for("c.1", 1) == [b"hello"]
                if "client_name" in url:  # both brokers' connections, on database 3
                    async with redis.asyncio.from_url(server.url) as admin:
                        named = [c for c in await admin.client_list() if c["name"] == "n1"]
                    assert len(named) == 2 and {c["db"] for c in named} == {"3"}
                    assert {c["user"] for c in named} == {"chatd"}
        async with redis.asyncio.from_url(server.url) as admin:
            assert await admin.pubsub_numsub("c.1") == [(b"c.1", 0)]
        bad = redis_broker(f"redis://:wrong@{base}/0", got)
        task = asyncio.create_task(bad.run())
        await asyncio.sleep(1.0)
        assert not bad.healthy() and not task.done()
        bad.publish("c.1", b"x")  # buffered, never raises
        await bad.aclose()
        await asyncio.wait_for(task, 10)
    finally:
        server.kill()
