"""Event-loop lag probe for benchmark servers (``bench_relay.py``), the same code in chatd and
in the relay: a 1 ms timer whose worst lateness per 100 ms is appended to a file, one line
per 100 ms (below). A callback that holds the loop for X ms shows as ~X ms.

Lateness is read on ``time.perf_counter`` around the sleep, never on ``loop.time()``: uvloop's
clock is libuv's cached millisecond clock (updated once per loop iteration, rounded down to
the millisecond), and timers fire on the millisecond tick, so on it an idle loop pinned to a
busy core already showed up to 4 ms. What is logged is the time the sleep took beyond the
1 ms asked for, so the timer's own rounding (under a millisecond) is part of it, in both
servers alike.

Each line also carries how long the loop's thread waited on the kernel's run queue in those
100 ms (``run_delay`` of ``/proc/thread-self/schedstat``, read once per line): a stall caused
by other runnable threads on the core shows there (other processes of the machine,
``bench_stall.py``; and, for a server pinned to one core with threads of its own, such as
chatd's store writer, those threads too); one the loop caused itself (a long callback, a
collection, a COMMIT waiting on the disk, the GIL held by a thread that is not running) does
not. Lines are ``monotonic_s max_lag_ms run_queue_ms``, or ``monotonic_s max_lag_ms`` where
the kernel keeps no such statistics.

``install()`` wraps ``uvloop.run`` so the probe runs beside whatever coroutine the process
runs (``chatd serve`` calls ``uvloop.run``): chatd is started as its own command, unchanged,
with this directory on ``PYTHONPATH`` and ``BENCH_LAG_FILE`` set (see ``sitecustomize.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Coroutine
from typing import Any

ENV = "BENCH_LAG_FILE"


def open_schedstat() -> int | None:
    """The calling thread's ``/proc/thread-self/schedstat``, open; None where the kernel keeps
    no statistics: no file, or one whose time on a CPU still reads 0 in a thread that has run.
    Also ``bench_stall.py``'s."""
    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
    except OSError:
        return None
    if schedstat_ms(fd)[0] == 0:
        os.close(fd)
        return None
    return fd


def schedstat_ms(fd: int) -> tuple[float, float]:
    """The thread's time on a CPU and waiting on a run queue so far, in ms (the first two
    fields, ns)."""
    on_cpu, waiting = os.pread(fd, 128, 0).split()[:2]
    return int(on_cpu) / 1e6, int(waiting) / 1e6


async def probe(path: str) -> None:
    clock = time.perf_counter
    fd = open_schedstat()  # the loop's thread: this coroutine runs on it
    try:
        with open(path, "a", buffering=1) as out:  # noqa: ASYNC230 - opened once, lines are tiny
            worst, mark = 0.0, clock()
            waited = schedstat_ms(fd)[1] if fd is not None else 0.0
            while True:
                due = clock() + 0.001
                await asyncio.sleep(0.001)
                now = clock()
                worst = max(worst, now - due)
                if now - mark >= 0.1:
                    line = f"{time.monotonic():.4f} {worst * 1000:.3f}"
                    if fd is not None:
                        before, waited = waited, schedstat_ms(fd)[1]
                        line += f" {waited - before:.3f}"
                    out.write(line + "\n")
                    worst, mark = 0.0, now
    finally:
        if fd is not None:
            os.close(fd)


def install() -> None:
    """Run ``probe($BENCH_LAG_FILE)`` beside the main coroutine of every ``uvloop.run``."""
    path = os.environ.get(ENV)
    if not path:
        return
    import uvloop

    run = uvloop.run

    def probed(main: Coroutine[Any, Any, Any], **kw: Any) -> Any:
        async def both() -> Any:
            task = asyncio.get_running_loop().create_task(probe(path))
            try:
                return await main
            finally:
                task.cancel()

        return run(both(), **kw)

    uvloop.run = probed
