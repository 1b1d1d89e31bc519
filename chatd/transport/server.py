"""The WebSocket server: ``/ws`` for clients, ``/healthz``, ``/readyz``, ``/status`` (JSON) and
``/metrics`` for operators (``chatd.health`` says what they report). By default all on one port;
``server.operator_host`` moves ``/status`` and ``/metrics`` to a listener of their own and
``server.operator_token`` puts them behind a bearer token.

websockets does the handshake, the HTTP routes (``process_request``), pings, closing and
draining. Incoming data frames skip its message queue: ``_Connection`` hands each one, as the
sans-I/O protocol parses it, to the connection's ``Inbox``, which lets the session handle it
at once when that needs no waiting (the hot path: a logged-in ``send``, queued for the next
commit) and otherwise queues it, in order, for the connection's handler coroutine (owned by
websockets' server), which also sends the challenge and enforces the auth deadline."""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from chatproto import PROTOCOL_VERSION, WS_PATH
from chatproto import frames as F
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event, Protocol, State
from websockets.speedups import apply_mask
from websockets.streams import StreamReader
from websockets.typing import Origin, Subprotocol

from chatd import __version__, web
from chatd.health import Health
from chatd.media.http import media_connection
from chatd.session import CLOSE_POLICY, Services, Session
from chatd.transport.link import Outbox, WsLink

log = logging.getLogger(__name__)


_OPERATOR = frozenset({"/status", "/metrics"})
"""Endpoints for operators only: on their own listener, or behind a token, when configured."""
_HEALTH = frozenset({"/healthz", "/readyz"})


