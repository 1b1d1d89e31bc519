"""Run only by test_no_leftover_processes.py (the name keeps it out of normal collection): starts
one of every kind of server the suite starts, writes their pids to $CHATD_PAYLOAD_PIDS, then
waits to be killed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer
from testkit import ServerProcess


async def test_start_servers_then_wait_to_be_killed(tmp_path: Path) -> None:
    bindir = pg_bindir()
    assert bindir is not None
    pg = PostgresServer(bindir)
    pg.start()
    redis = RedisServer(tmp_path)
    redis.start()
    node = ServerProcess(tmp_path / "chatd.db")
    await node.start()
    assert redis.proc is not None and node.proc is not None
    write_pids(pg, [redis.proc.pid, node.proc.pid])
    await asyncio.sleep(3600)


def write_pids(pg: PostgresServer, pids: list[int]) -> None:
    postmaster = int(Path(pg.data, "postmaster.pid").read_text().split()[0])
    out = Path(os.environ["CHATD_PAYLOAD_PIDS"])
    out.with_suffix(".tmp").write_text(" ".join(map(str, [postmaster, *pids])))
    out.with_suffix(".tmp").rename(out)
