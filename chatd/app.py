"""The composition root: builds the store, broker, hub and services, serves, and shuts down.

Shutdown (SIGTERM/SIGINT or ``stop()``): /readyz turns 503 and stays so for ``[server]
drain_grace`` seconds while the node still serves (a load balancer's health checks see it leave;
a second signal cuts this short), then the listener stops accepting, every client is closed with
1001 (going away: reconnect elsewhere), queued writes are committed, and the process exits 0.
Everything started here is owned by one TaskGroup and closed in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import tempfile
import time
from pathlib import Path

from chatproto import codec
from chatproto import frames as F

from chatd.broker.memory import MemoryBroker
from chatd.broker.presence import LocalPresence, RedisPresence
from chatd.broker.redis import RedisBroker
from chatd.clock import Clock, SystemClock
from chatd.hub import Hub
from chatd.media.fs import FsBlobStore
from chatd.media.pg import PgBlobStore
from chatd.media.service import MediaService
from chatd.metrics import Metrics
from chatd.services.deps import Deps
from chatd.services.limits import Limits, MemoryBuckets, RedisBuckets
from chatd.services.push import PushService, RedisGate
from chatd.session import Services
from chatd.settings import ConfigError, Settings, redact_url
from chatd.store.postgres import PostgresStore
from chatd.store.sqlite import SQLiteStore
from chatd.transport.server import Transport

log = logging.getLogger(__name__)


class App:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.metrics = Metrics()
        self._stop = asyncio.Event()
        self._hurry = asyncio.Event()
        self._draining = False
        self.port: int | None = None
        self.operator_port: int | None = None
        """The operator listener's port, when ``server.operator_host`` is set."""
        self.started = asyncio.Event()
        self._hub: Hub | None = None
        self.services: Services | None = None
        """The running services (tests reach the store through them, as a tampering server)."""
        self.media: MediaService | None = None
        """Attachments (chatd/media): set once running; tests call its ``sweep``."""

    def stop(self) -> None:
        """Begin draining; called again while draining, end the grace period now."""
        if self._stop.is_set():
            self._hurry.set()
        self._stop.set()

    async def run(self, *, install_signals: bool = False) -> None:
        """Serve until ``stop()``. ``install_signals``: the process is chatd's own (``chatd
        serve``, not a test's): SIGTERM/SIGINT drain it, and what start-up allocated is frozen
        out of the cyclic GC's sight (``freeze_startup``)."""
        s = self.settings
        db = s.store.db
        store: SQLiteStore | PostgresStore
        if db.startswith(("postgresql://", "postgres://")):
            # Shared by every node: the seq counter and claims are safe across processes.
            store = PostgresStore(
                db,
                max_batch=s.store.max_batch,
                commit_interval=s.store.commit_interval,
                on_batch=self.metrics.observe_batch,
            )
        else:
            if db != ":memory:":
                Path(db).parent.mkdir(parents=True, exist_ok=True)
            store = SQLiteStore(
                db,
                synchronous=s.store.synchronous,
                max_batch=s.store.max_batch,
                commit_interval=s.store.commit_interval,
                on_batch=self.metrics.observe_batch,
            )
        await store.open()
        broker: MemoryBroker | RedisBroker
        if s.broker.url:
            broker = RedisBroker(
                s.broker.url,
                max_pending=s.broker.max_pending,
                on_reconnect=self._broker_reconnected,
                heartbeat_interval=s.broker.heartbeat_interval,
            )
        else:
            broker = MemoryBroker()
        self.broker = broker
        self.metrics.watch_broker(broker)
        hub = self._hub = Hub(broker, self.metrics.hot, members=store.members_since)
        presence: LocalPresence | RedisPresence
        if s.broker.url:  # who is online on the other nodes
            presence = RedisPresence(s.broker.url, f"{s.server.node_id}:{hub.node:x}")
        else:
            presence = LocalPresence()
        deps = Deps(s, store, broker, hub, self.metrics, self.clock, presence)
        # Limits per account and per address: in Redis when there are other nodes.
        buckets = RedisBuckets(s.broker.url) if s.broker.url else MemoryBuckets()
        limits = Limits(s.limits, s.server, buckets, self.clock)
        # Push windows per device: in Redis when there are other nodes (one push, not one each).
        gate = (
            RedisGate(s.broker.url, s.push.interval, s.push.max_per_hour)
            if s.broker.url and s.push.vapid_private_key
            else None
        )
        push = PushService(deps, gate)
        services = self.services = Services(deps, limits, push)
        media = self.media = services.media = MediaService(deps, self._blob_store(db))
        transport = Transport(services, draining=lambda: self._draining)
        store.after_batch = transport.flush  # a commit's acks and deliveries leave in its turn
        store.on_write = self.metrics.observe_write
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(store.run(), name="store-writer")
                await services.payments.open()  # the receipt key: a write, so after the writer
                await services.reports.open()  # the franking secret: a write, like the receipt key
                await services.links.open()  # the invite link secret, likewise
                tg.create_task(services.payments.run(), name="payments-sweeper")
                tg.create_task(services.creators.run(), name="subscriptions-sweeper")
                tg.create_task(services.suspension.run(), name="suspension-sweeper")
                tg.create_task(push.run(), name="push")
                if isinstance(broker, RedisBroker):
                    tg.create_task(broker.run(), name="broker")
                tg.create_task(presence.run(), name="presence")
                await media.blobs.open()
                tg.create_task(media.run(), name="media-sweeper")
                if install_signals:  # before the first connection: none of it is frozen
                    freeze_startup()
                server = await transport.start(s.server.host, s.server.port)
                self.port = server.sockets[0].getsockname()[1]
                if s.server.operator_host:  # /status and /metrics on their own listener
                    operator = await transport.start_operator(
                        s.server.operator_host, s.server.operator_port
                    )
                    self.operator_port = operator.sockets[0].getsockname()[1]
                log.info(
                    "serving",
                    extra={
                        "host": s.server.host,
                        "port": self.port,
                        "db": redact_url(db),
                        "broker": redact_url(s.broker.url) if s.broker.url else "in-process",
                        "node": s.server.node_id,
                        "operator": (
                            f"{s.server.operator_host}:{self.operator_port}"
                            if s.server.operator_host
                            else "client port"
                        ),
                    },
                )
                self.started.set()
                await self._stop.wait()
                self._draining = True  # /readyz 503 from now on
                grace = s.server.drain_grace
                log.info("draining", extra={"grace_s": grace})
                # By the process clock: uvloop's loop.time() is a cached millisecond clock, so a
                # timeout on it alone can end the grace up to a millisecond early.
                until = time.monotonic() + grace
                while not self._hurry.is_set() and (left := until - time.monotonic()) > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(left):
                            await self._hurry.wait()
                server.close(close_connections=True)  # stop accepting; close clients with 1001
                if transport.operator is not None:
                    transport.operator.close()
                try:
                    async with asyncio.timeout(s.server.drain_seconds):
                        await server.wait_closed()
                except TimeoutError:
                    log.warning("clients did not close in time")
                services.payments.close()  # the sweeper stops before the store does
                services.creators.close()
                services.suspension.close()
                push.close()  # before the store: a push in flight may delete a subscription
                media.close()
                await media.http.aclose()
                await media.blobs.aclose()
                await store.aclose()  # commits what is queued, then stops the writer
                await presence.aclose()
                await push.aclose()
                await limits.aclose()
                await broker.aclose()
        finally:
            await store.aclose()  # idempotent; after a failed start it still commits and closes
            await media.http.aclose()
            await media.blobs.aclose()
        log.info("stopped")

    def _blob_store(self, db: str) -> FsBlobStore | PgBlobStore:
        """Where attachments live (SPEC.md 17): the store's PostgreSQL (shared by every node)
        or files under ``[media] path`` (default: ``chatd-media/`` beside ``chatd.db``)."""
        m = self.settings.media
        on_pg = db.startswith(("postgresql://", "postgres://"))
        if m.backend == "postgres" or (m.backend == "auto" and on_pg):
            if not on_pg:
                raise ConfigError("media.backend = postgres needs store.db on PostgreSQL")
            return PgBlobStore(db)
        if m.path:
            return FsBlobStore(m.path)
        if db == ":memory:":  # nothing outlives the process: neither do its blobs
            return FsBlobStore(tempfile.mkdtemp(prefix="chatd-media-"))
        path = Path(db)
        return FsBlobStore(path.with_name(f"{path.stem}-media"))

    def _broker_reconnected(self) -> None:
        """The Redis broker is back after an outage: live envelopes were lost meanwhile, so
        every local client is told to ``resync`` from its cursors (the store has everything)."""
        log.warning("broker reconnected; telling every client to resync")
        if self._hub is not None:
            self._hub.push_all(codec.encode(F.Resync()))


def freeze_startup() -> None:
    """Move everything alive before the listener opens (modules, classes, settings, caches:
    ~73,000 objects, all as old as the process) to the GC's permanent generation, after
    collecting the start-up garbage. A full collection then walks only what came later, mostly
    the connections' objects: 15 instead of 74 ms holding the loop at 1,000 connections
    (``loadtest/bench_gc.py``; README, "Eighth session"). Reference counting still frees
    frozen objects."""
    gc.collect()
    gc.freeze()
