"""The SDK's connection: one supervisor task driving ``chatproto.client.ClientProtocol``.

The supervisor connects, logs in with the device key, hands over to the rest of the client
(``on_login``: catch up, then send), then pumps frames until the socket drops, and reconnects
with exponential backoff, jittered and capped at ``backoff_max`` (1 s by default: a server back
after an outage of any length is found within about a second). Given several URLs (the nodes of
one service), each reconnect goes to the next one. Policy closes (1008) and failed logins stop
it and surface as ``AuthError``. No websockets exception reaches the application: a request on a
lost connection raises ``ConnectionLost``.

What the protocol decides (request ids and where answers go, the login steps, cursors, the
outbox) is the core's; this module is I/O only: it feeds the core every binary message with the
loop's time, writes what the core has to send with websockets' public ``send``, runs the core's
timer, and hands the core's events to ``on_event`` (the rest of the client) in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import msgspec
from chatproto import PROTOCOL_VERSION, WS_PATH, codec
from chatproto import client as core
from chatproto import frames as F
from chatproto.errors import ErrorCode, ProtocolError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    WebSocketException,
)
from websockets.protocol import State
from websockets.typing import Subprotocol

from chatclient.errors import (
    AuthError,
    ChatClientError,
    ClientClosed,
    ConnectionLost,
    RateLimited,
    RequestError,
    error_for,
)
from chatclient.events import Connected, Disconnected, Event
from chatclient.keystore import KeyStore

log = logging.getLogger("chatclient.client")
T = TypeVar("T", bound=F.Frame)
R = TypeVar("R")

RATE_LIMIT_BACKOFF = (0.05, 1.0)
"""First and longest pause before repeating a request refused with ``RATE_LIMITED``."""
SEND_WINDOW = 64
"""Sends of one conversation written and not yet answered at a time. 1 (each waits for the
previous one's answer) while a backlog from before a (re)connect drains and after a refusal to be
retried (``RATE_LIMITED``): no message is stored ahead of one sent before it."""

EventFilter = Callable[[Event], Event]


class Connection:
    """The WebSocket, the protocol core over it, the requests in flight, and the event queue."""

    def __init__(
        self,
        urls: tuple[str, ...],
        keystore: KeyStore,
        *,
        reconnect: bool,
        request_timeout: float,
        max_events: int,
        backoff: tuple[float, float],
    ) -> None:
        self.urls = urls
        self.url_index = 0
        self.keystore = keystore
        self.reconnect = reconnect
        self.request_timeout = request_timeout
        self._backoff = backoff
        self.core = core.ClientProtocol(
            cursors=keystore.cursors, policy=core.Policy(send_window=SEND_WINDOW)
        )
        self.events: asyncio.Queue[Event | None] = asyncio.Queue(max_events)
        self.filters: list[EventFilter] = []
        """Applied in order to every event before it is queued (a receipt that does not verify
        becomes a warning, an invocation's result settles its wait, ...)."""
        self.on_login: Callable[[bool], Awaitable[None]] | None = None
        """Called once logged in (argument: this device was just registered)."""
        self.on_event: Callable[[core.Event], Awaitable[None]] | None = None
        """Every core event this module does not handle itself, in order."""
        self.on_acked: Callable[[core.Acked], None] | None = None
        """An outbox entry was acknowledged (by its ack, or by coming back in history)."""
        self.on_frame: Callable[[F.ServerFrame], Awaitable[None]] = self.receive
        """Every decoded frame from the server (the client's hook; ``receive`` by default)."""
        self.on_lost: Callable[[BaseException | None], None] | None = None
        """The connection went (argument: the error that stops the client for good, if any)."""
        self._waiting: dict[int, asyncio.Future[F.ServerFrame]] = {}
        self.ws: ClientConnection | None = None
        self.ready = asyncio.Event()
        self.stopping = asyncio.Event()
        """Set by ``aclose``: pending park deadlines end at once."""
        self._challenge: asyncio.Future[F.Challenge] | None = None
        self.tasks: asyncio.TaskGroup | None = None
        self.supervisor: asyncio.Task[None] | None = None
        self.closed = False
        self.fatal: BaseException | None = None
        self._connected_once = False
        self.server_name = ""
        self._timer: asyncio.TimerHandle | None = None
        self._writing = asyncio.Lock()

    # ------------------------------------------------------------------ state

    @property
    def url(self) -> str:
        return self.urls[self.url_index]

    def next_id(self) -> int:
        return self.core.next_id()

    def spawn(
        self, coro: Coroutine[Any, Any, R], name: str | None = None
    ) -> asyncio.Task[R] | None:
        """Run ``coro`` as a task of the client's task group (None, and the coroutine closed,
        when the client is not running)."""
        if self.tasks is None or self.closed:
            coro.close()
            return None
        return self.tasks.create_task(coro, name=name)

    async def emit(self, event: Event) -> None:
        for f in self.filters:
            event = f(event)
        await self.events.put(event)

    def emit_nowait(self, event: Event) -> None:
        for f in self.filters:
            event = f(event)
        with contextlib.suppress(asyncio.QueueFull):
            self.events.put_nowait(event)

    def end_events(self) -> None:
        """``events()`` ends (after what is queued)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.events.put_nowait(None)

    async def wait_connected(self) -> None:
        """Until the socket is open and (when the key store has a device) logged in.

        Raises ``ConnectionLost`` after ``request_timeout`` seconds, or as soon as the client
        stopped trying (reconnect disabled)."""
        deadline = asyncio.get_running_loop().time() + self.request_timeout
        while True:
            if self.fatal is not None:
                raise self.fatal
            if self.closed:
                raise ClientClosed("client closed")
            if self.ready.is_set() or (self.ws is not None and not self.keystore.registered):
                return
            if self.supervisor is not None and self.supervisor.done():
                raise ConnectionLost("not connected, and the client stopped reconnecting")
            if asyncio.get_running_loop().time() > deadline:
                raise ConnectionLost(f"could not connect to {self.url}")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ the supervisor

    def start(self, tasks: asyncio.TaskGroup) -> None:
        self.tasks = tasks
        self.supervisor = tasks.create_task(self._supervise(), name="chatclient")

    async def aclose(self) -> None:
        """Stop reconnecting, close the socket, fail every request still waiting."""
        self.closed = True
        self.stopping.set()
        if self.supervisor is not None:
            self.supervisor.cancel()
        if self._timer is not None:
            self._timer.cancel()
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
        self._fail_waiting(ClientClosed("client closed"))

    async def _supervise(self) -> None:
        delay = self._backoff[0]
        while not self.closed:
            code: int | None = None
            reason = ""
            try:
                async with connect(
                    self.url,
                    subprotocols=[Subprotocol(PROTOCOL_VERSION)],
                    compression=None,
                    max_size=None,
                    open_timeout=self.request_timeout,
                ) as ws:
                    self.ws = ws
                    loop = asyncio.get_running_loop()
                    self._challenge = loop.create_future()
                    self.core.connection_made(loop.time())
                    async with asyncio.TaskGroup() as tg:
                        pump = tg.create_task(self._pump(ws))
                        try:
                            await self._setup()
                            delay = self._backoff[0]
                        except (ConnectionLost, ConnectionClosed):
                            pass
                        except AuthError as exc:  # here, or the TaskGroup wraps it in a group
                            self.fatal = exc
                            await ws.close()
                        except (ChatClientError, TimeoutError) as exc:
                            # A slow or failing server while logging in or catching up: start
                            # again on a new connection (after the backoff), not end the client.
                            log.warning("could not resume the session, reconnecting: %r", exc)
                            await ws.close()
                        await pump
                    code, reason = ws.close_code, ws.close_reason or ""
            except AuthError as exc:
                self.fatal = exc
            except InvalidStatus as exc:
                code, reason = None, f"HTTP {exc.response.status_code}"
                if exc.response.status_code == 404:  # not a WebSocket endpoint there
                    reason += f": nothing at {self.url}; chatd serves clients on {WS_PATH}"
                if exc.response.status_code in (400, 403, 404):
                    self.fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason)
            except (OSError, InvalidHandshake, TimeoutError, ConnectionClosed) as exc:
                reason = repr(exc)
            finally:
                self.ws = None
                self.ready.clear()
                self._connection_lost()
            if code == 1008 and self.fatal is None:
                self.fatal = AuthError(int(ErrorCode.AUTH_FAILED), reason or "policy close")
            will_retry = self.reconnect and self.fatal is None and not self.closed
            # Next attempt on the next node: the one that dropped us may be gone (killed, or
            # draining with 1001); the others share its store, so the session resumes there.
            self.url_index = (self.url_index + 1) % len(self.urls)
            await self.emit(Disconnected(code, reason, will_retry))
            if not will_retry:
                if self.on_lost is not None:
                    self.on_lost(self.fatal or ConnectionLost("not connected (kept in the outbox)"))
                self.end_events()
                return
            # Jittered within [delay/2, delay] (clients do not come back in step), doubling up
            # to backoff_max: a server back after an outage of any length is found within it.
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._backoff[1])

    def _connection_lost(self) -> None:
        """The socket is gone: the core forgets this connection's requests (their waits end
        with ``ConnectionLost``); the outbox and the cursors stay."""
        self.core.connection_lost(asyncio.get_running_loop().time())
        self.core.events_received()  # Unanswered: failed below, all at once
        self._fail_waiting(ConnectionLost("connection lost"))
        if self.on_lost is not None:
            self.on_lost(None)

    async def _setup(self) -> None:
        assert self._challenge is not None
        async with asyncio.timeout(self.request_timeout):
            challenge = await self._challenge
        self.server_name = challenge.server
        if not self.keystore.registered:
            return  # the application registers or links explicitly
        sig = self.login_sig()
        await self.request(F.Login(id=self.next_id(), device=self.keystore.device, sig=sig))
        await self.after_login()

    async def after_login(self, *, first_device: bool = False) -> None:
        if self.keystore.get("server", "name") is None:  # pinned: later logins check it
            self.keystore.put("server", "name", self.server_name.encode())
        reconnect = self._connected_once
        self._connected_once = True
        self.ready.set()
        await self.emit(Connected(self.keystore.account, self.keystore.device, reconnect))
        if self.on_login is not None:
            await self.on_login(first_device)

    def login_sig(self) -> bytes:
        """This device's signature over the login payload of this connection's challenge (login,
        register and link all prove the key this way)."""
        pinned = self.keystore.get("server", "name")
        self.core.expected_server = None if pinned is None else pinned.decode()
        try:
            return self.core.login_signature(self.keystore.key)
        except core.WrongServer:
            # SPEC 6.1: sign only for the service this device belongs to, or a rogue server
            # relaying that service's challenge would get a login there.
            assert pinned is not None
            assert self.core.challenge is not None
            raise AuthError(
                int(ErrorCode.AUTH_FAILED),
                f"the server calls itself {self.core.challenge.server!r}, not {pinned.decode()!r}"
                " (the server this key store was registered with): not signing in",
            ) from None
        except core.NotConnected:
            raise ConnectionLost("not connected") from None

    async def current_challenge(self) -> F.Challenge:
        if self.keystore.registered:
            raise ChatClientError("this key store already holds a registered device")
        await self.wait_connected()
        assert self._challenge is not None
        return await asyncio.wait_for(asyncio.shield(self._challenge), self.request_timeout)

    # ------------------------------------------------------------------ reading

    async def _pump(self, ws: ClientConnection) -> None:
        try:
            async for data in ws:
                if isinstance(data, str):
                    continue
                try:
                    frame = codec.decode_server(data)
                except ProtocolError as exc:
                    log.warning("bad frame from server: %s", exc)
                    continue
                await self.on_frame(frame)
        except ConnectionClosed:
            pass
        finally:
            self.ready.clear()
            self._fail_waiting(ConnectionLost("connection lost"))

    async def receive(self, frame: F.ServerFrame) -> None:
        """One frame from the server: through the core, then its events handled."""
        self.core.receive_frame(frame, asyncio.get_running_loop().time())
        await self.dispatch()

    async def dispatch(self) -> None:
        """Handle the core's events in order, then write what it has to send."""
        for ev in self.core.events_received():
            match ev:
                case core.Answer(rid=rid, frame=frame):
                    self._settle(rid, frame)
                case core.Unanswered(rid=rid):
                    future = self._waiting.get(rid)
                    if future is not None and not future.done():
                        future.set_exception(ConnectionLost("connection lost"))
                case core.Challenged(challenge=challenge):
                    if self._challenge is not None and not self._challenge.done():
                        self._challenge.set_result(challenge)
                case core.BadFrame(error=error):
                    log.warning("bad frame from server: %s", error)
                case core.LoggedIn() | core.LoginFailed():
                    pass  # the Answer that follows settles the login's wait
                case core.Acked():
                    if self.on_acked is not None:
                        self.on_acked(ev)
                case core.Synced(conv=conv, seq=seq, rid=rid):
                    self._settle(rid, F.Synced(re=rid, conv=conv, seq=seq))
                    if self.on_event is not None:
                        await self.on_event(ev)
                case core.SyncFailed(rid=rid, error=error):
                    self._settle(rid, error)
                case core.SendDeferred():
                    self._arm_timer()
                    if self.on_event is not None:
                        await self.on_event(ev)
                case _:
                    if self.on_event is not None:
                        await self.on_event(ev)
        await self.flush_quietly()

    def _settle(self, rid: int, frame: F.ServerFrame) -> None:
        future = self._waiting.get(rid)
        if future is not None and not future.done():
            future.set_result(frame)

    def settle_from_history(self, conv: int, m: F.Message) -> None:
        """A message of a fetched page may be this device's own, still in the outbox: the core
        then acknowledges it, at once (its plaintext is needed to show it)."""
        acked = self.core.settle_from_history(conv, m.seq, m)
        if acked is not None:
            if self.on_acked is not None:
                self.on_acked(acked)
            self.spawn(self.flush_quietly())

    def _arm_timer(self) -> None:
        """Call the core back when its next timer (a deferred resend) is due."""
        when = self.core.next_timer()
        if when is None or self.closed:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.core.handle_timer(asyncio.get_running_loop().time())
        self.spawn(self.dispatch())  # resends are written; no other event comes from a timer
        if self.core.next_timer() is not None:
            self._arm_timer()

    # ------------------------------------------------------------------ writing

    async def flush(self) -> None:
        """Write what the core has to send, in order, with websockets' public ``send``.

        Raises ``ConnectionLost`` (never a websockets exception, whichever its version) when
        the connection is not open or closes meanwhile: a request then fails with the SDK's own
        error, and a send stays in the outbox and goes out again on the next connection, with
        its cmid (the server stores it once)."""
        async with self._writing:  # the core's order is the wire's: one writer at a time
            out = self.core.data_to_send()
            if not out:
                return
            ws = self.ws
            if ws is None or ws.state is not State.OPEN:
                # Checked first: ``send`` on a closing connection waits for the close to finish
                # before it raises, and these frames are lost with the connection anyway.
                raise ConnectionLost("not connected")
            try:
                for data in out:
                    await ws.send(data)  # may wait for the socket to drain: hence the lock
            except (WebSocketException, OSError) as exc:
                # ConnectionClosed; InvalidState or ConcurrencyError from some versions.
                raise ConnectionLost(f"connection lost: {exc!r}") from None

    async def flush_quietly(self) -> None:
        """``flush``, when losing the frames with the connection is fine (the core writes them
        again on the next one, or their requests fail with ``ConnectionLost``)."""
        with contextlib.suppress(ConnectionLost):
            await self.flush()

    async def notify(self, frame: F.Frame) -> None:
        """Write a frame that has no answer (``typing``)."""
        try:
            self.core.notify(frame)
        except core.NotConnected:
            raise ConnectionLost("not connected") from None
        await self.flush()

    async def request(self, frame: Any, expect: type[T] | None = None) -> Any:
        """Send a request and return its answer; a ``RATE_LIMITED`` refusal (the server did
        nothing) is repeated after a jittered, growing pause, up to ``request_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        pause = RATE_LIMIT_BACKOFF[0]
        while True:
            try:
                return await self._request_once(frame, expect)
            except RateLimited:
                wait = pause * (0.5 + random.random())
                if self.closed or loop.time() + wait > deadline:
                    raise
            await asyncio.sleep(wait)
            pause = min(pause * 2, RATE_LIMIT_BACKOFF[1])
            frame = msgspec.structs.replace(frame, id=self.next_id())

    async def _request_once(self, frame: Any, expect: type[T] | None = None) -> Any:
        try:
            rid = self.core.request(frame)
        except core.NotConnected:
            raise ConnectionLost("not connected") from None
        return await self.answer(rid, expect)

    async def answer(self, rid: int, expect: type[T] | None = None) -> Any:
        """Write what the core has to send, then wait for the answer to request ``rid``
        (written by the core just now); an ``Error`` raises its typed exception."""
        future: asyncio.Future[F.ServerFrame] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        try:
            await self.flush()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
            # arrives as the answer does, leaving a cancelled task running.
            async with asyncio.timeout(self.request_timeout):
                reply = await future
        finally:
            self._waiting.pop(rid, None)
        if isinstance(reply, F.Error):
            raise error_for(reply.code, reply.msg, reply.retry_after)
        if expect is not None and not isinstance(reply, expect):
            raise RequestError(int(ErrorCode.INTERNAL), f"unexpected reply {type(reply).__name__}")
        return reply

    async def call(self, frame: Any, expect: type[T]) -> T:
        """``request`` once connected (and logged in, when the key store has a device)."""
        await self.wait_connected()
        result: T = await self.request(frame, expect)
        return result

    def _fail_waiting(self, exc: BaseException) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(exc)
        self._waiting.clear()

    async def drop(self) -> None:
        """Abort the socket as a network failure would (tests and demos): the client reconnects."""
        ws = self.ws
        if ws is not None:
            ws.transport.abort()


def urls_of(url: str | Sequence[str]) -> tuple[str, ...]:
    urls = (url,) if isinstance(url, str) else tuple(url)
    if not urls:
        raise ValueError("at least one server URL is needed")
    for u in urls:
        if not u.startswith(("ws://", "wss://")):
            raise ValueError(f"not a WebSocket URL: {u!r} (chatd's is ws://HOST:PORT{WS_PATH})")
    return urls