def _text(
    status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


_HANDSHAKE_DONE = Request(WS_PATH, Headers())


class Inbox:
    """One connection's incoming messages, in order. A message that arrives while nothing is
    queued and the handler is idle goes to ``Session.receive_nowait`` at once; the frames that
    need waiting (and everything behind them) queue for the handler. Past ``HIGH`` queued
    messages the socket stops being read until the handler is down to ``LOW`` (the bound
    websockets' own queue had, ``max_queue=16``)."""

    HIGH = 16
    LOW = 4

    __slots__ = ("_busy", "_closed", "_frag", "_paused", "_queue", "_session", "_waiter", "_ws")

    def __init__(self, ws: _Connection, session: Session) -> None:
        self._ws: _Connection | None = ws
        self._session: Session | None = session
        # A list, not a deque (an empty deque costs ~600 B per idle connection); it stays short:
        # reading pauses past HIGH.
        self._queue: list[bytes | str | F.ClientFrame] = []
        self._waiter: asyncio.Future[None] | None = None
        self._busy = True  # until the handler first waits for a message
        self._paused = False
        self._closed = False
        self._frag: list[Frame] | None = None

    def frame(self, frame: Frame) -> None:
        """A data frame parsed from the socket (websockets enforces ``max_size`` on whole
        messages, fragmented or not)."""
        if frame.opcode is Opcode.CONT or not frame.fin:
            if self._frag is None:
                self._frag = []
            self._frag.append(frame)
            if not frame.fin:
                return
            frames, self._frag = self._frag, None
            data: bytes | str = b"".join(f.data for f in frames)
            if frames[0].opcode is Opcode.TEXT:
                data = "text"  # chatd.v1 is binary only: the session answers MALFORMED
        elif frame.opcode is Opcode.TEXT:
            data = "text"
        else:
            data = frame.data if type(frame.data) is bytes else bytes(frame.data)
        self.binary(data)

    def binary(self, data: bytes | str) -> None:
        """A whole message: an unfragmented binary frame's payload (``_Connection``'s fast
        path hands them here directly), or what ``frame`` assembled."""
        session = self._session
        if session is None:  # closed: the connection is lost, nothing more is served
            return
        if self._busy or self._queue:
            self._put(data)
            return
        try:
            pending = session.receive_nowait(data)
        except Exception:  # never into websockets' read callback
            log.exception("receive failed")
            return
        if pending is not None:
            self._put(pending)

    def _put(self, item: bytes | str | F.ClientFrame) -> None:
        self._queue.append(item)
        ws = self._ws
        if len(self._queue) >= self.HIGH and not self._paused and ws is not None:
            self._paused = True
            ws.transport.pause_reading()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def close(self) -> None:
        """The connection is lost: nothing more arrives. The handler still takes what is
        queued, then ``next`` raises ``ConnectionClosed``."""
        self._closed = True
        # No more ``binary``: let go of the session and the connection, which both lead back
        # here (connection -> inbox -> session -> link -> connection).
        self._session = self._ws = None
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> bytes | str | F.ClientFrame:
        """The next queued message (raw, or a frame ``receive_nowait`` returned); while none
        is queued the handler is idle and new messages are served as they arrive."""
        queue = self._queue
        while not queue:
            if self._closed:
                raise ConnectionClosed(None, None)
            self._busy = False
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
                self._busy = True
        item = queue.pop(0)
        ws = self._ws
        if self._paused and len(queue) <= self.LOW and ws is not None:
            self._paused = False
            ws.transport.resume_reading()
        return item


_NO_EVENTS: list[Event] = []
_PARSE_CODE = Protocol.parse.__code__
_AT_EOF_CODE = StreamReader.at_eof.__code__


def _at_boundary(protocol: Protocol) -> bool:
    """Whether websockets' parser waits for the first byte of a frame with nothing buffered,
    in the open state, outside a fragmented message, with no extension, no debug logging and
    one size limit for whole messages: then the next bytes may go to ``_Connection``'s fast
    path. The parser is ``ServerProtocol.parse``, which ``yield from``s ``Protocol.parse``
    once the handshake is over, which waits in ``StreamReader.at_eof`` between frames (inside
    ``Frame.parse`` the buffer can be empty too: mid-frame)."""
    if (
        protocol.state is not State.OPEN
        or protocol.reader.buffer
        or protocol.current_size is not None
        or protocol.extensions
        or protocol.debug
        or protocol.max_fragment_size is not None
        or protocol.parser_exc is not None
    ):
        return False
    frame_parser = protocol.parser.gi_yieldfrom  # type: ignore[attr-defined]
    if frame_parser is None or frame_parser.gi_code is not _PARSE_CODE:
        return False
    waiting = frame_parser.gi_yieldfrom
    return waiting is not None and waiting.gi_code is _AT_EOF_CODE


class _Connection(ServerConnection):
    """websockets' server connection with data frames handed to an ``Inbox`` (once set).

    The receive fast path (``data_received``): while websockets' parser is at a frame boundary
    (``_at_boundary``), the complete, unfragmented, masked binary frames at the start of a chunk
    of bytes (the common case: one ``send`` or a few) are parsed here, in a few lines, and
    their payloads handed to the ``Inbox``; from the first byte that is anything else (a
    control frame, a fragment, text, RSV bits, an unmasked frame, a payload over
    ``max_size``, a frame not complete in the chunk) the bytes go to websockets' own parser,
    so that every protocol rule and close code stays websockets'. Events keep websockets'
    order: the whole chunk is parsed before any of its messages is handled."""

    inbox: Inbox | None = None
    _fast = False
    """``_at_boundary`` held after the last chunk (set once the ``Inbox`` is)."""
    ping_at: float | None = None
    """When the keepalive ping now awaiting its pong was sent (see ``Keepalive``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # websockets only appends, removes and iterates its drain waiters (asyncio's
        # FlowControlMixin pattern); an empty deque costs ~600 bytes per idle connection, an
        # empty list 56 (websockets is pinned in requirements.lock; tests/unit checks the use).
        self.drain_waiters = []  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if not self._fast or protocol._state is not State.OPEN:  # ``state``, without its call
            # The handshake, the first chunk after the Inbox is set, or anything after a
            # chunk websockets parsed (part of): websockets, then check for a boundary.
            super().data_received(data)
            self._fast = self.inbox is not None and _at_boundary(protocol)
            return
        size = len(data)
        limit = protocol.max_message_size
        pos = 0
        payloads: list[bytes] = []
        while size - pos >= 6:  # 2-byte header + 4-byte mask at least
            if data[pos] != 0x82:  # FIN, no RSV bit, binary
                break
            length = data[pos + 1] ^ 0x80  # the MASK bit must be set
            if length < 126:
                start = pos + 2
            elif length == 126:
                start = pos + 4
                length = int.from_bytes(data[pos + 2 : start], "big")
            elif length == 127:
                start = pos + 10
                length = int.from_bytes(data[pos + 2 : start], "big")
            else:  # not masked: websockets' ProtocolError
                break
            end = start + 4 + length
            if end > size or (limit is not None and length > limit):
                break
            payloads.append(apply_mask(data[start + 4 : end], data[start : start + 4]))
            pos = end
        if pos < size:
            # The rest, from the first byte the fast path does not take, through websockets:
            # its data_received, with the fast frames' events first (as websockets would).
            protocol.receive_data(data[pos:] if pos else data)
            events = protocol.events_received()
            try:
                self.send_data()
            except Exception as exc:
                self.set_connection_exc(exc)
            if (
                protocol.close_expected()
                and self.close_deadline is None
                and self.close_timeout is not None
            ):
                self.close_deadline = self.loop.time() + self.close_timeout
            self._fast = _at_boundary(protocol)
        else:
            events = _NO_EVENTS
        inbox = self.inbox
        assert inbox is not None
        for payload in payloads:
            inbox.binary(payload)
        for event in events:
            self.process_event(event)

    def process_event(self, event: Event) -> None:
        inbox = self.inbox
        if inbox is not None and type(event) is Frame and event.opcode in _DATA:
            inbox.frame(event)
            return
        if type(event) is Frame and event.opcode is Opcode.PONG:
            self.ping_at = None
        super().process_event(event)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.inbox is not None:
            self.inbox.close()
        self.release()

    def release(self) -> None:
        """Nothing reads from the connection any more: break the reference cycles its objects
        form, so that reference counting frees them now. Left to the cyclic GC, a connection
        that lived long enough to reach the oldest generation would wait for a full
        collection, which walks every object of every connection (~75 ms at 1,000 open
        connections before this; README, "Eighth session"). Also for a connection closed
        before its request line (``media_connection``), which websockets never started."""
        protocol = self.protocol
        for exc in (protocol.parser_exc, protocol.handshake_exc):
            _drop_tracebacks(exc)  # a traceback holds the parser's frames
        protocol.parser.close()  # a suspended generator whose frame holds the protocol


_DATA = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})


def _drop_tracebacks(exc: BaseException | None) -> None:
    """Let go of the frames ``exc`` and the exceptions chained to it hold (they lead back to
    the protocol that stored it); the exceptions themselves stay, for ``ConnectionClosed``."""
    for _ in range(8):  # a chain is a few links; never loop on a cyclic one
        if exc is None:
            return
        exc.__traceback__ = None
        exc = exc.__cause__ or exc.__context__


class Keepalive:
    """One timer for every connection's keepalive instead of websockets' task per connection
    (~1.2 KiB each while idle). Each connection gets a PING every ``interval`` seconds, spread
    over the interval in small slices (never all at once); one whose previous PING got no PONG
    for ``timeout`` seconds is failed with 1011, as websockets' own keepalive does (a dead peer
    is found within ``interval + timeout`` seconds, rounded up to the next visit)."""

    def __init__(self, interval: float, timeout: float, serving: Callable[[], bool]) -> None:
        self.interval = interval
        self._serving = serving
        self.timeout = timeout
        self.tick = max(0.05, min(1.0, interval / 20))
        self.conns: dict[_Connection, None] = {}
        self._round: dict[_Connection, None] = {}
        """This round's connections still to visit, newest first (``popitem`` takes the oldest)."""
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.tick, self._visit)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def discard(self, ws: _Connection) -> None:
        """``ws`` ended: no more pings, and no reference left here (the round held closed
        connections until it reached them, up to ``interval`` seconds)."""
        self.conns.pop(ws, None)
        self._round.pop(ws, None)

    def _visit(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._serving():  # closed: websockets closes the connections
            self._handle = None
            return
        self._handle = loop.call_later(self.tick, self._visit)
        if not self._round:
            self._round = dict.fromkeys(reversed(self.conns))
        now = loop.time()
        share = -(-len(self.conns) * self.tick // self.interval)  # ceil
        for _ in range(min(int(share), len(self._round))):
            ws, _none = self._round.popitem()
            if ws.protocol.state is not State.OPEN:
                continue
            if ws.ping_at is not None:
                if now - ws.ping_at > self.timeout:
                    ws.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    ws.send_data()  # the close frame, for a peer that is only slow
                    loop.call_later(1.0, ws.transport.abort)  # a dead one never answers
                continue
            ws.ping_at = now
            ws.protocol.send_ping(b"")
            ws.send_data()


class _NoAssembler:
    """Stands in for websockets' message queue once the ``Inbox`` takes the data frames (the
    queue and its buffers cost ~1 KiB per idle connection); websockets only closes it."""

    __slots__ = ()

    def close(self) -> None:
        pass


_NO_ASSEMBLER = _NoAssembler()


class Transport:
    def __init__(self, services: Services, draining: Callable[[], bool]) -> None:
        self._svc = services
        self.health = Health(services.deps, draining)
        self._outbox = Outbox()
        limits = services.deps.settings.limits
        self._keepalive = Keepalive(
            limits.ping_interval,
            limits.ping_timeout,
            lambda: self.server is not None and self.server.is_serving(),
        )
        self.server: Server | None = None
        self.operator: Server | None = None
        """The operator listener, when ``server.operator_host`` is set."""

    def flush(self) -> None:
        """Write now what this turn owes every connection so far (the outbox's flush at the end
        of the turn then finds only what came after)."""
        self._outbox.flush()

    async def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        """The client port: ``/ws``, the health checks, (unless they have their own listener)
        the operator endpoints, and the web client's files."""
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            web.allow_same_origin(ws, request)
            return None
        if path in _OPERATOR and self._svc.deps.settings.server.operator_host:
            return _text(HTTPStatus.NOT_FOUND, b"not found\n")
        if path in _OPERATOR or path in _HEALTH:
            return await self._operator_http(ws, request)
        return web.serve(path) or _text(HTTPStatus.NOT_FOUND, b"not found\n")

    async def _operator_http(self, ws: ServerConnection, request: Request) -> Response:
        """``/healthz``, ``/readyz``, and ``/status`` and ``/metrics`` (behind the operator
        token when one is set). Never a WebSocket."""
        path = request.path.split("?", 1)[0]
        if path == "/healthz":  # liveness only: the process answers
            return _text(HTTPStatus.OK, b"ok\n")
        if path == "/readyz":  # in rotation or not (degraded still serves: 200)
            check = await self.health.check()
            if check.problems:
                body = f"not ready: {', '.join(check.problems)}\n".encode()
                return _text(HTTPStatus.SERVICE_UNAVAILABLE, body)
            degraded = f", degraded: {', '.join(check.degraded)}" if check.degraded else ""
            return _text(HTTPStatus.OK, f"ready{degraded}\n".encode())
        if path not in _OPERATOR:
            return _text(HTTPStatus.NOT_FOUND, b"not found\n")
        token = self._svc.deps.settings.server.operator_token
        if token:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, b"Bearer " + token.encode()):
                response = _text(HTTPStatus.UNAUTHORIZED, b"operator token required\n")
                response.headers["WWW-Authenticate"] = 'Bearer realm="chatd"'
                return response
        if path == "/status":
            doc = json.dumps(await self.health.status(), indent=1).encode() + b"\n"
            return _text(HTTPStatus.OK, doc, "application/json")
        body = await self.health.metrics()
        return _text(HTTPStatus.OK, body, "text/plain; version=0.0.4")

    async def start_operator(self, host: str, port: int) -> Server:
        """The operator listener (``server.operator_host``): HTTP only, every request answered
        by ``_operator_http`` (a WebSocket handshake gets 404)."""
        self.operator = await serve(
            self._refuse_ws,
            host,
            port,
            process_request=self._operator_http,
            compression=None,
            server_header="chatd",
        )
        return self.operator

    @staticmethod
    async def _refuse_ws(ws: ServerConnection) -> None:  # pragma: no cover - never upgraded
        await ws.close(CLOSE_POLICY, "not a WebSocket endpoint")

    async def start(self, host: str, port: int) -> Server:
        # The cyclic GC ran every 700 container allocations and took 10-18% of the server's
        # CPU under load (perf, loadtest/README.md "bench_relay.py"): every message allocates
        # a few short-lived containers (frames, a future, its callback), and each collection
        # walks what is in flight. Collections 14x rarer; reference counting frees nearly all.
        gc.set_threshold(10_000, 10, 10)
        d = self._svc.deps
        d.metrics.node(d.settings.server.node_id, __version__)
        limits = d.settings.limits
        origins: list[Origin | None] | None = None
        origins = [None, *(Origin(o) for o in d.settings.server.origins)]
        self.server = await serve(
            self._handle,
            host,
            port,
            origins=origins,
            subprotocols=[Subprotocol(PROTOCOL_VERSION)],
            compression=None,
            process_request=self._http,
            max_size=limits.max_frame_bytes,
            max_queue=16,  # only frames that arrive before the handler starts; see Inbox
            ping_interval=None,  # Keepalive: one timer for all, not a task per connection
            ping_timeout=None,
            close_timeout=5,
            server_header="chatd",
            create_connection=media_connection(_Connection, self._svc),
        )
        self._keepalive.start()
        return self.server

    async def _handle(self, ws: ServerConnection) -> None:
        assert isinstance(ws, _Connection)
        d = self._svc.deps
        if ws.subprotocol != PROTOCOL_VERSION:
            await ws.close(CLOSE_POLICY, f"subprotocol {PROTOCOL_VERSION} required")
            return
        peer = ws.remote_address[0] if ws.remote_address else None
        # Several X-Forwarded-For lines are one list, in order (RFC 9110 5.3).
        hops = ws.request.headers.get_all("X-Forwarded-For") if ws.request is not None else []
        forwarded = ", ".join(hops) if hops else None
        address = self._svc.limits.client_address(peer, forwarded)
        # The handshake is over: let go of its HTTP request and response (headers, 4+ KiB per
        # connection otherwise held for the connection's life). websockets only checks that
        # ``request`` is set, so a shared placeholder stands in; the request's headers are
        # emptied too, as websockets' parser keeps the request in its frame for good.
        if ws.request is not None:
            ws.request.headers = _HANDSHAKE_DONE.headers
        ws.request, ws.response = _HANDSHAKE_DONE, None
        metrics = d.metrics
        link = WsLink(ws, d.settings.limits, metrics, self._outbox)
        session = Session(self._svc, link, address)
        inbox = ws.inbox = Inbox(ws, session)
        ws.recv_messages = _NO_ASSEMBLER  # type: ignore[assignment]  # unused from here on
        metrics.connections.labels(state="open").inc()
        health = self.health
        health.open += 1
        self._keepalive.conns[ws] = None
        try:
            link.push(session.challenge())
            try:
                async with asyncio.timeout(d.settings.limits.auth_timeout):
                    while not session.authenticated:
                        await self._serve(session, await inbox.next())
            except TimeoutError:
                await link.close(CLOSE_POLICY, "authentication deadline passed")
                return
            metrics.connections.labels(state="authenticated").inc()
            health.authenticated += 1
            try:
                while True:
                    await self._serve(session, await inbox.next())
            finally:
                metrics.connections.labels(state="authenticated").dec()
                health.authenticated -= 1
        except ConnectionClosed:
            pass
        finally:
            metrics.connections.labels(state="open").dec()
            health.open -= 1
            self._keepalive.discard(ws)
            await session.closed()

    @staticmethod
    async def _serve(session: Session, item: bytes | str | F.ClientFrame) -> None:
        if isinstance(item, bytes | str):
            await session.receive(item)
        else:
            await session.serve(item)
