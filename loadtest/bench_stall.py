#!/usr/bin/env python3
"""How long this machine takes a busy core away from a process that never blocks (issue 16,
goal 3: "no stall of the event loop over 5 ms").

Each probe is a process pinned to one core that only reads the clock in a loop: no system call
beyond the vDSO clock, no I/O, no allocation that could collect. Any gap between two readings
longer than ``--gap`` ms is time the process was not running: the kernel or the hypervisor ran
something else. Run on core 0 alone (core 1 idle), then on both cores at once (the benchmarks'
shape: server on core 0, load generator on core 1).

    .venv/bin/python loadtest/bench_stall.py --seconds 30 --json loadtest/results/stall.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import time
from typing import Any


def probe(core: int, seconds: float, gap_ms: float, out: Any) -> None:
    """Spin on ``core`` for ``seconds``; send the gaps over ``gap_ms`` (ms) to ``out``."""
    os.sched_setaffinity(0, {core})
    clock = time.monotonic
    limit = gap_ms / 1000
    gaps: list[float] = []
    last = start = clock()
    end = start + seconds
    while last < end:
        now = clock()
        if now - last > limit:
            gaps.append((now - last) * 1000)
        last = now
    out.send(gaps)


def run(cores: list[int], seconds: float, gap_ms: float) -> dict[str, Any]:
    pipes = [mp.Pipe(duplex=False) for _ in cores]
    procs = [
        mp.Process(target=probe, args=(core, seconds, gap_ms, send))
        for core, (_recv, send) in zip(cores, pipes, strict=True)
    ]
    for p in procs:
        p.start()
    result: dict[str, Any] = {}
    for core, (recv, _send), p in zip(cores, pipes, procs, strict=True):
        gaps = recv.recv()
        p.join()
        result[f"core{core}"] = {
            f"gaps_over_{gap_ms:g}ms": len(gaps),
            "over_5ms": sum(g > 5 for g in gaps),
            "max_ms": round(max(gaps, default=0.0), 1),
            "lost_ms": round(sum(gaps), 1),
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
    runs: list[dict[str, Any]] = []
    for rep in range(1, a.repeat + 1):
        for shape, cores in (("core 0 alone", [0]), ("both cores", [0, 1])):
            r = {"shape": shape, "rep": rep, **run(cores, a.seconds, a.gap)}
            runs.append(r)
            cells = "  ".join(
                f"{k}: {v['over_5ms']} over 5 ms, max {v['max_ms']} ms"
                for k, v in r.items()
                if k.startswith("core")
            )
            print(f"{shape:13s} rep {rep}, {a.seconds:g} s  {cells}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(
                {
                    "tool": "loadtest/bench_stall.py",
                    "started_loadavg": os.getloadavg(),
                    "args": vars(a),
                    "runs": runs,
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
