"""The WebSocket server: ``/ws`` for clients, ``/healthz``, ``/readyz``, ``/status`` (JSON) and
``/metrics`` for operators, all on one port (``chatd.health`` says what they report). Each
connection is one handler coroutine (owned by websockets' server): it sends the challenge,
enforces the auth deadline, and feeds frames to its session."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from http import HTTPStatus

from chatproto import PROTOCOL_VERSION, WS_PATH
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Origin, Subprotocol

from chatd import __version__
from chatd.health import Health
from chatd.session import CLOSE_POLICY, Services, Session
from chatd.transport.link import Outbox, WsLink

log = logging.getLogger(__name__)


def _text(
    status: HTTPStatus, body: bytes, content_type: str = "text/plain; charset=utf-8"
) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


_HANDSHAKE_DONE = Request(WS_PATH, Headers())


class Transport:
    def __init__(self, services: Services, draining: Callable[[], bool]) -> None:
        self._svc = services
        self.health = Health(services.deps, draining)
        self._outbox = Outbox()
        self.server: Server | None = None

    async def _http(self, ws: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path == "/healthz":  # liveness only: the process answers
            return _text(HTTPStatus.OK, b"ok\n")
        if path == "/readyz":
            problems = await self.health.problems()
            if not problems:
                return _text(HTTPStatus.OK, b"ready\n")
            body = f"not ready: {', '.join(problems)}\n".encode()
            return _text(HTTPStatus.SERVICE_UNAVAILABLE, body)
        if path == "/status":
            doc = json.dumps(await self.health.status(), indent=1).encode() + b"\n"
            return _text(HTTPStatus.OK, doc, "application/json")
        if path == "/metrics":
            body = self._svc.deps.metrics.render()
            return _text(HTTPStatus.OK, body, "text/plain; version=0.0.4")
        return _text(HTTPStatus.NOT_FOUND, b"not found\n")

    async def start(self, host: str, port: int) -> Server:
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
            max_queue=16,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=5,
            server_header="chatd",
        )
        return self.server

    async def _handle(self, ws: ServerConnection) -> None:
        d = self._svc.deps
        if ws.subprotocol != PROTOCOL_VERSION:
            await ws.close(CLOSE_POLICY, f"subprotocol {PROTOCOL_VERSION} required")
            return
        # The handshake is over: let go of its HTTP request and response (headers, 4+ KiB per
        # connection otherwise held for the connection's life). websockets only checks that
        # ``request`` is set, so a shared placeholder stands in.
        ws.request, ws.response = _HANDSHAKE_DONE, None
        metrics = d.metrics
        link = WsLink(ws, d.settings.limits, metrics, self._outbox)
        session = Session(self._svc, link)
        metrics.connections.labels(state="open").inc()
        health = self.health
        health.open += 1
        try:
            link.push(session.challenge())
            try:
                async with asyncio.timeout(d.settings.limits.auth_timeout):
                    while not session.authenticated:
                        await session.receive(await ws.recv())
            except TimeoutError:
                await ws.close(CLOSE_POLICY, "authentication deadline passed")
                return
            metrics.connections.labels(state="authenticated").inc()
            health.authenticated += 1
            try:
                while True:  # not ``async for``: its generator costs every idle connection 264 B
                    await session.receive(await ws.recv())
            finally:
                metrics.connections.labels(state="authenticated").dec()
                health.authenticated -= 1
        except ConnectionClosed:
            pass
        finally:
            metrics.connections.labels(state="open").dec()
            health.open -= 1
            await session.closed()
