#!/usr/bin/env python3
"""What one group commit of messages writes to SQLite's WAL, per schema version of ``messages``.

Builds a file of ``--messages`` messages in ``--convs`` conversations at three schema versions:
26 (``messages`` WITHOUT ROWID, keyed by (conv_id, seq)) and 27 (a rowid table; the cmid index
keyed (conv_id, device, cmid)), from chatd's migration files read as SQL, and the current one
(the cmid index keyed cmid first), made by ``chatd migrate`` (the load tester reaches the store
only through the wire or the CLI: ``tests/unit/test_layering.py``). Then it commits
``--commits`` transactions of ``--per`` messages, each to a different random conversation (the
shape of ``bench_relay.py``'s fixed point: ~7 messages per commit, 100 groups, 2,000 msgs/s),
with chatd's pragmas (WAL, ``secure_delete``, no automatic checkpoint). Cmids are made as the
SDK makes them (milliseconds, then random bits), each sender's clock off by up to ``--skew``
ms, or at random (``--cmids random``). It reports WAL frames (pages) per commit, by the b-tree
they belong to, and the CPU time per commit (``time.process_time``) with ``synchronous=FULL``
(an fsync per commit, chatd's default) and ``NORMAL`` (none: the work besides the fsync). Each
timed run follows a warm-up of as many commits and a checkpoint of them, so it writes over a
WAL file already at its working size from its start, as chatd's between two of its
checkpoints; only the frames of the timed run count.

    taskset -c 0 .venv/bin/python loadtest/bench_wal_pages.py --reps 3

``--upgrade N`` instead times ``chatd migrate --db FILE`` on a version-26 file (``--since``
another) of N messages in ``--convs`` conversations (version 27 copies ``messages``, 28 builds
the cmid index again; the process's start, ~1 s, included), and the file's size before and
after:

    taskset -c 0 .venv/bin/python loadtest/bench_wal_pages.py --upgrade 1000000 --convs 1000

``--reads`` times what a history page costs instead: the CPU of reading 100 messages of a
conversation from a random seq on (the statement of ``chatd/store/messages.py``'s ``messages``),
and of reading the sizes of 101 (``message_page``'s first statement, before it reads the rows),
in a file of 200,000 messages written in commit order:

    taskset -c 0 .venv/bin/python loadtest/bench_wal_pages.py --reads

Only a temporary directory is written.
"""

from __future__ import annotations

import argparse
import collections
import functools
import os
import random
import shutil
import sqlite3
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from chatload.procstat import chatd_executable

MIGRATIONS = Path(__file__).resolve().parents[1] / "chatd" / "store" / "migrations" / "sqlite"
LAYOUTS = {"v26 (WITHOUT ROWID)": 26, "v27 (cmid index conv first)": 27, "current": None}
"""The schema versions compared: a version number, or None for the newest."""
RATE = 2000
"""Messages per second the commits stand for (``bench_relay.py``'s fixed point): the clock of
a cmid made by ``cmid``."""


@functools.cache
def clock_offset(device: int, skew: float) -> float:
    """``device``'s clock offset in ms, at most ``skew`` either way: drawn once per device, not
    in the timed loops."""
    return random.Random(device).uniform(-skew, skew)


def cmid(n: int, device: int, a: argparse.Namespace, rng: random.Random) -> str:
    """The cmid of the ``n``-th message, from ``device``: as the SDK makes them (milliseconds,
    then 80 random bits; ``chatproto.client.new_cmid``), on a clock that runs ``a.skew``
    milliseconds at most either way of true time (a fixed offset per device), or a random one
    (``--cmids random``: a client that makes UUIDs)."""
    if a.cmids == "random":
        return rng.randbytes(16).hex()
    offset = clock_offset(device, a.skew)
    return f"{int(n * 1000 / RATE + 10**12 + offset):012x}{rng.randbytes(10).hex()}"


COLUMNS = "seq, ts, sender, device, cmid, kind, body, to_accounts, withheld, fc"
"""What chatd reads of a message (``chatd/store/messages.py``)."""

