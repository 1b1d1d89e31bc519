#!/usr/bin/env python3
"""1 node vs 2 nodes: what the Redis hop costs (issue 4's benchmark).

Both sides use the SAME store, a throwaway PostgreSQL this script starts (initdb + pg_ctl in a
temp dir on a free port, its default durability: fsync and synchronous_commit on), a fresh
database per run:

* ``1node``: one ``chatd serve --db postgresql://...`` with the in-process broker;
* ``2node``: two ``chatd serve --db postgresql://... --broker redis://...`` nodes and a
  throwaway ``redis-server`` this script starts (no persistence).

Every server-side process (chatd nodes, redis-server, PostgreSQL and its backends) is pinned to
core 0 with ``taskset -c 0``; the load generator (chatload's coordinator and worker) to core 1.
So both configurations get the same CPU budget, and "max throughput" compares what one core does
with and without the Redis hop (not how two nodes scale on two cores: this machine has only two).

Load: chatload (open model, latency from the intended send time, exact accounting) with groups of
10; client i connects to node i % N, and a group's members are consecutive accounts, so every
group has 5 members on each node and every message is delivered on both nodes (4 deliveries on
the sender's node, 5 on the other). Offered loads: ``--rates`` msgs/s (each message = 9
deliveries) plus a max-throughput run at ``--max-rate`` (overload: what is sustained, and which
side saturated). Each run is done ``--repeat`` times, the configurations interleaved; runs of the
same point that differ by more than 15 % are flagged (other people share this machine), and a run
during which other processes took more than ``--max-foreign`` % of core 0 is done again (up to
``--attempts``; the discarded ones are kept in the JSON).

Figures, over chatload's steady window (after the ramp-up): CPU seconds from /proc/PID/stat
(utime+stime, all threads) of every chatd process and of redis-server, divided by the deliveries
in the window (**µs per delivery, chatd + Redis**, the issue's figure), PostgreSQL's separately
(postmaster + backends + reaped children), core 0's and core 1's busy share from /proc/stat (what
else ran there: other people's work shows up as ``core0_other_pct``), deliveries/s, p50/p99
send-to-deliver latency, and from each node's /metrics the broker lag (heartbeat round trips),
publish/receive counters and the mean group-commit batch.

    .venv/bin/python loadtest/bench_cluster.py --json loadtest/results/cluster.json
    .venv/bin/python loadtest/bench_cluster.py --rates 500 --max-rate 0 --repeat 1  # quick
    .venv/bin/python loadtest/bench_cluster.py --only 2node --rates 1500 --perf  # + perf, core 0
    # what the extra CPU of 2 nodes is made of (experiments, see --only):
    .venv/bin/python loadtest/bench_cluster.py --only 1node,2node-one,2node-local \
        --rates 750 1500 --max-rate 0 --json loadtest/results/cluster-decomposition.json

Only 127.0.0.1 is ever a target. Linux only (/proc, taskset).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from chatload.procstat import (
    CLK_TCK,
    HOST,
    REPO,
    SERVER_NAME,
    chatd_executable,
    cpu_model,
    free_port,
    http_get,
    pin,
    proc_cpu_seconds,
    proc_rss_bytes,
    raise_nofile,
    scrape_metrics,
)
from chatload.provision import provision
from chatload.run import RunOptions, _drive
from chatload.scenario import Scenario
from rich.console import Console

from chatd.settings import StoreSettings

SERVER_CPU = 0
GEN_CPU = 1
DISAGREE = 0.15
PG_USER = "nobody"  # initdb refuses root; as root the server runs as this user


def commit_interval(given: float | None) -> float:
    """The ``[store] commit_interval`` the nodes run with: ``--commit-interval`` (0 included)
    or chatd's default, as the results' JSON records it."""
    return StoreSettings().commit_interval if given is None else given


# --------------------------------------------------------------------------- processes


def _pg_bindir() -> str:
    found = shutil.which("initdb")
    candidates = [os.path.dirname(found)] if found else []
    candidates += [
        str(p)
        for p in sorted(
            Path("/usr/lib/postgresql").glob("*/bin"),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    ]
    for d in candidates:
        if os.access(os.path.join(d, "initdb"), os.X_OK):
            return d
    raise SystemExit("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")


class Postgres:
    """A throwaway PostgreSQL cluster pinned to ``cpu``; durable by default (fsync and
    synchronous_commit on, as a deployment would run it)."""

    def __init__(self, cpu: int, fast: bool) -> None:
        self.bindir = _pg_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.fast = fast
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            u = pwd.getpwnam(PG_USER)
            os.chown(self.dir, u.pw_uid, u.pw_gid)
            self.as_user = ["runuser", "-u", PG_USER, "--"]
        self.cpu = cpu

    def _run(self, *args: str) -> None:
        cmd = ["taskset", "-c", str(self.cpu), *self.as_user]
        cmd += [os.path.join(self.bindir, args[0]), *args[1:]]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=self.dir, timeout=120)

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if self.fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", opts, "-l", f"{self.dir}/log", "-w", "start"
        )

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{db}"

    async def create(self, name: str) -> str:
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return self.dsn(name)

    async def drop(self, name: str) -> None:
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def cpu_seconds(self) -> float:
        """The postmaster, its live children (backends, walwriter, checkpointer, ...) and what
        its reaped children used (cutime+cstime)."""
        pm = self.postmaster()
        total = _stat_fields(pm, with_children=True)
        for child in _children(pm):
            with contextlib.suppress(OSError, ValueError):
                total += _stat_fields(child, with_children=False)
        return total


def ctx_switches(pid: int) -> int:
    """Voluntary + involuntary context switches of every thread of ``pid``."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if "ctxt_switches:" in line:  # voluntary_... and nonvoluntary_...
                    total += int(line.split()[1])
    return total


