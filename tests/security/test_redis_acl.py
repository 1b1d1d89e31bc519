"""A Redis ACL user that may not use every topic chatd needs (docs/operations.md, "Redis
permissions"): the broker's one RESP3 connection carries PUBLISH replies (which release acks)
and pub/sub commands, so every error reply must be matched to the command that caused it.

What an operator must see: one clear ``error`` line naming the refused topics and Redis' NOPERM
reason, ``healthy()`` False (``/readyz`` degraded, ``chatd_broker_up`` 0), reconnection at the
slow end of the backoff (no storm), and once the ACL is fixed, the node healthy again by itself.
What must never happen: an ack for an envelope Redis refused, a reply counted for the wrong
command."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from redisd import RedisServer

from chatd.broker.redis import LOSS_TOPIC, RedisBroker
from chatd.broker.resp import ReplyError, RespConnection, pack_command

REFUSED_EVENT = "broker: Redis refused this node's user"
BACKOFF_MAX = 0.3


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path)  # the default user (no password) is the admin
    s.start()
    try:
        yield s
    finally:
        s.kill()


async def acl_user(server: RedisServer, name: str, *channels: str) -> str:
    """A user that may run every command but only use ``channels`` (ACL ``&`` rules); its URL."""
    async with redis.asyncio.from_url(server.url) as admin:
        await admin.execute_command(
            "ACL", "SETUSER", name, "reset", "on", ">pw", "+@all", "~*", *channels
        )
    return f"redis://{name}:pw@127.0.0.1:{server.port}/0"


async def grant_all_channels(server: RedisServer, name: str) -> None:
    async with redis.asyncio.from_url(server.url) as admin:
        await admin.execute_command("ACL", "SETUSER", name, "allchannels")


async def connections_received(server: RedisServer) -> int:
    async with redis.asyncio.from_url(server.url) as admin:
        return int((await admin.info("stats"))["total_connections_received"])


def make_broker(url: str, reconnects: list[float]) -> RedisBroker:
    return RedisBroker(
        url,
        on_reconnect=lambda: reconnects.append(time.monotonic()),
        backoff_max=BACKOFF_MAX,
        ping_interval=1.0,
        io_timeout=2.0,
    )


@contextlib.asynccontextmanager
async def started(broker: RedisBroker, *, up: bool = True) -> AsyncIterator[RedisBroker]:
    task = asyncio.create_task(broker.run())
    try:
        if up:
            await until(broker.healthy)
        yield broker
    finally:
        await broker.aclose()
        await asyncio.wait_for(task, 10)


async def until(check: object, timeout: float = 10) -> None:
    assert callable(check)
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(REFUSED_EVENT)]


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    def __call__(self, topic: str, data: bytes) -> None:
        self.got.append((topic, data))


# ---------------------------------------------------------------------- the connection itself


async def test_every_error_reply_is_matched_to_the_command_that_caused_it(
    server: RedisServer,
) -> None:
    """RESP3: a SUBSCRIBE answers with one push per channel, or with one error reply that is
    not a push; PUBLISH and PING with one reply each. A refused SUBSCRIBE must not be counted as
    the PING's reply (nor as a PUBLISH's: that would release an ack too early)."""
    url = await acl_user(server, "some", "&c.*")
    conn = RespConnection(url, connect_timeout=2)
    pushes: list[list[object]] = []
    conn.on_push = pushes.append
    await conn.connect()
    try:
        done: list[object] = []
        # Two SUBSCRIBEs (the first refused: a.1), then a PING.
        sub = conn.request(
            pack_command("SUBSCRIBE", "c.1", "a.1")
            + pack_command("SUBSCRIBE", "c.2", "c.3")
            + pack_command("PING"),
            1,
            done.append,
            pubsub=((b"subscribe", 2), (b"subscribe", 2)),
        )
        with pytest.raises(ReplyError) as refused:
            await sub
        assert [i for i, _ in refused.value.errors] == [0]
        assert refused.value.errors[0][1].startswith("NOPERM")
        assert done == [refused.value.errors]
        assert [p[:2] for p in pushes] == [[b"subscribe", b"c.2"], [b"subscribe", b"c.3"]]
        # A pipeline of PUBLISHes: the refused one (index 1) is named, the others answered.
        got: list[object] = []
        pub = conn.request(
            pack_command("PUBLISH", "c.2", "m0")
            + pack_command("PUBLISH", "a.9", "m1")
            + pack_command("PUBLISH", "c.3", "m2"),
            3,
            got.append,
        )
        with pytest.raises(ReplyError) as refused:
            await pub
        assert [i for i, _ in refused.value.errors] == [1]
        assert got == [refused.value.errors]
        # Nothing is left over: the next request gets its own reply.
        assert await conn.request(pack_command("PING"), 1) == b"PONG"
        ok: list[object] = []
        assert (
            await conn.request(
                pack_command("UNSUBSCRIBE", "c.2") + pack_command("PING"),
                1,
                ok.append,
                pubsub=((b"unsubscribe", 1),),
            )
            == b"PONG"
        )
        assert ok == [None]
        assert [m for m in pushes if m[0] == b"message"] == [
            [b"message", b"c.2", b"m0"],
            [b"message", b"c.3", b"m2"],
        ]
    finally:
        conn.close()


# ---------------------------------------------------------------------- the broker


@pytest.mark.parametrize("channels", [("&c.*",), ()], ids=["only-c", "no-channels"])
async def test_a_user_refused_the_nodes_own_topics_is_down_with_one_clear_error(
    server: RedisServer, caplog: pytest.LogCaptureFixture, channels: tuple[str, ...]
) -> None:
    """The node subscribes to its heartbeat topic and LOSS_TOPIC as it connects: refused, the
    broker never counts as up, logs ONE error naming them (not one per retry), retries at the
    slow end of the backoff, and comes up by itself once the ACL allows them."""
    caplog.set_level(logging.INFO, logger="chatd.broker.redis")
    url = await acl_user(server, "chatd", *channels)
    reconnects: list[float] = []
    broker = make_broker(url, reconnects)
    before = await connections_received(server)
    async with started(broker, up=False):
        await until(lambda: refusals(caplog))
        started_at = time.monotonic()
        await asyncio.sleep(2.0)
        assert not broker.healthy()
        elapsed = time.monotonic() - started_at
        [line] = refusals(caplog)  # logged once, however often it retried
        assert line.levelno == logging.ERROR
        refused = str(line.__dict__["refused"])
        assert f"SUBSCRIBE {LOSS_TOPIC}" in refused or f"{LOSS_TOPIC}" in refused
        assert broker._hb_topic in refused
        assert str(line.__dict__["error"]).startswith("NOPERM")
        assert "docs/operations.md" in line.getMessage()
        assert "pw" not in str(line.__dict__.get("broker"))
        # /status shows what is refused (chatd.health reads the broker's statistics).
        shown = broker.statistics().refusal
        assert shown is not None and broker._hb_topic in shown and "NOPERM" in shown
        # No storm: at most one attempt per BACKOFF_MAX / 2 (jitter), plus the admin's own.
        attempts = await connections_received(server) - before - 1
        assert 1 <= attempts <= elapsed / (BACKOFF_MAX / 2) + 4, attempts
        # Nothing published while refused counts as handed on.
        acked: list[int] = []
        broker.publish("c.1", b"x")
        broker.after_flush(lambda: acked.append(broker.stats.published))
        assert acked == [0]  # down: released at once, nothing counted as published
        # Fixed: up again by itself, and the node's clients are told to resync.
        await grant_all_channels(server, "chatd")
        await until(broker.healthy, timeout=5)
        await until(lambda: reconnects)
        assert any("reconnected" in r.getMessage() for r in caplog.records)
        assert len(refusals(caplog)) == 1
        assert broker.statistics().refusal is None


async def test_a_refused_subscription_while_up_takes_the_broker_down_and_acks_stay_true(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The node's own topics are allowed, an account topic is not: the SUBSCRIBE refused while
    the connection is up is named, the broker goes down (its node cannot receive that topic),
    acks released meanwhile never count an envelope as published that Redis did not take, and
    the subscription is in effect once the ACL allows it."""
    caplog.set_level(logging.INFO, logger="chatd.broker.redis")
    url = await acl_user(server, "chatd", "&c.*", "&hb.*", f"&{LOSS_TOPIC}")
    reconnects: list[float] = []
    async with (
        started(make_broker(url, reconnects)) as me,
        started(make_broker(server.url, [])) as other,
    ):
        inbox = Inbox()
        me.subscribe("c.1", inbox)
        assert await me.barrier()
        me.subscribe("a.1", inbox)
        for i in range(50):  # a pipeline in flight behind the refused SUBSCRIBE
            me.publish("c.1", b"m%d" % i)
        seen: list[tuple[int, int]] = []
        me.after_flush(lambda: seen.append((me.stats.published, me.stats.dropped)))
        await until(lambda: refusals(caplog))
        [line] = refusals(caplog)
        assert "a.1" in str(line.__dict__["refused"])
        assert "c.1" not in str(line.__dict__["refused"])
        assert not me.healthy() or reconnects  # down (or already back after the backoff)
        await until(lambda: seen)
        published, dropped = seen[0]
        assert published + dropped == 50
        assert me.stats.published + me.stats.dropped == 50
        assert await me.barrier()  # never hangs
        await grant_all_channels(server, "chatd")
        await until(lambda: me.healthy() and reconnects, timeout=5)
        assert await me.barrier()
        other.publish("a.1", b"hello")
        await until(lambda: ("a.1", b"hello") in inbox.got)