INSERT = (
    "INSERT OR IGNORE INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body)"
    " VALUES (?,?,?,?,?,?,?,?)"
)


def build(path: Path, until: int | None, a: argparse.Namespace, messages: int, body: bytes) -> None:
    """A file at schema version ``until`` (None: the newest) holding ``messages`` messages."""
    convs = a.convs
    if until is None:
        migrate(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    if until is not None:  # the files as chatd's runner applies them, foreign keys off
        db.execute(
            "CREATE TABLE schema_migrations"
            " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        for sql in sorted(MIGRATIONS.glob("*.sql")):
            version = int(sql.name.split("_", 1)[0])
            if version <= until:
                db.executescript(sql.read_text())
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, sql.name)
                )
    db.execute(
        "INSERT INTO accounts (id, handle, name, type, created_at) VALUES (1,'a','a','user',0)"
    )
    db.executemany(
        "INSERT INTO devices (id, account_id, public_key, name, created_at) VALUES (?,1,?,'d',0)",
        [(c, c.to_bytes(32, "big")) for c in range(1, convs + 1)],
    )
    db.executemany(
        "INSERT INTO conversations (id, kind, title, created_at) VALUES (?, 'group', 'g', 0)",
        [(c,) for c in range(1, convs + 1)],
    )
    rng = random.Random(1)
    seq = dict.fromkeys(range(1, convs + 1), 0)

    def rows() -> Iterator[tuple[object, ...]]:
        for i in range(messages):  # one sender device per conversation, as in bench_relay
            c = rng.randint(1, convs)
            seq[c] += 1
            yield (c, seq[c], i, 1, c, cmid(i, c, a, rng), "e2e", bytearray(body))

    db.execute("BEGIN")
    db.executemany(INSERT, rows())
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def commits(
    db: sqlite3.Connection, a: argparse.Namespace, body: bytes, rng: random.Random, ctr: list[int]
) -> None:
    last = dict(db.execute("SELECT conv_id, max(seq) FROM messages GROUP BY conv_id"))
    convs = sorted(last)
    for _ in range(a.commits):
        db.execute("BEGIN IMMEDIATE")
        for c in rng.sample(convs, a.per):
            last[c] += 1
            ctr[0] += 1
            made = cmid(ctr[0], c, a, rng)
            db.execute(INSERT, (c, last[c], ctr[0], 1, c, made, "e2e", bytearray(body)))
        db.execute("COMMIT")


def frames_by_tree(db: sqlite3.Connection, wal: Path) -> collections.Counter[str]:
    owner = {
        int(p): f"{name} {kind}"
        for name, p, kind in db.execute("SELECT name, pageno, pagetype FROM dbstat")
    }
    data = wal.read_bytes()
    size = int(db.execute("PRAGMA page_size").fetchone()[0])
    salts = data[16:24]  # the header's: a frame written since the WAL last started over has them
    counts: collections.Counter[str] = collections.Counter()
    for off in range(32, len(data) - 24, 24 + size):
        if data[off + 8 : off + 16] != salts:
            break  # frames of an earlier pass over the file, left behind the current end
        (page,) = struct.unpack(">I", data[off : off + 4])
        counts[owner.get(page, "new pages")] += 1
    return counts


def run(source: Path, work: Path, sync: str, a: argparse.Namespace, seed: int) -> dict[str, object]:
    for suffix in ("", "-wal", "-shm"):
        (work.parent / (work.name + suffix)).unlink(missing_ok=True)
    shutil.copy(source, work)
    db = sqlite3.connect(work, isolation_level=None)
    pragmas = (
        "journal_mode=WAL",
        f"synchronous={sync}",
        "wal_autocheckpoint=0",
        "secure_delete=ON",
    )
    for pragma in pragmas:
        db.execute(f"PRAGMA {pragma}")
    rng, ctr, body = random.Random(seed), [a.messages], os.urandom(a.body)
    commits(db, a, body, rng, ctr)  # the WAL at its working size, then emptied
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    cpu = time.process_time()
    commits(db, a, body, rng, ctr)
    cpu = time.process_time() - cpu
    counts = frames_by_tree(db, Path(f"{work}-wal"))
    db.close()
    return {
        "frames_per_commit": sum(counts.values()) / a.commits,
        "cpu_us_per_commit": 1e6 * cpu / a.commits,
        "by_tree": {k: round(v / a.commits, 2) for k, v in counts.most_common()},
    }


