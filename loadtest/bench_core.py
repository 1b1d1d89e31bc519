#!/usr/bin/env python3
"""Messaging-core benchmark for chatd (single node: SQLite + in-process fan-out).

Starts ``chatd serve`` itself, pinned to CPU core 0 (``taskset -c 0``), on a free 127.0.0.1 port
with a temporary SQLite file and the per-connection rate limit raised; runs the load generator in
THIS process pinned to core 1 (uvloop, raw chatd.v1 frames over ``websockets``, no SDK).

Parts (``--only``, comma separated; default all):

* ``direct``  -- server CPU us per accepted (acked) message in direct conversations
* ``group10`` -- server CPU us per delivery in groups of 10 members (9 deliveries per message)
* ``group50`` -- server CPU us per delivery in groups of 50 members (49 deliveries per message)
* ``max``     -- max throughput (acked msgs/s, deliveries/s) for direct and group-10 traffic,
                 by stepping the offered rate up until acks fall behind or latency explodes;
                 says which process (server on core 0, generator on core 1) hit ~100% CPU first
* ``latency`` -- p50/p99 send-to-deliver latency at half of the max found (or ``--half-rate``)
* ``idle``    -- RSS per idle authenticated connection at 5,000 and 10,000 connections

Load is OPEN-MODEL: message i is due at ``t0 + i/rate`` whatever happened to earlier ones, and
every latency is measured from that intended time (no coordinated omission). The intended time
(``time.monotonic_ns`` of this process) rides in the body and in the cmid, so an ``ack`` gives
send-to-ack latency and a ``deliver`` gives send-to-deliver latency.

Server CPU is ``utime+stime`` of the server process (all threads, /proc/PID/stat) over a
steady-state window that excludes setup and warm-up; it is divided by the acks and deliveries
received in the same window. Only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from chatload.procstat import (
    HOST,
    LocalServer,
    cpu_model,
    raise_nofile,
    scrape_metrics,
    self_cpu_seconds,
)
from chatproto import auth, codec
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from websockets.asyncio.client import ClientConnection, connect

PAGE = os.sysconf("SC_PAGE_SIZE")
BODY_BYTES = 100
PARTS = ("direct", "group10", "group50", "max", "latency", "idle")

# --------------------------------------------------------------------------- process metrics
# /proc readers and the pinned ``chatd serve`` live in the chatload package (shared with it).


def percentile(sorted_values: list[int], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return float(sorted_values[k])


class Server(LocalServer):
    """``chatd serve`` on core 0 with a temp SQLite file (chatload.procstat.LocalServer)."""

    def __init__(self, workdir: Path, synchronous: str, log_level: str) -> None:
        super().__init__(workdir, cpu=0, synchronous=synchronous, log_level=log_level)

    def affinity(self) -> set[int]:
        return os.sched_getaffinity(self.pid)


# --------------------------------------------------------------------------- raw protocol client


class Fast(msgspec.Struct):
    """Only the fields the hot path reads; msgspec skips the rest of the map."""

    t: str
    re: int = 0
    cmid: str | None = None
    body: bytes = b""


_fast = msgspec.msgpack.Decoder(Fast)
_BATCH_N = "chatd_store_batch_size_count"
_BATCH_SUM = "chatd_store_batch_size_sum"
_COMMIT_SUM = "chatd_store_commit_seconds_sum"
_BODY = struct.Struct("<qQ")
_PAD = b"x" * (BODY_BYTES - _BODY.size)
FRANKED: bytes | None = None
"""``--franked``: every send carries this 32-byte franking commitment (SPEC.md 18.7)."""


class Stats:
    """Counters and latencies of the current load run (shared by every connection)."""

    def __init__(self) -> None:
        self.reset(0, 0)

    def reset(self, lat_from: int, lat_to: int) -> None:
        self.sent = 0
        self.acks = 0
        self.delivers = 0
        self.errors = 0
        self.error_codes: dict[int, int] = {}
        self.lat_from = lat_from
        self.lat_to = lat_to
        self.ack_lat: list[int] = []  # microseconds
        self.deliver_lat: list[int] = []


class Conn:
    __slots__ = ("account", "device", "handle", "key", "pending", "reader", "rid", "stats", "ws")

    def __init__(self, ws: ClientConnection, stats: Stats) -> None:
        self.ws = ws
        self.stats = stats
        self.rid = itertools.count(1)
        self.pending: dict[int, asyncio.Future[F.ServerFrame]] = {}
        self.account = 0
        self.device = 0
        self.handle = ""
        self.key: SigningKey | None = None
        self.reader: asyncio.Task[None] | None = None

    async def read_loop(self) -> None:
        ws = self.ws
        stats = self.stats
        mono = time.monotonic_ns
        unpack = _BODY.unpack_from
        try:
            while True:
                data = await ws.recv()
                f = _fast.decode(data)
                t = f.t
                if t == "deliver":
                    stats.delivers += 1
                    if len(f.body) >= 16:
                        intended = unpack(f.body)[0]
                        if stats.lat_from <= intended < stats.lat_to:
                            stats.deliver_lat.append((mono() - intended) // 1000)
                elif t == "ack":
                    stats.acks += 1
                    cmid = f.cmid or ""
                    dot = cmid.find(".")
                    if dot > 0:
                        intended = int(cmid[:dot], 16)
                        if stats.lat_from <= intended < stats.lat_to:
                            stats.ack_lat.append((mono() - intended) // 1000)
                else:
                    fut = self.pending.pop(f.re, None) if f.re else None
                    if fut is not None and not fut.done():
                        fut.set_result(codec.decode_server(data))
                    elif t == "error":
                        frame = codec.decode_server(data)
                        stats.errors += 1
                        code = getattr(frame, "code", 0)
                        stats.error_codes[code] = stats.error_codes.get(code, 0) + 1
        except Exception:  # connection closed; the run's counters show what was lost
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection closed"))

    async def request(self, make: Any, timeout: float = 60.0) -> F.ServerFrame:
        rid = next(self.rid)
        fut: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(codec.encode(make(rid)))
        frame = await asyncio.wait_for(fut, timeout)
        if isinstance(frame, F.Error):
            raise RuntimeError(f"request failed: code={frame.code} {frame.msg}")
        return frame

    def send_message(self, conv: int, intended: int, idx: int) -> None:
        """Queue one Send without awaiting (open model): straight into the socket buffer."""
        frame = codec.encode(
            F.Send(
                id=next(self.rid),
                conv=conv,
                cmid=f"{intended:x}.{idx:x}",
                kind="text",
                body=_BODY.pack(intended, idx) + _PAD,
                fc=FRANKED,
            )
        )
        ws = self.ws
        ws.protocol.send_binary(frame)
        ws.send_data()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)
        if self.reader is not None:
            self.reader.cancel()


async def open_account(port: int, stats: Stats, handle: str) -> Conn:
    """Connect, take the challenge, register a fresh account with a fresh Ed25519 device key."""
    ws = await connect(
        f"ws://{HOST}:{port}/ws",
        subprotocols=["chatd.v1"],  # type: ignore[list-item]
        compression=None,
        max_size=2**20,
        max_queue=4096,
        ping_interval=None,
        open_timeout=60,
        close_timeout=5,
    )
    conn = Conn(ws, stats)
    challenge = codec.decode_server(await ws.recv())
    assert isinstance(challenge, F.Challenge), challenge
    key = SigningKey.generate()
    sig = key.sign(auth.login_payload(challenge.server, challenge.nonce, key.public_key))
    conn.key = key
    conn.reader = asyncio.create_task(conn.read_loop())
    welcome = await conn.request(
        lambda rid: F.Register(
            id=rid,
            handle=handle,
            name=handle,
            device_key=key.public_key,
            device_name="bench",
            sig=sig,
        )
    )
    assert isinstance(welcome, F.Welcome), welcome
    conn.account, conn.device, conn.handle = welcome.account, welcome.device, welcome.handle
    return conn


async def open_many(port: int, stats: Stats, prefix: str, n: int, concurrency: int) -> list[Conn]:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Conn:
        async with sem:
            return await open_account(port, stats, f"{prefix}{i}")

    return list(await asyncio.gather(*(one(i) for i in range(n))))


# --------------------------------------------------------------------------- workloads


@dataclass
class Topology:
    """Who sends to which conversation: ``routes[i % len]`` is ``(conn, conv)`` for message i."""

    name: str
    members: int
    conns: list[Conn]
    routes: list[tuple[Conn, int]]

    @property
    def fanout(self) -> int:
        return self.members - 1


async def build_direct(port: int, stats: Stats, prefix: str, pairs: int) -> Topology:
    conns = await open_many(port, stats, prefix, 2 * pairs, 100)
    routes: list[tuple[Conn, int]] = []
    convs = []
    for i in range(pairs):
        a, b = conns[2 * i], conns[2 * i + 1]
        convs.append(
            (a, b, a.request(lambda r, b=b: F.CreateConv(id=r, kind="direct", members=[b.account])))
        )
    infos = await asyncio.gather(*(c for _, _, c in convs))
    fwd = [(a, info.info.conv) for (a, _, _), info in zip(convs, infos, strict=True)]  # type: ignore[union-attr]
    back = [(b, info.info.conv) for (_, b, _), info in zip(convs, infos, strict=True)]  # type: ignore[union-attr]
    routes = fwd + back  # every pair used in both directions, spread evenly
    return Topology("direct", 2, conns, routes)


async def build_groups(port: int, stats: Stats, prefix: str, groups: int, size: int) -> Topology:
    conns = await open_many(port, stats, prefix, groups * size, 100)
    convs: list[int] = []
    for g in range(groups):
        owner, others = conns[g * size], conns[g * size + 1 : (g + 1) * size]
        info = await owner.request(
            lambda r, o=others: F.CreateConv(
                id=r, kind="group", title="bench", members=[c.account for c in o]
            )
        )
        convs.append(info.info.conv)  # type: ignore[union-attr]
    routes = []
    for k in range(size):  # message i goes to group i % groups, sender rotates within the group
        for g in range(groups):
            routes.append((conns[g * size + k], convs[g]))
    return Topology(f"group{size}", size, conns, routes)


@dataclass
class RunResult:
    scenario: str
    offered_rate: float
    members: int
    window_s: float
    sent: int
    acks_in_window: int
    deliveries_in_window: int
    acked_per_s: float
    deliveries_per_s: float
    server_cpu_s: float
    server_cpu_pct: float
    gen_cpu_pct: float
    server_us_per_msg: float
    server_us_per_delivery: float
    ack_p50_ms: float
    ack_p99_ms: float
    deliver_p50_ms: float
    deliver_p99_ms: float
    deliver_p999_ms: float
    deliver_max_ms: float
    lost_acks: int
    lost_deliveries: int
    errors: int
    error_codes: dict[int, int] = field(default_factory=dict)
    server_user_pct: float = 0.0
    server_sys_pct: float = 0.0
    commits_per_s: float = 0.0
    avg_batch: float = 0.0
    avg_commit_ms: float = 0.0
    server_threads_cpu_pct: dict[str, float] = field(default_factory=dict)
    keeps_up: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


async def run_load(
    server: Server,
    topo: Topology,
    stats: Stats,
    rate: float,
    warmup: float,
    measure: float,
    drain_timeout: float = 20.0,
    on_window: Any = None,
) -> RunResult:
    """Offer ``rate`` msgs/s for warmup+measure seconds; measure CPU in the last ``measure`` s."""
    loop = asyncio.get_running_loop()
    mono = time.monotonic_ns
    period = 1e9 / rate
    total = int(rate * (warmup + measure))
    t0 = mono() + 20_000_000
    win_from = t0 + int(warmup * 1e9)
    win_to = t0 + int((warmup + measure) * 1e9)
    stats.reset(win_from, win_to)
    routes = topo.routes
    nroutes = len(routes)

    async def schedule() -> None:
        i = 0
        while i < total:
            now = mono()
            due = min(total, int((now - t0) / period) + 1, i + 2000)
            while i < due:
                conn, conv = routes[i % nroutes]
                conn.send_message(conv, t0 + int(i * period), i)
                i += 1
            stats.sent = i
            if i >= total:
                break
            # uvloop timers have 1 ms resolution: a shorter sleep would spin. Waking at most
            # every ms sends what is due in a burst; the lateness is inside the latencies.
            delay = (t0 + i * period - mono()) / 1e9
            await asyncio.sleep(max(delay, 0.001))

    sched = loop.create_task(schedule())
    await asyncio.sleep(max(0.0, (win_from - mono()) / 1e9))
    (u0, s0), g0, w0 = server.cpu_split(), self_cpu_seconds(), mono()
    c0 = u0 + s0
    th0 = server.threads()
    m0 = await scrape_metrics(server.port)
    a0, d0 = stats.acks, stats.delivers
    if on_window is not None:
        on_window()
    await asyncio.sleep(max(0.0, (win_to - mono()) / 1e9))
    (u1, s1), g1, w1 = server.cpu_split(), self_cpu_seconds(), mono()
    c1 = u1 + s1
    th1 = server.threads()
    m1 = await scrape_metrics(server.port)
    a1, d1 = stats.acks, stats.delivers
    await sched
    expected_d = total * topo.fanout
    deadline = time.monotonic() + drain_timeout
    while (stats.acks < total or stats.delivers < expected_d) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    window = (w1 - w0) / 1e9
    acks, dels = a1 - a0, d1 - d0
    cpu = c1 - c0
    ack_l = sorted(stats.ack_lat)
    del_l = sorted(stats.deliver_lat)
    return RunResult(
        scenario=topo.name,
        offered_rate=rate,
        members=topo.members,
        window_s=window,
        sent=total,
        acks_in_window=acks,
        deliveries_in_window=dels,
        acked_per_s=acks / window,
        deliveries_per_s=dels / window,
        server_cpu_s=cpu,
        server_cpu_pct=100 * cpu / window,
        gen_cpu_pct=100 * (g1 - g0) / window,
        server_us_per_msg=1e6 * cpu / acks if acks else float("nan"),
        server_us_per_delivery=1e6 * cpu / dels if dels else float("nan"),
        ack_p50_ms=percentile(ack_l, 50) / 1000,
        ack_p99_ms=percentile(ack_l, 99) / 1000,
        deliver_p50_ms=percentile(del_l, 50) / 1000,
        deliver_p99_ms=percentile(del_l, 99) / 1000,
        deliver_p999_ms=percentile(del_l, 99.9) / 1000,
        deliver_max_ms=(del_l[-1] / 1000) if del_l else float("nan"),
        lost_acks=total - stats.acks,
        lost_deliveries=expected_d - stats.delivers,
        errors=stats.errors,
        error_codes=dict(stats.error_codes),
        server_user_pct=100 * (u1 - u0) / window,
        server_sys_pct=100 * (s1 - s0) / window,
        commits_per_s=(m1.get(_BATCH_N, 0) - m0.get(_BATCH_N, 0)) / window,
        avg_batch=(m1.get(_BATCH_SUM, 0) - m0.get(_BATCH_SUM, 0))
        / max(1.0, m1.get(_BATCH_N, 0) - m0.get(_BATCH_N, 0)),
        avg_commit_ms=1000
        * (m1.get(_COMMIT_SUM, 0) - m0.get(_COMMIT_SUM, 0))
        / max(1.0, m1.get(_BATCH_N, 0) - m0.get(_BATCH_N, 0)),
        server_threads_cpu_pct={
            k: round(100 * (v - th0.get(k, 0.0)) / window, 1)
            for k, v in th1.items()
            if v - th0.get(k, 0.0) > 0
        },
    )


def keeps_up(r: RunResult, max_p99_ms: float) -> bool:
    """The offered rate is sustained: acks keep pace with the schedule in the window, nothing is
    left unacked after the drain, and send-to-ack/deliver p99 stays bounded."""
    return (
        r.acked_per_s >= 0.97 * r.offered_rate
        and r.lost_acks == 0
        and r.errors == 0
        and r.ack_p99_ms <= max_p99_ms
        and (r.members < 2 or r.deliver_p99_ms <= max_p99_ms)
    )


# --------------------------------------------------------------------------- parts


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.a = args
        self.workdir = Path(tempfile.mkdtemp(prefix="chatd-bench-"))
        self.results: dict[str, Any] = {}
        self.run_id = os.urandom(3).hex()
        self.servers: list[Server] = []
        self.log = print if not args.quiet else (lambda *a, **k: None)

    def prefix(self, tag: str) -> str:
        return f"b{self.run_id}{tag}"

    async def server(self) -> Server:
        s = Server(self.workdir, self.a.synchronous, self.a.server_log_level)
        self.servers.append(s)
        await s.wait_ready()
        return s

    async def close(self, server: Server, topo: Topology | None) -> None:
        if topo is not None:
            await asyncio.gather(*(c.close() for c in topo.conns))
        server.stop()

    async def topo(self, server: Server, stats: Stats, kind: str, tag: str) -> Topology:
        a = self.a
        if kind == "direct":
            return await build_direct(server.port, stats, self.prefix(tag), a.direct_pairs)
        if kind == "group10":
            return await build_groups(server.port, stats, self.prefix(tag), a.group10_groups, 10)
        return await build_groups(server.port, stats, self.prefix(tag), a.group50_groups, 50)

    async def fixed(self, kind: str, rate: float) -> RunResult:
        server = await self.server()
        stats = Stats()
        topo = await self.topo(server, stats, kind, kind[0] + kind[-2:])
        self.log(
            f"[{kind}] {len(topo.conns)} connections, {len(set(c for _, c in topo.routes))}"
            f" conversations; offering {rate:g} msgs/s ({rate * topo.fanout:g} deliveries/s)"
        )
        profile = None
        if self.a.profile:
            profile = Profiler(server.pid, self.workdir / f"profile-{kind}", self.a.measure)
        r = await run_load(
            server,
            topo,
            stats,
            rate,
            self.a.warmup,
            self.a.measure,
            on_window=profile.start if profile else None,
        )
        r.keeps_up = keeps_up(r, self.a.max_p99_ms)
        self.log(f"[{kind}] {short(r)}")
        if profile is not None:
            self.results.setdefault("profiles", {})[kind] = profile.finish()
        await self.close(server, topo)
        return r

    async def find_max(self, kind: str, start: float) -> dict[str, Any]:
        """Step the offered rate up by ``--step`` until it is not sustained; same server and
        connections for every step, a drain between steps."""
        a = self.a
        server = await self.server()
        stats = Stats()
        topo = await self.topo(server, stats, kind, "m" + kind[0] + kind[-2:])
        steps: list[RunResult] = []
        rate = start
        deadline = time.monotonic() + a.max_seconds
        while True:
            r = await run_load(server, topo, stats, rate, a.step_warmup, a.step_measure)
            r.keeps_up = keeps_up(r, a.max_p99_ms)
            steps.append(r)
            self.log(f"[max {kind}] {short(r)}")
            if not r.keeps_up or time.monotonic() > deadline:
                break
            rate = round(rate * a.step)
        await self.close(server, topo)
        passing = [s for s in steps if s.keeps_up]
        failing = [s for s in steps if not s.keeps_up]
        best = max(passing, key=lambda s: s.acked_per_s) if passing else None
        sat = failing[-1] if failing else steps[-1]
        peak = max(steps, key=lambda s: s.acked_per_s)
        side = saturation_verdict(sat.server_cpu_pct, sat.gen_cpu_pct)
        return {
            "scenario": kind,
            "max_sustained_msgs_per_s": best.acked_per_s if best else None,
            "max_sustained_deliveries_per_s": best.deliveries_per_s if best else None,
            "max_sustained_offered_rate": best.offered_rate if best else None,
            "peak_acked_msgs_per_s": peak.acked_per_s,
            "peak_deliveries_per_s": peak.deliveries_per_s,
            "first_failing_offered_rate": failing[-1].offered_rate if failing else None,
            "saturated_side": side if failing else "none reached (time bound)",
            "at_failure_server_cpu_pct": sat.server_cpu_pct,
            "at_failure_gen_cpu_pct": sat.gen_cpu_pct,
            "steps": [s.as_dict() for s in steps],
        }

    async def idle(self) -> dict[str, Any]:
        server = await self.server()
        await asyncio.sleep(1.0)
        base = server.rss()
        stats = Stats()
        conns: list[Conn] = []
        out: dict[str, Any] = {"baseline_rss_mb": base / 2**20, "server_nofile": server.nofile()}
        for target in self.a.idle_counts:
            t = time.monotonic()
            more = await open_many(
                server.port, stats, self.prefix(f"i{len(conns)}_"), target - len(conns), 200
            )
            # open_many numbers from 0: give every batch its own prefix (done above)
            conns += more
            setup = time.monotonic() - t
            await asyncio.sleep(self.a.idle_settle)
            rss = server.rss()
            per = (rss - base) / len(conns)
            out[str(target)] = {
                "connections": len(conns),
                "rss_mb": rss / 2**20,
                "rss_minus_baseline_mb": (rss - base) / 2**20,
                "bytes_per_connection": per,
                "kib_per_connection": per / 1024,
                "setup_s": setup,
                "connects_per_s": len(more) / setup,
            }
            self.log(
                f"[idle] {len(conns)} authenticated idle connections: RSS {rss / 2**20:.1f} MiB"
                f" (baseline {base / 2**20:.1f} MiB) -> {per / 1024:.1f} KiB/connection"
                f" (opened at {len(more) / setup:.0f}/s)"
            )
        await asyncio.gather(*(c.close() for c in conns))
        server.stop()
        return out


def saturation_verdict(server_pct: float, gen_pct: float, busy: float = 85.0) -> str:
    """Which side ran out of CPU first at the first rate that was not sustained."""
    if server_pct < busy and gen_pct < busy:
        return (
            f"neither CPU (server {server_pct:.0f}%, generator {gen_pct:.0f}%): bound by the"
            " store's commit latency (single SQLite writer, fsync per group commit)"
        )
    return "server (core 0)" if server_pct >= gen_pct else "generator (core 1)"


def short(r: RunResult) -> str:
    return (
        f"offered {r.offered_rate:g}/s acked {r.acked_per_s:.0f}/s deliv {r.deliveries_per_s:.0f}/s"
        f" | server {r.server_cpu_pct:.0f}% CPU {r.server_us_per_msg:.1f} us/msg"
        f" {r.server_us_per_delivery:.1f} us/deliv | gen {r.gen_cpu_pct:.0f}% CPU"
        f" | ack p50/p99 {r.ack_p50_ms:.1f}/{r.ack_p99_ms:.1f} ms"
        f" deliver p50/p99 {r.deliver_p50_ms:.1f}/{r.deliver_p99_ms:.1f} ms"
        f" | lost acks {r.lost_acks} deliv {r.lost_deliveries} errors {r.errors}"
        f" | server user/sys {r.server_user_pct:.0f}/{r.server_sys_pct:.0f}%"
        f" threads {r.server_threads_cpu_pct} | {r.commits_per_s:.0f} commits/s"
        f" avg batch {r.avg_batch:.1f} avg commit {r.avg_commit_ms:.2f} ms"
        f" {'OK' if r.keeps_up else 'FALLS BEHIND'}"
    )


# --------------------------------------------------------------------------- optional profiling


class Profiler:
    """Sample the server during the measurement window, with the samplers pinned to core 1 (so
    they never steal server CPU; they cost the generator a little):

    * ``py-spy record --nonblocking`` (Python stacks; the server is never paused), summarised by
      ``summarize_pyspy`` over on-CPU Python samples;
    * ``perf record -g`` if ``perf`` exists: where CPU goes by binary (kernel, libpython,
      libsqlite3, uvloop) and by symbol, which py-spy cannot see.
    """

    def __init__(self, pid: int, out: Path, seconds: float) -> None:
        self.pid, self.out, self.seconds = pid, out, seconds
        self.procs: list[subprocess.Popen[bytes]] = []
        self.pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.perf = shutil.which("perf")

    def start(self) -> None:
        n = str(max(1, int(self.seconds - 1)))
        if Path(self.pyspy).exists():
            cmd = [
                "taskset",
                "-c",
                "1",
                self.pyspy,
                "record",
                "--pid",
                str(self.pid),
                "--nonblocking",
                "--threads",
                "--rate",
                "250",
                "--duration",
                n,
                "--format",
                "raw",
                "-o",
                f"{self.out}.pyspy.txt",
            ]
            self.procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        if self.perf:
            cmd = [
                "taskset",
                "-c",
                "1",
                self.perf,
                "record",
                "-F",
                "999",
                "-g",
                "-p",
                str(self.pid),
                "-o",
                f"{self.out}.perf.data",
                "--",
                "sleep",
                n,
            ]
            self.procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def finish(self) -> dict[str, Any]:
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        out: dict[str, Any] = {}
        path = Path(f"{self.out}.pyspy.txt")
        out["pyspy"] = summarize_pyspy(path) if path.exists() else {"error": "no py-spy output"}
        data = Path(f"{self.out}.perf.data")
        if self.perf and data.exists():
            out["perf_dso"] = perf_report(self.perf, data, "dso", 12)
            out["perf_sym"] = perf_report(self.perf, data, "dso,sym", 30)
        return out


def perf_report(perf: str, data: Path, sort: str, top: int) -> list[tuple[str, float]]:
    text = subprocess.run(
        [perf, "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio", "-g", "none"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "%" not in line:
            continue
        pct, _, rest = line.partition("%")
        with contextlib.suppress(ValueError):
            rows.append((" ".join(rest.split()), float(pct)))
    return rows[:top]


_WAITING = (
    "_worker (concurrent/futures/thread.py:81)",  # executor thread idle on its queue
    "Runner.run (asyncio/runners.py:118)",  # inside uvloop's C loop: epoll + C callbacks
)


def summarize_pyspy(path: Path, top: int = 30) -> dict[str, Any]:
    """Share of samples per Python function from py-spy's collapsed stacks. Samples whose leaf is
    an executor thread waiting on its queue or the uvloop C loop itself (epoll_wait and C-level
    I/O, invisible to py-spy) are counted apart; percentages are of the remaining samples, i.e.
    of time spent running Python code (or C called from it, such as SQLite and fsync)."""
    self_c: dict[str, int] = {}
    incl: dict[str, int] = {}
    per_thread: dict[str, int] = {}
    busy = waiting = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = stack.split(";")
        leaf = frames[-1]
        if leaf in _WAITING:
            waiting += count
            continue
        busy += count
        thread = frames[0].split(": ", 1)[-1]
        per_thread[thread] = per_thread.get(thread, 0) + count
        self_c[leaf] = self_c.get(leaf, 0) + count
        for fr in set(frames[1:]):
            incl[fr] = incl.get(fr, 0) + count

    def pct(d: dict[str, int]) -> list[tuple[str, float]]:
        ranked = sorted(d.items(), key=lambda kv: -kv[1])[:top]
        return [(k, round(100 * v / max(1, busy), 1)) for k, v in ranked]

    return {
        "python_samples": busy,
        "loop_or_waiting_samples": waiting,
        "file": str(path),
        "threads": pct(per_thread),
        "self": pct(self_c),
        "inclusive": pct(incl),
    }


# --------------------------------------------------------------------------- report


def render(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    env = results["environment"]
    console.print(
        f"[bold]chatd messaging core[/] — {env['cpu']} x{env['cpus']}, server on core 0, generator on"
        f" core 1, SQLite synchronous={env['synchronous']}, body {BODY_BYTES} B, chatd {env['chatd_version']}"
    )
    fixed = [
        results[k]
        for k in ("direct", "group10", "group50", "latency_direct", "latency_group10")
        if k in results
    ]
    if fixed:
        t = Table(title="Fixed offered load (open model, steady-state window)")
        for col in (
            "run",
            "offered msg/s",
            "acked msg/s",
            "deliv/s",
            "server CPU",
            "µs/msg",
            "µs/deliv",
            "gen CPU",
            "ack p50/p99 ms",
            "deliver p50/p99/p99.9 ms",
            "lost",
            "ok",
        ):
            t.add_column(col, justify="right")
        for key in ("direct", "group10", "group50", "latency_direct", "latency_group10"):
            if key not in results:
                continue
            r = results[key]
            t.add_row(
                key,
                f"{r['offered_rate']:g}",
                f"{r['acked_per_s']:.0f}",
                f"{r['deliveries_per_s']:.0f}",
                f"{r['server_cpu_pct']:.0f}%",
                f"{r['server_us_per_msg']:.1f}",
                f"{r['server_us_per_delivery']:.1f}",
                f"{r['gen_cpu_pct']:.0f}%",
                f"{r['ack_p50_ms']:.1f}/{r['ack_p99_ms']:.1f}",
                f"{r['deliver_p50_ms']:.1f}/{r['deliver_p99_ms']:.1f}/{r['deliver_p999_ms']:.1f}",
                f"{r['lost_acks']}/{r['lost_deliveries']}",
                "yes" if r["keeps_up"] else "NO",
            )
        console.print(t)
    for key in ("max_direct", "max_group10"):
        if key not in results:
            continue
        m = results[key]
        t = Table(title=f"Max throughput search: {m['scenario']}")
        for col in (
            "offered msg/s",
            "acked msg/s",
            "deliv/s",
            "server CPU",
            "gen CPU",
            "ack p99 ms",
            "deliver p99 ms",
            "sustained",
        ):
            t.add_column(col, justify="right")
        for s in m["steps"]:
            t.add_row(
                f"{s['offered_rate']:g}",
                f"{s['acked_per_s']:.0f}",
                f"{s['deliveries_per_s']:.0f}",
                f"{s['server_cpu_pct']:.0f}%",
                f"{s['gen_cpu_pct']:.0f}%",
                f"{s['ack_p99_ms']:.1f}",
                f"{s['deliver_p99_ms']:.1f}",
                "yes" if s["keeps_up"] else "NO",
            )
        console.print(t)
        console.print(
            f"  max sustained: {fmt(m['max_sustained_msgs_per_s'])} acked msgs/s,"
            f" {fmt(m['max_sustained_deliveries_per_s'])} deliveries/s; saturated first:"
            f" [bold]{m['saturated_side']}[/] (server {m['at_failure_server_cpu_pct']:.0f}% vs"
            f" generator {m['at_failure_gen_cpu_pct']:.0f}% CPU at {fmt(m['first_failing_offered_rate'])} msgs/s offered)"
        )
    if "idle" in results:
        i = results["idle"]
        t = Table(
            title=f"Idle authenticated connections (baseline RSS {i['baseline_rss_mb']:.1f} MiB)"
        )
        for col in ("connections", "server RSS MiB", "RSS - baseline MiB", "KiB/connection"):
            t.add_column(col, justify="right")
        for _k, v in i.items():
            if isinstance(v, dict):
                t.add_row(
                    str(v["connections"]),
                    f"{v['rss_mb']:.1f}",
                    f"{v['rss_minus_baseline_mb']:.1f}",
                    f"{v['kib_per_connection']:.1f}",
                )
        console.print(t)
    for kind, prof in results.get("profiles", {}).items():
        p = prof.get("pyspy", {})
        if "self" in p:
            t = Table(
                title=f"py-spy, server during {kind}: {p['python_samples']} Python samples"
                f" ({p['loop_or_waiting_samples']} in the uvloop C loop or idle, left out)"
            )
            t.add_column("self %", justify="right")
            t.add_column("function (self)")
            t.add_column("incl %", justify="right")
            t.add_column("function (inclusive)")
            for (fs, ps), (fi, pi) in zip(p["self"][:25], p["inclusive"][:25], strict=False):
                t.add_row(f"{ps}", fs[:80], f"{pi}", fi[:80])
            console.print(t)
        if "perf_dso" in prof:
            t = Table(title=f"perf, server during {kind}: on-CPU samples by binary and symbol")
            t.add_column("%", justify="right")
            t.add_column("binary")
            t.add_column("%", justify="right")
            t.add_column("binary / symbol")
            for (d, dp), (sy, sp) in itertools.zip_longest(
                prof["perf_dso"], prof["perf_sym"][:20], fillvalue=("", 0.0)
            ):
                t.add_row(f"{dp:.1f}" if d else "", d, f"{sp:.1f}" if sy else "", sy[:90])
            console.print(t)


def fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:,.0f}"


# --------------------------------------------------------------------------- main


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    b = Bench(args)
    parts = args.only
    res = b.results
    from importlib.metadata import version

    res["environment"] = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "synchronous": args.synchronous,
        "chatd_version": version("chatd"),
        "git": git_rev(),
        "server_affinity": "core 0 (taskset -c 0)",
        "generator_affinity": sorted(os.sched_getaffinity(0)),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "args": {k: v for k, v in vars(args).items() if k != "json"},
    }
    try:
        if "direct" in parts:
            res["direct"] = (await b.fixed("direct", args.direct_rate)).as_dict()
        if "group10" in parts:
            res["group10"] = (await b.fixed("group10", args.group10_rate)).as_dict()
        if "group50" in parts:
            res["group50"] = (await b.fixed("group50", args.group50_rate)).as_dict()
        if "max" in parts:
            res["max_direct"] = await b.find_max("direct", args.direct_rate)
            res["max_group10"] = await b.find_max("group10", args.group10_rate)
        if "latency" in parts:
            for kind, key in (("direct", "max_direct"), ("group10", "max_group10")):
                half = args.half_rate if kind == "direct" and args.half_rate else None
                if half is None and key in res and res[key]["max_sustained_msgs_per_s"]:
                    half = round(res[key]["max_sustained_offered_rate"] / 2)
                if half is None:
                    half = (args.direct_rate if kind == "direct" else args.group10_rate) / 2
                    b.log(f"[latency] no max measured for {kind}; using {half:g} msgs/s")
                r = await b.fixed(kind, half)
                res[f"latency_{kind}"] = r.as_dict()
        if "idle" in parts:
            res["idle"] = await b.idle()
    finally:
        for s in b.servers:
            s.stop()
        if not args.keep:
            shutil.rmtree(b.workdir, ignore_errors=True)
    return res


def git_rev() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            check=True,
        ).stdout.strip()
    return "?"


def main() -> int:
    p = argparse.ArgumentParser(
        description="chatd messaging-core benchmark: server CPU per message/delivery, max "
        "throughput, latency at half max, RSS per idle connection. Starts its own server on "
        "core 0; the generator runs on core 1; targets 127.0.0.1 only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    p.add_argument("--direct-rate", type=float, default=2000, help="msgs/s offered, direct")
    p.add_argument("--group10-rate", type=float, default=500, help="msgs/s offered, groups of 10")
    p.add_argument("--group50-rate", type=float, default=150, help="msgs/s offered, groups of 50")
    p.add_argument(
        "--direct-pairs", type=int, default=100, help="direct conversations (2 conns each)"
    )
    p.add_argument("--group10-groups", type=int, default=20, help="groups of 10 (10 conns each)")
    p.add_argument("--group50-groups", type=int, default=4, help="groups of 50 (50 conns each)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the window")
    p.add_argument("--measure", type=float, default=10.0, help="steady-state window, seconds")
    p.add_argument("--step", type=float, default=1.25, help="rate multiplier per max step")
    p.add_argument("--step-warmup", type=float, default=2.0)
    p.add_argument("--step-measure", type=float, default=4.0)
    p.add_argument("--max-seconds", type=float, default=70.0, help="time bound of one max search")
    p.add_argument(
        "--max-p99-ms",
        type=float,
        default=250.0,
        help="a step whose ack or deliver p99 passes this is not sustained",
    )
    p.add_argument(
        "--half-rate",
        type=float,
        help="direct rate for the latency part (default: half the max found)",
    )
    p.add_argument("--idle-counts", default="5000,10000", help="cumulative idle connection counts")
    p.add_argument("--idle-settle", type=float, default=3.0, help="seconds before reading RSS")
    p.add_argument(
        "--synchronous", default="FULL", choices=("FULL", "NORMAL"), help="SQLite synchronous"
    )
    p.add_argument("--server-log-level", default="WARNING")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server during the fixed-load windows (perturbs CPU figures)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the temp dir (db, server logs, profiles)"
    )
    p.add_argument("--quiet", action="store_true")
    p.add_argument(
        "--franked",
        action="store_true",
        help="every send carries a franking commitment fc (the SDK franks every message)",
    )
    args = p.parse_args()
    if args.franked:
        global FRANKED
        FRANKED = os.urandom(32)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = set(args.only) - set(PARTS)
    if bad:
        p.error(f"unknown parts {sorted(bad)}")
    args.idle_counts = [int(x) for x in args.idle_counts.split(",")]

    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        p.error("needs 2 cores: server on core 0, generator on core 1")
    os.sched_setaffinity(0, {1})
    raise_nofile(max(args.idle_counts) * 2 + 1024)
    try:
        import uvloop
    except ImportError:
        raise SystemExit("uvloop is required for the generator") from None
    results = uvloop.run(amain(args))
    from rich.console import Console

    render(results, Console(width=max(Console().width, 200)))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