async def test_a_refused_publish_is_counted_dropped_and_announced_never_acked_as_published(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A PUBLISH refused by the ACL inside a pipeline: the pipeline's other envelopes are
    published (and arrive), the refused one is counted dropped, the ack waiting for the pipeline
    sees exactly that, and the other nodes are told to resync (LOSS_TOPIC)."""
    caplog.set_level(logging.INFO, logger="chatd.broker.redis")
    url = await acl_user(server, "chatd", "&c.*", "&hb.*", f"&{LOSS_TOPIC}")
    their_resyncs: list[float] = []
    async with (
        started(make_broker(url, [])) as me,
        started(make_broker(server.url, their_resyncs)) as other,
    ):
        inbox = Inbox()
        other.subscribe("c.1", inbox)
        other.subscribe("a.9", inbox)
        assert await other.barrier()
        published = me.stats.published
        me.publish("c.1", b"m0")
        me.publish("a.9", b"m1")  # refused: the user may not use a.*
        me.publish("c.1", b"m2")
        seen: list[tuple[int, int]] = []
        me.after_flush(lambda: seen.append((me.stats.published - published, me.stats.dropped)))
        await until(lambda: seen)
        assert seen == [(2, 1)]
        await until(lambda: len(inbox.got) >= 2)
        assert inbox.got == [("c.1", b"m0"), ("c.1", b"m2")]
        await until(lambda: their_resyncs)  # the LOSS_TOPIC notice reached the other node
        [line] = refusals(caplog)
        assert line.levelno == logging.ERROR
        assert "a.9" in str(line.__dict__["refused"])
        assert str(line.__dict__["error"]).startswith("NOPERM")
        # Still usable for what it may publish (after at most one backoff).
        await until(me.healthy, timeout=5)
        me.publish("c.1", b"m3")
        await until(lambda: ("c.1", b"m3") in inbox.got)
        assert me.stats.dropped == 1
        assert inbox.got.count(("c.1", b"m0")) == 1  # never resent


async def test_the_documented_acl_is_enough_for_every_redis_use_of_chatd(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/operations.md, "Redis permissions" (where the refusal's log line points): its
    ``ACL SETUSER`` line, applied as written, lets the broker up on every kind of topic (with a
    client name and a database other than 0) and the presence, limits and push commands run."""
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert "## Redis permissions" in doc
    [line] = [x for x in doc.splitlines() if x.startswith("ACL SETUSER chatd ")]
    async with redis.asyncio.from_url(server.url) as admin:
        await admin.execute_command(*line.replace(">PASSWORD", ">pw").split())
    url = f"redis://chatd:pw@127.0.0.1:{server.port}/3?client_name=n1"
    caplog.set_level(logging.INFO, logger="chatd.broker.redis")
    async with started(make_broker(url, [])) as me, started(make_broker(url, [])) as other:
        inbox = Inbox()
        topics = ["c.1", "a.2", "d.3", "p.4", "t.4.5"]
        for topic in topics:
            me.subscribe(topic, inbox)
        assert await me.barrier()
        for topic in topics:
            other.publish(topic, topic.encode())
        await until(lambda: len(inbox.got) == len(topics))
        await until(lambda: me.heartbeats > 0 and other.heartbeats > 0)
        other.unsubscribe(LOSS_TOPIC)
        assert await other.barrier()
        assert me.healthy() and other.healthy()
    assert not refusals(caplog)
    async with redis.asyncio.from_url(url) as r:  # what presence, limits and the push gate do
        async with r.pipeline(transaction=True) as pipe:
            pipe.zadd("presence:1", {"n": 1})
            pipe.pexpire("presence:1", 1000)
            pipe.zcount("presence:1", 0, "+inf")
            pipe.zrem("presence:1", "n")
            await pipe.execute()
        script = r.register_script(
            "redis.call('SET', KEYS[1], '1', 'PX', 1000) redis.call('INCRBY', KEYS[1], 2)"
            " redis.call('INCR', KEYS[2]) redis.call('EXPIRE', KEYS[2], 10)"
            " return redis.call('GET', KEYS[1])"
        )
        assert await script(keys=["limit:x", "push:cap:1"]) == b"3"
        await r.delete("push:win:1")


@contextlib.asynccontextmanager
async def flushing(
    server: RedisServer,
) -> AsyncIterator[tuple[RedisBroker, RespConnection, asyncio.Task[None]]]:
    """A broker's flusher on its own connection to ``server``, without the rest of its link
    (so that a test can cancel it at the moment it chooses): the broker, the connection and
    the flusher task."""
    broker = make_broker(server.url, [])
    conn = broker._connection()
    await conn.connect()
    broker._up = True  # as ``run()`` marks it once connected (acks wait for Redis)
    flusher = asyncio.create_task(broker._flush_forever(conn))
    try:
        yield broker, conn, flusher
    finally:
        flusher.cancel()
        conn.close()


async def test_a_pipeline_answered_then_its_flusher_cancelled_is_counted_once(
    server: RedisServer,
) -> None:
    """Redis answers the pipeline (its envelopes counted published, its acks released in the
    read callback), and in the same moment another task of the link fails (a refused
    SUBSCRIBE): the flusher is cancelled before it resumes. Each envelope is counted once,
    published, never also dropped (CI saw 50 + 50 for 50)."""
    async with flushing(server) as (broker, _conn, flusher):
        for i in range(50):
            broker.publish("c.1", b"m%d" % i)
        seen: list[tuple[int, int]] = []

        def answered() -> None:  # runs in the read callback, before the flusher resumes
            seen.append((broker.stats.published, broker.stats.dropped))
            flusher.cancel()

        broker.after_flush(answered)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(flusher, 10)
        assert seen == [(50, 0)]
        assert (broker.stats.published, broker.stats.dropped) == (50, 0)


async def test_a_pipeline_whose_flusher_was_cancelled_then_answered_is_counted_once(
    server: RedisServer,
) -> None:
    """The other order: the link fails while the pipeline is in flight (the flusher is
    cancelled: its envelopes counted dropped, its acks released), and Redis' replies are read
    before the connection is closed. They are not counted again as published."""
    async with flushing(server) as (broker, conn, flusher):
        # Redis answers nothing on this connection until the list gets an element (a blocked
        # client's commands wait behind it): the pipeline is in flight when the flusher is
        # cancelled, however slow the machine.
        blocked = conn.request(pack_command("BLPOP", "unblock-me", "0"), 1)
        for i in range(50):
            broker.publish("c.1", b"m%d" % i)
        seen: list[tuple[int, int]] = []
        broker.after_flush(lambda: seen.append((broker.stats.published, broker.stats.dropped)))
        await until(lambda: not broker.pending())  # the pipeline is written
        assert not blocked.done() and not seen
        flusher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(flusher, 10)
        assert seen == [(0, 50)]
        async with redis.asyncio.from_url(server.url) as admin:
            await admin.lpush("unblock-me", "x")  # type: ignore[misc]
        await asyncio.wait_for(conn.request(pack_command("PING"), 1), 10)  # replies read
        assert (broker.stats.published, broker.stats.dropped) == (0, 50)
