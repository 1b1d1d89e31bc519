#!/usr/bin/env python3
"""Payments benchmark: transfers/s with receipts on one chatd node (SQLite + in-process fan-out).

Starts ``chatd serve`` itself pinned to CPU core 0 (``taskset -c 0``, ``chatload.procstat``),
on a free 127.0.0.1 port with a temporary SQLite file (``synchronous=FULL``: every ack is
fsynced) and the per-connection rate limit raised; runs the generator in THIS process pinned
to core 1 (uvloop, raw chatd.v1 frames, no SDK).

Setup: ``--accounts`` accounts in direct conversations by pairs, each topped up through
``chatd wallet mint`` (the operator path) on the server's file. Every transfer is a real ``pay``:
an intent signed with the payer's device key (signed ahead of the run, so the generator's
Ed25519 signing does not throttle the offered rate), verified by the server, posted in the
group commit with its two ledger entries and its signed receipt message, answered with
``posted``, and the receipt delivered to both members' connections.

* ``--rates``: open-model runs (transfer i is due at ``t0 + i/rate`` whatever happened before;
  latency is measured from that intended time). Per run: acked transfers/s, server CPU (utime +
  stime of the server process from /proc over the steady window after ``--warmup``), server CPU
  us per transfer, send-to-posted p50/p99.
* ``--max``: closed loop, ``--window`` transfers in flight per connection: the most transfers/s
  the node acks, and which core saturates first.

At the end the ledger is audited with ``chatd wallet audit --json`` (balances sum to zero per
currency, no overdraft, two entries per transfer) and the number of transfers must equal the
acks plus the mints. Like every load tool, it imports nothing of the server: chatd's commands run
as processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chatload.procstat import HOST, LocalServer, cpu_model, scrape_metrics, self_cpu_seconds
from chatload.proto import LOAD_POLICY, write_nowait
from chatproto import client as client_core
from chatproto import frames as F
from chatproto import payments
from chatproto.e2e.primitives import SigningKey
from websockets.asyncio.client import ClientConnection, connect


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))]


class Counters:
    def __init__(self) -> None:
        self.posted = 0
        self.receipts = 0
        self.errors: dict[int, int] = {}
        self.latency_ms: list[float] = []
        self.window = (0.0, 0.0)


class Conn:
    """One account's connection: an asyncio driver of ``chatproto.client.ClientProtocol`` (the
    core chatload and the SDK drive too) with a load generator's policy, counting postings and
    receipts from its events."""

    def __init__(self, ws: ClientConnection, counters: Counters) -> None:
        self.ws = ws
        self.c = counters
        self.core = client_core.ClientProtocol(policy=LOAD_POLICY)
        self.pending: dict[int, asyncio.Future[F.ServerFrame]] = {}
        self.intended: dict[int, float] = {}
        self.inflight = 0
        self.free = asyncio.Event()
        self.key = SigningKey.generate()
        self.account = 0
        self.device = 0
        self.server = ""
        """The server's name (its challenge): payment intents bind it."""
        self.reader: asyncio.Task[None] | None = None

    async def read_loop(self) -> None:
        c = self.c
        core = self.core
        try:
            async for data in self.ws:
                assert isinstance(data, bytes)
                core.receive_data(data)
                for ev in core.events_received():
                    match ev:
                        case client_core.Answer(rid=rid, frame=frame) if rid in self.intended:
                            sent = self.intended.pop(rid)  # a pay: posted, or refused
                            if isinstance(frame, F.Posted):
                                c.posted += 1
                                if c.window[0] <= sent < c.window[1]:
                                    c.latency_ms.append((time.monotonic() - sent) * 1000)
                            elif isinstance(frame, F.Error):
                                c.errors[frame.code] = c.errors.get(frame.code, 0) + 1
                            self.inflight -= 1
                            self.free.set()
                        case client_core.Answer(rid=rid, frame=frame):
                            fut = self.pending.pop(rid, None)
                            if fut is not None and not fut.done():
                                fut.set_result(frame)
                        case client_core.Delivery(item=F.Deliver(kind="payment.receipt")):
                            c.receipts += 1
                        case client_core.Pushed(frame=F.Error(code=code)):
                            c.errors[code] = c.errors.get(code, 0) + 1
                        case _:
                            pass
        except Exception:
            pass

    def flush(self) -> None:
        for data in self.core.data_to_send():
            write_nowait(self.ws, data)

    async def request(self, make: Any) -> F.ServerFrame:
        rid = self.core.request_with(make)
        fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        self.flush()
        frame = await asyncio.wait_for(fut, 60)
        if isinstance(frame, F.Error):
            raise RuntimeError(f"request failed: {frame.code} {frame.msg}")
        return frame

    def pay(self, frame: F.Pay, intended: float) -> None:
        """Write one signed ``pay`` now (open model: never waits for the socket)."""
        self.intended[self.core.request(frame)] = intended
        self.inflight += 1
        self.flush()


