#!/usr/bin/env python3
"""The cost of one timeline page (SPEC.md 20.9) for an account that follows 1,000 channels, on
SQLite: ``store.timeline``'s read (one index seek per followed channel for its newest post below
the cursor, then at most ``limit * (limit + 1) / 2`` posts) against the other shape, a walk of
every post by time (an index on ``(created, channel, seq)``) keeping the followed ones.

Two databases of 5,000 channels, the account following channels 1-1,000: ``even`` (20 posts
each at random times: a fifth of all posts are followed) and ``skewed`` (the followed channels
have 5 old posts each, the 4,000 others 60 recent ones each: the walk by time passes 240,000
posts before the first followed one). The rows are written with sqlite3 into a migrated file
(no server); both reads must give the same page.

    .venv/bin/python loadtest/bench_timeline_read.py
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from chatd.store.sqlite import SQLiteStore

CHANNELS = 5000
FOLLOWED = 1000
PAGE = 20
REPEAT = 50

WALK = (
    "SELECT p.channel, p.seq FROM pub_posts p INDEXED BY walk_created"
    " WHERE (p.created, p.channel, p.seq) < (?,?,?) AND p.kind <> 'deleted'"
    " AND EXISTS (SELECT 1 FROM pub_follows f WHERE f.account = 1 AND f.channel = p.channel)"
    " ORDER BY p.created DESC, p.channel DESC, p.seq DESC LIMIT ?"
)


async def build(db: Path, scenario: str) -> int:
    store = SQLiteStore(str(db))
    await store.open()
    await store.aclose()
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
            rows.append((c, s, 0, at, 1, 1, "text", b"x" * 100, bytes(64), at))
    con = sqlite3.connect(db)
    with con:
        con.executemany(
            "INSERT INTO pub_channels (id, handle, skeleton, title, about, owner, created_at)"
            " VALUES (?,?,?,'t','',1,0)",
            [(c, f"c{c}", f"c{c}") for c in range(1, CHANNELS + 1)],
        )
        con.executemany(
            "INSERT INTO pub_follows (account, channel, since) VALUES (1,?,0)",
            [(c,) for c in range(1, FOLLOWED + 1)],
        )
        con.executemany(
            "INSERT INTO pub_posts (channel, seq, ver, ts, author, device, kind, content, sig,"
            " created) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
        con.execute("CREATE INDEX walk_created ON pub_posts (created, channel, seq)")
    con.close()
    return len(rows)


async def measure(db: Path) -> None:
    store = SQLiteStore(str(db))
    await store.open()
    con = sqlite3.connect(db)
    try:
        for pages_before in (0, 49):
            before = None
            for _ in range(pages_before):
                page = await store.timeline_posts(1, before, PAGE)
                before = (page[-1].at, page[-1].post.channel, page[-1].post.seq)
            t0 = time.perf_counter()
            for _ in range(REPEAT):
                page = await store.timeline_posts(1, before, PAGE)
            heads = (time.perf_counter() - t0) / REPEAT * 1000
            bound = before or (2**63 - 1, 2**63 - 1, 2**63 - 1)
            t0 = time.perf_counter()
            for _ in range(REPEAT):
                walked = con.execute(WALK, (*bound, PAGE)).fetchall()
            walk = (time.perf_counter() - t0) / REPEAT * 1000
            assert [(t.post.channel, t.post.seq) for t in page] == [tuple(r) for r in walked]
            print(
                f"  page {pages_before + 1}: per-channel heads {heads:.2f} ms,"
                f" walk by time {walk:.2f} ms"
            )
    finally:
        con.close()
        await store.aclose()


async def main() -> None:
    for scenario in ("even", "skewed"):
        with tempfile.TemporaryDirectory() as tmp:
            db = Path(tmp) / "timeline.db"
            posts = await build(db, scenario)
            print(f"{scenario}: {posts} posts in {CHANNELS} channels, {FOLLOWED} followed")
            await measure(db)


if __name__ == "__main__":
    asyncio.run(main())
