"""The packaged cluster (config/cluster/compose.yaml) as local processes: a throwaway PostgreSQL and
redis-server with passwords, three ``chatd serve --config config/docker.toml`` nodes configured
only through the environment compose.yaml gives them (passwords as files, none in argv), and a
real HAProxy with config/cluster/haproxy.cfg in front. SDK clients know only the balancer's
address: they chat through it, keep chatting while Redis is down (every node stays in rotation),
and move off a draining node that HAProxy took out of rotation before its listener closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, Message
from pgserver import PostgresServer
from redisd import RedisServer
from testkit import Checker, free_port, http_get

from .conftest import PG_PASSWORD, REDIS_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "config" / "cluster" / "compose.yaml"
HAPROXY_CFG = ROOT / "config" / "cluster" / "haproxy.cfg"
IMAGE_CONFIG = ROOT / "config" / "docker.toml"
HAPROXY = shutil.which("haproxy")
TIMEOUT = 30


def compose_node_env() -> dict[str, str]:
    """The ``CHATD_*`` variables compose.yaml gives every node (its ``x-node-env`` block)."""
    block = COMPOSE.read_text().split("x-node-env: &node-env\n", 1)[1].split("\n\n", 1)[0]
    env = dict(re.findall(r"^\s+(CHATD_\w+): (.+)$", block, re.M))
    return {k: v.strip('"') for k, v in env.items()}


@dataclass
class Node:
    node_id: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    async def status(self) -> dict[str, object]:
        doc: dict[str, object] = json.loads((await http_get(self.port, "/status"))[1])
        return doc


@dataclass
class Topology:
    nodes: list[Node]
    redis: RedisServer
    lb_port: int
    stats_port: int
    env: dict[str, str]
    tmp: Path
    haproxy: subprocess.Popen[bytes] | None = None
    clients: list[Client] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.lb_port}/ws"

    async def lb_states(self) -> dict[str, str]:
        """HAProxy's view of each node: ``UP``, ``DOWN``, ``UP 1/2`` (going down), ..."""
        body = await http_get_chunked(self.stats_port, "/stats;csv")
        lines = body.splitlines()
        header = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "chatd" and row.get("svname", "").startswith("node-"):
                out[row["svname"]] = row["status"]
        return out

    async def until_lb(self, want: dict[str, str]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while {k: v for k, v in (await self.lb_states()).items() if k in want} != want:
                await asyncio.sleep(0.1)


async def http_get_chunked(port: int, path: str) -> str:
    """The body of ``GET path`` (HAProxy's stats page answers in chunks)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"chunked" not in head.lower():
        return rest.decode()
    body = b""
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size.split(b";")[0], 16)
        if n == 0:
            break
        body, rest = body + rest[:n], rest[n + 2 :]
    return body.decode()


def start_node(i: int, env: dict[str, str], tmp: Path) -> Node:
    port = free_port()
    node_id = f"node-{i + 1}"
    log = tmp / f"{node_id}.log"
    node_env = {**os.environ, **env, "CHATD_SERVER__NODE_ID": node_id}
    node_env["CHATD_SERVER__PORT"] = str(port)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve", "--config", str(IMAGE_CONFIG)],
            env=node_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Node(node_id, port, proc, log)


@pytest.fixture
async def topology(cluster_pg: PostgresServer, tmp_path: Path) -> AsyncIterator[Topology]:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (.ci/run: apt-get install haproxy)")
    dsn = await cluster_pg.create_database()
    redis = RedisServer(tmp_path, password=REDIS_PASSWORD)
    redis.start()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "pg_password").write_text(PG_PASSWORD + "\n")
    (secrets / "redis_password").write_text(REDIS_PASSWORD + "\n")
    # compose.yaml's node environment, its service names and secret paths made local.
    env = {}
    for key, value in compose_node_env().items():
        value = value.replace("/run/secrets/", f"{secrets}/")
        value = value.replace("@postgres:5432/chatd", f"@127.0.0.1:{cluster_pg.port}/")
        value = value.replace("redis://redis:6379/", f"redis://127.0.0.1:{redis.port}/")
        env[key] = value
    env["CHATD_STORE__DB"] = (
        env["CHATD_STORE__DB"].replace("chatd@", "postgres@") + dsn.rsplit("/", 1)[1]
    )
    env["CHATD_SERVER__HOST"] = "127.0.0.1"  # the image listens on 0.0.0.0 inside its container
    # Long enough that the test, not the clock, ends it (a second SIGTERM, once HAProxy has
    # taken the node out): the property is the order, not compose's 5 s.
    env["CHATD_SERVER__DRAIN_GRACE"] = "60"
    topo = Topology([], redis, free_port(), free_port(), env, tmp_path)
    try:
        topo.nodes = [start_node(i, env, tmp_path) for i in range(3)]
        lb_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "CHATD_LB_BIND": f"127.0.0.1:{topo.lb_port}",
            "CHATD_LB_STATS_BIND": f"127.0.0.1:{topo.stats_port}",
            **{f"CHATD_NODE_{i + 1}": f"127.0.0.1:{n.port}" for i, n in enumerate(topo.nodes)},
        }
        with (tmp_path / "haproxy.log").open("ab") as out:
            topo.haproxy = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(HAPROXY_CFG)],
                env=lb_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with asyncio.timeout(TIMEOUT):
            while True:
                with contextlib.suppress(OSError, IndexError, ValueError):
                    if set((await topo.lb_states()).values()) == {"UP"}:
                        break
                for n in topo.nodes:
                    assert n.proc.poll() is None, n.log.read_text()[-2000:]
                assert topo.haproxy.poll() is None, (tmp_path / "haproxy.log").read_text()
                await asyncio.sleep(0.1)
        yield topo
    finally:
        for c in topo.clients:
            with contextlib.suppress(Exception):
                await c.aclose()
        for n in topo.nodes:  # SIGTERM again and again: the second one ends the grace
            for _ in range(100):
                if n.proc.poll() is not None:
                    break
                n.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
            if n.proc.poll() is None:
                n.proc.kill()
            n.proc.wait()
        if topo.haproxy is not None:
            topo.haproxy.terminate()
            topo.haproxy.wait(10)
        if redis.proc is not None:
            redis.kill()
        await cluster_pg.drop_database(dsn)


async def _connections(topo: Topology) -> list[int]:
    out = []
    for n in topo.nodes:
        if n.proc.poll() is None:
            conns = (await n.status())["connections"]
            assert isinstance(conns, dict)
            out.append(int(conns["authenticated"]))
        else:
            out.append(0)
    return out


async def test_chat_through_haproxy_across_a_redis_outage_and_a_drained_node(
    topology: Topology,
) -> None:
    topo = topology
    # No password in any process's argv: they came from files named in the environment.
    for n in topo.nodes:
        argv = Path(f"/proc/{n.proc.pid}/cmdline").read_bytes()  # noqa: ASYNC240
        assert PG_PASSWORD.encode() not in argv and REDIS_PASSWORD.encode() not in argv

    checker = Checker()
    names = [f"user{i}" for i in range(6)]
    clients: dict[str, Client] = {}
    for name in names:  # everyone knows only the balancer's address
        c = Client(topo.url, KeyStore.memory(), encrypt=False, backoff_max=0.5, request_timeout=20)
        topo.clients.append(c)
        await c.__aenter__()
        await c.register(name, name.title())
        clients[name] = c
    # leastconn spread the six connections over the three nodes.
    assert await _connections(topo) == [2, 2, 2]

    async def record(name: str, c: Client) -> None:
        async for ev in c.events():
            if isinstance(ev, Message):
                checker.deliver(name, ev.conv, ev.seq)

    first = clients[names[0]]
    group = (await first.create("group", "all", [clients[n].account for n in names[1:]])).conv
    members = {group: names}

    async def round_of(tag: str) -> None:
        for name in names:
            ack = await clients[name].send_text(group, f"{tag} from {name}")
            checker.ack(group, ack.seq)

    async def all_delivered() -> None:
        async with asyncio.timeout(TIMEOUT):
            while checker.report(members)["lost"]:
                await asyncio.sleep(0.05)

    async with asyncio.TaskGroup() as tg:
        for n, c in clients.items():
            tg.create_task(record(n, c))
        await round_of("hello")
        await all_delivered()

        # Redis dies: every node says degraded, yet HAProxy keeps all three in rotation and
        # sends still get acked; what crossed nodes meanwhile arrives after Redis is back.
        topo.redis.kill()
        async with asyncio.timeout(TIMEOUT):
            for n in topo.nodes:
                while (await n.status())["state"] != "degraded":
                    await asyncio.sleep(0.05)
        await round_of("during the outage")
        states = []
        for _ in range(30):  # three seconds: more than the 2 failed checks that mark down
            states.append(await topo.lb_states())
            await asyncio.sleep(0.1)
        assert all(set(s.values()) == {"UP"} for s in states), states
        topo.redis.start()
        await all_delivered()

        # A node is drained: HAProxy sees /readyz 503 and takes it out while the node still
        # serves; only then does it close its clients (1001), who come back through HAProxy
        # to the other nodes.
        victim = topo.nodes[0]
        victim.proc.send_signal(signal.SIGTERM)
        await topo.until_lb({victim.node_id: "DOWN"})
        assert victim.proc.poll() is None
        assert (await victim.status())["state"] == "draining"
        assert (await _connections(topo))[0] == 2  # its clients are still on it
        await round_of("while draining")
        victim.proc.send_signal(signal.SIGTERM)  # the balancer has let go: end the grace
        assert await asyncio.to_thread(victim.proc.wait, TIMEOUT) == 0
        async with asyncio.timeout(TIMEOUT):
            while sum(await _connections(topo)) != 6:
                await asyncio.sleep(0.1)
        assert (await _connections(topo))[1:] == [3, 3]
        await round_of("after the drain")
        await all_delivered()
        for c in clients.values():
            await c.aclose()  # its event stream ends: the recorders return

    report = checker.report(members)
    assert sum(len(s) for s in checker.acked.values()) == 4 * len(names)
    assert report == {"lost": 0, "duplicates": 0, "order_violations": 0}
    for n in topo.nodes:
        log = n.log.read_text()
        assert PG_PASSWORD not in log and REDIS_PASSWORD not in log
