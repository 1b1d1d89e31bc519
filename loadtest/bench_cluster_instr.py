#!/usr/bin/env python3
# ruff: noqa: ASYNC220, ASYNC221, ASYNC240
# (a driver: its few blocking calls run between the measured phases, never inside them)
"""1 node vs 2 nodes in counts a busy machine does not change much: what each delivery costs the
chatd nodes and Redis in system calls, context switches, Redis commands and Python function calls
(``--profile``; or instructions with ``--callgrind``), next to CPU time from ``/proc`` (which a
busy machine does inflate). The companion of ``bench_cluster.py``, whose open-model CPU figure is
the issue's: this one finds where a difference comes from.

Same topology as ``bench_cluster.py`` (a throwaway durable PostgreSQL and ``redis-server``, groups
of 10 consecutive accounts, client *i* on node *i* mod N, so a group has 5 members on each of 2
nodes), but a closed loop by rounds: ``-k`` senders each send one message, and the next round
starts once every ack AND every delivery of the round is back. So a commit holds at most ``-k``
messages and one Redis pipeline at most ``-k`` envelopes whatever the speed of the machine:
``-k 1`` is the shape of a lightly loaded node (500 msgs/s: batches of 1-2), larger ``-k`` of a
busier one. ``--gap`` sleeps between rounds (what an idle loop costs between messages).

    .venv/bin/python loadtest/bench_cluster_instr.py --nodes 1 2 -k 1 -m 400
    .venv/bin/python loadtest/bench_cluster_instr.py --nodes 2 -k 2 -m 300 --profile
    .venv/bin/python loadtest/bench_cluster_instr.py --nodes 1 2 -k 1 -m 40 --callgrind

Every server process runs on core 0 (``--cpu``), this client on core 1; only 127.0.0.1 is a target.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import itertools
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_cluster as bcl  # noqa: E402
import bench_core as bc  # noqa: E402
from chatload.procstat import http_get  # noqa: E402

WRAP = """import os, runpy, signal, sys
if os.environ.get("BENCH_PROF"):
    import cProfile
    p = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: p.enable())
    signal.signal(signal.SIGUSR2, lambda *_: (p.disable(), p.dump_stats(os.environ["BENCH_PROF"])))
