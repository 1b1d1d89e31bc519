"""Test helpers: a raw-frame client (speaks chatproto directly, no SDK) and a delivery checker."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from chatproto import auth, codec
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from procguard import die_with_parent
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

T = TypeVar("T", bound=F.Frame)


class Raw:
    """One WebSocket speaking raw chatd.v1 frames."""

    def __init__(self, ws: ClientConnection, challenge: F.Challenge) -> None:
        self.ws = ws
        self.challenge = challenge
        self.key = SigningKey.generate()
        self.account = 0
        self.device = 0
        self._ids = 0
        self.backlog: list[F.ServerFrame] = []

    @classmethod
    async def open(cls, url: str, rcvbuf: int | None = None, **kw: Any) -> Raw:
        """Connect; ``rcvbuf`` pins a small kernel receive buffer (no autotuning), so a client
        that stops reading backs up into the server quickly.

        Without ``rcvbuf`` the incoming queue is unbounded (``max_queue=None``): a test that
        sends for a while before reading must not stop reading its socket at websockets'
        default queue of 16 frames, or it misses the server's keepalive ping (20 s) and is
        dropped with 1011 -- the cause of two flaky CI runs. A test that wants back-pressure
        passes ``rcvbuf`` (or its own ``max_queue``)."""
        if rcvbuf is None:
            kw.setdefault("max_queue", None)
        else:
            host, port = url.removeprefix("ws://").split("/", 1)[0].split(":")
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
            kw["sock"] = sock
        ws = await connect(url, subprotocols=[Subprotocol("chatd.v1")], compression=None, **kw)
        first = codec.decode_server(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(first, F.Challenge)
        return cls(ws, first)

    def next_id(self) -> int:
        self._ids += 1
        return self._ids

    def login_sig(self, key: SigningKey | None = None) -> bytes:
        k = key or self.key
        return k.sign(auth.login_payload(self.challenge.server, self.challenge.nonce, k.public_key))

    async def register(self, handle: str, name: str | None = None, type: str = "user") -> F.Welcome:
        w = await self.request(
            F.Register(
                id=self.next_id(),
                handle=handle,
                name=name or handle.title(),
                type=type,  # type: ignore[arg-type]
                device_key=self.key.public_key,
                device_name="raw",
                sig=self.login_sig(),
            ),
            F.Welcome,
        )
        self.account, self.device = w.account, w.device
        return w

    async def login(self, device: int, key: SigningKey) -> F.Welcome:
        self.key = key
        w = await self.request(
            F.Login(id=self.next_id(), device=device, sig=self.login_sig()), F.Welcome
        )
        self.account, self.device = w.account, w.device
        return w

    async def send_frame(self, frame: F.Frame) -> None:
        await self.ws.send(codec.encode(frame))

    async def recv(self, timeout: float = 5.0) -> F.ServerFrame:
        if self.backlog:
            return self.backlog.pop(0)
        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes)
        return codec.decode_server(data)

    async def expect(self, kind: type[T], timeout: float = 5.0, **match: Any) -> T:
        """The next frame of type ``kind`` (matching ``match``); others are kept for later."""
        deadline = time.monotonic() + timeout
        kept: list[F.ServerFrame] = []
        try:
            for i, f in enumerate(self.backlog):
                if isinstance(f, kind) and all(getattr(f, k) == v for k, v in match.items()):
                    del self.backlog[i]
                    return f
            while True:
                data = await asyncio.wait_for(
                    self.ws.recv(), max(0.01, deadline - time.monotonic())
                )
                assert isinstance(data, bytes)
                f = codec.decode_server(data)
                if isinstance(f, kind) and all(getattr(f, k) == v for k, v in match.items()):
                    return f
                kept.append(f)
        finally:
            self.backlog.extend(kept)

    async def request(self, frame: Any, expect: type[T] | None = None) -> Any:
        await self.send_frame(frame)
        while True:
            f = await self._reply(frame.id)
            if expect is not None and not isinstance(f, expect):
                raise AssertionError(f"expected {expect.__name__}, got {f!r}")
            return f

    async def _reply(self, rid: int, timeout: float = 5.0) -> F.ServerFrame:
        deadline = time.monotonic() + timeout
        for i, f in enumerate(self.backlog):
            if getattr(f, "re", None) == rid:
                del self.backlog[i]
                return f
        while True:
            data = await asyncio.wait_for(self.ws.recv(), max(0.01, deadline - time.monotonic()))
            assert isinstance(data, bytes)
            f = codec.decode_server(data)
            if getattr(f, "re", None) == rid:
                return f
            self.backlog.append(f)

    async def until_closed(self, timeout: float = 10.0) -> int | None:
        """Read (and drop) frames until the server closes; the close code (None if it never did)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed:
            return self.ws.close_code
        except TimeoutError:
            return None

    async def close(self) -> None:
        await self.ws.close()