async def open_account(port: int, counters: Counters, handle: str) -> Conn:
    ws = await connect(
        f"ws://{HOST}:{port}/ws",
        subprotocols=["chatd.v1"],  # type: ignore[list-item]
        compression=None,
        max_size=2**20,
        max_queue=4096,
        ping_interval=None,
        open_timeout=60,
    )
    conn = Conn(ws, counters)
    conn.core.connection_made()
    conn.core.receive_data(await ws.recv())  # type: ignore[arg-type]
    [challenged] = conn.core.events_received()
    assert isinstance(challenged, client_core.Challenged), challenged
    conn.server = challenged.challenge.server
    conn.reader = asyncio.create_task(conn.read_loop())
    rid = conn.core.register(handle, handle, conn.key, device_name="bench")
    fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
    conn.pending[rid] = fut
    conn.flush()
    welcome = await asyncio.wait_for(fut, 60)
    assert isinstance(welcome, F.Welcome), welcome
    conn.account, conn.device = welcome.account, welcome.device
    return conn


def signed(payer: Conn, payee: Conn, conv: int, n: int, amount: int) -> F.Pay:
    """One ``pay`` frame, signed ahead (request id from the payer's core)."""
    rid = payer.core.next_id()
    intent = F.TransferIntent(
        transfer_id=f"b{payer.account}x{rid}",
        payer=payer.account,
        payee=payee.account,
        amount=amount,
        currency="USD",
        conv=conv,
        memo_hash=payments.NO_MEMO,
        expires_at=time.time_ns() // 1_000_000 + 3_600_000,
    )
    return F.Pay(
        id=rid,
        intent=intent,
        device=payer.device,
        sig=payments.sign_intent(payer.key, payer.server, intent),
    )


@dataclass
class Run:
    mode: str
    offered_per_s: float
    window_s: float
    acked: int
    acked_per_s: float
    receipts_delivered_per_s: float
    server_cpu_pct: float
    server_us_per_transfer: float
    generator_cpu_pct: float
    posted_p50_ms: float
    posted_p99_ms: float
    errors: dict[int, int]
    commits_per_s: float = 0.0
    writes_per_commit: float = 0.0
    commit_ms: float = 0.0
    """Mean duration of one group-commit transaction (SQL + COMMIT with its fsync)."""


_BATCH_N = "chatd_store_batch_size_count"
_BATCH_SUM = "chatd_store_batch_size_sum"
_COMMIT_SUM = "chatd_store_commit_seconds_sum"


async def batches(server: LocalServer) -> tuple[float, float, float]:
    m = await scrape_metrics(server.port)
    return m.get(_BATCH_N, 0.0), m.get(_BATCH_SUM, 0.0), m.get(_COMMIT_SUM, 0.0)


def with_batches(
    run: Run, before: tuple[float, float, float], after: tuple[float, float, float]
) -> Run:
    n, size, seconds = (a - b for a, b in zip(after, before, strict=True))
    run.commits_per_s = n / run.window_s
    run.writes_per_commit = size / max(1.0, n)
    run.commit_ms = 1000 * seconds / max(1.0, n)
    return run


