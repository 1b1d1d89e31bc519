"""``chatload record``: a recording WebSocket proxy (subprotocol chatd.v1) between real clients
(the ``chat`` terminal client, the SDK) and a chatd server.

It forwards every frame both ways unchanged and writes one JSON line per client frame:

    {"ts": 1.234, "c": 3, "d": "c", "t": "send", "size": 161, "conv": 7, "kind": "text", "body": 120}

``ts`` is seconds since the proxy started, ``c`` the proxy's connection id, ``size`` the frame's
bytes. Besides the type, a line keeps only what replay needs to remap and reproduce the frame:
the request ``id``, conversation, account and device ids, ``kind`` and body *size* of sends,
``on`` of typing, ``type`` of receipts, ``after``/``limit``/``before`` of sync and fetch,
``kind``/``members`` of create_conv, ``account``/``role`` of membership requests, the target
``device`` and body size of ``to_device``, how many one-time prekeys an ``upload_keys`` carries
(``one_time``) and whether it has a signed / post-quantum prekey, the ``version`` and body size
of ``put_device_list``. Never bodies, texts, titles, handles, keys or signatures. A few server
frames are noted too (``"d": "s"``): ``welcome`` (which account and device a connection is),
``conv`` answers (a conversation's kind and member accounts), ``account`` answers (the account a
lookup found) and ``error`` answers (code and request id); ``"d": "o"`` when a connection opens
and ``"d": "x"`` when it closes.

The upstream is connected before the client's WebSocket handshake is answered: when it cannot be
reached the client gets HTTP 502 and the proxy logs one line (a client retries as it would
against a server that is down).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import signal
import sys
import time
from pathlib import Path
from typing import IO, Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
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
    if isinstance(f.get("id"), int):
        line["id"] = f["id"]
    if t in _AUTH:
        return line
    if t == "to_device":
        if isinstance(f.get("device"), int):
            line["device"] = f["device"]
        if isinstance(f.get("body"), bytes):
            line["body"] = len(f["body"])
        return line
    if t == "upload_keys":
        line["one_time"] = len(f.get("one_time") or [])
        line["signed"] = f.get("signed_prekey") is not None
        pq = f.get("pq_prekey")
        line["pq"] = (
            len(pq["key"]) if isinstance(pq, dict) and isinstance(pq.get("key"), bytes) else 0
        )
        return line
    if t == "put_device_list":
        if isinstance(f.get("version"), int):
            line["version"] = f["version"]
        if isinstance(f.get("body"), bytes):
            line["body"] = len(f["body"])
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
        return {
            "ts": round(ts, 6),
            "c": cid,
            "d": "s",
            "t": t,
            "account": f.get("account"),
            "device": f.get("device"),
        }
    if t == "account":
        return {
            "ts": round(ts, 6),
            "c": cid,
            "d": "s",
            "t": t,
            "re": f.get("re"),
            "account": f.get("account"),
        }
    if t == "error":
        return {
            "ts": round(ts, 6),
            "c": cid,
            "d": "s",
            "t": t,
            "re": f.get("re"),
            "code": f.get("code"),
        }
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
    def __init__(self, upstream: str, out: IO[str], log: IO[str] | None = None) -> None:
        self.upstream = upstream
        self.out = out
        self.log = log if log is not None else sys.stderr
        self.t0 = time.monotonic()
        self.next_id = 0
        self.frames = 0
        self.refused = 0
        self._up: dict[ServerConnection, ClientConnection] = {}

    async def connect_upstream(self, client: ServerConnection, request: Request) -> Response | None:
        """``process_request``: reach the server before accepting the client; 502 if it is down."""
        try:
            self._up[client] = await connect(
                self.upstream,
                subprotocols=[Subprotocol("chatd.v1")],
                compression=None,
                max_size=2**20,
                ping_interval=None,
                open_timeout=5,
            )
        except Exception as exc:
            self.refused += 1
            why = str(exc) or type(exc).__name__
            print(
                f"chatload record: refused a client: upstream {self.upstream} unreachable ({why})",
                file=self.log,
                flush=True,
            )
            return client.respond(http.HTTPStatus.BAD_GATEWAY, f"upstream {self.upstream} down\n")
        return None

    def write(self, line: dict[str, Any]) -> None:
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.out.flush()

    async def handle(self, client: ServerConnection) -> None:
        self.next_id += 1
        cid = self.next_id
        self.write({"ts": round(time.monotonic() - self.t0, 6), "c": cid, "d": "o", "t": "open"})
        async with self._up.pop(client) as up:

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
            process_request=rec.connect_upstream,
        ) as server:
            bound = next(iter(server.sockets)).getsockname()[1]
            yield rec, bound


async def record_forever(host: str, port: int, upstream: str, out: Path, seconds: float) -> None:
    """Record until ``seconds`` pass (0: forever), Ctrl-C or SIGTERM (both end it cleanly: a
    script's background job has SIGINT ignored, so SIGTERM is how it stops the proxy)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with recording_proxy(host, port, upstream, out) as (rec, bound):
        print(f"recording proxy on ws://{host}:{bound}/ws -> {upstream}, trace {out}", flush=True)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), seconds if seconds > 0 else None)
        finally:
            refused = f"; refused {rec.refused} (upstream down)" if rec.refused else ""
            print(
                f"recorded {rec.frames} client frames on {rec.next_id} connections{refused}",
                flush=True,
            )
