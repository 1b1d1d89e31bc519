#!/usr/bin/env python3
"""How long this machine takes a busy core away from a process that never blocks (issue 16,
goal 3: "no stall of the event loop over 5 ms").

Each probe is a process pinned to one core that only reads the clock in a loop: no system call
beyond the vDSO clock, no I/O, nothing the cyclic GC tracks. Any gap between two readings
longer than ``--gap`` ms is time the process was not running. Who ran instead: at each gap the
probe reads how long it has waited on the guest kernel's run queue (``run_delay`` in
``/proc/thread-self/schedstat``, also read every ``READ_EVERY`` while spinning, so the wait is
counted across the gap and at most 0.5 ms before it). A gap the guest's scheduler gave to
another process of this machine shows up there; a gap the host took (the virtual CPU not
running at all) does not, since the guest's kernel saw nothing else run. Each probe runs on
core 0 with nothing else of ours on core 1, then on both cores at once (the benchmarks' shape:
server on core 0, load generator on core 1).

    .venv/bin/python loadtest/bench_stall.py --seconds 30 --json loadtest/results/stall.json
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "lagprobe"))
from lagprobe import open_schedstat, schedstat_ms  # the lag probe's readers

GUEST_MS = 1.0
"""A gap whose run-queue wait grew by more than this (ms) counts as given to another process
of the guest; otherwise as taken by the host."""


READ_EVERY = 0.0005
"""Seconds between two readings of the run-queue wait while spinning: a gap's wait is then
counted from at most this long before it began (one ``pread`` of procfs, which never blocks)."""


def probe(core: int, seconds: float, gap_ms: float, out: Connection) -> None:
    """Spin on ``core`` for ``seconds``; send ``(gap ms, run-queue wait ms across it)`` for
    every gap over ``gap_ms`` to ``out`` (the wait is NaN where the kernel keeps none)."""
    os.sched_setaffinity(0, {core})
    fd = open_schedstat()
    clock = time.monotonic
    limit = gap_ms / 1000
    gaps: list[tuple[float, float]] = []
    waited = schedstat_ms(fd)[1] if fd is not None else 0.0
    last = read_at = start = clock()
    end = start + seconds
    while last < end:
        now = clock()
        if now - last > limit:
            wait = math.nan
            if fd is not None:
                before, waited = waited, schedstat_ms(fd)[1]
                wait, read_at = waited - before, clock()
            gaps.append(((now - last) * 1000, wait))
            now = clock()  # the read above is not part of the next gap
        elif fd is not None and now - read_at >= READ_EVERY:
            waited, read_at = schedstat_ms(fd)[1], now
        last = now
    if fd is not None:
        os.close(fd)
    out.send(gaps)


def run(cores: list[int], seconds: float, gap_ms: float) -> dict[str, Any]:
    pipes = [mp.Pipe(duplex=False) for _ in cores]
    procs = [
        mp.Process(target=probe, args=(core, seconds, gap_ms, send))
        for core, (_recv, send) in zip(cores, pipes, strict=True)
    ]
    for p in procs:
        p.start()
    for _recv, send in pipes:
        send.close()  # the child holds its own end: a probe that dies ends our recv
    result: dict[str, Any] = {}
    for core, (recv, _send), p in zip(cores, pipes, procs, strict=True):
        try:
            if not recv.poll(seconds + 30):
                raise EOFError
            gaps: list[tuple[float, float]] = recv.recv()
        except EOFError:
            p.kill()
            p.join()
            raise SystemExit(
                f"the probe on core {core} sent nothing (exit code {p.exitcode})"
            ) from None
        p.join()
        over5 = [(g, w) for g, w in gaps if g > 5]
        known = not any(math.isnan(w) for _g, w in gaps)
        result[f"core{core}"] = {
            f"gaps_over_{gap_ms:g}ms": len(gaps),
            "over_5ms": len(over5),
            "over_5ms_host": sum(w <= GUEST_MS for _g, w in over5) if known else None,
            "max_ms": round(max((g for g, _w in gaps), default=0.0), 1),
            "lost_ms": round(sum(g for g, _w in gaps), 1),
            # the part of each gap the guest's run queue accounts for: other processes
            "lost_ms_guest": round(sum(min(g, w) for g, w in gaps), 1) if known else None,
            "gaps_over_5ms": [[round(g, 2), round(w, 2)] for g, w in over5],
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--gap", type=float, default=2.0, help="ms: shorter gaps are not counted")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    loadavg = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    runs: list[dict[str, Any]] = []
    for rep in range(1, a.repeat + 1):
        for shape, cores in (("core 0 alone", [0]), ("both cores", [0, 1])):
            r = {"shape": shape, "rep": rep, **run(cores, a.seconds, a.gap)}
            runs.append(r)
            cells = "  ".join(
                f"{k}: {v['over_5ms']} over 5 ms ({v['over_5ms_host']} with no run-queue wait),"
                f" max {v['max_ms']} ms, lost {v['lost_ms']} ms ({v['lost_ms_guest']} waiting"
                " on the run queue)"
                for k, v in r.items()
                if k.startswith("core")
            )
            print(f"{shape:13s} rep {rep}, {a.seconds:g} s  {cells}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "tool": "loadtest/bench_stall.py",
                    "started": started,
                    "loadavg_before": loadavg,
                    "args": vars(a),
                    "runs": runs,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
