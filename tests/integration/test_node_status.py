"""What an operator of several nodes sees: ``/status`` (JSON: node, version, uptime, state,
connections, broker and store state), ``/readyz`` staying 200 but "degraded" while this test's
own Redis is down and 503 naming the store while its PostgreSQL is, and the broker metrics
(counters, pending, lag measured by heartbeats that travel the real pub/sub path). Every test starts its own redis-server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio
from chatclient import Client, Message
from conftest import RunningServer, make_settings, run_server
from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer
from testkit import free_port, http_get

from chatd import __version__
from chatd.broker.redis import RedisBroker
from chatd.health import STARTUP_GRACE

TIMEOUT = 10
REDIS_PW = "redis-s3cret"
PG_PW = "pg-s3cret"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """This module's own PostgreSQL (a test stops and restarts it)."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def dsn(pg: PostgresServer) -> AsyncIterator[str]:
    """A fresh database; the DSN carries a password (trust auth ignores it) to check redaction."""
    plain = await pg.create_database()
    try:
        yield plain.replace("postgresql://postgres@", f"postgresql://postgres:{PG_PW}@")
    finally:
        await pg.drop_database(plain)


@pytest.fixture
def rds(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)  # in case a test left it stopped
        server.kill()


async def _require_password(server: RedisServer) -> str:
    """Make ``server`` require a password; the URL that carries it."""
    r = redis.asyncio.Redis(port=server.port)
    try:
        await r.config_set("requirepass", REDIS_PW)
    finally:
        await r.aclose()
    return f"redis://:{REDIS_PW}@127.0.0.1:{server.port}/0"


async def _status(port: int) -> dict[str, Any]:
    code, body = await http_get(port, "/status")
    assert code == 200
    doc: dict[str, Any] = json.loads(body)
    return doc


