"""The Redis broker: envelopes travel between nodes through Redis pub/sub (``redis.asyncio``).

Shape (every task is owned by ``run()``, which the app starts in its TaskGroup). ONE connection,
in RESP3, both publishes and subscribes: Redis writes the node's own copy of an envelope it
publishes to a topic it also subscribes to into the same output buffer as the ``PUBLISH``'s
reply, so the node reads both in one system call and one wake-up, and Redis writes one buffer
instead of two (with a publishing and a subscription connection, each message cost the
publisher two reads and Redis a write more).

* ``publish`` never blocks and never raises. It appends ``(topic, data)`` to a bounded in-memory
  buffer and wakes the flusher. At the bound (``max_pending``) the OLDEST pending envelope is
  dropped and counted in ``stats.dropped``: pub/sub is only the fast path and the store repairs
  what it loses (clients sync from their cursors), while a fresh envelope is worth more to a
  live conversation than a stale one. So that the other nodes' clients do sync, the next flush
  after such a drop publishes a notice on ``LOSS_TOPIC``, and every other node calls its
  ``on_reconnect()`` hook (resync) as after an outage.
* ONE flusher task sends everything pending as one pipeline of ``PUBLISH`` commands on the
  connection, then waits for its replies (one future per pipeline). A batch whose send fails is
  counted as dropped (it may have partly reached Redis; it is never resent, so nothing is
  delivered twice: at-most-once), and never also as published if Redis' replies are still read
  before the connection is closed (each batch is counted once), and the first flush on the
  next connection publishes the ``LOSS_TOPIC`` notice: the other nodes may not have seen any
  outage (an idle connection that went stale is only found dead
  by the next batch, after Redis is back), yet their clients missed what the batch held.
* Subscriptions: ``subscribe``/``unsubscribe`` are synchronous: they update the local handler
  table at once and queue the change; the subscriptions task sends ``SUBSCRIBE`` /
  ``UNSUBSCRIBE`` and a ``PING`` every ``ping_interval`` seconds; each message (a push) is
  dispatched to its topic's handler as soon as it is parsed, in the connection's read callback
  (a topic unsubscribed locally is ignored at once, even before Redis confirms). A silent connection (no reply for 3 pings) is treated as lost: the
  subscriptions task checks that replies keep coming (no timer per envelope).
* Outages: while Redis is down ``publish`` keeps buffering (and dropping oldest at the bound),
  ``healthy()`` is False, and the connection reconnects with exponential backoff (with jitter,
  ``backoff_min`` .. ``backoff_max``), re-subscribes every topic and waits for Redis to confirm
  before it counts as up (and flushes what was buffered). Every change of subscriptions has a generation;
  the PING sent after each batch of changes confirms its generation when Redis answers it (replies
  come in order), which is what ``barrier()`` waits for. When the broker is healthy again after an outage
  (including one at startup) it calls ``on_reconnect()``: live envelopes were lost meanwhile, so
  the node should tell its clients to resync. The hook is synchronous, runs in the event loop,
  must not block, and its exceptions are logged and ignored.
* Refusals (a Redis ACL user without a channel or a command chatd needs: ``NOPERM``; also a
  wrong password): every error reply is matched to its command (``chatd.broker.resp``), so a
  refusal never shifts the reply counting that releases acks. A refused ``SUBSCRIBE`` (at
  connect or later) or ``PUBLISH``, or a refused login, takes the link down as an outage does
  (``healthy()`` False, so /readyz says degraded and ``chatd_broker_up`` 0; ``refusal`` says
  why), logs ONE error naming the refused command and topics with Redis' reason and pointing to
  ``PERMISSIONS_DOC`` (again only if the refusal changes, or after ``_RELOG_REFUSAL`` s), and
  retries every ``backoff_max`` (with jitter), so the broker comes back by itself once the ACL
  allows it. In a pipeline, an envelope whose ``PUBLISH`` was refused is counted dropped, not
  published, the others published; its acks are released as after any failed send, and the
  next connection's first flush publishes the ``LOSS_TOPIC`` notice.
* Lag: every ``heartbeat_interval`` seconds (and at once after each reconnect) the flusher
  appends one ``PUBLISH`` of a heartbeat to its next pipeline, on a topic only this node
  subscribes to (``hb.<random>``); the reader times it when it comes back. That is the real
  path of an envelope (the buffer, the flusher's pipeline, Redis, the connection and the
  reader's backlog), so ``lag()`` is what a published envelope waits before another node
  can deliver it. Each round trip goes to ``on_lag`` (metrics); one heartbeat is outstanding at
  a time (a lost one is replaced after ``io_timeout``), and heartbeats are not counted in
  ``stats``.
* ``after_flush(callback)`` runs the callback once the batch holding everything published
  before it has been answered by Redis (or failed, or at once while Redis is down): the node acks
  a message only then, so a node killed right after an ack has already handed its envelope on.
* ``aclose()`` flushes what is pending within ``close_timeout`` seconds (the rest is counted as
  dropped), then stops the tasks and closes the connections; ``run()`` returns.

Plain ``PUBLISH``/``SUBSCRIBE`` (not Redis 7 sharded ``SPUBLISH``/``SSUBSCRIBE``): on one Redis
server sharded pub/sub brings nothing, and for Redis Cluster it needs redis-py's cluster client
and a pub/sub connection per shard, which this single-connection design does not have yet.

The connection is a ``chatd.broker.resp.RespConnection`` (an ``asyncio.Protocol`` over hiredis'
parser), not redis-py's: reading a reply through redis-py costs about twenty Python calls and a
future, and a node reads one per envelope it publishes and one per envelope of its conversations
(see that module). RESP3 needs Redis 6 or later (``HELLO 3``). The URL may carry credentials and TLS (``redis://user:pass@host:port/db``,
``rediss://...``; all of redis-py's ``from_url`` forms, which redis-py still parses); it is only
ever logged redacted.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from redis.exceptions import RedisError

from chatd import aio
from chatd.broker.base import BrokerStatistics, BrokerStats, Handler
from chatd.broker.resp import ReplyError, RespConnection, pack_command
from chatd.settings import redact_url

log = logging.getLogger(__name__)

LOSS_TOPIC = "x.lost"
"""Every node subscribes: a node whose buffer overflowed while Redis was up says so here."""
_LOSS_TOPIC_B = LOSS_TOPIC.encode()
_CHUNK = 512
"""Topics per SUBSCRIBE/UNSUBSCRIBE command."""
_FAILURES = (RedisError, ReplyError, OSError, TimeoutError, EOFError)
PERMISSIONS_DOC = 'docs/operations.md, "Redis permissions"'
"""Where the operator reads which commands and channels a chatd Redis user needs."""
_RELOG_REFUSAL = 60.0
"""Seconds before the same refusal is logged again (it is retried every ``backoff_max``)."""
_NAMED = 10
"""Topics named in a refusal's log line (then "and N more")."""
_REFUSALS = ("NOPERM", "WRONGPASS", "NOAUTH")
"""Error replies to the login that mean this user may not (rather than: not yet)."""


