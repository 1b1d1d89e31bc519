#!/usr/bin/env python3
"""Instructions per envelope through one node's hub: a message arriving from the broker for a
conversation 9 local connections watch, as a plain MESSAGE (a conversation nobody left) and as
a message that follows removals the node has applied (a WITHHELD envelope carrying the removal
count, issue 14.7). Run it under callgrind twice, with 0 and N envelopes, and divide the
difference by N (instruction counts barely move on a busy machine; times do):

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python loadtest/bench_hub.py removals 20000 1

Without valgrind it prints the best of ``reps`` timings (noisy on a shared machine). Run it with
``PYTHONPATH=TREE:TREE/protocol`` to measure another checkout.
"""

from __future__ import annotations

import sys
import time

from chatd import envelope
from chatd.broker.memory import MemoryBroker
from chatd.hub import Hub
from chatd.metrics import HotCounters


class Outlet:
    def __init__(self, i: int) -> None:
        self.conn_id = i
        self.account = 100 + i
        self.device = 200 + i
        self.floors: dict[int, int] = {}
        self.watching: dict[int, None] = {}
        self.pushed = 0

    def push(self, data: bytes) -> None:
        self.pushed += 1


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "message"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 7
    hub = Hub(MemoryBroker(), HotCounters())
    for i in range(9):
        hub.attach(Outlet(i + 1), [1])
    frame = bytes(300)
    if mode == "message":
        data = envelope.pack(envelope.MESSAGE, 5, 0, 12345, frame)
    else:  # this node has applied the 3 removals the message follows: no re-read
        hub._removals[1] = 3
        payload = envelope.withheld_payload((), frame, 3)
        data = envelope.pack(envelope.WITHHELD, 5, 0, 12345, payload)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            hub._from_broker("c.1", data)
        best = min(best, (time.perf_counter() - start) / max(n, 1) * 1e9)
    print(f"{mode}: {best:.0f} ns per envelope (9 pushes)")


if __name__ == "__main__":
    main()