def _metrics(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def _until(port: int, path: str, code: int) -> str:
    """Poll ``path`` until it answers ``code``; its body then."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            got, body = await http_get(port, path)
            if got == code:
                return body
            await asyncio.sleep(0.02)


def _port(server: RunningServer) -> int:
    assert server.app.port is not None
    return server.app.port


# ------------------------------------------------------------------ tests


async def test_status_and_metrics_report_node_broker_and_store(
    tmp_path: Path, dsn: str, rds: RedisServer
) -> None:
    url = await _require_password(rds)
    settings = make_settings(
        tmp_path,
        server={"node_id": "edge-7"},
        store={"db": dsn},
        broker={"url": url, "heartbeat_interval": 0.05},
    )
    async with run_server(settings) as server:
        port = _port(server)
        assert await _until(port, "/readyz", 200) == "ready\n"
        async with (
            Client(server.url, encrypt=False) as alice,
            Client(server.url, encrypt=False) as bob,
        ):
            await alice.register("alice", "Alice")
            await bob.register("bob", "Bob")
            conv = await alice.direct(await alice.lookup("@bob"))
            for i in range(5):
                await alice.send_text(conv, f"m{i}")
            async with asyncio.timeout(TIMEOUT):  # wait for a few heartbeats
                while (await _status(port))["broker"]["heartbeats"] < 3:
                    await asyncio.sleep(0.02)
            status = await _status(port)
            _, metrics_text = await http_get(port, "/metrics")

        assert status["node"] == "edge-7"
        assert status["version"] == __version__
        assert status["uptime_s"] > 0
        assert status["ready"] is True and status["problems"] == []
        assert status["state"] == "ok" and status["degraded"] == []
        assert status["connections"] == {"open": 2, "authenticated": 2}
        broker = status["broker"]
        assert broker["kind"] == "redis" and broker["healthy"] is True
        assert broker["url"] == f"redis://:***@127.0.0.1:{rds.port}/0"
        assert broker["published"] >= 5 and broker["received"] >= 5 and broker["dropped"] == 0
        assert broker["pending"] == 0
        assert broker["lag_s"] is not None and broker["lag_s"] >= 0
        store = status["store"]
        assert store["backend"] == "postgresql" and store["reachable"] is True
        assert store["queued_writes"] == 0
        assert PG_PW not in store["db"] and ":***@" in store["db"]
        assert REDIS_PW not in json.dumps(status) and PG_PW not in json.dumps(status)

        m = _metrics(metrics_text)
        assert m[f'chatd_node_info{{node="edge-7",version="{__version__}"}}'] == 1.0
        assert m["chatd_broker_up"] == 1.0
        assert m["chatd_broker_pending"] == 0.0
        assert m["chatd_broker_published_total"] >= 5
        assert m["chatd_broker_received_total"] >= 5
        assert 1 <= m["chatd_broker_flushes_total"] <= m["chatd_broker_published_total"]
        assert m["chatd_broker_lag_seconds_count"] >= 3
        assert m["chatd_broker_lag_last_seconds"] >= 0
        assert REDIS_PW not in metrics_text


async def test_a_node_whose_redis_is_killed_stays_ready_and_says_degraded(
    tmp_path: Path, dsn: str, rds: RedisServer
) -> None:
    """Redis down costs live fan-out between nodes, not the node's service: it still stores
    and acks, so a load balancer must keep it (``/readyz`` 200) while ``/status`` and
    ``chatd_degraded`` tell the operator."""
    settings = make_settings(
        tmp_path, store={"db": dsn}, broker={"url": rds.url, "heartbeat_interval": 0.05}
    )
    async with run_server(settings) as server:
        port = _port(server)
        assert await _until(port, "/readyz", 200) == "ready\n"
        assert (await _status(port))["state"] == "ok"
        async with (
            Client(server.url, encrypt=False) as alice,
            Client(server.url, encrypt=False) as bob,
        ):
            await alice.register("alice", "Alice")
            await bob.register("bob", "Bob")
            conv = await alice.direct(await alice.lookup("@bob"))
            rds.kill()
            async with asyncio.timeout(TIMEOUT):
                while (await _status(port))["state"] != "degraded":
                    await asyncio.sleep(0.02)
            assert await http_get(port, "/readyz") == (200, "ready, degraded: broker down\n")
            status = await _status(port)
            assert status["ready"] is True and status["problems"] == []
            assert status["degraded"] == ["broker down"]
            assert status["broker"]["healthy"] is False
            assert status["store"]["reachable"] is True
            m = _metrics((await http_get(port, "/metrics"))[1])
            assert (m["chatd_ready"], m["chatd_degraded"], m["chatd_broker_up"]) == (1, 1, 0)
            assert m["chatd_draining"] == 0
            # ... and it serves: a message is stored, acked and delivered on this node.
            ack = await alice.send_text(conv, "while redis is down")
            async with asyncio.timeout(TIMEOUT):
                async for ev in bob.events():
                    if isinstance(ev, Message) and ev.seq == ack.seq:
                        assert ev.text == "while redis is down"
                        break
            assert await http_get(port, "/healthz") == (200, "ok\n")  # alive all along

            rds.start()
            async with asyncio.timeout(TIMEOUT):
                while (await _status(port))["state"] != "ok":
                    await asyncio.sleep(0.05)
            assert await http_get(port, "/readyz") == (200, "ready\n")
            m = _metrics((await http_get(port, "/metrics"))[1])
            assert (m["chatd_ready"], m["chatd_degraded"], m["chatd_broker_up"]) == (1, 0, 1)


async def test_a_node_started_while_redis_is_down_serves_after_the_startup_grace(
    tmp_path: Path, dsn: str
) -> None:
    """Not ready while its broker has not connected yet (so a fresh node joins with working
    subscriptions), but a node (re)started during a Redis outage joins the rotation, degraded,
    after ``STARTUP_GRACE``: a rolling restart during an outage must not empty the cluster."""
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(tmp_path, store={"db": dsn}, broker={"url": dead})
    async with run_server(settings) as server:
        port = _port(server)
        code, body = await http_get(port, "/readyz")
        assert (code, body) == (503, "not ready: starting: broker not connected yet\n")
        assert (await _status(port))["state"] == "not ready"
        async with asyncio.timeout(STARTUP_GRACE + TIMEOUT):
            assert await _until(port, "/readyz", 200) == "ready, degraded: broker down\n"
        assert (await _status(port))["state"] == "degraded"


async def test_readyz_is_503_naming_the_store_while_postgres_is_stopped(
    tmp_path: Path, pg: PostgresServer, dsn: str
) -> None:
    settings = make_settings(tmp_path, store={"db": dsn})
    async with run_server(settings) as server:
        port = _port(server)
        await _until(port, "/readyz", 200)
        pg.pause()
        try:
            assert await _until(port, "/readyz", 503) == "not ready: store unreachable\n"
            status = await _status(port)
            assert status["store"]["reachable"] is False
            assert status["problems"] == ["store unreachable"]
            assert status["state"] == "not ready"
            assert status["broker"] == {
                "kind": "memory",
                "healthy": True,
                "published": 0,
                "received": 0,
                "dropped": 0,
                "pending": 0,
            }
        finally:
            pg.resume()
        assert await _until(port, "/readyz", 200) == "ready\n"
        assert (await _status(port))["store"]["reachable"] is True


async def test_broker_lag_measures_the_real_path_and_is_not_counted_as_traffic(
    rds: RedisServer,
) -> None:
    """Heartbeats go through the flusher's pipeline, Redis and the subscription connection:
    while Redis is frozen (SIGSTOP) the outstanding heartbeat's age shows as a growing lag, and
    the round trip recorded when it comes back covers the freeze."""
    lags: list[float] = []
    broker = RedisBroker(rds.url, heartbeat_interval=0.05, on_lag=lags.append)
    task = asyncio.create_task(broker.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            while len(lags) < 3:
                await asyncio.sleep(0.01)
        assert broker.stats.published == broker.stats.received == 0  # heartbeats apart
        assert broker.pending() == 0
        os.kill(proc_of(rds), signal.SIGSTOP)
        try:
            async with asyncio.timeout(TIMEOUT):
                while (broker.lag() or 0) < 0.5:
                    await asyncio.sleep(0.02)
            seen = len(lags)
        finally:
            os.kill(proc_of(rds), signal.SIGCONT)
        async with asyncio.timeout(TIMEOUT):
            while len(lags) == seen:
                await asyncio.sleep(0.01)
        assert lags[seen] >= 0.5  # the frozen heartbeat came back, late
        assert broker.healthy()
    finally:
        await broker.aclose()
        await asyncio.wait_for(task, TIMEOUT)


def proc_of(server: RedisServer) -> int:
    assert server.proc is not None
    return server.proc.pid


async def _migrate(db: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatd", "migrate", "--db", db, stdout=subprocess.PIPE
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode()


async def test_migrate_applies_postgresql_migrations_once(pg: PostgresServer) -> None:
    """``chatd migrate --db postgresql://...`` (run once before starting several nodes)."""
    admin = await asyncpg.connect(pg.dsn())
    try:
        await admin.execute("CREATE DATABASE chatd_migrate_cli")
    finally:
        await admin.close()
    try:
        assert (await _migrate(pg.dsn("chatd_migrate_cli"))).startswith("applied: 0001")
        assert await _migrate(pg.dsn("chatd_migrate_cli")) == "up to date\n"
    finally:
        await pg.drop_database(pg.dsn("chatd_migrate_cli"))


async def test_a_silent_redis_is_given_up_and_reconnected(rds: RedisServer) -> None:
    """No reply at all (not even to the keepalive PINGs) for 3 ping intervals: the broker drops
    the subscription connection and reports unhealthy (/readyz 503) instead of waiting forever;
    it reconnects once Redis answers again and envelopes flow."""
    got: list[bytes] = []
    broker = RedisBroker(
        rds.url, ping_interval=0.2, io_timeout=1.0, backoff_max=0.2, heartbeat_interval=1000
    )
    broker.subscribe("c.1", lambda topic, data: got.append(data))
    task = asyncio.create_task(broker.run())
    try:
        async with asyncio.timeout(TIMEOUT):
            while not broker.healthy():
                await asyncio.sleep(0.01)
        os.kill(proc_of(rds), signal.SIGSTOP)
        try:
            async with asyncio.timeout(TIMEOUT):
                while broker.healthy():
                    await asyncio.sleep(0.02)
        finally:
            os.kill(proc_of(rds), signal.SIGCONT)
        async with asyncio.timeout(TIMEOUT):
            while not broker.healthy():
                await asyncio.sleep(0.02)
            await broker.barrier()
            while not got:
                broker.publish("c.1", b"after")
                await asyncio.sleep(0.05)
        assert set(got) == {b"after"}
    finally:
        await broker.aclose()
        await asyncio.wait_for(task, TIMEOUT)