sys.argv = ["chatd", *sys.argv[1:]]
runpy.run_module("chatd", run_name="__main__")
"""


def start_node(work: Path, node_id: str, db: str, broker: str | None, a: Any) -> bcl.Node:
    """``bench_cluster.Node`` with its command swapped for the wrapper (and valgrind)."""
    wrap = work / "wrap.py"
    wrap.write_text(WRAP)
    real_popen = subprocess.Popen

    def popen(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
        i = cmd.index("serve")
        pre = ["taskset", "-c", str(a.cpu)]
        if a.callgrind:
            pre += ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.{node_id}.%p"]
            pre += ["--separate-threads=yes"]
        if a.profile:
            env = dict(env, BENCH_PROF=str(work / f"{node_id}.prof"))
        env = dict(env, PYTHONPATH=os.pathsep.join([str(bcl.REPO), str(bcl.REPO / "protocol")]))
        return real_popen([*pre, sys.executable, str(wrap), *cmd[i:]], env=env, **kw)

    subprocess.Popen = popen  # type: ignore[assignment,misc]
    try:
        return bcl.Node(work, 0, node_id, db, broker)
    finally:
        subprocess.Popen = real_popen  # type: ignore[misc]


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+]+)", text, re.M)
    return float(m.group(1)) if m else 0.0


async def redis_commandstats(port: int) -> dict[str, int]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"INFO commandstats\r\n")
    head = await r.readline()
    body = await r.readexactly(int(head[1:]) + 2)
    w.close()
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"cmdstat_(\w+):calls=(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def syscall_counter(pid: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            "perf",
            "stat",
            "-x,",
            "-e",
            "raw_syscalls:sys_enter",
            "-e",
            "context-switches",
            "-p",
            str(pid),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )


def syscalls_done(perf: subprocess.Popen[str]) -> tuple[int, int]:
    perf.send_signal(signal.SIGINT)
    sc = cs = 0
    for line in perf.communicate()[1].splitlines():
        v = line.split(",")[0]
        if v.isdigit():
            if "raw_syscalls" in line:
                sc = int(v)
            elif "context-switches" in line:
                cs = int(v)
    return sc, cs


async def one(a: argparse.Namespace, n: int, pg: bcl.Postgres, redis: bcl.Redis, run: int) -> None:
    work = Path(tempfile.mkdtemp(prefix=f"bci-{n}-", dir=a.workdir))
    dsn = await pg.create(f"bci_{run}")
    broker = redis.url if n > 1 else None
    nodes: list[bcl.Node] = []
    try:
        nodes.append(start_node(work, "node-1", dsn, broker, a))
        await nodes[0].wait_ready(300)
        for i in range(2, n + 1):
            nodes.append(start_node(work, f"node-{i}", dsn, broker, a))
        for node in nodes:
            await node.wait_ready(300)
        stats = bc.Stats()
        size = 10
        conns: list[bc.Conn] = []
        for i in range(a.groups * size):
            conns.append(await bc.open_account(nodes[i % n].port, stats, f"c{run}x{i}"))
        convs = []
        for g in range(a.groups):
            owner, others = conns[g * size], conns[g * size + 1 : (g + 1) * size]
            info = await owner.request(
                lambda r, o=others: bc.F.CreateConv(
                    id=r, kind="group", title="bench", members=[c.account for c in o]
                )
            )
            convs.append(info.info.conv)  # type: ignore[union-attr]
        senders = a.senders or size
        routes = [(conns[g * size + j], convs[g]) for j in range(senders) for g in range(a.groups)]
        idx = itertools.count()
        cursor = itertools.cycle(routes)

        async def rounds(m: int) -> None:
            for _ in range(m):
                a0, d0 = stats.acks, stats.delivers
                for _ in range(a.k):
                    conn, conv = next(cursor)
                    conn.send_message(conv, time.monotonic_ns(), next(idx))
                deadline = time.monotonic() + 30
                while stats.acks - a0 < a.k or stats.delivers - d0 < a.k * (size - 1):
                    if time.monotonic() > deadline:
                        raise SystemExit("a round did not complete in 30 s")
                    await asyncio.sleep(0.0002)
                if a.gap:
                    await asyncio.sleep(a.gap)

        await rounds(a.warm)
        await asyncio.sleep(0.5)
        if a.callgrind:
            for node in nodes:
                subprocess.run(["callgrind_control", "-z", str(node.pid)], capture_output=True)
        if a.profile:
            for node in nodes:
                os.kill(node.pid, signal.SIGUSR1)
            await asyncio.sleep(0.2)
        perfs = [] if a.callgrind else [syscall_counter(nd.pid) for nd in nodes]
        straces = []
        # Redis too with several nodes: what a change of the broker saves it (writes, reads).
        traced = [(nd.node_id, nd.pid) for nd in nodes] + ([("redis", redis.pid)] if n > 1 else [])
        if a.strace:
            for node_id, pid in traced:
                out = str(work / f"{node_id}.strace")
                straces.append(
                    (
                        node_id,
                        out,
                        subprocess.Popen(
                            ["strace", "-c", "-o", out, "-p", str(pid)],
                            stderr=subprocess.DEVNULL,
                        ),
                    )
                )
        if perfs:
            await asyncio.sleep(0.5)
        m0 = [(await http_get(nd.port, "/metrics")).decode(errors="replace") for nd in nodes]
        r0 = await redis_commandstats(redis.port)
        cpu0 = [bcl.proc_cpu_seconds(nd.pid) for nd in nodes]
        rc0, pg0 = bcl.proc_cpu_seconds(redis.pid), pg.cpu_seconds()
        d0, t0 = stats.delivers, time.monotonic()
        await rounds(a.m)
        await asyncio.sleep(0.1)
        t1, dels = time.monotonic(), stats.delivers - d0
        cpu1 = [bcl.proc_cpu_seconds(nd.pid) for nd in nodes]
        rc1, pg1 = bcl.proc_cpu_seconds(redis.pid), pg.cpu_seconds()
        r1 = await redis_commandstats(redis.port)
        m1 = [(await http_get(nd.port, "/metrics")).decode(errors="replace") for nd in nodes]
        counted = [syscalls_done(p) for p in perfs]
        for _, _, proc in straces:
            proc.send_signal(signal.SIGINT)
            proc.wait()
        idle: dict[str, Any] = {}
        if a.idle and not a.callgrind:
            # The same wall time with no messages: timers, presence renewals, sweepers. What
            # a busy machine stretches is time; subtracting this leaves what messages cost.
            iperfs = [syscall_counter(nd.pid) for nd in nodes]
            istraces = []
            if a.strace:
                for node_id, pid in traced:
                    out = str(work / f"{node_id}.idle.strace")
                    istraces.append(
                        (
                            node_id,
                            out,
                            subprocess.Popen(
                                ["strace", "-c", "-o", out, "-p", str(pid)],
                                stderr=subprocess.DEVNULL,
                            ),
                        )
                    )
            await asyncio.sleep(0.5)
            ir0 = await redis_commandstats(redis.port)
            await asyncio.sleep(t1 - t0)
            ir1 = await redis_commandstats(redis.port)
            idle["syscalls"] = [syscalls_done(p) for p in iperfs]
            for _, _, proc in istraces:
                proc.send_signal(signal.SIGINT)
                proc.wait()
            idle["strace"] = {nid: _strace_rows(out) for nid, out, _ in istraces}
            idle["cmds"] = {k: v - ir0.get(k, 0) for k, v in ir1.items()}
        if a.callgrind:
            for node in nodes:
                subprocess.run(["callgrind_control", "-d", str(node.pid)], capture_output=True)
        if a.profile:
            for node in nodes:
                os.kill(node.pid, signal.SIGUSR2)
            await asyncio.sleep(1.5)
        for conn in conns:
            await conn.close()
    finally:
        for node in nodes:
            node.stop()
        await pg.drop(f"bci_{run}")
    msgs = a.m * a.k
    chatd_cpu = sum(c1 - c0 for c0, c1 in zip(cpu0, cpu1, strict=True))
    batches = sum(
        metric(y, "chatd_store_batch_size_count") - metric(x, "chatd_store_batch_size_count")
        for x, y in zip(m0, m1, strict=True)
    )
    cmds = {k: v - r0.get(k, 0) for k, v in r1.items() if v - r0.get(k, 0) > 0}
    cmds.pop("info", None)
    if idle:  # net of the idle window
        cmds = {k: v - idle["cmds"].get(k, 0) for k, v in cmds.items()}
        cmds = {k: v for k, v in cmds.items() if v > 0}
        counted = [
            (c[0] - i[0], c[1] - i[1]) for c, i in zip(counted, idle["syscalls"], strict=True)
        ]
    load = Path("/proc/loadavg").read_text().split()[0]
    line = f"{time.strftime('%H:%M:%S')} load {load} nodes={n} k={a.k} msgs={msgs}"
    line += f" deliveries={dels} commits/msg={batches / msgs:.2f}"
    line += f" | CPU us/delivery chatd {1e6 * chatd_cpu / dels:.1f}"
    line += f" redis {1e6 * (rc1 - rc0) / dels:.1f} postgres {1e6 * (pg1 - pg0) / dels:.1f}"
    line += f" (wall {t1 - t0:.1f} s)"
    if counted:
        sc = sum(c[0] for c in counted)
        cs = sum(c[1] for c in counted)
        line += f" | chatd syscalls/delivery {sc / dels:.2f} ctxsw/delivery {cs / dels:.3f}"
    line += " | redis cmds/msg " + " ".join(f"{k}={v / msgs:.2f}" for k, v in sorted(cmds.items()))
    if a.callgrind:
        total = 0
        for f in glob.glob(f"{work}/cg.node-*.*.1-*"):
            mm = re.search(r"^(?:summary|totals): (\d+)", Path(f).read_text(), re.M)
            if mm:
                total += int(mm.group(1))
        line += f" | chatd instructions/delivery {total / dels:,.0f}"
    print(line, flush=True)
    if idle:
        print("  (net of an idle window of the same length)")
    for node_id, out, _ in straces:
        print(f"  {node_id} system calls per message:")
        rows = _strace_rows(out)
        base = idle.get("strace", {}).get(node_id, {})
        for name, n in sorted(rows.items(), key=lambda kv: -kv[1]):
            net = n - base.get(name, 0)
            if name != "total" and abs(net) / msgs >= 0.005:
                print(f"    {net / msgs:7.2f} {name}")
        print(f"    {(rows.get('total', 0) - base.get('total', 0)) / msgs:7.2f} total")
    if a.profile:
        import pstats

        for node in nodes:
            prof = work / f"{node.node_id}.prof"
            if not prof.exists():
                continue
            st = pstats.Stats(str(prof))
            calls = st.total_calls  # type: ignore[attr-defined]
            print(f"  {node.node_id}: Python calls per delivery {calls / dels:.1f}")
            if a.top:
                st.sort_stats(a.sort).print_stats(a.top)


def _strace_rows(path: str) -> dict[str, int]:
    """``strace -c``'s calls by system call name (and ``total``)."""
    out: dict[str, int] = {}
    for row in Path(path).read_text().splitlines()[2:]:
        f = row.split()
        if len(f) >= 5 and f[3].isdigit():
            out[f[-1]] = int(f[3])
    return out


