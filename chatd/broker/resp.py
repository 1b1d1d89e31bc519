"""One lean connection to Redis for the broker's two hot connections: an ``asyncio.Protocol``
whose ``data_received`` feeds hiredis' C parser and hands every complete reply on at once.

Why not redis-py's connection for these two: each reply read through it is about twenty Python
calls and a future (``read_response`` -> the parser -> ``StreamReader.read`` -> its waiter), and
a node of a cluster reads one reply per envelope it publishes and one per envelope published to
its conversations, its own included: 2 nodes cost ~300 more Python calls per message than 1,
~250 of them there (``loadtest/bench_cluster_instr.py --profile``). Here a read that brings many
replies costs one callback and one ``gets()`` per reply. redis-py still parses the URL (every
``from_url`` form: credentials, ``rediss://`` with its ``ssl_*`` options, ``unix://``,
``client_name``) and builds the TLS context; limits and presence keep using redis-py's client.

The connection speaks RESP3 (``HELLO 3``), so one connection both publishes and subscribes:
pushes (pub/sub messages and (un)subscribe confirmations) go to ``on_push`` in order; every other reply is
counted off against waiting requests (``request``: a future per batch of commands, failed with
``ReplyError`` if any reply was an error; ``send``: the same without a future). Redis writes a
publisher's own copy of a message into the same output buffer as its ``PUBLISH`` reply, so both
come back in one read. A lost connection fails every waiting request and ``closed`` with
``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

_PUSH: type = getattr(hiredis, "PushNotification", list)
"""What hiredis makes of a RESP3 push (a plain list before hiredis 3: no command this module sends
answers with an array, so a list is a push there too)."""


class ReplyError(Exception):
    """Redis answered a command with an error."""


def pack_command(*args: str | bytes | int) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        b = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


class _Protocol(asyncio.Protocol):
    def __init__(self, conn: RespConnection) -> None:
        self.conn = conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.conn._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._lost(exc)


class RespConnection:
    """A connection to the Redis named by ``url`` (see the module docstring)."""

    def __init__(self, url: str, *, connect_timeout: float) -> None:
        self._opts: dict[str, Any] = dict(parse_url(url))
        self._connect_timeout = connect_timeout
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[list[Any]] = collections.deque()
        # each: [replies still due, future or None, first error reply or None, on_done or None]
        self.on_push: Callable[[list[Any]], None] | None = None
        """When set, every push (a reply that is a list) goes here, in order."""
        self._loop = asyncio.get_running_loop()  # kept: asking for it is a system call (chatd.aio)
        self.closed: asyncio.Future[None] = self._loop.create_future()
        """Fails with ``ConnectionError`` once the connection is lost (never succeeds)."""
        self.closed.add_done_callback(_retrieve)

    async def connect(self) -> None:
        """Open the connection and log in (AUTH, CLIENT SETNAME, SELECT as the URL says)."""
        o = self._opts
        loop = self._loop
        cls = o.get("connection_class")
        async with asyncio.timeout(self._connect_timeout):
            if cls is UnixDomainSocketConnection:
                await loop.create_unix_connection(lambda: _Protocol(self), o["path"])
            else:
                host = o.get("host", "localhost")
                ssl_ctx = None
                if cls is SSLConnection:
                    ssl_opts = {k: v for k, v in o.items() if k.startswith("ssl_")}
                    ssl_ctx = SSLConnection(host=host, **ssl_opts).ssl_context.get()
                await loop.create_connection(
                    lambda: _Protocol(self), host, o.get("port", 6379), ssl=ssl_ctx
                )
            login: list[bytes] = []
            if o.get("password") is not None or o.get("username") is not None:
                who = [o["username"]] if o.get("username") else []
                login.append(pack_command("AUTH", *who, o.get("password") or ""))
            if o.get("client_name"):
                login.append(pack_command("CLIENT", "SETNAME", o["client_name"]))
            if o.get("db"):
                login.append(pack_command("SELECT", o["db"]))
            login.append(pack_command("HELLO", "3"))
            await self.request(b"".join(login), len(login))

    def write(self, data: bytes) -> None:
        if self._transport is None or self.closed.done():
            raise ConnectionError("not connected to Redis")
        self._transport.write(data)

    def request(
        self, data: bytes, replies: int, on_done: Callable[[], None] | None = None
    ) -> asyncio.Future[Any]:
        """Send ``data`` (``replies`` commands) and return a future of the last reply, done
        once all ``replies`` are in (``ReplyError`` if one of them was an error). ``on_done``
        runs first, in the read callback itself, when they all succeeded: whoever waits for it
        (an ack) does not wait for the awaiting task's next step."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self.write(data)
        self._waiting.append([replies, future, None, on_done])
        return future

    def send(self, data: bytes, replies: int, on_done: Callable[[], None]) -> None:
        """``request`` without a future: ``on_done`` runs when the ``replies`` replies are in
        and all succeeded (nothing runs when one failed or the connection is lost)."""
        self.write(data)
        self._waiting.append([replies, None, None, on_done])

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._lost(None)

    # ------------------------------------------------------------------ protocol callbacks

    def _received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        push = self.on_push
        waiting = self._waiting
        try:
            while (reply := reader.gets()) is not False:
                if reply.__class__ is _PUSH and push is not None:
                    push(reply)  # type: ignore[arg-type]
                    continue
                if not waiting:
                    raise ConnectionError(f"unexpected reply from Redis: {reply!r}")
                head = waiting[0]
                if isinstance(reply, hiredis.ReplyError) and head[2] is None:
                    head[2] = reply
                head[0] -= 1
                if head[0] == 0:
                    waiting.popleft()
                    future = head[1]
                    if head[2] is not None:
                        if future is not None and not future.done():
                            future.set_exception(ReplyError(str(head[2])))
                        continue
                    if head[3] is not None:
                        head[3]()
                    if future is not None and not future.done():
                        future.set_result(reply)
        except Exception as exc:  # a protocol error or a handler that failed: give it up
            if self._transport is not None:
                self._transport.abort()
            self._lost(exc)

    def _lost(self, exc: Exception | None) -> None:
        if self.closed.done():
            return
        error = ConnectionError(f"connection to Redis lost: {exc!r}" if exc else "closed")
        self.closed.set_exception(error)
        while self._waiting:
            future = self._waiting.popleft()[1]
            if future is not None and not future.done():
                future.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark ``closed``'s exception as seen (nobody may be awaiting it)."""
    if not future.cancelled():
        future.exception()
