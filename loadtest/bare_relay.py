"""A bare python-websockets + uvloop relay (no auth, no persistence, no ack), for comparison.

Rooms of ``--room`` connections; every message a client sends is broadcast to the rest of its
room. The generator offers ``--rate`` msgs/s in total (open model) from another process pinned
to core 1; the relay runs pinned to core 0; relay CPU per delivery is read from /proc.

    .venv/bin/python loadtest/bare_relay.py --room 10 --rooms 20 --rate 500

``serve_rooms`` is the relay ``bench_relay.py`` runs against chatd: the room is named by the URL
path (``/room/N``) and the sender gets its own copy back (its "ack"), so a message leaves the
relay as many times as it leaves chatd (N-1 deliveries and one ack). ``serve_rooms_picows`` is
the same relay on picows (a Cython WebSocket library: framing, masking and buffering in C), the
"cheaper transport" issue 16 names: how much of the python-websockets relay's cost is
python-websockets itself (``bench_relay.py --servers relay,picows,chatd``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from functools import partial
from typing import Any

import uvloop
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def relay(port: int, room_size: int) -> None:
    rooms: dict[int, set[ServerConnection]] = {}
    joined = [0]

    async def handler(ws: ServerConnection) -> None:
        room = joined[0] // room_size
        joined[0] += 1
        members = rooms.setdefault(room, set())
        members.add(ws)
        try:
            async for message in ws:
                broadcast([m for m in members if m is not ws], message)
        except ConnectionClosed:
            pass
        finally:
            members.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None):
        await asyncio.Future()


async def serve_rooms(port: int, ready: asyncio.Future[None] | None = None) -> None:
    """Rooms by URL path; every message goes to every member of its room, its sender included."""
    rooms: dict[str, set[ServerConnection]] = {}

    async def handler(ws: ServerConnection) -> None:
        members = rooms.setdefault(ws.request.path if ws.request else "/", set())
        members.add(ws)
        try:
            async for message in ws:
                broadcast(members, message)
        except ConnectionClosed:
            pass
        finally:
            members.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=16):
        if ready is not None:
            ready.set_result(None)
        await asyncio.Future()


async def serve_rooms_picows(
    port: int, ready: asyncio.Future[None] | None = None, *, aiofastnet: bool | None = None
) -> None:
    """``serve_rooms`` on picows: rooms by URL path, every unfragmented data message sent to
    every member of its room, its sender included. Fragmented messages are not supported (the
    benchmark's clients never fragment). picows answers pings itself. Its sockets are
    aiofastnet's transports (picows' default where aiofastnet is installed, as the lock has
    it), or the running loop's (uvloop's) with ``aiofastnet=False``."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    rooms: dict[str, set[WSTransport]] = {}

    class Member(WSListener):  # type: ignore[misc]
        def __init__(self, room: set[WSTransport]) -> None:
            self.room = room

        def on_ws_connected(self, transport: WSTransport) -> None:
            self.room.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.room.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.BINARY or kind is WSMsgType.TEXT:
                payload = frame.get_payload_as_bytes()
                for member in self.room:
                    member.send(kind, payload)
            elif kind is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def member(request: WSUpgradeRequest) -> Member:
        path = request.path
        room = path.decode() if isinstance(path, bytes) else str(path)
        return Member(rooms.setdefault(room, set()))

    server = await ws_create_server(member, "127.0.0.1", port, use_aiofastnet=aiofastnet)
    async with server:
        if ready is not None:
            ready.set_result(None)
        await server.serve_forever()


