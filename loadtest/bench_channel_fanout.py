#!/usr/bin/env python3
"""Public channel fan-out benchmark (issue 19): one post to a channel with many followers, some
of them connected and watching their feed.

Starts ``chatd serve`` (``chatload.procstat.LocalServer``, a temporary SQLite file, the frame
limit raised), registers ``--followers`` accounts over the wire that follow one public channel,
keeps ``--connected`` of them connected, each watching its feed (``watch_feed``, SPEC.md 20.7;
the others close after following), then publishes ``--posts`` signed posts one after another
and measures, for each, the time from sending the ``publish`` to the last connected follower's
``post_event``; and the server's CPU (utime + stime from /proc) over the publishing phase
divided by the deliveries.

Then the store cost of one post: ``--store-posts`` more posts, and what they added to the
database file, read with sqlite3 beside the running server: the new rows of every table and
the growth of the pages in use (the WAL included), per post. Fan-out on read: it is the same at
any number of followers (``--followers 10000,100000`` runs both and prints them side by side).
Speaks only the wire, except with ``--seed-offline``: then the followers that are not connected
are written into the database file directly (an account, a device and a follow row each, in one
transaction beside the idle server, the channel's follower count raised with them), because
registering 95,000 accounts over the wire takes about 25 minutes on the 2-core machine; they are
the same rows ``register`` and ``follow`` write, and a post never reads them (fan-out on read).

    .venv/bin/python loadtest/bench_channel_fanout.py --followers 10000,100000 --connected 5000
    .venv/bin/python loadtest/bench_channel_fanout.py --followers 100000 --connected 5000 --seed-offline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from chatload.procstat import LocalServer, proc_cpu_seconds, raise_nofile
from chatproto import auth, codec, kinds, posts
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


class Peer:
    """One account's raw connection: requests answered in order (one at a time)."""

    def __init__(self, ws: ClientConnection, challenge: F.Challenge) -> None:
        self.ws = ws
        self.challenge = challenge
        self.key = SigningKey.generate()
        self.ids = 0
        self.account = 0
        self.device = 0

    @classmethod
    async def open(cls, url: str) -> Peer:
        ws = await connect(
            url, subprotocols=[Subprotocol("chatd.v1")], compression=None, max_queue=None
        )
        first = codec.decode_server(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(first, F.Challenge)
        return cls(ws, first)

    async def request(self, frame: Any) -> F.ServerFrame:
        await self.ws.send(codec.encode(frame))
        while True:
            reply = codec.decode_server(await self.ws.recv())  # type: ignore[arg-type]
            if getattr(reply, "re", None) == frame.id:
                return reply

    def next_id(self) -> int:
        self.ids += 1
        return self.ids

    async def register(self, handle: str) -> None:
        c = self.challenge
        sig = self.key.sign(auth.login_payload(c.server, c.nonce, self.key.public_key))
        w = await self.request(
            F.Register(
                id=self.next_id(),
                handle=handle,
                name=handle,
                device_key=self.key.public_key,
                device_name="bench",
                sig=sig,
            )
        )
        assert isinstance(w, F.Welcome), w
        self.account, self.device = w.account, w.device


async def follower(url: str, i: int, channel: int, stay: bool) -> Peer | None:
    p = await Peer.open(url)
    await p.register(f"fan{i}")
    got = await p.request(F.Follow(id=p.next_id(), channel=channel))
    assert isinstance(got, F.ChannelAnswer), got
    if stay:  # a connected follower that shows its feed gets the channel's posts live
        ok = await p.request(F.WatchFeed(id=p.next_id()))
        assert isinstance(ok, F.Ok), ok
        return p
    await p.ws.close()
    return None


def seed_offline(db: Path, channel: int, first: int, count: int) -> None:
    """``count`` followers of ``channel`` that never connect, as rows (accounts ``fan<first>``
    on): the rows ``register`` and ``follow`` would write, in one transaction."""
    now = int(time.time() * 1000)
    con = sqlite3.connect(db, timeout=60)
    try:
        with con:
            for i in range(first, first + count):
                account = con.execute(
                    "INSERT INTO accounts (handle, name, type, created_at) VALUES (?,?,'user',?)"
                    " RETURNING id",
                    (f"fan{i}", f"fan{i}", now),
                ).fetchone()[0]
                con.execute(
                    "INSERT INTO devices (account_id, public_key, name, created_at)"
                    " VALUES (?,?,'bench',?)",
                    (account, i.to_bytes(32, "big"), now),
                )
                con.execute(
                    "INSERT INTO pub_follows (account, channel, since) VALUES (?,?,?)",
                    (account, channel, now),
                )
            con.execute(
                "UPDATE pub_channels SET followers=followers+? WHERE id=?", (count, channel)
            )
    finally:
        con.close()


def store_size(db: Path) -> tuple[dict[str, int], int]:
    """The row count of every table of the server's SQLite file and the bytes of its pages in
    use, as a reader beside the server sees them (committed, WAL included)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        tables = [
            str(r[0])
            for r in con.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        rows = {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]) for t in tables}
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
        return rows, (int(pages) - int(free)) * int(size)
    finally:
        con.close()


async def run(args: argparse.Namespace, followers: int) -> dict[str, Any]:
    raise_nofile(args.connected + 1000)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        server = LocalServer(Path(tmp), cpu=args.server_cpu, synchronous="NORMAL")
        try:
            await server.wait_ready()
            pub = await Peer.open(server.url)
            await pub.register("publisher")
            made = await pub.request(
                F.CreateChannel(id=pub.next_id(), handle="big_news", title="Big News")
            )
            assert isinstance(made, F.ChannelAnswer), made
            ch = made.info.channel
            started = time.monotonic()
            connected: list[Peer] = []
            over_wire = followers
            if args.seed_offline and followers > args.connected:
                seed_offline(server.db, ch, args.connected, followers - args.connected)
                over_wire = args.connected
            for start in range(0, over_wire, 200):
                batch = range(start, min(start + 200, over_wire))
                got = await asyncio.gather(
                    *(follower(server.url, i, ch, i < args.connected) for i in batch)
                )
                connected += [p for p in got if p is not None]
            print(
                f"{followers} followers ({len(connected)} connected) in"
                f" {time.monotonic() - started:.0f} s",
                flush=True,
            )
            seen = await pub.request(F.FindChannel(id=pub.next_id(), handle="big_news"))
            assert isinstance(seen, F.ChannelAnswer), seen
            assert seen.info.followers == followers, (seen.info.followers, followers)
            arrivals: dict[int, list[float]] = {}

            async def read(p: Peer) -> None:
                async for data in p.ws:
                    f = codec.decode_server(data)  # type: ignore[arg-type]
                    if isinstance(f, F.PostEvent):
                        arrivals.setdefault(f.post.seq, []).append(time.perf_counter())

            readers = [asyncio.create_task(read(p)) for p in connected]
            cpu0 = proc_cpu_seconds(server.pid)
            spans: list[float] = []
            body = kinds.encode_content(kinds.Text(text="breaking news"))[1]

            async def publish(seq: int) -> float:
                """Publish post ``seq``; when it was sent (perf_counter)."""
                post = F.Post(
                    channel=ch,
                    seq=seq,
                    ts=int(time.time() * 1000),
                    author=pub.account,
                    device=pub.device,
                    kind="text",
                    content=body,
                    sig=bytes(64),
                )
                sig = posts.sign_post(pub.key, pub.challenge.server, post)
                t0 = time.perf_counter()
                ok = await pub.request(
                    F.Publish(
                        id=pub.next_id(),
                        channel=ch,
                        seq=seq,
                        ts=post.ts,
                        kind="text",
                        content=body,
                        sig=sig,
                    )
                )
                assert isinstance(ok, F.Published), ok
                return t0

            for seq in range(1, args.posts + 1):
                t0 = await publish(seq)
                deadline = time.monotonic() + 60
                while len(arrivals.get(seq, ())) < len(connected):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"post {seq}: {len(arrivals.get(seq, ()))} deliveries")
                    await asyncio.sleep(0.002)
                spans.append((max(arrivals[seq]) - t0) * 1000)
            cpu = proc_cpu_seconds(server.pid) - cpu0
            # The store cost of one post: what --store-posts more posts add to the file.
            rows0, bytes0 = store_size(server.db)
            for seq in range(args.posts + 1, args.posts + args.store_posts + 1):
                await publish(seq)
            rows1, bytes1 = store_size(server.db)
            added = {t: n - rows0.get(t, 0) for t, n in rows1.items() if n != rows0.get(t, 0)}
            for t in readers:
                t.cancel()
            for p in (*connected, pub):
                await p.ws.close()
        finally:
            server.stop()
    deliveries = args.posts * len(connected)
    result = {
        "followers": followers,
        "connected": len(connected),
        "posts": args.posts,
        "publish_to_last_delivery_ms": {
            "p50": round(percentile(spans, 50), 1),
            "max": round(max(spans), 1),
        },
        "server_cpu_us_per_delivery": round(cpu / deliveries * 1e6, 2),
        "server_cpu_ms_per_post": round(cpu / args.posts * 1000, 2),
        "store_per_post": {
            "rows": {t: round(n / args.store_posts, 3) for t, n in sorted(added.items())},
            "bytes": round((bytes1 - bytes0) / args.store_posts),
        },
    }
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--followers",
        default="10000",
        help="followers of the channel; several, comma-separated, run one after another",
    )
    p.add_argument("--connected", type=int, default=2_000)
    p.add_argument("--posts", type=int, default=20)
    p.add_argument("--store-posts", type=int, default=200)
    p.add_argument(
        "--server-cpu",
        type=int,
        default=None,
        help="pin the server to this core (run the benchmark itself with taskset on another)",
    )
    p.add_argument(
        "--seed-offline",
        action="store_true",
        help="write the followers that are not connected into the database, not over the wire",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    results = [asyncio.run(run(args, int(n))) for n in args.followers.split(",")]
    if len(results) > 1:  # the store cost side by side: it must not grow with followers
        for r in results:
            cost = r["store_per_post"]
            print(f"{r['followers']:>9} followers: {cost['rows']} rows, {cost['bytes']} B per post")
    if args.out is not None:
        out = results[0] if len(results) == 1 else results
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