async def open_loop(
    server: LocalServer,
    counters: Counters,
    routes: list[tuple[Conn, Conn, int]],
    rate: float,
    warmup: float,
    duration: float,
) -> Run:
    total = int(rate * (warmup + duration))
    rng = random.Random(int(rate))
    plan = [
        (routes[i % len(routes)][0], signed(*routes[i % len(routes)], 1, rng.randint(1, 100)))
        for i in range(total)
    ]
    await asyncio.sleep(0.5)  # let the setup settle
    t0 = time.monotonic() + 0.2
    counters.window = (t0 + warmup, t0 + warmup + duration)
    base_posted, base_receipts = counters.posted, counters.receipts
    cpu_start = gen_start = None
    posted_start = receipts_start = 0
    metrics_start = (0.0, 0.0, 0.0)
    for i, (conn, frame) in enumerate(plan):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            await asyncio.sleep(due - now)
        if cpu_start is None and time.monotonic() >= counters.window[0]:
            cpu_start, gen_start = server.cpu(), self_cpu_seconds()
            posted_start, receipts_start = counters.posted, counters.receipts
            metrics_start = await batches(server)
        conn.pay(frame, due)
    end = counters.window[1]
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    assert cpu_start is not None
    assert gen_start is not None
    cpu, gen = server.cpu() - cpu_start, self_cpu_seconds() - gen_start
    acked = counters.posted - posted_start
    receipts = counters.receipts - receipts_start
    metrics_end = await batches(server)
    deadline = time.monotonic() + 30
    while counters.posted - base_posted + sum(counters.errors.values()) < total:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    del base_receipts
    lat = counters.latency_ms
    run = Run(
        mode="open",
        offered_per_s=rate,
        window_s=duration,
        acked=acked,
        acked_per_s=acked / duration,
        receipts_delivered_per_s=receipts / duration,
        server_cpu_pct=100 * cpu / duration,
        server_us_per_transfer=1e6 * cpu / max(1, acked),
        generator_cpu_pct=100 * gen / duration,
        posted_p50_ms=percentile(lat, 50),
        posted_p99_ms=percentile(lat, 99),
        errors=dict(counters.errors),
    )
    counters.latency_ms = []
    return with_batches(run, metrics_start, metrics_end)


async def closed_loop(
    server: LocalServer,
    counters: Counters,
    routes: list[tuple[Conn, Conn, int]],
    window: int,
    duration: float,
) -> Run:
    by_payer: dict[int, list[tuple[Conn, Conn, int]]] = {}
    for r in routes:
        by_payer.setdefault(r[0].account, []).append(r)
    stop = time.monotonic() + duration + 2
    counters.window = (time.monotonic() + 2, stop)

    async def drive(mine: list[tuple[Conn, Conn, int]]) -> None:
        payer = mine[0][0]
        rng = random.Random(payer.account)
        # Signed in chunks ahead of need: signing is the generator's cost, not the server's.
        queue = [signed(*mine[i % len(mine)], 1, rng.randint(1, 100)) for i in range(64)]
        while time.monotonic() < stop:
            while payer.inflight >= window:
                payer.free.clear()
                await payer.free.wait()
            if not queue:
                queue = [signed(*mine[i % len(mine)], 1, rng.randint(1, 100)) for i in range(64)]
                await asyncio.sleep(0)
            payer.pay(queue.pop(), time.monotonic())

    await asyncio.sleep(0.5)
    tasks = [asyncio.create_task(drive(mine)) for mine in by_payer.values()]
    await asyncio.sleep(2)
    metrics0 = await batches(server)
    cpu0, gen0, posted0, receipts0 = (
        server.cpu(),
        self_cpu_seconds(),
        counters.posted,
        counters.receipts,
    )
    t = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - t
    cpu, gen = server.cpu() - cpu0, self_cpu_seconds() - gen0
    acked, receipts = counters.posted - posted0, counters.receipts - receipts0
    metrics1 = await batches(server)
    await asyncio.gather(*tasks)
    while any(conn.inflight for conn, _, _ in routes):
        await asyncio.sleep(0.05)
    lat = counters.latency_ms
    run = Run(
        mode=f"closed, {window} in flight per connection",
        offered_per_s=0,
        window_s=elapsed,
        acked=acked,
        acked_per_s=acked / elapsed,
        receipts_delivered_per_s=receipts / elapsed,
        server_cpu_pct=100 * cpu / elapsed,
        server_us_per_transfer=1e6 * cpu / max(1, acked),
        generator_cpu_pct=100 * gen / elapsed,
        posted_p50_ms=percentile(lat, 50),
        posted_p99_ms=percentile(lat, 99),
        errors=dict(counters.errors),
    )
    counters.latency_ms = []
    return with_batches(run, metrics0, metrics1)


