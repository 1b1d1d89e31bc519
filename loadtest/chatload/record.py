"""``chatload record``: a recording WebSocket proxy (subprotocol chatd.v1) between real clients
(the ``chat`` terminal client, the SDK) and a chatd server.

It forwards every frame both ways unchanged and writes one JSON line per client frame:

    {"ts": 1.234, "c": 3, "d": "c", "t": "send", "size": 161, "conv": 7, "kind": "text", "body": 120}

``ts`` is seconds since the proxy started, ``c`` the proxy's connection id, ``size`` the frame's
bytes. Besides the type, a line keeps only what replay needs to remap and reproduce the frame:
conversation and account ids, ``kind`` and body *size* of sends, ``on`` of typing, ``type`` of
receipts, ``after``/``limit``/``before`` of sync and fetch, ``kind``/``members`` of create_conv,
``account``/``role`` of membership requests. Never bodies, texts, titles, handles, keys or
signatures. A few server frames are noted too (``"d": "s"``): ``welcome`` (which account a
connection is), ``conv`` answers (a conversation's kind and member accounts); and ``"d": "x"``
when a connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import IO, Any

import msgspec
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.typing import Subprotocol

_KEEP = ("conv", "kind", "on", "type", "after", "limit", "account", "role", "accounts", "members")
_AUTH = frozenset({"register", "login", "link_device"})


def client_line(ts: float, cid: int, data: bytes) -> dict[str, Any]:
    line: dict[str, Any] = {"ts": round(ts, 6), "c": cid, "d": "c", "size": len(data)}
    try:
        f = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        f = None
    if not isinstance(f, dict):
        line["t"] = "?"
        return line
    t = str(f.get("t", "?"))
    line["t"] = t
    if t in _AUTH:
        return line
    for k in _KEEP:
        if k in f and not (t == "send" and k not in ("conv", "kind")):
            v = f[k]
            if isinstance(v, int | bool | str) or (
                isinstance(v, list) and all(isinstance(x, int) for x in v)
            ):
                line[k] = v
    if t == "fetch" and f.get("before") is not None:
        line["before"] = True
    if t == "send" and isinstance(f.get("body"), bytes):
        line["body"] = len(f["body"])
    return line


def server_line(ts: float, cid: int, data: bytes) -> dict[str, Any] | None:
    try:
        f = msgspec.msgpack.decode(data)
    except msgspec.DecodeError:
        return None
    if not isinstance(f, dict):
        return None
    t = f.get("t")
    if t == "welcome":
        return {"ts": round(ts, 6), "c": cid, "d": "s", "t": t, "account": f.get("account")}
    if t == "conv" and isinstance(f.get("info"), dict):
        info = f["info"]
        return {
            "ts": round(ts, 6),
            "c": cid,
            "d": "s",
            "t": t,
            "conv": info.get("conv"),
            "kind": info.get("kind"),
            "members": [m.get("account") for m in info.get("members", []) if isinstance(m, dict)],
        }
    return None


class Recorder:
    def __init__(self, upstream: str, out: IO[str]) -> None:
        self.upstream = upstream
        self.out = out
        self.t0 = time.monotonic()
        self.next_id = 0
        self.frames = 0

    def write(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.out.flush()

    async def handle(self, client: ServerConnection) -> None:
        self.next_id += 1
        cid = self.next_id
        async with connect(
            self.upstream,
            subprotocols=[Subprotocol("chatd.v1")],
            compression=None,
            max_size=2**20,
            ping_interval=None,
        ) as up:

            async def c2s() -> None:
                async for data in client:
                    if isinstance(data, bytes):
                        self.frames += 1
                        self.write(client_line(time.monotonic() - self.t0, cid, data))
                    await up.send(data)

            async def s2c() -> None:
                async for data in up:
                    if isinstance(data, bytes):
                        line = server_line(time.monotonic() - self.t0, cid, data)
                        if line is not None:
                            self.write(line)
                    await client.send(data)

            tasks = [asyncio.create_task(c2s()), asyncio.create_task(s2c())]
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.write({"ts": round(time.monotonic() - self.t0, 6), "c": cid, "d": "x", "t": "close"})


@contextlib.asynccontextmanager
async def recording_proxy(host: str, port: int, upstream: str, out: Path) -> Any:
    """Run the proxy while the context is open; yields (Recorder, bound port)."""
    with open(out, "w") as f:  # noqa: ASYNC230 - opened once, before serving
        rec = Recorder(upstream, f)
        async with serve(
            rec.handle,
            host,
            port,
            subprotocols=[Subprotocol("chatd.v1")],
            compression=None,
            max_size=2**20,
            ping_interval=None,
        ) as server:
            bound = next(iter(server.sockets)).getsockname()[1]
            yield rec, bound


async def record_forever(host: str, port: int, upstream: str, out: Path, seconds: float) -> None:
    async with recording_proxy(host, port, upstream, out) as (rec, bound):
        print(f"recording proxy on ws://{host}:{bound}/ws -> {upstream}, trace {out}", flush=True)
        try:
            if seconds > 0:
                await asyncio.sleep(seconds)
            else:
                await asyncio.Future()
        finally:
            print(f"recorded {rec.frames} client frames on {rec.next_id} connections", flush=True)