def _stat_fields(pid: int, with_children: bool) -> float:
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = int(fields[11]) + int(fields[12])
    if with_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLK_TCK


def _children(ppid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == ppid:
            out.append(int(entry))
    return out


class Redis:
    def __init__(self, cpu: int) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found: apt-get install redis-server")
        self.dir = Path(tempfile.mkdtemp(prefix="bench-redis-"))
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), binary, "--port", str(self.port), "--bind", HOST,
             "--dir", str(self.dir), "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def wait(self) -> None:
        for _ in range(200):
            with contextlib.suppress(OSError):
                r, w = await asyncio.open_connection(HOST, self.port)
                w.write(b"PING\r\n")
                ok = (await r.readline()).startswith(b"+PONG")
                w.close()
                if ok:
                    return
            await asyncio.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """``chatd serve`` pinned to ``cpu`` with the per-connection rate limit raised."""

    def __init__(
        self,
        workdir: Path,
        cpu: int,
        node_id: str,
        db: str,
        broker: str | None,
        commit_interval: float | None = None,
    ) -> None:
        self.port = free_port()
        self.node_id = node_id
        self.log = workdir / f"{node_id}-{self.port}.log"
        env = dict(os.environ)
        env.update(
            CHATD_LIMITS__FRAMES_PER_SECOND="1000000",
            CHATD_LIMITS__FRAME_BURST="1000000",
            CHATD_LOG__LEVEL="WARNING",
            CHATD_LOG__FORMAT="text",
            CHATD_SERVER__NAME=SERVER_NAME,
            # Groups of accounts that never met: members, not invitations (SPEC 18).
            CHATD_CONSENT__ADD_ME="everyone",
        )
        if commit_interval is not None:
            env["CHATD_STORE__COMMIT_INTERVAL"] = str(commit_interval)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        cmd = ["taskset", "-c", str(cpu), chatd_executable(), "serve", "--host", HOST]
        cmd += ["--port", str(self.port), "--db", db, "--node-id", node_id]
        if broker:
            cmd += ["--broker", broker]
        self._logf = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._logf, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.node_id} exited; see {self.log}")
            with contextlib.suppress(OSError):
                if b" 200 " in (await http_get(self.port, "/readyz")).split(b"\r\n", 1)[0] + b" ":
                    return
            await asyncio.sleep(0.05)
        raise SystemExit(f"{self.node_id} not ready; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()


# --------------------------------------------------------------------------- measuring


def core_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                v = [int(x) for x in vals]
                idle = v[3] + v[4]  # idle + iowait
                out[int(name[3:])] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


class ClusterProbe:
    """What chatload's coordinator samples once a second (``cpu()`` then ``rss()``): the summed
    CPU of every chatd node and redis-server (the issue's figure). Each ``cpu()`` call also
    records every component and the cores, so any window can be broken down afterwards (call k
    is chatload's second k)."""

    def __init__(
        self,
        nodes: list[Node],
        redis: Redis | None,
        pg: Postgres,
        perf: Perf | None = None,
        perf_at: int = 0,
    ) -> None:
        self.nodes, self.redis, self.pg = nodes, redis, pg
        self.pid = nodes[0].pid
        self.snaps: list[dict[str, Any]] = []
        self.perf, self.perf_at = perf, perf_at

    def cpu(self) -> float:
        if self.perf is not None and len(self.snaps) == self.perf_at:
            self.perf.start()  # the steady window begins
        snap: dict[str, Any] = {n.node_id: proc_cpu_seconds(n.pid) for n in self.nodes}
        if self.redis is not None:
            snap["redis"] = proc_cpu_seconds(self.redis.pid)
        snap["postgres"] = self.pg.cpu_seconds()
        snap["cores"] = core_ticks()
        snap["ctx"] = {n.node_id: ctx_switches(n.pid) for n in self.nodes}
        snap["t"] = time.monotonic()
        self.snaps.append(snap)
        return sum(v for k, v in snap.items() if k not in ("postgres", "cores", "t", "ctx"))

    def rss(self) -> int:
        return sum(proc_rss_bytes(n.pid) for n in self.nodes)

    def window(self, k0: int, k1: int, deliveries: int, acks: int) -> dict[str, Any]:
        a, b = self.snaps[k0], self.snaps[k1]
        secs = b["t"] - a["t"]
        comp = {k: b[k] - a[k] for k in a if k not in ("cores", "t", "ctx")}
        ctx = {k: b["ctx"][k] - a["ctx"][k] for k in a["ctx"]}
        chatd = sum(v for k, v in comp.items() if k.startswith("node-"))
        redis = comp.get("redis", 0.0)
        pg = comp["postgres"]
        cores = {}
        for c in a["cores"]:
            busy = b["cores"][c][0] - a["cores"][c][0]
            total = b["cores"][c][1] - a["cores"][c][1]
            cores[c] = round(100 * busy / total, 1) if total else None
        server_side = chatd + redis + pg

        def per(x: float, n: int) -> float | None:
            return round(1e6 * x / n, 2) if n else None

        return {
            "seconds": round(secs, 2),
            "cpu_s": {k: round(v, 3) for k, v in comp.items()},
            "cpu_pct": {k: round(100 * v / secs, 1) for k, v in comp.items()},
            "us_per_delivery_chatd_redis": per(chatd + redis, deliveries),
            "us_per_delivery_chatd": per(chatd, deliveries),
            "us_per_delivery_redis": per(redis, deliveries),
            "us_per_delivery_postgres": per(pg, deliveries),
            "us_per_delivery_all": per(server_side, deliveries),
            "us_per_msg_chatd_redis": per(chatd + redis, acks),
            "server_side_pct": round(100 * server_side / secs, 1),
            "chatd_ctx_switches_per_delivery": round(sum(ctx.values()) / deliveries, 3)
            if deliveries
            else None,
            "core_busy_pct": cores,
            "core0_other_pct": None
            if cores.get(SERVER_CPU) is None
            else round(max(0.0, cores[SERVER_CPU] - 100 * server_side / secs), 1),
        }


def hist_quantile(m: dict[str, float], name: str, q: float) -> float | None:
    """A quantile (upper bucket bound) of a Prometheus histogram from a scrape."""
    buckets = sorted(
        (float(k.split('le="', 1)[1].rstrip('"}')), v)
        for k, v in m.items()
        if k.startswith(name + "_bucket{") and "+Inf" not in k
    )
    total = m.get(name + "_count", 0.0)
    if not total:
        return None
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def node_metrics(m: dict[str, float]) -> dict[str, Any]:
    batches = m.get("chatd_store_batch_size_count", 0.0)
    out: dict[str, Any] = {
        "deliveries": m.get("chatd_deliveries_total"),
        "commits": batches,
        "mean_batch": round(m["chatd_store_batch_size_sum"] / batches, 1) if batches else None,
        "commit_p99_s_le": hist_quantile(m, "chatd_store_commit_seconds", 0.99),
    }
    if "chatd_broker_pending" in m:
        n = m.get("chatd_broker_lag_seconds_count", 0.0)
        out.update(
            broker_published=m.get("chatd_broker_published_total"),
            broker_received=m.get("chatd_broker_received_total"),
            broker_dropped=m.get("chatd_broker_dropped_total"),
            broker_flushes=m.get("chatd_broker_flushes_total"),
            lag_heartbeats=n,
            lag_mean_ms=round(1e3 * m["chatd_broker_lag_seconds_sum"] / n, 3) if n else None,
            lag_p99_ms_le=None
            if not n
            else 1e3 * (hist_quantile(m, "chatd_broker_lag_seconds", 0.99) or 0.0),
        )
    return out


# --------------------------------------------------------------------------- one run


@dataclass
class Point:
    name: str
    rate: float  # msgs/s offered
    groups: int
    size: int


def scenario(p: Point, targets: list[str], duration: float, ramp: float) -> Scenario:
    return Scenario.from_dict(
        {
            "name": f"cluster-{p.name}",
            "accounts": p.groups * p.size,
            "targets": targets,
            "duration": duration,
            "ramp_up": ramp,
            "message": {"kind": "text", "size": {"dist": "fixed", "bytes": 100}},
            "conversations": [
                {"type": "group", "count": p.groups, "size": p.size, "rate_total": p.rate}
            ],
        }
    )


class Bench:
    def __init__(self, args: argparse.Namespace, console: Console) -> None:
        self.args = args
        self.console = console
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
        self.pg = Postgres(SERVER_CPU, fast=args.pg_fast)
        self.redis: Redis | None = None
        self.runs = 0

    async def start(self) -> None:
        self.pg.start()
        self.redis = Redis(SERVER_CPU)
        await self.redis.wait()

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def run(self, config: str, p: Point, rep: int, perf: bool) -> dict[str, Any]:
        assert self.redis is not None
        self.runs += 1
        dbname = f"bench_{self.runs}"
        dsn = await self.pg.create(dbname)
        n = 1 if config == "1node" else 2
        broker = self.redis.url if n == 2 else None
        # 2node-split (an experiment, not the figure): node-2 on the generator's core,
        # to see what sharing one core costs the nodes (caches, context switches).
        node2_cpu = GEN_CPU if config == "2node-split" else SERVER_CPU
        nodes: list[Node] = []
        try:
            ci = self.args.commit_interval
            nodes.append(Node(self.workdir, SERVER_CPU, "node-1", dsn, broker, ci))
            await nodes[0].wait_ready()  # the first node migrates the fresh database
            for i in range(2, n + 1):
                nodes.append(Node(self.workdir, node2_cpu, f"node-{i}", dsn, broker, ci))
            for node in nodes:
                await node.wait_ready()
            targets = [node.url for node in nodes]
            if config == "2node-one":  # experiment: every client on node-1 (node-2 idle)
                targets = targets[:1]
            elif config == "2node-local":  # experiment: each group wholly on one node
                targets = [targets[0]] * p.size + [targets[1]] * p.size
            s = scenario(p, targets, self.args.duration, self.args.ramp_up)
            prov = await provision(s, tuple(targets))
            profiler = Perf(self.workdir / f"run{self.runs}", self.args) if perf else None
            if profiler is not None:
                profiler.nodes = nodes
            probe = ClusterProbe(
                nodes, self.redis if n == 2 else None, self.pg, profiler, int(s.ramp_up) + 2
            )
            opts = RunOptions(scenario=s, workers=1, cpus=[GEN_CPU], quiet=True, drain_s=10)
            result = await _drive(opts, self.console, s, prov, tuple(targets), probe)  # type: ignore[arg-type]
            profile = profiler.finish() if profiler is not None else None
            metrics = [node_metrics(await scrape_metrics(node.port)) for node in nodes]
        finally:
            for node in nodes:
                node.stop()
            with contextlib.suppress(Exception):
                await self.pg.drop(dbname)
        summ = result["summary"]
        rows = result["intervals"]
        first = int(s.ramp_up) + (0 if s.ramp_up == int(s.ramp_up) else 1) + 1
        steady = [r for r in rows if first <= r["t"] <= int(s.duration)]
        k0, k1 = steady[0]["t"] - 1, steady[-1]["t"]
        dels = sum(r["delivers"] for r in steady)
        acks = sum(r["acks"] for r in steady)
        win = probe.window(k0, k1, dels, acks)
        out = {
            "config": config,
            "point": p.name,
            "offered_msgs_per_s": p.rate,
            "offered_deliveries_per_s": p.rate * (p.size - 1),
            "rep": rep,
            "acked_per_s": summ["acked_per_s"],
            "deliveries_per_s": summ["deliveries_per_s"],
            "deliver_p50_ms": summ["deliver"]["p50_ms"],
            "deliver_p99_ms": summ["deliver"]["p99_ms"],
            "ack_p99_ms": summ["ack"]["p99_ms"],
            "lost": summ["lost"],
            "duplicates": summ["duplicates"],
            "errors": summ["errors"],
            "unacked": summ["unacked"],
            "gen_cpu_pct_avg": summ["gen_cpu_pct_avg"],
            **win,
            "nodes": metrics,
        }
        out["saturated"] = verdict(out)
        if profile is not None:
            out["perf"] = profile
        self.console.print(line(out), highlight=False)
        return out


def verdict(r: dict[str, Any]) -> str:
    server = r["server_side_pct"]
    core0 = (r["core_busy_pct"] or {}).get(SERVER_CPU) or 0.0
    gen = r["gen_cpu_pct_avg"]
    if core0 >= 90:  # the server side cannot get more CPU (whoever else used some)
        return f"server side (core 0 {core0:.0f}% busy: chatd+redis+postgres {server:.0f}%)"
    if gen >= 90:
        return f"generator ({gen:.0f}% of core 1)"
    return f"neither (core 0 {core0:.0f}%, generator {gen:.0f}%)"


def line(r: dict[str, Any]) -> str:
    return (
        f"{r['config']:5} {r['point']:>8} rep{r['rep']}: {r['deliveries_per_s']:>9,.0f} del/s"
        f"  chatd+redis {r['us_per_delivery_chatd_redis']} µs/del"
        f" (chatd {r['us_per_delivery_chatd']}, redis {r['us_per_delivery_redis']})"
        f"  postgres {r['us_per_delivery_postgres']} µs/del"
        f"  p50/p99 {r['deliver_p50_ms']}/{r['deliver_p99_ms']} ms"
        f"  core0 {r['core_busy_pct'].get(SERVER_CPU)}% (other {r['core0_other_pct']}%)"
        f"  gen {r['gen_cpu_pct_avg']}%  lost {r['lost']}  {r['saturated']}"
    )


# --------------------------------------------------------------------------- profiling


class Perf:
    """For a few seconds of the steady window: ``perf record -g -C 0`` (everything on the server
    core, by process and binary) and, with ``--pyspy``, ``py-spy record --nonblocking`` of each
    chatd node (Python functions). The recorders run on core 1."""

    def __init__(self, out: Path, args: argparse.Namespace) -> None:
        self.base = out
        self.seconds = max(2, int(args.duration - args.ramp_up - 3))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.perf = shutil.which("perf")
        self.pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self.use_pyspy = bool(args.pyspy)
        self.nodes: list[Node] = []
        self.started = False

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        pin = ["taskset", "-c", str(GEN_CPU)]
        if self.perf is not None:
            cmd = [*pin, self.perf, "record", "-F", "499", "-g", "-C", str(SERVER_CPU)]
            cmd += ["-o", f"{self.base}.perf.data", "--", "sleep", str(self.seconds)]
            self.procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        if self.use_pyspy and Path(self.pyspy).exists():
            for node in self.nodes:
                cmd = [*pin, self.pyspy, "record", "--pid", str(node.pid), "--nonblocking"]
                cmd += ["--rate", "200", "--duration", str(self.seconds), "--format", "raw"]
                cmd += ["-o", f"{self.base}.{node.node_id}.pyspy.txt"]
                self.procs.append(
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                )

    def finish(self) -> dict[str, Any] | None:
        if not self.started:
            return None
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(60)
        out: dict[str, Any] = {}
        data = Path(f"{self.base}.perf.data")
        if self.perf is not None and data.exists():
            out["perf_by_process"] = _perf(self.perf, data, "comm", 12)
            out["perf_by_process_binary"] = _perf(self.perf, data, "comm,dso", 25)
            out["perf_top_symbols"] = _perf(self.perf, data, "comm,dso,sym", 40)
        for node in self.nodes:
            path = Path(f"{self.base}.{node.node_id}.pyspy.txt")
            if path.exists():
                from bench_core import summarize_pyspy

                out[f"pyspy_{node.node_id}"] = summarize_pyspy(path, 40)
        return out


def _perf(perf: str, data: Path, sort: str, top: int) -> list[tuple[str, float]]:
    out = subprocess.run(
        [perf, "report", "-i", str(data), "--no-children", "--sort", sort, "--stdio", "-g", "none"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rows: list[tuple[str, float]] = []
    for raw in out.splitlines():
        s = raw.strip()
        if not s or s.startswith("#") or "%" not in s.split()[0]:
            continue
        pct, _, rest = s.partition("%")
        with contextlib.suppress(ValueError):
            rows.append((" ".join(rest.split()), float(pct)))
        if len(rows) >= top:
            break
    return rows


# --------------------------------------------------------------------------- summary


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (point, config): the mean of the repeats, and whether they disagree by > 15 %."""
    out = []
    keys = sorted({(r["offered_msgs_per_s"], r["point"], r["config"]) for r in runs})
    for rate, point, config in keys:
        rs = [r for r in runs if r["point"] == point and r["config"] == config]
        row: dict[str, Any] = {"point": point, "config": config, "offered_msgs_per_s": rate}
        flags = []
        for key in (
            "us_per_delivery_chatd_redis",
            "us_per_delivery_chatd",
            "us_per_delivery_redis",
            "us_per_delivery_postgres",
            "deliveries_per_s",
            "deliver_p50_ms",
            "deliver_p99_ms",
            "server_side_pct",
            "gen_cpu_pct_avg",
        ):
            vals = [r[key] for r in rs if r.get(key) is not None]
            if not vals:
                row[key] = None
                continue
            mean = sum(vals) / len(vals)
            row[key] = round(mean, 2)
            row[key + "_runs"] = vals
            if len(vals) > 1 and mean and (max(vals) - min(vals)) / mean > DISAGREE:
                flags.append(key)
        row["disagree_over_15pct"] = flags
        row["saturated"] = [r["saturated"] for r in rs]
        row["lost"] = sum(r["lost"] for r in rs)
        row["core0_other_pct"] = [r["core0_other_pct"] for r in rs]
        out.append(row)
    for row in out:  # the Redis hop: 2node against 1node at the same point
        if row["config"] == "1node":
            continue
        base = next((x for x in out if x["point"] == row["point"] and x["config"] == "1node"), None)
        if base and base["us_per_delivery_chatd_redis"] and row["us_per_delivery_chatd_redis"]:
            row["redis_hop_cpu_overhead_pct"] = round(
                100
                * (row["us_per_delivery_chatd_redis"] / base["us_per_delivery_chatd_redis"] - 1),
                1,
            )
            row["deliveries_ratio_vs_1node"] = round(
                row["deliveries_per_s"] / base["deliveries_per_s"], 3
            )
    return out


def git_rev() -> str:
    with contextlib.suppress(Exception):
        return subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    return "?"


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    console = Console()
    raise_nofile(65536)
    pin(GEN_CPU)  # this process is chatload's coordinator
    points = [Point(f"{r:g}", r, args.groups, args.size) for r in args.rates]
    if args.max_rate:
        points.append(Point("max", args.max_rate, args.groups, args.size))
    known = ("1node", "2node", "2node-split", "2node-one", "2node-local")
    configs = [c for c in known if c in args.only.split(",")]
    bench = Bench(args, console)
    runs: list[dict[str, Any]] = []
    discarded: list[dict[str, Any]] = []
    await bench.start()
    try:
        console.print(
            f"PostgreSQL {bench.pg.dsn()} ({'fsync off' if args.pg_fast else 'durable'}),"
            f" Redis {bench.redis.url if bench.redis else '-'}; server side on core {SERVER_CPU},"
            f" generator on core {GEN_CPU}",
            highlight=False,
        )
        for p in points:
            for rep in range(1, args.repeat + 1):
                for config in configs:  # interleaved: drift hits both alike
                    for attempt in range(1, args.attempts + 1):
                        r = await bench.run(config, p, rep, args.perf and rep == 1)
                        r["attempt"] = attempt
                        other = r["core0_other_pct"] or 0.0
                        if other <= args.max_foreign or attempt == args.attempts:
                            runs.append(r)
                            break
                        console.print(
                            f"core 0 was {other}% busy with other processes: run again",
                            highlight=False,
                        )
                        discarded.append(r)
    finally:
        bench.stop()
    summary = summarize(runs)
    for row in summary:
        console.print(json.dumps({k: v for k, v in row.items() if not k.endswith("_runs")}))
    return {
        "tool": "bench_cluster",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": git_rev(),
        "environment": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "server_cpu": SERVER_CPU,
            "generator_cpu": GEN_CPU,
            "postgres": "fsync=off, synchronous_commit=off" if args.pg_fast else "durable defaults",
            "commit_interval_s": commit_interval(args.commit_interval),
            "group_size": args.size,
            "groups": args.groups,
            "duration_s": args.duration,
            "ramp_up_s": args.ramp_up,
        },
        "summary": summary,
        "runs": runs,
        "discarded_busy_runs": discarded,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument(
        "--only",
        default="1node,2node",
        help="configurations: 1node, 2node; experiments: 2node-split (node-2 on core 1),"
        " 2node-one (every client on node-1: the publish and echo without the second node),"
        " 2node-local (each group wholly on one node: two writers, no cross-node delivery)",
    )
    ap.add_argument("--rates", type=float, nargs="*", default=[500.0, 1500.0], help="msgs/s")
    ap.add_argument("--max-rate", type=float, default=8000.0, help="overload run (0: none)")
    ap.add_argument("--groups", type=int, default=20, help="groups (consecutive accounts)")
    ap.add_argument("--size", type=int, default=10, help="members per group")
    ap.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    ap.add_argument("--ramp-up", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=2, help="runs per point and configuration")
    ap.add_argument(
        "--commit-interval",
        type=float,
        help=f"[store] commit_interval of every node (default: chatd's, {commit_interval(None)} s)",
    )
    ap.add_argument(
        "--max-foreign",
        type=float,
        default=10.0,
        help="run again when other processes used more than this %% of core 0 (shared machine)",
    )
    ap.add_argument("--attempts", type=int, default=3, help="runs at most, per measurement")
    ap.add_argument("--pg-fast", action="store_true", help="PostgreSQL without fsync")
    ap.add_argument("--perf", action="store_true", help="perf record core 0 in the first repeat")
    ap.add_argument("--pyspy", action="store_true", help="with --perf: also py-spy each node")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    try:
        import uvloop

        result = uvloop.run(amain(args))
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        result = asyncio.run(amain(args))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
