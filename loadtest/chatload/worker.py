"""A load-generating worker: one asyncio (uvloop) process that joins a coordinator over TCP,
receives its share of the clients and of the schedule, runs them, and reports every second.

Local workers are subprocesses the coordinator starts (``chatload worker --connect
127.0.0.1:PORT``); a worker on another host runs the very same command against the
coordinator's ``--listen`` address. Messages are length-prefixed msgpack maps:

* worker -> coordinator: ``hello`` {pid, host}; ``ready`` {connected}; ``interval`` {k, counters,
  encoded interval histograms, cpu_s, cumulative acked_by_conv}; ``final`` {total histograms,
  cumulative counters, frames_sent, unacked}
* coordinator -> worker: ``assign`` {clients, blocks, message, timing}; ``start`` {t0_ns};
  ``stop`` {}
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import struct
import time
from typing import Any

import msgspec

from .procstat import pin, raise_nofile, self_cpu_seconds
from .proto import Client, Stats, gather_limited
from .scenario import SizeDist, body_size

_LEN = struct.Struct(">I")


class Channel:
    """Length-prefixed msgpack messages over a TCP stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, msg: dict[str, Any]) -> None:
        data = msgspec.msgpack.encode(msg)
        self.writer.write(_LEN.pack(len(data)) + data)
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        (n,) = _LEN.unpack(await self.reader.readexactly(4))
        msg = msgspec.msgpack.decode(await self.reader.readexactly(n))
        if not isinstance(msg, dict):
            raise ValueError("bad coordinator message")
        return msg

    def close(self) -> None:
        self.writer.close()


def intended_offset_s(i: int, rate: float, ramp: float) -> float:
    """Intended time (s after t0) of message i when the rate grows linearly from 0 to ``rate``
    over ``ramp`` seconds, then stays: N(t) = rate*t^2/(2*ramp) during the ramp."""
    if ramp <= 0:
        return i / rate
    in_ramp = rate * ramp / 2
    if i < in_ramp:
        return math.sqrt(2 * ramp * i / rate)
    return ramp + (i - in_ramp) / rate


def messages_due(t: float, rate: float, ramp: float) -> int:
    """How many messages are due by t seconds after t0 (inverse of intended_offset_s)."""
    if t <= 0 or rate <= 0:
        return 0
    if ramp > 0 and t < ramp:
        return math.floor(rate * t * t / (2 * ramp)) + 1
    return (
        math.floor(rate * ramp / 2 + (t - ramp) * rate) + 1
        if ramp > 0
        else math.floor(t * rate) + 1
    )


