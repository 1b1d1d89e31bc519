"""The coordinator of ``chatload run`` (and ``chatload idle``): provisions or loads accounts and
conversations, hands clients and schedules to workers over TCP, merges their per-second reports
and HDR histograms, reads the server's CPU and RSS from /proc when it is local, and builds the
result (JSON-ready dict)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .hist import merge
from .procstat import (
    LocalServer,
    cpu_model,
    pin,
    proc_cpu_seconds,
    proc_nofile,
    proc_rss_bytes,
    raise_nofile,
)
from .proto import Client, Stats, error_name, gather_limited
from .provision import Provisioning, provision, provisioning_summary, register_accounts, url_for
from .report import Aggregator, Live, saturation
from .scenario import Scenario, block_rate
from .worker import Channel


@dataclass
class RunOptions:
    scenario: Scenario
    provisioned: Path | None = None
    save_provisioning: Path | None = None
    workers: int = 1
    cpus: list[int] = field(default_factory=list)
    server_pid: int | None = None
    spawn_server: bool = False
    server_cpu: int | None = 0
    server_db: Path | None = None
    synchronous: str = "FULL"
    listen: str = "127.0.0.1:0"
    remote_workers: int = 0
    drain_s: float = 15.0
    quiet: bool = False


class ServerProbe:
    """CPU seconds and RSS of a local server process, from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)


def environment(opts_workers: int, cpus: list[int], server_cpu: int | None) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "chatd_version": version("chatd"),
        "workers": opts_workers,
        "worker_cpus": cpus,
        "server_cpu": server_cpu,
    }


@contextlib.asynccontextmanager
async def maybe_server(opts: RunOptions, console: Console) -> Any:
    """Yields (targets, probe or None, server or None)."""
    if not opts.spawn_server:
        probe = ServerProbe(opts.server_pid) if opts.server_pid else None
        yield opts.scenario.targets, probe, None
        return
    workdir = Path(tempfile.mkdtemp(prefix="chatload-"))
    server = LocalServer(
        workdir, cpu=opts.server_cpu, synchronous=opts.synchronous, db=opts.server_db
    )
    try:
        await server.wait_ready()
        if not opts.quiet:
            pinned = "unpinned" if opts.server_cpu is None else f"taskset -c {opts.server_cpu}"
            console.print(f"spawned chatd pid {server.pid} at {server.url} ({pinned})")
        yield (server.url,), ServerProbe(server.pid), server
    finally:
        server.stop()


def build_assignments(
    s: Scenario, prov: Provisioning, targets: tuple[str, ...], nworkers: int, run: int
) -> list[dict[str, Any]]:
    """Connection (client) i = device i % D of account i // D (D = devices_per_account) goes to
    worker i % W and to target i % len(targets). A route (sending connection, conv) runs on its
    connection's worker with its block's rate split by route count; each sending account's
    routes are spread over all its devices, so every device sends."""
    accounts = prov.accounts[: s.accounts]
    nd = s.devices_per_account
    member_of: dict[int, list[int]] = {}
    for c in prov.convs:
        for m in c.members:
            member_of.setdefault(m, []).append(c.conv)
    out: list[dict[str, Any]] = []
    for w in range(nworkers):
        out.append(
            {
                "type": "assign",
                "worker": w,
                "run": run,
                "seed": s.seed,
                "duration": s.duration,
                "ramp_up": s.ramp_up,
                "churn_per_s": s.churn_per_s / nworkers,
                "message": {"kind": s.message_kind, "size": s.message_size.as_dict()},
                "clients": [
                    {
                        "i": a.i * nd + d,
                        "url": url_for(targets, a.i * nd + d),
                        "account": a.account,
                        "device": dev.device,
                        "seed": dev.seed,
                        "convs": member_of.get(a.i, []),
                    }
                    for a in accounts
                    for d, dev in enumerate(a.devices(nd))
                    if (a.i * nd + d) % nworkers == w
                ],
                "blocks": [],
            }
        )
    for bi, b in enumerate(s.blocks):
        convs = [c for c in prov.convs if c.block == bi]
        account_routes: list[tuple[int, int]] = []
        for k in range(max((len(c.senders) for c in convs), default=0)):
            for c in convs:  # consecutive messages go to different conversations
                if k < len(c.senders):
                    account_routes.append((c.senders[k], c.conv))
        rate = block_rate(b, len(account_routes))  # per sending account, not per device
        routes = [(a * nd + d, conv) for d in range(nd) for a, conv in account_routes]
        for w in range(nworkers):
            mine = [r for r in routes if r[0] % nworkers == w]
            if mine:
                out[w]["blocks"].append(
                    {"routes": mine, "rate": rate * len(mine) / len(routes), "block": bi}
                )
    return out


