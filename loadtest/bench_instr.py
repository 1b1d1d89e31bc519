#!/usr/bin/env python3
# ruff: noqa: ASYNC220, ASYNC221, ASYNC230, ASYNC240
# (a driver: its few blocking calls run between the measured phases, never inside them)
"""Cost per message of one chatd tree at a fixed batch shape, in counts a busy machine does not
change much: instructions (``--callgrind``: the server under ``valgrind --tool=callgrind``),
system calls (``perf stat -e raw_syscalls:sys_enter``) and context switches per message, next
to the server's CPU time per message from ``/proc`` (which a busy machine does inflate).

``-k`` senders in a closed loop by rounds (each sends one message; the next round starts once
every ack is back), so a commit holds a few of one round's messages whatever the speed of the
server (``batch`` in the output: the writer's own average over the window). ``--mode direct``:
pairs, one copy delivered per message; ``--mode group``: groups of 10, 9 deliveries. The server
(``python -m chatd serve`` of TREE, SQLite, ``synchronous=FULL``, the rate limit raised) is
pinned to core 0, this client to core 1; only 127.0.0.1 is a target.

    .venv/bin/python loadtest/bench_instr.py . --mode group -k 4 -m 60 --callgrind --inline-max 0.05
    .venv/bin/python loadtest/bench_instr.py /tmp/before --mode direct -k 4 -m 1000

``--profile``: cProfile of the server's main thread over the window, top functions by own time
(deterministic call counts: Python calls per message). ``--strace``: system calls by name.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_core as bc  # noqa: E402
from chatload.procstat import SERVER_NAME, free_port, http_get  # noqa: E402

WRAP = """import os, runpy, signal, sys
if os.environ.get("BENCH_PROF"):
    import cProfile
    p = cProfile.Profile()
    signal.signal(signal.SIGUSR1, lambda *_: p.enable())
    signal.signal(signal.SIGUSR2, lambda *_: (p.disable(), p.dump_stats(os.environ["BENCH_PROF"])))
if os.environ.get("BENCH_INLINE_MAX"):
    from chatd.store.writer import GroupCommitWriter
    GroupCommitWriter.INLINE_COMMIT_MAX = float(os.environ["BENCH_INLINE_MAX"])
if os.environ.get("BENCH_NO_CHECKPOINTER"):  # SQLite's own automatic checkpoint instead
    from chatd.store.sqlite import SQLiteStore
    _open = SQLiteStore.open
    async def _open_auto(self):
        await _open(self)
        if getattr(self, "_checkpointer", None) is not None:
            self._checkpointer.close()
            self._checkpointer = None
            self._w.execute("PRAGMA wal_autocheckpoint=1000")
    SQLiteStore.open = _open_auto
