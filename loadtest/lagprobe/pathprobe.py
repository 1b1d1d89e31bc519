"""Where a message's time goes inside chatd (``bench_relay.py --path``): with ``BENCH_PATH_FILE``
set, SIGUSR2 starts recording and the next SIGUSR2 appends one JSON line to that file: per
message, the milliseconds

* ``gather``: from the read callback that carried its ``Send`` to the start of its group commit
  (the commit window, and any commit still running before it);
* ``commit``: the batch's transaction, statements and COMMIT (on the loop, or on the writer
  thread and back);
* ``resolve``: its future resolved (acks queued, ``Deliver`` fanned out to the outboxes), or,
  where the writer flushes the outbox itself (``GroupCommitWriter.after_batch``), up to that
  flush;
* ``to_flush``: from there to the outbox flush (0 where the writer flushed it);
* ``in_server``: all of the above, read callback to flush,

each as p50 / p90 / p99, and the batch sizes. What it cannot see is the time before the read
callback (the frame waits in the socket while the loop runs other callbacks) and after the
flush (the write leaves at the end of the loop's iteration): the generator's end-to-end figure
minus ``in_server`` is that, plus the kernel and the generator.

It wraps five methods of the running server (``SQLiteStore.append`` and ``_apply_batch``,
``GroupCommitWriter._commit``, ``Outbox.flush``, the connection's ``data_received``), each by
a call and a clock read: a probe's cost, so its run's CPU figure is not the one to quote."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

ENV = "BENCH_PATH_FILE"

Row = tuple[float, float, float, float, int, float]
"""read callback, batch start, transaction end, futures resolved, batch size, flush."""


def _quantiles(values: list[float]) -> list[float]:
    if not values:
        return []
    v = sorted(values)
    return [round(v[min(len(v) - 1, int(len(v) * p))] * 1000, 2) for p in (0.5, 0.9, 0.99)]


def summary(rows: list[Row]) -> dict[str, Any]:
    def part(f: Callable[[Row], float]) -> list[float]:
        return _quantiles([f(r) for r in rows])

    sizes = sorted(r[4] for r in rows)
    return {
        "messages": len(rows),
        "gather_ms": part(lambda r: r[1] - r[0]),
        "commit_ms": part(lambda r: r[2] - r[1]),
        "resolve_ms": part(lambda r: r[3] - r[2]),
        "to_flush_ms": part(lambda r: r[5] - r[3]),
        "in_server_ms": part(lambda r: r[5] - r[0]),
        "batch": [sizes[min(len(sizes) - 1, int(len(sizes) * p))] for p in (0.5, 0.9, 0.99)]
        if sizes
        else [],
    }


def patch(path: str) -> None:
    from chatd.store import sqlite, writer
    from chatd.transport import link, server

    clock = time.monotonic
    on = [False]
    read_at = [0.0]
    applied_at = [0.0]
    flushed_at = [0.0]
    born: dict[int, float] = {}
    unflushed: list[tuple[float, float, float, float, int]] = []
    rows: list[Row] = []

    data_received = server._Connection.data_received

    def probed_data_received(self: Any, data: bytes) -> None:
        read_at[0] = clock()
        data_received(self, data)

    append = sqlite.SQLiteStore.append

    def probed_append(self: Any, *args: Any) -> Any:
        future = append(self, *args)
        if on[0]:
            born[id(future)] = read_at[0]
        return future

    apply_batch = sqlite.SQLiteStore._apply_batch

    async def probed_apply_batch(self: Any, batch: Any) -> Any:
        results = await apply_batch(self, batch)
        applied_at[0] = clock()
        return results

    commit = writer.GroupCommitWriter._commit

    async def probed_commit(self: Any, batch: Any) -> None:
        started = clock()
        await commit(self, batch)
        resolved = clock()
        inside = flushed_at[0] >= applied_at[0]  # the writer flushed the outbox itself
        for op in batch:
            read = born.pop(id(op.future), None)
            if read is None:
                continue
            if inside:
                rows.append(
                    (read, started, applied_at[0], flushed_at[0], len(batch), flushed_at[0])
                )
            else:
                unflushed.append((read, started, applied_at[0], resolved, len(batch)))

    flush = link.Outbox.flush

    def probed_flush(self: Any) -> None:
        now = flushed_at[0] = clock()
        if unflushed:
            rows.extend((*r, now) for r in unflushed)
            unflushed.clear()
        flush(self)

    def toggle(*_: Any) -> None:
        if not on[0]:
            rows.clear()
            born.clear()
            on[0] = True
            return
        on[0] = False
        with open(path, "a") as out:
            out.write(json.dumps(summary(rows)) + "\n")

    server._Connection.data_received = probed_data_received  # type: ignore[method-assign]
    sqlite.SQLiteStore.append = probed_append  # type: ignore[method-assign]
    sqlite.SQLiteStore._apply_batch = probed_apply_batch  # type: ignore[method-assign]
    writer.GroupCommitWriter._commit = probed_commit  # type: ignore[method-assign]
    link.Outbox.flush = probed_flush  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR2, toggle)


def install() -> None:
    """Patch chatd when ``uvloop.run`` starts (its modules are imported by then)."""
    path = os.environ.get(ENV)
    if not path:
        return
    import uvloop

    run = uvloop.run

    def probed(main: Any, **kw: Any) -> Any:
        patch(path)
        return run(main, **kw)

    uvloop.run = probed