class Refused(Exception):
    """Redis answered one of the broker's commands with an error (an ACL without a channel or
    command the node needs: NOPERM): the broker cannot do its job on this connection."""

    def __init__(self, what: str, error: str) -> None:
        super().__init__(f"{what}: {error}")
        self.what = what
        """The refused command and its topics, e.g. ``PUBLISH a.9``."""
        self.error = error
        """Redis' error reply."""


def _naming(command: str, topics: list[str]) -> str:
    named = ", ".join(topics[:_NAMED])
    more = f" and {len(topics) - _NAMED} more" if len(topics) > _NAMED else ""
    return f"{command} {named}{more}"


def _pack_publishes(batch: list[tuple[str, bytes]]) -> bytes:
    """``PUBLISH topic data`` for each pair, as one RESP pipeline (redis-py's general packer
    costs several times more per command in Python)."""
    parts = []
    for topic, data in batch:
        t = topic.encode()
        parts.append(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n" % (len(t), t, len(data)))
        parts.append(data)
        parts.append(b"\r\n")
    return b"".join(parts)


class RedisBroker:
    remote = True

    def __init__(
        self,
        url: str,
        *,
        max_pending: int = 100_000,
        on_reconnect: Callable[[], None] | None = None,
        on_lag: Callable[[float], None] | None = None,
        heartbeat_interval: float = 1.0,
        connect_timeout: float = 2.0,
        io_timeout: float = 5.0,
        ping_interval: float = 5.0,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
        close_timeout: float = 2.0,
    ) -> None:
        self.url = url
        self.stats = BrokerStats()
        self.on_reconnect = on_reconnect
        self.on_lag = on_lag
        """Called with every heartbeat's round trip in seconds (synchronous, must not block)."""
        self._max_pending = max_pending
        self._io_timeout = io_timeout
        self._ping_interval = ping_interval
        self._backoff = (backoff_min, backoff_max)
        self._close_timeout = close_timeout
        self._connect_timeout = connect_timeout
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()
        self._after: list[Callable[[], None]] = []  # after_flush callbacks of the pending batch
        self._wake = aio.Wake()  # the flusher's (chatd.aio: no system call per wait)
        self._handlers: dict[str, Handler] = {}
        self._changed: dict[str, None] = {}  # topics whose subscription may differ from Redis'
        self._sub_gen = 0  # bumped by every subscribe()
        self._confirmed = 0  # the highest generation Redis has confirmed
        self._confirm_ev = asyncio.Event()  # replaced (and set) on every confirmation or outage
        self._sub_wake = asyncio.Event()
        self._up = False  # the connection is open and its subscriptions confirmed
        self._outage = False  # a connection failed since the broker was last healthy
        self._closing = False
        self._stop = asyncio.Event()
        self._flushed = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        # Heartbeats (lag): one outstanding at a time, ``_hb_due`` is picked up by the flusher.
        self._hb_interval = heartbeat_interval
        self._hb_topic = f"hb.{secrets.token_hex(8)}"
        self._hb_topic_b = self._hb_topic.encode()
        self._hb_seq = 0
        self._hb_due: bytes | None = None
        self._hb_out: tuple[bytes, float] | None = None  # (token, monotonic time when queued)
        self._hb_wake = asyncio.Event()
        self._handlers[self._hb_topic] = self._no_handler
        # Overflow: envelopes dropped while Redis is up are lost to the other nodes, which
        # would not know; the next flush tells them on LOSS_TOPIC and they resync their clients.
        self._handlers[LOSS_TOPIC] = self._no_handler
        self._token = secrets.token_bytes(8)
        self._lost = False
        self.last_lag: float | None = None
        """The latest heartbeat's round trip in seconds (None before the first)."""
        self.heartbeats = 0
        """Heartbeats that came back."""
        self.flushes = 0
        """Pipelines sent with envelopes (published / flushes = envelopes per write to Redis;
        a heartbeat alone is not counted)."""
        self._replies = 0  # pushes and PING replies read (the silence watchdog)
        self._own: tuple[int, int, bytes] | None = None  # ignore_own: (start, end, marker)
        self._sub_refused: tuple[list[tuple[str, list[str]]], str] | None = None
        # refused (UN)SUBSCRIBEs seen by ``_pong``: ([(command, topics)], Redis' first error)
        self._refusal_logged: tuple[str, float] | None = None  # (what, monotonic time)
        self.refusal: str | None = None
        """Why Redis refuses this node's user, while it does (None once the broker is up)."""

    # ------------------------------------------------------------------ the Broker protocol

    def publish(self, topic: str, data: bytes) -> None:
        if self._closing and self._flushed.is_set():
            self.stats.dropped += 1
            return
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self.stats.dropped += 1
            self._lost = True
        self._pending.append((topic, data))
        self._wake.set()

    def after_flush(self, callback: Callable[[], None]) -> None:
        if not self.healthy():
            callback()  # down: nothing waits for Redis (the resync after the outage repairs)
            return
        self._after.append(callback)
        self._wake.set()

    def _run_after(self, callbacks: list[Callable[[], None]]) -> None:
        """Run ``callbacks`` in order, once: the list is emptied."""
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("broker: after_flush callback failed")
        callbacks.clear()

    def _release_after(self) -> None:
        """Run the callbacks waiting for the publishing side (it flushed, or it is down)."""
        callbacks, self._after = self._after, []
        self._run_after(callbacks)

    def ignore_own(self, offset: int, marker: bytes) -> None:
        self._own = (offset, offset + len(marker), marker)

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._handlers[topic] = handler
        self._changed[topic] = None
        self._sub_gen += 1
        self._sub_wake.set()

    async def barrier(self) -> bool:
        target = self._sub_gen
        try:
            async with asyncio.timeout(self._io_timeout):
                while self._confirmed < target and self.healthy():
                    await self._confirm_ev.wait()
        except TimeoutError:
            return False
        return True

    def unsubscribe(self, topic: str) -> None:
        if self._handlers.pop(topic, None) is not None:
            self._changed[topic] = None
            self._sub_wake.set()

    def healthy(self) -> bool:
        return self._up and not self._closing

    def statistics(self) -> BrokerStatistics:
        return BrokerStatistics(
            "redis",
            self.url,
            self.pending(),
            self.flushes,
            self.lag(),
            self.heartbeats,
            self.refusal,
        )

    def pending(self) -> int:
        """Envelopes buffered, not yet handed to Redis."""
        return len(self._pending)

    def lag(self) -> float | None:
        """Seconds an envelope currently takes through Redis back to a node: the latest
        heartbeat's round trip, or the age of the outstanding one when that is larger (a stuck
        path shows as a growing lag, not as the last good value)."""
        out = self._hb_out
        if out is None:
            return self.last_lag
        age = time.monotonic() - out[1]
        return age if self.last_lag is None else max(self.last_lag, age)

    async def aclose(self) -> None:
        """Flush what is pending (at most ``close_timeout`` seconds), then stop ``run()``."""
        if self._closing:
            if self._running:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._close_timeout):
                        await self._done.wait()
            return
        self._closing = True
        self._wake.set()
        if self._running:
            try:
                async with asyncio.timeout(self._close_timeout):
                    await self._flushed.wait()
            except TimeoutError:
                log.warning("broker: pending envelopes not flushed in time; dropping them")
        self._flushed.set()
        self.stats.dropped += len(self._pending)
        self._pending.clear()
        self._stop.set()
        if self._running:
            await self._done.wait()

    # ------------------------------------------------------------------ tasks

    async def run(self) -> None:
        """Run the flusher and the subscription tasks until ``aclose()``."""
        if self._running or self._closing:
            raise RuntimeError("RedisBroker.run() may run once")
        self._running = True
        log.info("broker: connecting", extra={"broker": redact_url(self.url)})
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = (
                    tg.create_task(self._link(), name="broker-link"),
                    tg.create_task(self._heartbeats(), name="broker-heartbeats"),
                )
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
        finally:
            self._up = False
            self._release_after()
            self._notify_confirm()
            self._flushed.set()
            self._done.set()

    def _connection(self) -> RespConnection:
        # Not redis-py's connection: see ``chatd.broker.resp`` (this class owns reconnection
        # and never resends a batch; RESP3, pub/sub messages are pushes).
        return RespConnection(self.url, connect_timeout=self._connect_timeout)

    def _went_down(self, side: str, exc: BaseException | None) -> None:
        if not self._outage and not self._closing:
            log.warning(
                "broker: connection lost or refused; retrying with backoff",
                extra={"broker": redact_url(self.url), "side": side, "error": repr(exc)},
            )
        self._outage = True
        self._hb_out = self._hb_due = None  # it may never come back; a new one after recovery
        self._notify_confirm()

    def _went_down_refused(self, exc: Refused) -> None:
        """A command was refused: the broker is down (as in an outage) until a new connection
        gets through; logged once per refusal (again after ``_RELOG_REFUSAL`` seconds)."""
        self.refusal = f"{exc.what}: {exc.error}"
        now = time.monotonic()
        last = self._refusal_logged
        if not self._closing and (
            last is None or last[0] != exc.what or now - last[1] > _RELOG_REFUSAL
        ):
            self._refusal_logged = (exc.what, now)
            log.error(
                "broker: Redis refused this node's user a command it needs; the broker is down"
                f" until the user may (see {PERMISSIONS_DOC})",
                extra={
                    "broker": redact_url(self.url),
                    "refused": exc.what,
                    "error": exc.error,
                    "retry_s": self._backoff[1],
                },
            )
        self._outage = True
        self._hb_out = self._hb_due = None
        self._notify_confirm()

    def _notify_confirm(self) -> None:
        """Wake every ``barrier()`` waiter to look again (confirmation or health changed)."""
        event, self._confirm_ev = self._confirm_ev, asyncio.Event()
        event.set()

    def _peer_lost(self) -> None:
        """Another node dropped envelopes while Redis was up (its buffer overflowed): some of
        this node's clients may miss messages, so they resync as after an outage."""
        log.warning("broker: another node dropped envelopes; resyncing this node's clients")
        if self.on_reconnect is not None:
            try:
                self.on_reconnect()
            except Exception:
                log.exception("broker: on_reconnect hook failed")

    def _came_up(self) -> None:
        if not self.healthy() or not self._outage:
            return
        self._outage = False
        self.refusal = None
        self._hb_wake.set()  # measure the lag at once
        log.info("broker: reconnected", extra={"broker": redact_url(self.url)})
        if self.on_reconnect is not None:
            try:
                self.on_reconnect()
            except Exception:
                log.exception("broker: on_reconnect hook failed")

    async def _backoff_sleep(self, attempt: int, refused: bool = False) -> None:
        low, high = self._backoff
        delay = high if refused else min(high, low * 2**attempt)  # refused: no hurry
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _link(self) -> None:
        """The one connection: connect, (re)subscribe every topic, then flush, keep the
        subscriptions in sync and read until it is lost; reconnect with backoff."""
        attempt = 0
        while True:
            if self._closing and not self._pending:
                self._flushed.set()
                return
            conn = self._connection()
            refused = False
            try:
                async with asyncio.timeout(self._io_timeout):
                    try:
                        await conn.connect()
                    except ReplyError as exc:  # AUTH, CLIENT SETNAME, SELECT or HELLO
                        if not str(exc).startswith(_REFUSALS):
                            raise
                        raise Refused(
                            "the login (AUTH, CLIENT SETNAME, SELECT, HELLO 3)", str(exc)
                        ) from None
                    sent = await self._resubscribe(conn)
                self._up = True
                attempt = 0
                self._came_up()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._reader(conn), name="broker-reader")
                    tg.create_task(
                        self._sync_subscriptions(conn, sent), name="broker-subscriptions"
                    )
                    tg.create_task(self._flush_forever(conn), name="broker-flusher")
            except* Refused as group:
                refused = True
                self._went_down_refused(group.exceptions[0])  # type: ignore[arg-type]
            except* _FAILURES as group:
                self._went_down("link", group.exceptions[0])
            finally:
                self._up = False
                self._release_after()
                self._notify_confirm()
                conn.close()
            await self._backoff_sleep(attempt, refused)
            attempt += 1

    async def _flush_forever(self, conn: RespConnection) -> None:
        pending = self._pending
        loop = asyncio.get_running_loop()
        while True:
            if not pending and not self._lost and (self._hb_due is None or self._closing):
                self._release_after()  # their envelopes went out with earlier batches
                if self._closing:
                    self._flushed.set()
                    return
                self._wake.clear()
                await self._wake.wait(loop)
                continue
            batch = list(pending)
            pending.clear()
            after, self._after = self._after, []
            if self._hb_due is not None:  # behind this batch: it waits as an envelope would
                batch.append((self._hb_topic, self._hb_due))
                self._hb_due = None
                beat = 1
            else:
                beat = 0
            notice = self._lost
            if notice:  # after the survivors of an overflow: tell the others to resync
                batch.append((LOSS_TOPIC, self._token))
                self._lost = False
                beat += 1
            # Counted once, by whichever comes first: Redis' answer (``_handed_on``) or the
            # failure below (the answer can still be read after the flusher was cancelled).
            settled = [False]
            try:
                # One future per pipeline; no answer within io_timeout drops the connection
                # (a timer handle, not asyncio.timeout: that asks for the loop, chatd.aio).
                # The acks waiting for it run as soon as the replies are read (on_done).
                watchdog = loop.call_later(self._io_timeout, conn.close)
                try:
                    await conn.request(
                        _pack_publishes(batch),
                        len(batch),
                        partial(self._handed_on, batch, len(batch) - beat, after, settled),
                    )
                finally:
                    watchdog.cancel()
            except ReplyError as exc:
                # Answered, some PUBLISHes refused: ``_handed_on`` counted each envelope
                # (published or dropped) and released the acks. The link goes down (the broker
                # is not usable while Redis refuses what a node publishes).
                topics = list(dict.fromkeys(batch[i][0] for i, _ in exc.errors))
                raise Refused(_naming("PUBLISH", topics), exc.errors[0][1]) from None
            except BaseException:
                if settled[0]:
                    # Answered and counted, then cancelled before this task resumed (another
                    # task of the link failed meanwhile, e.g. on a refused SUBSCRIBE).
                    raise
                settled[0] = True
                self.stats.dropped += len(batch) - beat
                # Lost to the other nodes, which may not have noticed anything (only this
                # connection broke, e.g. it went stale while idle during an outage and this
                # batch found it dead after Redis was back): the first flush on the next
                # connection tells them to resync, as after an overflow (a notice in this
                # batch goes again).
                if notice or len(batch) > beat:
                    self._lost = True
                self._run_after(after)
                raise

    def _handed_on(
        self,
        batch: list[tuple[str, bytes]],
        envelopes: int,
        after: list[Callable[[], None]],
        settled: list[bool],
        errors: list[tuple[int, str]] | None,
    ) -> None:
        """Redis answered a pipeline holding ``envelopes`` envelopes (then maybe a heartbeat
        and a LOSS_TOPIC notice): count them, then release the callbacks that waited for it
        (in the read callback, see ``_flush_forever``). An envelope whose PUBLISH Redis
        refused (``errors``) is counted dropped, and the next flush tells the other nodes.
        Nothing happens if the batch is ``settled`` already (counted dropped by a flusher
        cancelled while it was in flight: the acks are released, and the others are told)."""
        if settled[0]:
            return
        settled[0] = True
        if errors is not None:
            for i, _ in errors:
                if i < envelopes:
                    envelopes -= 1
                    self.stats.dropped += 1
                    self._lost = True
                elif batch[i][0] == LOSS_TOPIC:
                    self._lost = True  # the notice goes again
                else:
                    self._hb_out = None  # the heartbeat never comes back
        self.stats.published += envelopes
        if envelopes:
            self.flushes += 1
        self._run_after(after)

    async def _heartbeats(self) -> None:
        """Queue a heartbeat every ``heartbeat_interval`` (or at once after a reconnect) unless
        one is still on its way; a heartbeat older than ``io_timeout`` is given up as lost."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._hb_interval):
                    await self._hb_wake.wait()
            self._hb_wake.clear()
            if not self.healthy():
                continue
            now = time.monotonic()
            if self._hb_out is not None and now - self._hb_out[1] < self._io_timeout:
                continue
            self._hb_seq += 1
            token = self._hb_seq.to_bytes(8, "big")
            self._hb_out = (token, now)
            self._hb_due = token
            self._wake.set()

    def _heartbeat_back(self, token: bytes) -> None:
        out = self._hb_out
        if out is None or token != out[0]:
            return  # one given up as lost, or from before an outage
        self._hb_out = None
        lag = time.monotonic() - out[1]
        self.last_lag = lag
        self.heartbeats += 1
        if self.on_lag is not None:
            try:
                self.on_lag(lag)
            except Exception:
                log.exception("broker: on_lag hook failed")

    @staticmethod
    def _no_handler(topic: str, data: bytes) -> None:
        """Stands in the handler table for the heartbeat topic (``_dispatch`` takes those)."""

    async def _resubscribe(self, conn: RespConnection) -> set[str]:
        """Subscribe a new connection to every topic and wait until Redis has confirmed.
        Returns the topics sent (later changes are left in ``_changed``)."""
        gen = self._sub_gen
        self._changed.clear()
        self._sub_refused = None
        topics = list(self._handlers)
        conn.on_push = self._on_push  # every push from now on, in order
        chunks = [topics[i : i + _CHUNK] for i in range(0, len(topics), _CHUNK)]
        # In order: the PING's reply comes after every SUBSCRIBE's confirmation (a push).
        try:
            await conn.request(
                b"".join(pack_command("SUBSCRIBE", *chunk) for chunk in chunks)
                + pack_command("PING"),
                1,
                pubsub=[(b"subscribe", len(chunk)) for chunk in chunks],
            )
        except ReplyError as exc:
            layout = [("SUBSCRIBE", chunk) for chunk in chunks] + [("PING", [])]
            raise await self._refused(conn, [layout[i] for i, _ in exc.errors], exc) from None
        self._confirm(gen)
        return set(topics)

    async def _refused(
        self, conn: RespConnection, commands: list[tuple[str, list[str]]], exc: ReplyError
    ) -> Refused:
        """What Redis refused: ``commands`` (each ``(command, topics)``) came back with an
        error. Redis refuses a SUBSCRIBE of many channels as a whole without saying which, so
        their topics are tried one by one to name those refused."""
        error = exc.errors[0][1]
        name = commands[0][0]
        topics = [t for command, ts in commands if command == name for t in ts]
        if len(topics) > 1:
            try:
                async with asyncio.timeout(self._io_timeout):
                    await conn.request(
                        b"".join(pack_command(name, t) for t in topics) + pack_command("PING"),
                        1,
                        pubsub=[(name.lower().encode(), 1)] * len(topics),
                    )
            except TimeoutError:
                pass  # name them all
            except ReplyError as one_by_one:
                refused = [topics[i] for i, _ in one_by_one.errors if i < len(topics)]
                if refused:
                    topics = refused
        return Refused(_naming(name, topics) if topics else name, error)

    async def _sync_subscriptions(self, conn: RespConnection, subscribed: set[str]) -> None:
        if self._changed:
            self._sub_wake.set()
        loop = asyncio.get_running_loop()
        seen, seen_at = self._replies, loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._ping_interval):
                    await self._sub_wake.wait()
            self._sub_wake.clear()
            # A PING goes out at least every ping_interval: no reply at all for 3 of them
            # means the connection is dead (or Redis hangs); reconnect.
            now = loop.time()
            if self._replies != seen:
                seen, seen_at = self._replies, now
            elif now - seen_at > 3 * self._ping_interval:
                raise TimeoutError("no reply from Redis for 3 ping intervals")
            if self._sub_refused is not None:
                commands, error = self._sub_refused
                raise await self._refused(conn, commands, ReplyError([(0, error)]))
            gen = self._sub_gen
            changed = list(self._changed)
            self._changed.clear()
            add = [t for t in changed if t in self._handlers and t not in subscribed]
            remove = [t for t in changed if t not in self._handlers and t in subscribed]
            subscribed.update(add)
            subscribed.difference_update(remove)
            layout = [("SUBSCRIBE", add[i : i + _CHUNK]) for i in range(0, len(add), _CHUNK)]
            layout += [
                ("UNSUBSCRIBE", remove[i : i + _CHUNK]) for i in range(0, len(remove), _CHUNK)
            ]
            out = [pack_command(command, *topics) for command, topics in layout]
            # Also the keepalive; its reply confirms generation ``gen`` (unless one of the
            # commands was refused: then ``_pong`` wakes this task to give the link up).
            conn.send(
                b"".join(out) + pack_command("PING"),
                1,
                partial(self._pong, gen, layout),
                pubsub=[(command.lower().encode(), len(topics)) for command, topics in layout],
            )

    async def _reader(self, conn: RespConnection) -> None:
        # Replies are dispatched as they are parsed (``_on_reply``, no task step and no timer
        # per envelope); ``_sync_subscriptions`` watches ``_replies`` and gives the connection
        # up when Redis stays silent. This task only ends the connection when it is lost.
        await conn.closed

    def _on_push(self, reply: list[Any]) -> None:
        """Every push on the connection, in order: messages and (un)subscribe confirmations."""
        self._replies += 1
        if reply[0] == b"message":
            own = self._own
            if own is not None and reply[2][own[0] : own[1]] == own[2]:
                self.stats.received += 1  # this node's own copy: delivered when published
                return
            self._dispatch(reply)

    def _pong(
        self,
        gen: int,
        layout: list[tuple[str, list[str]]],
        errors: list[tuple[int, str]] | None,
    ) -> None:
        """The PING sent after a batch of subscription changes was answered: they are all in
        effect (replies come in order), unless Redis refused one of them (``errors``): then
        the subscriptions task gives the link up."""
        self._replies += 1
        if errors is None:
            self._confirm(gen)
            return
        layout = [*layout, ("PING", [])]
        if self._sub_refused is None:
            self._sub_refused = ([layout[i] for i, _ in errors], errors[0][1])
            self._sub_wake.set()

    def _confirm(self, gen: int) -> None:
        if gen > self._confirmed:
            self._confirmed = gen
            self._notify_confirm()

    def _dispatch(self, reply: list[Any]) -> None:
        """Hand a message to its topic's handler."""
        if reply[1] == self._hb_topic_b:
            self._heartbeat_back(reply[2])
            return
        if reply[1] == _LOSS_TOPIC_B:
            if reply[2] != self._token:
                self._peer_lost()
            return
        topic = reply[1].decode()
        handler = self._handlers.get(topic)
        if handler is not None:
            self.stats.received += 1
            try:
                handler(topic, reply[2])
            except Exception:
                log.exception("broker: handler failed", extra={"topic": topic})