sys.argv = ["chatd", *sys.argv[1:]]
runpy.run_module("chatd", run_name="__main__")
"""


def cpu(pid: int) -> tuple[float, float]:
    s = Path(f"/proc/{pid}/stat").read_text()
    f = s[s.rindex(")") + 2 :].split()
    tck = os.sysconf("SC_CLK_TCK")
    return int(f[11]) / tck, int(f[12]) / tck


def ctx_switches(pid: int) -> int:
    n = 0
    for st in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            for line in Path(st).read_text().splitlines():
                if "ctxt_switches" in line:
                    n += int(line.split()[1])
        except FileNotFoundError:
            pass
    return n


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+]+)", text, re.M)
    return float(m.group(1)) if m else 0.0


async def main(a: argparse.Namespace) -> None:
    tree = Path(a.tree).resolve()
    port = free_port()
    work = Path(a.workdir) / f"{tree.name}-{port}"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        CHATD_LIMITS__FRAMES_PER_SECOND="1000000",
        CHATD_LIMITS__FRAME_BURST="1000000",
        CHATD_LOG__LEVEL="WARNING",
        CHATD_LOG__FORMAT="text",
        CHATD_SERVER__NAME=SERVER_NAME,
        PYTHONPATH=os.pathsep.join([str(tree), str(tree / "protocol")]),
    )
    if (tree / "chatd" / "core" / "consent.py").exists():  # groups of strangers: members
        env["CHATD_CONSENT__ADD_ME"] = "everyone"
    cmd = ["taskset", "-c", "0"]
    if a.callgrind:
        cmd += ["valgrind", "--tool=callgrind", f"--callgrind-out-file={work}/cg.%p"]
        cmd += ["--separate-threads=yes"]
    if a.profile:
        env["BENCH_PROF"] = str(work / "prof.out")
    if a.inline_max is not None:
        env["BENCH_INLINE_MAX"] = str(a.inline_max)
    (work / "wrap.py").write_text(WRAP)
    cmd += [sys.executable, str(work / "wrap.py")]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--db", str(work / "db")]
    with open(work / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, cwd=tree, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while True:
        try:
            if b" 200 " in await http_get(port, "/readyz"):
                break
        except OSError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise SystemExit(f"the server did not start; see {work}/server.log")
        await asyncio.sleep(0.2)
    stats = bc.Stats()
    if a.mode == "direct":
        topo = await bc.build_direct(port, stats, f"i{port}x", a.k)
    else:
        topo = await bc.build_groups(port, stats, f"i{port}x", a.k, 10)
    routes = topo.routes[: a.k]
    idx = itertools.count()

    async def rounds(n: int) -> None:
        base = stats.acks
        for r in range(n):
            for conn, conv in routes:
                conn.send_message(conv, time.monotonic_ns(), next(idx))
            while stats.acks - base < (r + 1) * len(routes):
                await asyncio.sleep(0.0002)

    await rounds(a.warm)
    await asyncio.sleep(0.5)
    pid = proc.pid
    if a.callgrind:
        subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=False)
    if a.profile:
        os.kill(pid, signal.SIGUSR1)
        await asyncio.sleep(0.2)
    perf = None
    if not a.callgrind:
        perf = subprocess.Popen(
            ["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid)],
            stderr=subprocess.PIPE,
            text=True,
        )
    strace = None
    if a.strace:
        out = str(work / "strace.txt")
        strace = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)])
        await asyncio.sleep(1)
    m0 = (await http_get(port, "/metrics")).decode(errors="replace")
    u0, s0 = cpu(pid)
    c0, d0, t0 = ctx_switches(pid), stats.delivers, time.monotonic()
    await rounds(a.m)
    await asyncio.sleep(0.2)
    t1 = time.monotonic()
    u1, s1 = cpu(pid)
    c1 = ctx_switches(pid)
    m1 = (await http_get(port, "/metrics")).decode(errors="replace")
    syscalls = 0
    if perf is not None:
        perf.send_signal(signal.SIGINT)
        for line in perf.communicate()[1].splitlines():
            if "raw_syscalls" in line and line.split(",")[0].isdigit():
                syscalls = int(line.split(",")[0])
    if strace is not None:
        strace.send_signal(signal.SIGINT)
        strace.wait()
    if a.callgrind:
        subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=False)
    if a.profile:
        os.kill(pid, signal.SIGUSR2)
        await asyncio.sleep(1)
    n = a.m * len(routes)

    def slower(le: str) -> float:  # commits that took longer than ``le`` seconds, in the window
        name = f'chatd_store_commit_seconds_bucket{{le="{le}"}}'
        count = "chatd_store_commit_seconds_count"
        return (metric(m1, count) - metric(m0, count)) - (
            metric(m1, re.escape(name)) - metric(m0, re.escape(name))
        )

    batches = metric(m1, "chatd_store_batch_size_count") - metric(
        m0, "chatd_store_batch_size_count"
    )
    ops = metric(m1, "chatd_store_batch_size_sum") - metric(m0, "chatd_store_batch_size_sum")
    for conn in topo.conns:
        await conn.close()
    proc.send_signal(signal.SIGTERM)
    proc.wait(300)
    line = f"{a.mode} k={a.k} msgs={n} deliveries/msg={(stats.delivers - d0) / n:.1f}"
    line += f" batch={ops / max(1.0, batches):.2f}"
    line += f" commits={batches:.0f} (over 1/2/5 ms: {slower('0.001'):.0f}/{slower('0.002'):.0f}"
    line += f"/{slower('0.005'):.0f})"
    if a.callgrind:
        per_thread = []
        for f in sorted(glob.glob(f"{work}/cg.{pid}.1-*")):
            m = re.search(r"^(?:summary|totals): (\d+)", Path(f).read_text(), re.M)
            if m and int(m.group(1)):
                per_thread.append(int(m.group(1)) / n)
        line += f" | instructions/msg {sum(per_thread):,.0f}"
        line += " (threads " + " + ".join(f"{v:,.0f}" for v in per_thread) + ")"
    else:
        line += f" | wall {t1 - t0:.2f} s, CPU us/msg {((u1 - u0) + (s1 - s0)) / n * 1e6:.1f}"
        line += f" (user {(u1 - u0) / n * 1e6:.1f} sys {(s1 - s0) / n * 1e6:.1f})"
        line += f", context switches/msg {(c1 - c0) / n:.2f}, syscalls/msg {syscalls / n:.2f}"
    load = Path("/proc/loadavg").read_text().split()[0]
    print(f"{time.strftime('%H:%M:%S')} load {load} {tree}: {line}", flush=True)
    if a.strace:
        print((work / "strace.txt").read_text())
    if a.profile:
        import pstats

        st = pstats.Stats(str(work / "prof.out"))
        print(f"Python calls per message: {st.total_calls / n:.1f}")  # type: ignore[attr-defined]
        st.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("tree", help="the chatd checkout to run (e.g. . or a git worktree)")
    p.add_argument("--mode", choices=("direct", "group"), default="direct")
    p.add_argument("-k", type=int, default=4, help="senders (messages per round)")
    p.add_argument("-m", type=int, default=500, help="rounds measured")
    p.add_argument("--warm", type=int, default=20, help="rounds before the window")
    p.add_argument("--callgrind", action="store_true")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--strace", action="store_true")
    p.add_argument(
        "--inline-max",
        type=float,
        help="seconds: GroupCommitWriter.INLINE_COMMIT_MAX in the server (a COMMIT slower than"
        " this moves commits to the writer thread); under callgrind, which runs the server ~50x"
        " slower, scale it (0.05) so that the same commits stay on the loop as natively",
    )
    p.add_argument("--workdir", default="/tmp/chatd-bench-instr")
    args = p.parse_args()
    os.sched_setaffinity(0, {1})
    asyncio.run(main(args))