class Worker:
    def __init__(self, assign: dict[str, Any]) -> None:
        self.a = assign
        self.id = int(assign["worker"])
        self.stats = Stats(int(assign["run"]))
        self.kind = str(assign["message"]["kind"])
        self.size = SizeDist.parse(assign["message"]["size"])
        self.rng = random.Random(int(assign.get("seed", 1)) * 1000 + self.id)
        self.clients: dict[int, Client] = {}
        for c in assign["clients"]:
            cl = Client(
                int(c["i"]),
                str(c["url"]),
                self.stats,
                seed=bytes(c["seed"]),
                device=int(c["device"]),
                account=int(c["account"]),
                convs=[int(x) for x in c["convs"]],
            )
            cl.kind = self.kind
            self.clients[cl.idx] = cl
        self.msg_id = self.id << 40
        self.stopping = False

    async def connect_all(self) -> int:
        async def one(c: Client) -> bool:
            try:
                await c.open()
                await c.load_cursors()
            except Exception:
                return False
            return True

        ok = await gather_limited([one(c) for c in self.clients.values()], 200)
        return sum(ok)

    async def schedule(self, block: dict[str, Any], t0: int) -> None:
        rate = float(block["rate"])
        routes = [(self.clients[int(ci)], int(conv)) for ci, conv in block["routes"]]
        if rate <= 0 or not routes:
            return
        ramp = float(self.a["ramp_up"])
        duration = float(self.a["duration"])
        total = messages_due(duration - 1e-9, rate, ramp)
        n = len(routes)
        i = 0
        draw = self.size.draw
        rng = self.rng
        kind = self.kind
        while i < total and not self.stopping:
            now_s = (time.time_ns() - t0) / 1e9
            due = min(total, messages_due(now_s, rate, ramp), i + 2000)
            while i < due:
                client, conv = routes[i % n]
                intended = t0 + int(intended_offset_s(i, rate, ramp) * 1e9)
                self.msg_id += 1
                client.send_message(conv, intended, self.msg_id, body_size(kind, draw(rng)))
                i += 1
            if i >= total:
                break
            # uvloop timers have 1 ms resolution: a shorter sleep would spin. Waking at most
            # every ms sends what is due in a burst; the lateness is inside the latencies.
            nxt = t0 + intended_offset_s(i, rate, ramp) * 1e9
            await asyncio.sleep(max((nxt - time.time_ns()) / 1e9, 0.001))

    async def churn(self, t0: int) -> None:
        rate = float(self.a.get("churn_per_s", 0))
        if rate <= 0:
            return
        end = t0 + int(float(self.a["duration"]) * 1e9)
        clients = list(self.clients.values())
        k = 0
        while not self.stopping:
            k += 1
            due = t0 + int(k / rate * 1e9)
            if due >= end:
                return
            await asyncio.sleep(max(0.0, (due - time.time_ns()) / 1e9))
            c = self.rng.choice(clients)
            if c.connected and (c.reconnecting is None or c.reconnecting.done()):
                c.reconnecting = asyncio.get_running_loop().create_task(c.reconnect())

    async def report(self, ch: Channel, t0: int, stop: asyncio.Event) -> None:
        k = 0
        cpu0 = self_cpu_seconds()
        wall0 = time.monotonic()
        while True:
            k += 1
            due = t0 + k * 1_000_000_000
            delay = max(0.0, (due - time.time_ns()) / 1e9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            cpu1 = self_cpu_seconds()
            wall1 = time.monotonic()
            snap = self.stats.snapshot()
            if stop.is_set():  # the last interval ends here, short of its second
                start = t0 + (k - 1) * 1_000_000_000
                snap["seconds"] = min(1.0, max(0.001, (time.time_ns() - start) / 1e9))
            snap.update(
                type="interval",
                k=k,
                worker=self.id,
                # CPU share of the wall time since the last report (a busy loop reports late)
                cpu_s=(cpu1 - cpu0) / max(1e-3, wall1 - wall0),
                acked_by_conv=dict(self.stats.acked_by_conv),
                unacked=sum(len(c.unacked) for c in self.clients.values()),
            )
            cpu0, wall0 = cpu1, wall1
            await ch.send(snap)
            if stop.is_set():
                return

    def final(self) -> dict[str, Any]:
        s = self.stats
        s.snapshot()  # fold the partial interval into the cumulative counters
        return {
            "type": "final",
            "worker": self.id,
            "ack_total": s.ack_t.encode(),
            "del_total": s.del_t.encode(),
            "cum": s.cum,
            "cum_errors": {str(k): v for k, v in s.cum_errors.items()},
            "frames_sent": s.frames_sent,
            "acked_by_conv": dict(s.acked_by_conv),
            "unacked": sum(len(c.unacked) for c in self.clients.values()),
        }


async def run_worker(host: str, port: int, cpu: int | None = None) -> None:
    pin(cpu)
    raise_nofile(65536)
    reader, writer = await asyncio.open_connection(host, port)
    ch = Channel(reader, writer)
    await ch.send({"type": "hello", "pid": os.getpid(), "host": socket.gethostname()})
    assign = await ch.recv()
    w = Worker(assign)
    w.stats.steady_from_ns = 0
    connected = await w.connect_all()
    await ch.send({"type": "ready", "connected": connected})
    start = await ch.recv()
    t0 = int(start["t0"])
    w.stats.steady_from_ns = t0 + int(float(assign["ramp_up"]) * 1e9)
    await asyncio.sleep(max(0.0, (t0 - time.time_ns()) / 1e9))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.schedule(b, t0)) for b in assign["blocks"]]
    tasks.append(asyncio.create_task(w.churn(t0)))
    reporter = asyncio.create_task(w.report(ch, t0, stop))
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        msg = await ch.recv()
        assert msg.get("type") == "stop", msg
    w.stopping = True
    stop.set()
    await reporter
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    with contextlib.suppress(ConnectionError):
        await ch.send(w.final())
    await gather_limited([c.close() for c in w.clients.values()], 500)
    ch.close()


def worker_main(connect: str, cpu: int | None) -> int:
    host, _, port = connect.rpartition(":")
    import uvloop

    uvloop.run(run_worker(host or "127.0.0.1", int(port), cpu))
    return 0