@dataclass
class Checker:
    """Records every ack and every delivery, then counts losses, duplicates and order violations.

    ``expect_members[conv]`` names the clients that must receive every acked message of conv.
    """

    acked: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    delivered: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))

    def ack(self, conv: int, seq: int) -> None:
        self.acked[conv].add(seq)

    def deliver(self, client: str, conv: int, seq: int) -> None:
        self.delivered[(client, conv)].append(seq)

    def report(self, members: dict[int, Iterable[str]]) -> dict[str, int]:
        lost = dup = disorder = 0
        for conv, clients in members.items():
            for client in clients:
                seqs = self.delivered.get((client, conv), [])
                seen = set(seqs)
                lost += len(self.acked[conv] - seen)
                dup += len(seqs) - len(seen)
                disorder += sum(1 for a, b in itertools.pairwise(seqs) if b <= a)
        return {"lost": lost, "duplicates": dup, "order_violations": disorder}


async def http_get(port: int, path: str) -> tuple[int, str]:
    """``GET path`` on 127.0.0.1:``port`` (the operator endpoints): (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = (await reader.read()).decode()
    finally:
        writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return int(head.split()[1]), body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """chatd as a real child process (for kill -9 and SIGTERM tests)."""

    def __init__(
        self,
        db: Path | str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        *,
        args: Iterable[str] = (),
        log: Path | None = None,
    ) -> None:
        self.db = db
        self.port = port or free_port()
        self._may_choose = port is None
        """The port is this object's own choice and chatd never started on it: it may be
        chosen again (a restart keeps its port, as the clients' URLs do)."""
        self.env = {**os.environ, "CHATD_LOG__FORMAT": "json", **(env or {})}
        self.args = list(args)
        """More ``chatd serve`` flags (e.g. ``--broker``, ``--node-id``)."""
        self.proc: subprocess.Popen[bytes] | None = None
        if log is None:
            assert isinstance(db, Path), "a log path is needed when db is a URL"
            log = db.with_suffix(".log")
        self.log = log

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        """Start chatd and return once IT listens: its log says ``serving``. A connection alone
        could be answered by another process holding the port: ``free_port`` only names a port
        that was free a moment ago, and another test's server or client may take it meanwhile
        (a cluster fixture once waited 20 s on a node that had exited at once with "address
        already in use"). A port this object chose itself is chosen again in that case; a
        port given, or one a restart must keep, is not."""
        for _ in range(5):
            offset = self.log.stat().st_size if self.log.exists() else 0
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "chatd",
                        "serve",
                        "--port",
                        str(self.port),
                        "--db",
                        str(self.db),
                        *self.args,
                    ],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,
                )
            said = await self._until_serving(offset)
            if said is None:
                self._may_choose = False
                return
            if "address is already in use" in said and self._may_choose:
                self.port = free_port()
                continue
            raise RuntimeError(f"chatd exited: {said[-2000:]}")
        raise RuntimeError("chatd found no free port in 5 tries")

    async def _until_serving(self, offset: int) -> str | None:
        """None once the log (past ``offset``) says ``serving``; what it said if chatd exited."""
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            exited = self.proc.poll() is not None
            with self.log.open("rb") as f:
                f.seek(offset)
                said = f.read().decode(errors="replace")
            if '"serving"' in said or " serving" in said:
                return None
            if exited:
                return said
            await asyncio.sleep(0.05)
        raise RuntimeError(f"chatd did not start: {said[-2000:]}")

    async def http_get(self, path: str) -> tuple[int, str]:
        """``GET path`` on the node's port: (status, body)."""
        return await http_get(self.port, path)

    async def wait_ready(self, timeout: float = 20) -> None:
        """Until ``/readyz`` answers 200 (store reachable, broker connected)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    if (await self.http_get("/readyz"))[0] == 200:
                        return
                except (OSError, IndexError, ValueError):
                    pass
                await asyncio.sleep(0.05)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