async def serve_rooms_batched(
    port: int,
    window: float,
    redis_url: str | None = None,
    node: int = 1,
    ready: asyncio.Future[None] | None = None,
    counts: str | None = None,
) -> None:
    """The least a chatd node does per message without its store (issue 13): ``serve_rooms``
    on picows, with batches as large as chatd's commits and, given ``redis_url``, chatd's Redis
    hop, so that one node of it and two through Redis show what the hop itself costs beside
    what chatd's second node costs (``bench_relay.py --servers picows-1node@5,picows-2node@8``).

    Messages are gathered in batches: ``window`` seconds after the first message waiting (0: at
    the end of the loop turn) the batch closes, and only then do its copies leave, each to the
    room's other members on this node. (chatd's writer commits a lone write at once when idle
    and otherwise at most once per ``commit_interval``: the benchmark matches its batch sizes by
    choosing ``window``, not its timing.)

    Alone (no ``redis_url``), the sender's own copy (its "ack") leaves with them. As one node
    of a cluster, the batch also goes to Redis as one pipeline of ``PUBLISH``es on the rooms'
    channels, and the sender's copy leaves when Redis has answered it, as chatd acks only once
    its envelope is handed on. A node subscribes to the channel of every room with a member on
    it and delivers what the other nodes publish there at once; its own copies come back with
    the ``PUBLISH`` reply and are dropped by their first byte, the node's id. One RESP3
    connection, chatd's own (``chatd.broker.resp``), publishes and subscribes, as chatd's broker
    does, but without its flusher's one pipeline in flight at a time (at these windows one is
    answered long before the next).

    Nothing is stored, nothing is retried: a floor, not a server. Every 0.2 s the node writes
    ``messages batches`` so far to the file ``counts`` (the benchmark's batch size)."""
    from picows import (
        WSFrame,
        WSListener,
        WSMsgType,
        WSTransport,
        WSUpgradeRequest,
        ws_create_server,
    )

    from chatd.broker.resp import RespConnection, pack_command

    loop = asyncio.get_running_loop()
    me = bytes([node])
    rooms: dict[bytes, set[WSTransport]] = {}
    conn = None
    if redis_url is not None:
        conn = RespConnection(redis_url, connect_timeout=5.0)
        await conn.connect()
    batch: list[tuple[set[WSTransport], bytes, WSTransport, bytes]] = []
    flush_due = [False]
    batched = [0, 0]  # messages, batches

    def handed_on(acks: list[tuple[WSTransport, bytes]], _errors: object) -> None:
        for sender, payload in acks:
            sender.send(WSMsgType.BINARY, payload)

    def close_batch() -> None:
        flush_due[0] = False
        closed = batch[:]
        batch.clear()
        acks = []
        for room, _channel, sender, payload in closed:
            for member in room:
                if member is not sender:
                    member.send(WSMsgType.BINARY, payload)
            acks.append((sender, payload))
        batched[0] += len(closed)
        batched[1] += 1
        if conn is None:
            handed_on(acks, None)
        else:
            data = b"".join(pack_command("PUBLISH", c, me + p) for _, c, _, p in closed)
            conn.send(data, len(closed), partial(handed_on, acks))

    def on_push(reply: list[Any]) -> None:
        if reply[0] != b"message":
            return
        data = reply[2]
        if data[:1] == me:
            return  # this node's own copy, back with the PUBLISH reply
        payload = data[1:]
        for member in rooms.get(reply[1], ()):
            member.send(WSMsgType.BINARY, payload)

    if conn is not None:
        conn.on_push = on_push

    class Member(WSListener):  # type: ignore[misc]
        def __init__(self, channel: bytes) -> None:
            self.channel = channel
            self.room = rooms.setdefault(channel, set())

        def on_ws_connected(self, transport: WSTransport) -> None:
            if not self.room and conn is not None:
                conn.send(  # the PING's reply comes after the confirmation, as in chatd
                    pack_command("SUBSCRIBE", self.channel) + pack_command("PING"),
                    1,
                    _ignore,
                    pubsub=[(b"subscribe", 1)],
                )
            self.room.add(transport)

        def on_ws_disconnected(self, transport: WSTransport) -> None:
            self.room.discard(transport)

        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            kind = frame.msg_type
            if kind is WSMsgType.BINARY:
                batch.append((self.room, self.channel, transport, frame.get_payload_as_bytes()))
                if not flush_due[0]:
                    flush_due[0] = True
                    if window > 0:
                        loop.call_later(window, close_batch)
                    else:
                        loop.call_soon(close_batch)
            elif kind is WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
                transport.disconnect()

    def member(request: WSUpgradeRequest) -> Member:
        path = request.path
        return Member(path if isinstance(path, bytes) else str(path).encode())

    def write_counts() -> None:
        if counts is not None:
            with open(counts + ".new", "w") as f:
                f.write(f"{batched[0]} {batched[1]}\n")
            os.replace(counts + ".new", counts)
            loop.call_later(0.2, write_counts)

    write_counts()
    try:
        server = await ws_create_server(member, "127.0.0.1", port)
        async with server:
            if ready is not None:
                ready.set_result(None)
            await server.serve_forever()
    finally:
        if conn is not None:
            conn.close()


def _ignore(_errors: object) -> None:
    """A SUBSCRIBE's confirmation: nothing waits for it (the benchmark connects, then waits)."""


async def generate(
    port: int, rooms: int, room_size: int, rate: float, seconds: float, relay_pid: int
) -> None:
    conns = [
        await connect(f"ws://127.0.0.1:{port}", compression=None) for _ in range(rooms * room_size)
    ]
    received = [0]

    async def reader(ws: object) -> None:
        async for _ in ws:  # type: ignore[attr-defined]
            received[0] += 1

    tasks = [asyncio.create_task(reader(c)) for c in conns]
    senders = conns[::room_size]  # one sender per room
    interval = len(senders) / rate
    body = b"x" * 120

    async def sender(ws: object, offset: float, start: float, stop: float) -> None:
        t = start + offset
        while t < stop:
            await asyncio.sleep(max(0.0, t - time.monotonic()))
            await ws.send(body)  # type: ignore[attr-defined]
            t += interval

    start = time.monotonic() + 0.5
    warm = start + 2
    stop = warm + seconds
    send_tasks = [
        asyncio.create_task(sender(s, i * interval / len(senders), start, stop))
        for i, s in enumerate(senders)
    ]
    await asyncio.sleep(warm - time.monotonic())
    c0, r0 = cpu_seconds(relay_pid), received[0]
    await asyncio.sleep(stop - time.monotonic())
    c1, r1 = cpu_seconds(relay_pid), received[0]
    await asyncio.gather(*send_tasks)
    deliveries = r1 - r0
    print(
        f"rooms of {room_size}, {rate:.0f} msgs/s offered: {deliveries / seconds:.0f} deliveries/s, "
        f"relay CPU {100 * (c1 - c0) / seconds:.0f}%, {1e6 * (c1 - c0) / max(deliveries, 1):.1f} us per delivery"
    )
    for t in tasks:
        t.cancel()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--room", type=int, default=10)
    p.add_argument("--rooms", type=int, default=20)
    p.add_argument("--rate", type=float, default=500)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--port", type=int, default=18999)
    a = p.parse_args()
    pid = os.fork()
    if pid == 0:
        os.sched_setaffinity(0, {0})
        uvloop.run(relay(a.port, a.room))
        os._exit(0)
    os.sched_setaffinity(0, {1})
    time.sleep(0.5)
    try:
        uvloop.run(generate(a.port, a.rooms, a.room, a.rate, a.seconds, pid))
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
