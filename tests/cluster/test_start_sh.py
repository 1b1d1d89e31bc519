"""config/cluster/start.sh as an operator runs it: PostgreSQL and Redis named (and their passwords
given as files) only in the environment, three nodes up; a node killed with -9 is started again;
SIGTERM stops every node and leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

from pgserver import PostgresServer
from redisd import RedisServer
from testkit import http_get

from .conftest import PG_PASSWORD, REDIS_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30


def free_ports(n: int) -> int:
    """A base port with ``n`` free consecutive ports after it."""
    for _ in range(100):
        base = random.randrange(20_000, 40_000)
        try:
            socks = []
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free ports")


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid``: its command line."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        parents[int(entry)], cmdlines[int(entry)] = int(fields[1]), cmd
    out: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in out:
                out[child] = cmdlines[child]
                frontier.append(child)
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def node_pid(script: int, n: int) -> int | None:
    for pid, cmd in descendants(script).items():
        if " serve " in cmd and f"node-{n}.toml" in cmd:
            return pid
    return None


async def until_ready(port: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while True:
            try:
                if (await http_get(port, "/readyz"))[0] == 200:
                    return
            except (OSError, IndexError, ValueError):
                pass
            await asyncio.sleep(0.1)


async def test_start_sh_supervises_three_nodes_and_stops_them_all(
    cluster_pg: PostgresServer, tmp_path: Path
) -> None:
    dsn = await cluster_pg.create_database()
    redis = RedisServer(tmp_path, password=REDIS_PASSWORD)
    redis.start()
    (tmp_path / "pg").write_text(PG_PASSWORD + "\n")
    (tmp_path / "redis").write_text(REDIS_PASSWORD + "\n")
    base = free_ports(3)
    env = {
        **os.environ,
        "CHATD": str(Path(sys.executable).parent / "chatd"),
        "CHATD_STORE__DB": dsn.replace(f":{PG_PASSWORD}@", "@"),
        "CHATD_STORE__PASSWORD_FILE": str(tmp_path / "pg"),
        "CHATD_BROKER__URL": f"redis://127.0.0.1:{redis.port}/0",
        "CHATD_BROKER__PASSWORD_FILE": str(tmp_path / "redis"),
        "BASE_PORT": str(base),
        "LOGS": str(tmp_path / "logs"),
    }
    out = (tmp_path / "start.out").open("wb")
    script = subprocess.Popen(
        ["bash", str(ROOT / "config" / "cluster" / "start.sh")],
        cwd=tmp_path,  # any directory: it finds the repository itself
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    seen: set[int] = set()
    try:
        for port in range(base, base + 3):
            await until_ready(port)
        pids = {n: node_pid(script.pid, n) for n in (1, 2, 3)}
        assert all(pids.values()), descendants(script.pid)
        seen |= {p for p in pids.values() if p}
        for argv in descendants(script.pid).values():  # no password in any argv
            assert PG_PASSWORD not in argv and REDIS_PASSWORD not in argv

        victim = pids[2]
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        async with asyncio.timeout(TIMEOUT):  # started again by start.sh, on its port
            while node_pid(script.pid, 2) in (None, victim):
                await asyncio.sleep(0.1)
        await until_ready(base + 1)
        again = node_pid(script.pid, 2)
        assert again is not None
        seen.add(again)

        script.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(script.wait, TIMEOUT) == 0
        assert not [pid for pid in seen if alive(pid)]  # every node is gone
        log = (tmp_path / "start.out").read_text()
        assert "node-2" in log and "exited with 137; starting it again" in log
        assert "stopped" in log
    finally:
        if script.poll() is None:
            os.killpg(script.pid, signal.SIGKILL)
            script.wait()
        out.close()
        redis.kill()
        await cluster_pg.drop_database(dsn)