async def amain(a: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {1})
    Path(a.workdir).mkdir(parents=True, exist_ok=True)
    pg = bcl.Postgres(a.cpu, fast=False)
    pg.start()
    redis = bcl.Redis(a.cpu)
    await redis.wait()
    run = 0
    try:
        for _ in range(a.repeat):
            for n in a.nodes:
                run += 1
                await one(a, n, pg, redis, run)
    finally:
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--groups", type=int, default=20)
    p.add_argument(
        "--senders",
        type=int,
        default=2,
        help="members of each group that send (0: all): each sends ~m*k/(groups*senders) messages,"
        " which sets how often a node reserves an account's frame budget from Redis (every 8)",
    )
    p.add_argument("-k", type=int, default=1, help="messages per round")
    p.add_argument("-m", type=int, default=400, help="rounds measured")
    p.add_argument("--warm", type=int, default=40, help="rounds before the window")
    p.add_argument("--gap", type=float, default=0.0, help="seconds between rounds")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--strace", action="store_true", help="system calls by name (strace -c)")
    p.add_argument(
        "--idle",
        action="store_true",
        help="subtract an idle window of the same length (system calls, Redis commands): a busy"
        " machine stretches the run, and timers, presence renewals and sweepers with it",
    )
    p.add_argument("--profile", action="store_true")
    p.add_argument("--top", type=int, default=25, help="with --profile: functions shown")
    p.add_argument("--sort", default="tottime", help="with --profile: pstats sort key")
    p.add_argument(
        "--cpu",
        type=int,
        default=0,
        help="the core of the servers (chatd, Redis, PostgreSQL); this client stays on core 1"
        " (--cpu 1: everything on core 1, leaving core 0 to someone else's benchmark)",
    )
    p.add_argument("--workdir", default="/tmp/chatd-bench-cluster-instr")
    asyncio.run(amain(p.parse_args()))