async def start_workers(
    opts: RunOptions, console: Console
) -> tuple[list[Channel], list[subprocess.Popen[bytes]], asyncio.Server]:
    host, _, port = opts.listen.rpartition(":")
    arrived: asyncio.Queue[Channel] = asyncio.Queue()

    async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await arrived.put(Channel(r, w))

    srv = await asyncio.start_server(on_conn, host or "127.0.0.1", int(port))
    bound = srv.sockets[0].getsockname()
    procs: list[subprocess.Popen[bytes]] = []
    for w in range(opts.workers):
        cmd = [sys.executable, "-m", "chatload", "worker", "--connect", f"127.0.0.1:{bound[1]}"]
        if opts.cpus:
            cmd += ["--cpu", str(opts.cpus[w % len(opts.cpus)])]
        procs.append(subprocess.Popen(cmd))  # noqa: ASYNC220 - started once, not awaited
    total = opts.workers + opts.remote_workers
    if opts.remote_workers and not opts.quiet:
        console.print(
            f"waiting for {opts.remote_workers} remote worker(s):"
            f" chatload worker --connect {bound[0]}:{bound[1]}"
        )
    chans = []
    for _ in range(total):
        ch = await asyncio.wait_for(arrived.get(), 120)
        hello = await ch.recv()
        if hello.get("type") != "hello":
            raise RuntimeError(f"bad worker hello {hello!r}")
        chans.append(ch)
    return chans, procs, srv


async def run_scenario(opts: RunOptions, console: Console) -> dict[str, Any]:
    s = opts.scenario
    if s.kind == "idle":
        return await run_idle(opts, console, s.accounts)
    raise_nofile(max(65536, s.connections * 2 + 1024))
    pin(opts.cpus[0] if opts.cpus else None)
    async with maybe_server(opts, console) as (targets, probe, _server):
        if opts.provisioned:
            prov = Provisioning.load(opts.provisioned)
            prov.check(s)
        else:
            if not opts.quiet:
                console.print(f"provisioning {s.accounts} accounts ...")
            prov = await provision(s, targets)
            if opts.save_provisioning:
                prov.save(opts.save_provisioning)
        if not opts.quiet:
            console.print(f"provisioning: {provisioning_summary(prov)}", highlight=False)
        return await _drive(opts, console, s, prov, targets, probe)


async def _drive(
    opts: RunOptions,
    console: Console,
    s: Scenario,
    prov: Provisioning,
    targets: tuple[str, ...],
    probe: ServerProbe | None,
) -> dict[str, Any]:
    run = int.from_bytes(os.urandom(4), "little")
    chans, procs, tcp = await start_workers(opts, console)
    nworkers = len(chans)
    assigns = build_assignments(s, prov, targets, nworkers, run)
    try:
        t_setup = time.monotonic()
        for ch, a in zip(chans, assigns, strict=True):
            await ch.send(a)
        readies = [await asyncio.wait_for(ch.recv(), 600) for ch in chans]
        connected = sum(int(r["connected"]) for r in readies)
        if not opts.quiet:
            console.print(
                f"{connected}/{s.connections} connections ({s.accounts} accounts x"
                f" {s.devices_per_account} device(s)) logged in over"
                f" {nworkers} worker(s) in {time.monotonic() - t_setup:.1f} s"
            )
        t0 = time.time_ns() + 500_000_000
        for ch in chans:
            await ch.send({"type": "start", "t0": t0})
        members = receivers(s, prov)
        agg = Aggregator(nworkers)
        cpu_at: dict[int, float] = {}
        rss_at: dict[int, int] = {}
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def pump(ch: Channel) -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    await inbox.put(await ch.recv())

        async def sample() -> None:
            if probe is None:
                return
            k = 0
            while True:
                await asyncio.sleep(max(0.0, (t0 + k * 1_000_000_000 - time.time_ns()) / 1e9))
                with contextlib.suppress(OSError):
                    cpu_at[k] = probe.cpu()
                    rss_at[k] = probe.rss()
                    if k - 1 in cpu_at:
                        agg.server_samples[k] = {
                            "server_cpu_pct": round(100 * (cpu_at[k] - cpu_at[k - 1]), 1),
                            "server_rss_mb": round(rss_at[k] / 2**20, 1),
                        }
                k += 1

        pumps = [asyncio.create_task(pump(ch)) for ch in chans]
        sampler = asyncio.create_task(sample())
        end_ns = t0 + int(s.duration * 1e9)
        finals: list[dict[str, Any]] = []
        title = (
            f"chatload {s.name}: {nworkers} worker(s), {connected} clients -> {', '.join(targets)}"
        )
        with Live(console, title, opts.quiet) as live:
            stopped = False
            while len(finals) < nworkers:
                try:
                    msg = await asyncio.wait_for(inbox.get(), 1.0)
                except TimeoutError:
                    msg = {}
                if msg.get("type") == "interval":
                    row = agg.add(msg)
                    if row is not None:
                        live.update(row)
                elif msg.get("type") == "final":
                    finals.append(msg)
                now = time.time_ns()
                if not stopped and now >= end_ns:
                    drained = (
                        sum(agg.unacked.values()) == 0
                        and agg.cum.get("delivers", 0) >= agg.expected_deliveries(members)
                        and agg.cum.get("sent", 0) > 0
                    )
                    if drained or now >= end_ns + int(opts.drain_s * 1e9):
                        stopped = True
                        if not drained:
                            live.note("drain timeout: counting what has not arrived as lost")
                        for ch in chans:
                            await ch.send({"type": "stop"})
        sampler.cancel()
        for p in pumps:
            p.cancel()
        agg.flush()
        members = receivers(s, prov)
        env = environment(len(finals), opts.cpus, opts.server_cpu if opts.spawn_server else None)
        env["connections_logged_in"] = connected
        env["devices_per_account"] = s.devices_per_account
        return result_dict(
            s, members, provisioning_summary(prov), agg, finals, cpu_at, rss_at, targets, probe, env
        )
    finally:
        for ch in chans:
            ch.close()
        tcp.close()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def receivers(s: Scenario, prov: Provisioning) -> dict[int, int]:
    """Connections a message of each conversation reaches, counting the sending connection
    (which gets the ack instead): every device of every member."""
    return {c.conv: len(c.members) * s.devices_per_account for c in prov.convs}