def wallet(db: Path, *argv: str) -> str:
    """Run ``chatd wallet ARGV --db DB`` (the operator's command, on the server's file): stdout."""
    done = subprocess.run(
        [sys.executable, "-m", "chatd", "wallet", *argv, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chatd wallet {argv[0]} failed: {done.stdout}{done.stderr}")
    return done.stdout


async def main(args: argparse.Namespace) -> dict[str, Any]:
    os.sched_setaffinity(0, {args.generator_cpu})
    workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-pay-"))
    server = LocalServer(workdir, cpu=args.server_cpu, synchronous=args.synchronous)
    counters = Counters()
    try:
        await server.wait_ready()
        conns = [
            await open_account(server.port, counters, f"payer{i}") for i in range(args.accounts)
        ]
        routes: list[tuple[Conn, Conn, int]] = []
        for a, b in zip(conns[::2], conns[1::2], strict=True):
            info = await a.request(
                lambda r, b=b: F.CreateConv(id=r, kind="direct", members=[b.account])
            )
            assert isinstance(info, F.Conv)
            routes += [(a, b, info.info.conv), (b, a, info.info.conv)]
        mints = asyncio.Semaphore(4)  # a few ``chatd wallet mint`` processes at a time

        async def mint(account: int) -> None:
            async with mints:
                await asyncio.to_thread(
                    wallet, server.db, "mint", str(account), "10000000000", "USD", "--note", "bench"
                )

        async with asyncio.TaskGroup() as tg:
            for c in conns:
                tg.create_task(mint(c.account))
        runs = []
        for rate in args.rates:
            run = await open_loop(server, counters, routes, rate, args.warmup, args.duration)
            runs.append(run)
            print(json.dumps(asdict(run)), flush=True)
        if args.max:
            run = await closed_loop(server, counters, routes, args.window, args.duration)
            runs.append(run)
            print(json.dumps(asdict(run)), flush=True)
        await asyncio.sleep(1)
        audit = json.loads(wallet(server.db, "audit", "--json"))
        assert audit["ok"], audit
        transfers = audit["transfers"] - len(conns)  # every transfer but the mints
        assert transfers == counters.posted, (transfers, counters.posted)
        return {
            "cpu": cpu_model(),
            "python": sys.version.split()[0],
            "accounts": args.accounts,
            "synchronous": args.synchronous,
            "runs": [asdict(r) for r in runs],
            "ledger_audit_ok": audit["ok"],
            "transfers_in_ledger": transfers,
        }
    finally:
        for c in locals().get("conns", []):
            c.ws.transport.abort()
        server.stop()


def table(result: dict[str, Any]) -> str:
    rows = [
        "| run | offered/s | acked transfers/s | receipts delivered/s | server CPU | server µs / transfer | posted p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        offered = f"{r['offered_per_s']:,.0f}" if r["offered_per_s"] else "max"
        rows.append(
            f"| {r['mode']} | {offered} | {r['acked_per_s']:,.0f} | {r['receipts_delivered_per_s']:,.0f}"
            f" | {r['server_cpu_pct']:.0f}% | {r['server_us_per_transfer']:.0f}"
            f" | {r['posted_p50_ms']:.1f} / {r['posted_p99_ms']:.1f} ms |"
        )
    return "\n".join(rows)


def cli() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--accounts", type=int, default=100)
    p.add_argument(
        "--rates",
        type=lambda s: [float(x) for x in s.split(",") if x],
        default=[500.0, 1000.0, 2000.0],
    )
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--max", action="store_true", help="also a closed-loop max-throughput run")
    p.add_argument("--window", type=int, default=8, help="in flight per connection (--max)")
    p.add_argument("--synchronous", default="FULL")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--generator-cpu", type=int, default=1)
    p.add_argument("--json", help="write the result here")
    args = p.parse_args()
    try:
        import uvloop

        result = uvloop.run(main(args))
    except ImportError:  # pragma: no cover
        result = asyncio.run(main(args))
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    cli()
