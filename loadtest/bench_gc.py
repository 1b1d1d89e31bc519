#!/usr/bin/env python3
"""What a full collection of Python's cyclic GC costs chatd, and what a closed connection leaves
to it. ``chatd serve`` (SQLite, pinned to core 0, as ``bench_relay.py`` starts it) gets
``--connections`` authenticated connections from ``bench_relay``'s generator; then, through
``lagprobe/gcprobe.py`` (SIGUSR1), a ``gc.collect()`` runs inside the server: with every
connection open (``--repeat`` times, the median reported), then once after they all closed.
Per point: the objects found unreachable (what closed connections left for the cyclic GC
rather than reference counting, by type), the time the collection held the event loop, and
the objects the collector tracks. An automatic full
collection (generation 2) costs the same walk, at a moment nobody chooses.

    .venv/bin/python loadtest/bench_gc.py --connections 1000 10000 --json loadtest/results/gc.json

``--servers before=/path/to/worktree`` measures another tree the same way (``name=tree`` as in
``bench_relay.py``; the default is this checkout). Only 127.0.0.1 is a target.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bench_relay


def reports(report: Path) -> list[dict[str, Any]]:
    """The probe's answers to SIGUSR1 so far (not its lines on automatic collections)."""
    lines = report.read_text().splitlines() if report.exists() else []
    return [r for r in map(json.loads, lines) if "collect_ms" in r]


def collect(server: bench_relay.Server, report: Path) -> dict[str, Any]:
    """One ``gc.collect()`` inside the server; its report line."""
    before = len(reports(report))
    os.kill(server.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines = reports(report)
        if len(lines) > before:
            return lines[-1]
        time.sleep(0.1)
    raise SystemExit("the server never answered SIGUSR1; see its log")


def point(spec: str, connections: int, workdir: Path, workers: int, repeat: int) -> dict[str, Any]:
    report = workdir / f"gc-{spec.partition('=')[0]}-{connections}.jsonl"
    server = bench_relay.Server(spec, workdir, {"BENCH_GC_FILE": str(report)})
    gen = bench_relay.Generator(server.kind, server.port, workers)
    try:
        opened = gen.connect(connections, "idle")
        time.sleep(2.0)
        runs = [collect(server, report) for _ in range(repeat)]
        times = sorted(r["collect_ms"] for r in runs)
        open_ = {**runs[-1], "collect_ms": times[len(times) // 2], "collect_ms_all": times}
        gen.close()
        time.sleep(3.0)  # the server sees every close
        closed = collect(server, report)
    finally:
        server.stop()
    return {"connections": opened, "open": open_, "after_close": closed}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--connections", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--servers", default="chatd", help="name=tree,... (default: this checkout)")
    p.add_argument("--workers", type=int, default=2, help="generator processes (on core 1)")
    p.add_argument(
        "--repeat",
        type=int,
        default=7,
        help="collections with the connections open (the median is reported: a walk's time"
        " varies 2x between runs on this machine)",
    )
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    os.sched_setaffinity(0, {1})
    workdir = Path(tempfile.mkdtemp(prefix="bench-gc-"))
    results: dict[str, list[dict[str, Any]]] = {}
    for n in a.connections:
        for spec in a.servers.split(","):
            r = point(spec, n, workdir, a.workers, a.repeat)
            results.setdefault(spec.partition("=")[0], []).append(r)
            o, c = r["open"], r["after_close"]
            print(
                f"{spec.partition('=')[0]:8} {r['connections']:6} connections: full collection"
                f" {o['collect_ms']:.1f} ms (median; {min(o['collect_ms_all']):.1f}-"
                f"{max(o['collect_ms_all']):.1f}), {o['tracked']} tracked,"
                f" {o['frozen']} frozen; after they closed: {c['unreachable']} unreachable"
                f" ({c['collect_ms']:.1f} ms) {c['unreachable_by_type']}",
                flush=True,
            )
    if a.json:
        env = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "args": vars(a)}
        Path(a.json).write_text(json.dumps({"environment": env, "results": results}, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
