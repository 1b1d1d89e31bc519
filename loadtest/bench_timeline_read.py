#!/usr/bin/env python3
"""The cost of one timeline page (SPEC.md 20.8) for an account that follows 1,000 channels:
chatd's read (``store.timeline``: one index seek per followed channel for its newest post below
the cursor, then at most ``limit * (limit + 1) / 2`` posts) against the other shape, a walk of
every post by time (an index on ``(created, channel, seq)``) keeping the followed ones.

Starts ``chatd serve`` on a temporary SQLite file (``chatload.procstat.LocalServer``), registers
the reader over the wire, then writes 5,000 channels, its 1,000 follows and the posts straight
into the file with sqlite3 beside the server (registering that much over the wire would take
most of an hour), in two shapes: ``even`` (20 posts a channel at random times: a fifth of all
posts are followed) and ``skewed`` (the followed channels have 5 old posts each, the 4,000
others 60 recent ones each: a walk by time passes 240,000 posts before the first followed one).
A page is timed as ``get_timeline`` round trips over the wire; the walk as the same query run
with sqlite3 on the file; both must give the same page.

    .venv/bin/python loadtest/bench_timeline_read.py
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from bench_channel_fanout import Peer
from chatload.procstat import LocalServer
from chatproto import frames as F

CHANNELS = 5000
FOLLOWED = 1000
PAGE = 20
REPEAT = 30

WALK = (
    "SELECT p.channel, p.seq FROM pub_posts p INDEXED BY walk_created"
    " WHERE (p.created, p.channel, p.seq) < (?,?,?) AND p.kind <> 'deleted'"
    " AND EXISTS (SELECT 1 FROM pub_follows f WHERE f.account = ? AND f.channel = p.channel)"
    " ORDER BY p.created DESC, p.channel DESC, p.seq DESC LIMIT ?"
)


def fill(db: Path, scenario: str, reader: int) -> int:
    """Channels, ``reader``'s follows and posts, written into the server's file."""
    rng = random.Random(19)
    rows = []
    for c in range(1, CHANNELS + 1):
        followed = c <= FOLLOWED
        n = 20 if scenario == "even" else (5 if followed else 60)
        for s in range(1, n + 1):
            if scenario == "even":
                at = rng.randint(0, 10**9)
            else:
                at = rng.randint(0, 10**6) if followed else rng.randint(10**8, 10**9)
            rows.append((c, s, 0, at, reader, 1, "text", b"x" * 100, bytes(64), at))
    con = sqlite3.connect(db, timeout=60)
    with con:
        con.executemany(
            "INSERT INTO pub_channels (id, handle, skeleton, title, about, owner, created_at)"
            " VALUES (?,?,?,'t','',?,0)",
            [(c, f"c{c}", f"c{c}", reader) for c in range(1, CHANNELS + 1)],
        )
        con.executemany(
            "INSERT INTO pub_follows (account, channel, since) VALUES (?,?,0)",
            [(reader, c) for c in range(1, FOLLOWED + 1)],
        )
        con.executemany(
            "INSERT INTO pub_posts (channel, seq, ver, ts, author, device, kind, content, sig,"
            " created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        con.execute("CREATE INDEX walk_created ON pub_posts (created, channel, seq)")
    con.close()
    return len(rows)


def walk(db: Path, bound: tuple[int, int, int], reader: int) -> tuple[float, list[tuple[int, int]]]:
    """The walk by time, ``REPEAT`` times: ms per page and the page (run off the loop: a slow
    walk must not starve the connection's keepalive)."""
    con = sqlite3.connect(db, timeout=60)
    try:
        t0 = time.perf_counter()
        for _ in range(REPEAT):
            rows = con.execute(WALK, (*bound, reader, PAGE)).fetchall()
        return (time.perf_counter() - t0) / REPEAT * 1000, [(int(c), int(s)) for c, s in rows]
    finally:
        con.close()


async def page(peer: Peer, before: str) -> F.Timeline:
    got = await peer.request(F.GetTimeline(id=peer.next_id(), before=before, limit=PAGE))
    assert isinstance(got, F.Timeline), got
    return got


async def scenario(name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp), cpu=None, synchronous="NORMAL")
        try:
            await server.wait_ready()
            reader = await Peer.open(server.url)
            await reader.register("reader")
            posts = fill(server.db, name, reader.account)
            print(f"{name}: {posts} posts in {CHANNELS} channels, {FOLLOWED} followed")
            for skip in (0, 49):
                before = ""
                for _ in range(skip):
                    before = (await page(reader, before)).next
                t0 = time.perf_counter()
                for _ in range(REPEAT):
                    got = await page(reader, before)
                heads = (time.perf_counter() - t0) / REPEAT * 1000
                last = [int(n) for n in before.split(".")] if before else [2**63 - 1] * 4
                bound = (last[0], *last[2:]) if before else (last[0], last[2], last[3])
                walk_ms, walked = await asyncio.to_thread(walk, server.db, bound, reader.account)
                shown = [(i.post.channel, i.post.seq) for i in got.items if i.post is not None]
                assert shown == walked, (shown, walked)
                print(
                    f"  page {skip + 1}: get_timeline {heads:.2f} ms (a round trip),"
                    f" walk by time {walk_ms:.2f} ms"
                )
            await reader.ws.close()
        finally:
            server.stop()


async def main() -> None:
    for name in ("even", "skewed"):
        await scenario(name)


if __name__ == "__main__":
    asyncio.run(main())
