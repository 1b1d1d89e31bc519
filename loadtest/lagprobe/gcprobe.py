"""What a full cyclic-GC collection costs a benchmark server (``bench_gc.py``): with
``BENCH_GC_FILE`` set, SIGUSR1 runs ``gc.collect()`` inside the server and appends one JSON line
to that file: how many objects the collection found unreachable (kept for counting with
``DEBUG_SAVEALL``, by type), how long it held the process, how long a second one right after
took (nothing left to free: the walk alone), and how many objects the collector tracks.

A signal handler runs between two bytecodes of the main thread, i.e. inside the event loop, as
an automatic collection would. Every automatic full collection (generation 2) is appended too,
as ``{"auto_gen2_ms": ..., "at": monotonic seconds, "pid": ...}``: how often one comes, and how
long it holds the loop."""

from __future__ import annotations

import gc
import json
import os
import signal
import time
from collections import Counter
from typing import Any

ENV = "BENCH_GC_FILE"
_manual = [False]  # collect_and_report's own collections are not logged as automatic


def collect_and_report(path: str) -> None:
    _manual[0] = True
    try:
        _collect_and_report(path)
    finally:
        _manual[0] = False


def _collect_and_report(path: str) -> None:
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        started = time.perf_counter()
        unreachable = gc.collect()
        first = time.perf_counter() - started
        kinds = _by_type(gc.garbage, 12)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    started = time.perf_counter()
    gc.collect()
    again = time.perf_counter() - started
    tracked = gc.get_objects()
    line: dict[str, Any] = {
        "unreachable": unreachable,
        "collect_ms": round(first * 1000, 1),
        "again_ms": round(again * 1000, 1),
        "tracked": len(tracked),
        "tracked_by_type": _by_type(tracked, 20),
        "frozen": gc.get_freeze_count(),
        "unreachable_by_type": kinds,
    }
    with open(path, "a") as out:
        out.write(json.dumps(line) + "\n")


def _by_type(objects: list[Any], most: int) -> dict[str, int]:
    """How many of ``objects`` each type has, the ``most`` commonest (``module.Class``)."""
    kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    return dict(kinds.most_common(most))


def log_automatic(path: str) -> None:
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        elif not _manual[0]:
            ms = (time.perf_counter() - started[0]) * 1000
            line = {"auto_gen2_ms": round(ms, 1), "at": time.monotonic(), "pid": os.getpid()}
            with open(path, "a") as out:
                out.write(json.dumps(line) + "\n")

    gc.callbacks.append(timed)


def install() -> None:
    path = os.environ.get(ENV)
    if path:
        signal.signal(signal.SIGUSR1, lambda *_: collect_and_report(path))
        log_automatic(path)
