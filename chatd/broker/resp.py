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
pushes (pub/sub messages and (un)subscribe confirmations) go to ``on_push`` in order; every reply
is counted off against waiting requests (``request``: a future per batch of commands, failed with
``ReplyError`` if any reply was an error; ``send``: the same without a future). Redis writes a
publisher's own copy of a message into the same output buffer as its ``PUBLISH`` reply, so both
come back in one read. A lost connection fails every waiting request and ``closed`` with
``ConnectionError``.

Every reply is matched to the command that caused it, errors included (replies to commands come
in order; ``message`` pushes come between them, out of band). A plain command (``PUBLISH``,
``PING``, the login) answers with one reply. A ``SUBSCRIBE``/``UNSUBSCRIBE`` of k channels
answers with k confirmation pushes, or, refused (an ACL without the channel: ``NOPERM``), with
ONE error reply that is not a push: a batch says which of its commands are those (``pubsub``,
first in the batch), so a refused ``SUBSCRIBE`` is never counted as the ``PING`` or ``PUBLISH``
after it (that would release the acks waiting for a pipeline before Redis answered it). A reply
that fits no waiting command is a protocol error: the connection is given up, never misaligned.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

_PUSH: type = getattr(hiredis, "PushNotification", list)
"""What hiredis makes of a RESP3 push (a plain list before hiredis 3: no command this module sends
answers with an array, so a list is a push there too)."""


Errors = list[tuple[int, str]] | None
"""The error replies of a batch: ``(index of the command in the batch, Redis' message)``, in
order; None when every command succeeded."""


class ReplyError(Exception):
    """Redis answered a command of a batch with an error (``errors``: every one of the batch)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(errors[0][1])
        self.errors = errors


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
        self._subs_due = 0  # waiting batches with pub/sub commands still due (a cheap test)
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
        self,
        data: bytes,
        replies: int,
        on_done: Callable[[Errors], None] | None = None,
        *,
        pubsub: Sequence[tuple[bytes, int]] = (),
    ) -> asyncio.Future[Any]:
        """Send ``data``: first the ``pubsub`` commands (each ``(b"subscribe" or
        b"unsubscribe", its number of channels)``), then ``replies`` plain commands; return a
        future of the last reply, done once every command is answered (``ReplyError`` if one of
        them failed). ``on_done`` runs first, in the read callback itself, with the batch's
        ``Errors`` (None: all succeeded): whoever waits for it (an ack) does not wait for the
        awaiting task's next step."""
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue(data, replies, future, on_done, pubsub)
        return future

    def send(
        self,
        data: bytes,
        replies: int,
        on_done: Callable[[Errors], None],
        *,
        pubsub: Sequence[tuple[bytes, int]] = (),
    ) -> None:
        """``request`` without a future: ``on_done`` runs when every command is answered
        (nothing runs when the connection is lost first)."""
        self._queue(data, replies, None, on_done, pubsub)

    def _queue(
        self,
        data: bytes,
        replies: int,
        future: asyncio.Future[Any] | None,
        on_done: Callable[[Errors], None] | None,
        pubsub: Sequence[tuple[bytes, int]],
    ) -> None:
        self.write(data)
        # [plain replies still due, future, errors, on_done, plain commands, pub/sub commands
        #  still due (each [kind, confirmations due, index, channels]) or None, their number]
        subs = (
            collections.deque([kind, n, i, n] for i, (kind, n) in enumerate(pubsub) if n > 0)
            if pubsub
            else None
        )
        if subs:
            self._subs_due += 1
        self._waiting.append([replies, future, None, on_done, replies, subs, len(pubsub)])

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
                if reply.__class__ is _PUSH:
                    # A (un)subscribe confirmation answers the first pub/sub command due;
                    # a message (or a confirmation nobody waits for) is out of band.
                    if self._subs_due and reply[0] != b"message" and waiting[0][5]:  # type: ignore[index]
                        self._confirmed(waiting, reply)  # type: ignore[arg-type]
                    if push is not None:
                        push(reply)  # type: ignore[arg-type]
                    continue
                if not waiting:
                    raise ConnectionError(f"unexpected reply from Redis: {reply!r}")
                head = waiting[0]
                if self._subs_due and head[5]:  # a pub/sub command is due: its refusal
                    self._refused(waiting, head, reply)
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    if head[2] is None:
                        head[2] = []
                    head[2].append((head[6] + head[4] - head[0], str(reply)))
                head[0] -= 1
                if head[0] == 0:
                    self._complete(waiting, reply)
        except Exception as exc:  # a protocol error or a handler that failed: give it up
            if self._transport is not None:
                self._transport.abort()
            self._lost(exc)

    def _confirmed(self, waiting: collections.deque[list[Any]], reply: list[Any]) -> None:
        head = waiting[0]
        sub = head[5][0]
        if reply[0] != sub[0]:
            raise ConnectionError(f"unexpected push from Redis: {reply[:2]!r}")
        sub[1] -= 1
        if sub[1] == 0:
            head[5].popleft()
            if not head[5]:
                self._subs_due -= 1
                if head[0] == 0:
                    self._complete(waiting, reply)

    def _refused(self, waiting: collections.deque[list[Any]], head: list[Any], reply: Any) -> None:
        """A reply that is not a push while a pub/sub command is due: its error (a command
        refused as a whole, before any confirmation)."""
        sub = head[5][0]
        if not isinstance(reply, hiredis.ReplyError) or sub[1] != sub[3]:
            raise ConnectionError(f"unexpected reply from Redis: {reply!r}")
        if head[2] is None:
            head[2] = []
        head[2].append((sub[2], str(reply)))
        head[5].popleft()
        if not head[5]:
            self._subs_due -= 1
            if head[0] == 0:
                self._complete(waiting, reply)

    @staticmethod
    def _complete(waiting: collections.deque[list[Any]], reply: Any) -> None:
        """The first waiting batch is answered (``reply`` is its last reply)."""
        head = waiting.popleft()
        errors = head[2]
        if head[3] is not None:
            head[3](errors)
        future = head[1]
        if future is not None and not future.done():
            if errors:
                future.set_exception(ReplyError(errors))
            else:
                future.set_result(reply)

    def _lost(self, exc: Exception | None) -> None:
        if self.closed.done():
            return
        error = ConnectionError(f"connection to Redis lost: {exc!r}" if exc else "closed")
        self.closed.set_exception(error)
        self._subs_due = 0
        while self._waiting:
            future = self._waiting.popleft()[1]
            if future is not None and not future.done():
                future.set_exception(error)


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark ``closed``'s exception as seen (nobody may be awaiting it)."""
    if not future.cancelled():
        future.exception()