def migrate(path: Path) -> str:
    """``chatd migrate --db PATH``: what it printed (the migrations it applied)."""
    done = subprocess.run(
        [chatd_executable(), "migrate", "--db", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    return done.stdout.strip()


def upgrade(a: argparse.Namespace) -> None:
    messages, convs = a.upgrade, a.convs
    with tempfile.TemporaryDirectory(prefix="bench-wal-") as tmp:
        path = Path(tmp) / f"v{a.since}.db"
        build(path, a.since, a, messages, os.urandom(a.body))
        size = path.stat().st_size
        took = time.perf_counter()
        applied = migrate(path)
        took = time.perf_counter() - took
        print(
            f"{messages:,} messages in {convs:,} conversations: {applied} in {took:.1f} s;"
            f" file {size / 2**20:.0f} -> {path.stat().st_size / 2**20:.0f} MiB"
        )


def reads(a: argparse.Namespace) -> None:
    convs = a.convs
    pages = {
        "100 messages": f"SELECT {COLUMNS} FROM messages WHERE conv_id=? AND seq>?"
        " ORDER BY seq LIMIT 100",
        "101 sizes": "SELECT seq, length(body) FROM messages WHERE conv_id=? AND seq>?"
        " ORDER BY seq LIMIT 101",
    }
    with tempfile.TemporaryDirectory(prefix="bench-wal-") as tmp:
        for label, until in LAYOUTS.items():
            path = Path(tmp) / f"{until or 'current'}.db"
            build(path, until, a, 200_000, os.urandom(a.body))
            db = sqlite3.connect(path)
            last = dict(db.execute("SELECT conv_id, max(seq) FROM messages GROUP BY conv_id"))
            for name, sql in pages.items():
                rng = random.Random(1)
                cpu = time.process_time()
                for _ in range(2000):
                    conv = rng.randint(1, convs)
                    db.execute(sql, (conv, rng.randint(0, last[conv] - 100))).fetchall()
                cpu = time.process_time() - cpu
                print(f"{label:20} {name}: {1e6 * cpu / 2000:4.0f} µs of CPU per page", flush=True)
            db.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=25_000)
    p.add_argument("--convs", type=int, default=100)
    p.add_argument("--per", type=int, default=7, help="messages per commit")
    p.add_argument("--commits", type=int, default=600)
    p.add_argument("--body", type=int, default=200)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--cmids",
        choices=("time", "random"),
        default="time",
        help="as the SDK makes them, or UUIDs",
    )
    p.add_argument(
        "--skew", type=float, default=0.0, help="ms a device's clock may be off either way"
    )
    p.add_argument("--upgrade", type=int, metavar="N", help="time the upgrade of N messages")
    p.add_argument("--since", type=int, default=26, help="--upgrade from this version")
    p.add_argument("--reads", action="store_true", help="time reading history pages")
    a = p.parse_args()
    if a.reads:
        reads(a)
        return
    if a.upgrade:
        upgrade(a)
        return
    with tempfile.TemporaryDirectory(prefix="bench-wal-") as tmp:
        sources = {}
        for label, until in LAYOUTS.items():
            sources[label] = Path(tmp) / f"{until or 'current'}.db"
            build(sources[label], until, a, a.messages, os.urandom(a.body))
        for sync in ("FULL", "NORMAL"):
            for rep in range(a.reps):
                for label, source in sources.items():
                    r = run(source, Path(tmp) / "work.db", sync, a, seed=rep)
                    print(
                        f"{sync:6} rep {rep + 1}  {label:20} frames/commit"
                        f" {r['frames_per_commit']:5.1f}  CPU µs/commit {r['cpu_us_per_commit']:5.0f}"
                        + (f"  {r['by_tree']}" if rep == 0 and sync == "FULL" else ""),
                        flush=True,
                    )


if __name__ == "__main__":
    main()