def result_dict(
    s: Scenario,
    members: dict[int, int],
    prov_summary: dict[str, Any],
    agg: Aggregator,
    finals: list[dict[str, Any]],
    cpu_at: dict[int, float],
    rss_at: dict[int, int],
    targets: tuple[str, ...],
    probe: ServerProbe | None,
    env: dict[str, Any],
    steady_last: int | None = None,
) -> dict[str, Any]:
    """The result of a run: summary (totals, steady-window rates, merged latency histograms),
    server figures when local, and the per-second intervals. ``members[conv]`` is how many
    receiving connections a message of conv has, counting the sender's own (which gets the ack
    instead). The steady window is the intervals after the ramp-up up to ``duration`` (or up to
    interval ``steady_last``), the last one counted for the part of its second it lasted."""
    cum: dict[str, int] = {}
    errors: dict[str, int] = {}
    frames: dict[str, int] = {}
    acked_by_conv: dict[int, int] = {}
    for f in finals:
        for k, v in f["cum"].items():
            cum[k] = cum.get(k, 0) + int(v)
        for code, n in f["cum_errors"].items():
            errors[error_name(code)] = errors.get(error_name(code), 0) + int(n)
        for k, v in f["frames_sent"].items():
            frames[k] = frames.get(k, 0) + int(v)
        for conv, n in f["acked_by_conv"].items():
            acked_by_conv[int(conv)] = acked_by_conv.get(int(conv), 0) + int(n)
    expected = sum(n * (members.get(c, 1) - 1) for c, n in acked_by_conv.items())
    rows = agg.intervals
    first = int(s.ramp_up) + (0 if s.ramp_up == int(s.ramp_up) else 1) + 1
    last = int(s.duration) if steady_last is None else steady_last
    steady = [r for r in rows if first <= r["t"] <= last] or [r for r in rows if r["t"] <= last]
    steady = steady or rows[:1]
    window = sum(float(r.get("seconds", 1.0)) for r in steady) or 1.0
    acks_w = sum(r["acks"] for r in steady)
    dels_w = sum(r["delivers"] for r in steady)
    gen = max((r["gen_cpu_pct_max"] for r in steady), default=0.0)
    gen_avg = sum(r["gen_cpu_pct_max"] for r in steady) / window
    server: dict[str, Any] | None = None
    if probe is not None and steady:
        k0, k1 = steady[0]["t"] - 1, steady[-1]["t"]
        if k0 in cpu_at and k1 in cpu_at:
            cpu = cpu_at[k1] - cpu_at[k0]
            server = {
                "pid": probe.pid,
                "cpu_s": round(cpu, 3),
                "cpu_pct": round(100 * cpu / window, 1),
                "us_per_msg": round(1e6 * cpu / acks_w, 2) if acks_w else None,
                "us_per_delivery": round(1e6 * cpu / dels_w, 2) if dels_w else None,
                "rss_mb": round(rss_at[k1] / 2**20, 1),
            }
    ack = merge([f["ack_total"] for f in finals])
    dl = merge([f["del_total"] for f in finals])
    summary = {
        "sent": cum.get("sent", 0),
        "acked": cum.get("acks", 0),
        "failed": cum.get("failed", 0),
        "unacked": sum(int(f["unacked"]) for f in finals),
        "delivered": cum.get("delivers", 0),
        "expected_deliveries": expected,
        "lost": max(0, expected - cum.get("delivers", 0)),
        "duplicates": cum.get("dup_delivers", 0),
        "dup_acks": cum.get("dup_acks", 0),
        "own_in_sync": cum.get("own", 0),
        "sync_overlaps": cum.get("sync_overlaps", 0),
        "reconnects": cum.get("reconnects", 0),
        "connections_held": max((int(r["conns"]) for r in rows), default=0),
        "connections_held_steady_min": min(
            (int(r.get("conns_low", r["conns"])) for r in steady), default=0
        ),
        "errors": errors,
        "error_count": sum(errors.values()),
        "window_s": round(window, 3),
        "acked_per_s": round(acks_w / window, 1),
        "deliveries_per_s": round(dels_w / window, 1),
        "gen_cpu_pct_max": round(gen, 1),
        "gen_cpu_pct_avg": round(gen_avg, 1),
        "generator_saturated": gen_avg >= 90.0,
        "saturated": saturation(gen_avg, server["cpu_pct"] if server else None),
        "ack": ack.summary(),
        "deliver": dl.summary(),
    }
    return {
        "tool": "chatload",
        "mode": "run",
        "scenario": s.as_dict(),
        "targets": list(targets),
        "environment": env,
        "provisioning": prov_summary,
        "summary": summary,
        "server": server,
        "frames_sent": frames,
        "intervals": rows,
    }


