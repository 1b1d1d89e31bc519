"""Three chatd nodes as real processes, sharing one throwaway PostgreSQL and one throwaway
redis-server (both demanding a password, which the nodes get in their URLs), and a fleet of
SDK clients spread over them with a checker recording every ack
and every delivery.

The PostgreSQL here is durable (``synchronous_commit=on``) because the fault tests crash it:
a commit it reported must survive. Each test gets a fresh migrated database and its own
redis-server, so a test can kill either and start it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, Message
from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer
from testkit import Checker, ServerProcess

NODES = 3
PG_PASSWORD = "pg-secret-4b1d"
REDIS_PASSWORD = "redis-secret-9f2e"


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    redis: RedisServer
    pg: PostgresServer
    dsn: str

    def urls(self, home: int) -> list[str]:
        """Every node's URL, starting at node ``home``: a client's home node, then the next."""
        n = len(self.nodes)
        return [self.nodes[(home + i) % n].url for i in range(n)]

    async def ready(self) -> None:
        await asyncio.gather(*(node.wait_ready() for node in self.nodes if node.proc))


@pytest.fixture(scope="session")
def cluster_pg() -> Iterator[PostgresServer]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    server = PostgresServer(bindir, durable=True, password=PG_PASSWORD)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def cluster(cluster_pg: PostgresServer, tmp_path: Path) -> AsyncIterator[Cluster]:
    dsn = await cluster_pg.create_database()
    redis = RedisServer(tmp_path, password=REDIS_PASSWORD)
    redis.start()
    nodes = [
        ServerProcess(
            dsn,
            args=["--broker", redis.url, "--node-id", f"node-{i + 1}"],
            log=tmp_path / f"node-{i + 1}.log",
        )
        for i in range(NODES)
    ]
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        c = Cluster(nodes, redis, cluster_pg, dsn)
        await c.ready()
        yield c
    finally:
        for node in nodes:
            if node.proc is not None and node.proc.poll() is None:
                try:
                    node.terminate(timeout=20)
                except Exception:
                    node.kill9()
        redis.kill()
        with contextlib.suppress(Exception):
            cluster_pg.resume()  # a fault test that failed midway may have left it stopped
        await cluster_pg.drop_database(dsn)


@dataclass
class Member:
    name: str
    home: int
    client: Client


@dataclass
class Fleet:
    """SDK clients (encryption off unless asked: these tests are about delivery) that record
    every message they show into ``checker``, and every ack with its time."""

    cluster: Cluster
    stack: contextlib.AsyncExitStack
    tasks: asyncio.TaskGroup
    checker: Checker = field(default_factory=Checker)
    members: list[Member] = field(default_factory=list)
    ack_times: list[tuple[float, int, int, float]] = field(default_factory=list)
    """(monotonic time of the ack, conv, seq, time the send began) of every ack, to see what was
    acked when (an ack read late by a busy client was not necessarily committed late)."""

    async def add(
        self, name: str, home: int, *, encrypt: bool = False, record: bool = True
    ) -> Member:
        """A registered client whose first node is ``home``; ``record``: a task reads its
        events into the checker (then nobody else may read them)."""
        client = Client(
            self.cluster.urls(home),
            KeyStore.memory(),
            encrypt=encrypt,
            backoff_max=0.5,
            request_timeout=20,
        )
        await self.stack.enter_async_context(client)
        await client.register(name, name.title())
        member = Member(name, home, client)
        self.members.append(member)
        if record:
            self.tasks.create_task(self._record(member))
        return member

    async def _record(self, m: Member) -> None:
        async for ev in m.client.events():
            if isinstance(ev, Message):
                self.checker.deliver(m.name, ev.conv, ev.seq)

    async def send(self, m: Member, conv: int, text: str) -> None:
        sent_at = time.monotonic()
        ack = await m.client.send_text(conv, text)
        self.checker.ack(conv, ack.seq)
        self.ack_times.append((time.monotonic(), conv, ack.seq, sent_at))

    async def all_delivered(self, convs: dict[int, list[str]], timeout: float = 60) -> None:
        """Until every member of each conversation has shown every acked message of it."""
        try:
            async with asyncio.timeout(timeout):
                while self.missing(convs):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            pass  # the report names what is missing

    def missing(self, convs: dict[int, list[str]]) -> int:
        c = self.checker
        return sum(
            len(c.acked[conv] - set(c.delivered.get((name, conv), [])))
            for conv, names in convs.items()
            for name in names
        )


@pytest.fixture
async def fleet(cluster: Cluster) -> AsyncIterator[Fleet]:
    async with contextlib.AsyncExitStack() as stack, asyncio.TaskGroup() as tasks:
        f = Fleet(cluster, stack, tasks)
        try:
            yield f
        finally:
            await stack.aclose()  # clients close: their event streams end, recorders return