# --------------------------------------------------------------------------- idle


async def run_idle(opts: RunOptions, console: Console, connections: int) -> dict[str, Any]:
    """Hold ``connections`` authenticated idle connections (each registers its own account on
    its own connection and stays) and report the server's RSS per connection from /proc. Runs
    in this process (pin it with ``--cpu``); ``--counts`` style steps are cumulative."""
    raise_nofile(connections * 2 + 1024)
    pin(opts.cpus[0] if opts.cpus else None)
    async with maybe_server(opts, console) as (targets, probe, _server):
        await asyncio.sleep(1.0)
        base = probe.rss() if probe else None
        stats = Stats()
        tag = os.urandom(3).hex()
        t = time.monotonic()
        clients = [Client(i, url_for(targets, i), stats) for i in range(connections)]
        ok = await gather_limited(
            [_idle_open(c, f"i{tag}_{c.idx}") for c in clients],
            200,
        )
        setup = time.monotonic() - t
        held = sum(ok)
        if not opts.quiet:
            console.print(f"{held} authenticated idle connections in {setup:.1f} s; settling ...")
        await asyncio.sleep(3.0)
        alive = sum(1 for c in clients if c.connected)
        result: dict[str, Any] = {
            "tool": "chatload",
            "mode": "idle",
            "targets": list(targets),
            "connections": alive,
            "setup_s": round(setup, 2),
            "connects_per_s": round(held / setup, 1) if setup else None,
            "environment": environment(
                1, opts.cpus, opts.server_cpu if opts.spawn_server else None
            ),
        }
        if probe is not None and base is not None:
            rss = probe.rss()
            result["server"] = {
                "pid": probe.pid,
                "baseline_rss_mb": round(base / 2**20, 1),
                "rss_mb": round(rss / 2**20, 1),
                "kib_per_connection": round((rss - base) / max(1, alive) / 1024, 2),
                "nofile": proc_nofile(probe.pid),
            }
        await gather_limited([c.close() for c in clients], 500)
        return result


async def _idle_open(c: Client, handle: str) -> bool:
    try:
        await c.open(register_handle=handle)
    except Exception:
        return False
    return True


async def provision_only(
    s: Scenario, out: Path, targets: tuple[str, ...] | None, console: Console
) -> Provisioning:
    raise_nofile(65536)
    prov = await provision(s, targets)
    prov.save(out)
    console.print(f"provisioned {provisioning_summary(prov)} -> {out}", highlight=False)
    return prov


__all__ = ["RunOptions", "provision_only", "register_accounts", "run_idle", "run_scenario"]
