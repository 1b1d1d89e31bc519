"""The media HTTP routes (SPEC.md 17), served on the same port as ``/ws``.

websockets' HTTP parser serves GET handshakes only (no request bodies, no other methods), so
requests for ``/media/...`` are taken before it sees them: ``media_connection`` wraps the
server's connection class so that a connection's first request line is read first; a media
request gets the transport (``transport.set_protocol``) and is served here, one request per
connection (``Connection: close``); anything else goes to websockets untouched.

Uploads follow tus 1.0 core with the creation extension (POST with ``Upload-Length``, HEAD for
the offset, PATCH with ``Upload-Offset``); downloads are GET with single-range support. Every
request carries ``Authorization: Bearer <token>`` from a ``media_token`` frame. Limits hold
before a byte is stored: the reservation (``upload_token``) checked size and quotas, and a
PATCH is refused unless its ``Content-Length`` fits what remains."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection

from chatd.media.service import DOWNLOAD_PATH, UPLOAD_PATH, MediaService
from chatd.media.store import OffsetMismatch

if TYPE_CHECKING:
    from chatd.session import Services

log = logging.getLogger(__name__)

MAX_HEAD = 16 * 1024
PIECE = 256 * 1024
SNIFF_TIMEOUT = 10.0
HEAD_TIMEOUT = 10.0
"""Seconds to send a request's head (after its first line)."""
IDLE_TIMEOUT = 30.0
"""Seconds a request body or a download may stall (no byte moving) before it is cut: a client
that trickles nothing holds no connection for ever. A PATCH cut so keeps what arrived."""
TUS_VERSION = "1.0.0"
_BLOB = r"([A-Za-z0-9_-]{22,64})"
_UPLOAD_RE = re.compile(rf"^{UPLOAD_PATH}/{_BLOB}$")
_DOWNLOAD_RE = re.compile(rf"^{DOWNLOAD_PATH}/{_BLOB}$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def is_media_request(line: bytes) -> bool:
    parts = line.split(b" ")
    return len(parts) == 3 and (parts[1] == b"/media" or parts[1].startswith(b"/media/"))


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class MediaHttp:
    """Serves media requests; owns their tasks (``aclose`` ends them)."""

    def __init__(self, service: MediaService) -> None:
        self.service = service
        self.metrics = service.deps.metrics
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._writers: dict[str, asyncio.StreamWriter] = {}
        self._closed = False

    def take(self, transport: asyncio.Transport, head: bytes) -> None:
        """Serve the request whose first bytes are ``head`` on ``transport``."""
        if self._closed:
            transport.abort()
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEAD, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(head)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        task = loop.create_task(self._serve(reader, writer), name="media-http")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ one request

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                await self._request(reader, writer)
            except HttpError as exc:
                body = f"{exc}\n".encode()
                self._respond(writer, exc.status, {**exc.headers}, body)
            except asyncio.LimitOverrunError:
                self._respond(writer, 431, {}, b"request head too large\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            except Exception:
                log.exception("media request failed")
                self._respond(writer, 500, {}, b"internal error\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _respond(
        self, writer: asyncio.StreamWriter, status: int, headers: dict[str, str], body: bytes = b""
    ) -> None:
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        headers.setdefault("Content-Length", str(len(body)))
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        headers["Connection"] = "close"
        headers["Cache-Control"] = "no-store"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Server"] = "chatd"
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                raw = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            raise HttpError(408, "request head too slow") from None
        lines = raw[:-4].decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ")
        except ValueError:
            raise HttpError(400, "bad request line") from None
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise HttpError(400, "HTTP/1.1 only")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            key = name.strip().lower()
            if not sep or not key or name != name.strip():
                raise HttpError(400, "bad header line")
            if key in headers and key in ("content-length", "authorization", "upload-offset"):
                raise HttpError(400, f"{key} given twice")
            headers[key] = value.strip()
        if "transfer-encoding" in headers:
            raise HttpError(411, "send Content-Length, not Transfer-Encoding")
        path = target.split("?", 1)[0]
        svc = self.service
        tus = {"Tus-Resumable": TUS_VERSION}
        if path == UPLOAD_PATH and method == "OPTIONS":
            self._respond(
                writer,
                204,
                {
                    **tus,
                    "Tus-Version": TUS_VERSION,
                    "Tus-Extension": "creation",
                    "Tus-Max-Size": str(svc.settings.max_file_bytes),
                },
            )
            return
        if path == UPLOAD_PATH and method == "POST":
            blob, _ = await self._auth(headers, "upload", None)
            info = await svc.blobs.info(blob)
            if info is None:
                raise HttpError(401, "token invalid, expired or used")
            if _int(headers, "upload-length") != info.size:
                raise HttpError(413, "Upload-Length is not the size the token was given for", tus)
            self._respond(
                writer,
                201,
                {**tus, "Location": f"{UPLOAD_PATH}/{blob}", "Upload-Offset": str(info.offset)},
            )
            return
        if m := _UPLOAD_RE.match(path):
            blob = m.group(1)
            if method not in ("HEAD", "PATCH"):
                raise HttpError(405, "HEAD or PATCH", {"Allow": "HEAD, PATCH"})
            token = (await self._auth(headers, "upload", blob))[1]
            await self._upload(method, blob, token, headers, reader, writer)
            return
        if m := _DOWNLOAD_RE.match(path):
            if method != "GET":
                raise HttpError(405, "GET", {"Allow": "GET"})
            await self._download(m.group(1), headers, writer)
            return
        raise HttpError(404, "not found")

    async def _auth(self, headers: dict[str, str], kind: str, blob: str | None) -> tuple[str, str]:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token or len(token) > 128:
            raise HttpError(401, "Authorization: Bearer <token from a media_token frame>")
        got = await self.service.check_token(token, kind, blob)  # POST: blob None, the token's
        if got is None:
            raise HttpError(401, "token invalid, expired or used")
        return got, token

    async def _upload(
        self,
        method: str,
        blob: str,
        token: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        svc = self.service
        tus = {"Tus-Resumable": TUS_VERSION}
        older = self._writers.get(blob)
        if older is not None:  # a client resuming: the old request's client is gone
            older.transport.abort()
        lock = self._locks.setdefault(blob, asyncio.Lock())
        async with lock:
            info = await svc.blobs.info(blob)
            if info is None:
                raise HttpError(404, "no such upload")
            if method == "HEAD":
                self._respond(
                    writer,
                    200,
                    {**tus, "Upload-Offset": str(info.offset), "Upload-Length": str(info.size)},
                )
                return
            if headers.get("content-type") != "application/offset+octet-stream":
                raise HttpError(415, "Content-Type: application/offset+octet-stream", tus)
            offset = _int(headers, "upload-offset")
            if offset != info.offset:
                raise HttpError(409, f"Upload-Offset is {info.offset}", tus)
            if "content-length" not in headers:
                raise HttpError(411, "Content-Length required", tus)
            length = _int(headers, "content-length")
            if offset + length > info.size:
                raise HttpError(413, "more bytes than the upload's length", tus)
            self._writers[blob] = writer
            self.metrics.media_uploads.inc()
            try:
                new = await svc.blobs.write(blob, offset, self._body(reader, length))
            except OffsetMismatch:
                raise HttpError(409, "the upload moved on", tus) from None
            finally:
                self.metrics.media_uploads.dec()
                if self._writers.get(blob) is writer:
                    del self._writers[blob]
            if new == info.size:
                await svc.upload_done(token)
            self._respond(writer, 204, {**tus, "Upload-Offset": str(new)})
        if not lock.locked() and self._locks.get(blob) is lock:
            del self._locks[blob]

    async def _body(self, reader: asyncio.StreamReader, length: int) -> AsyncIterator[bytes]:
        left = length
        counter = self.metrics.media_bytes.labels(direction="in")
        while left:
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    piece = await reader.read(min(PIECE, left))
            except TimeoutError:
                raise ConnectionResetError("client stalled mid-body") from None
            if not piece:
                raise ConnectionResetError("client closed mid-body")
            left -= len(piece)
            counter.inc(len(piece))
            yield piece

    async def _download(
        self, blob: str, headers: dict[str, str], writer: asyncio.StreamWriter
    ) -> None:
        svc = self.service
        await self._auth(headers, "download", blob)
        info = await svc.blobs.info(blob)
        if info is None or not info.complete:
            raise HttpError(404, "not found")
        size = info.size
        start, end, status = 0, size, 200
        out = {
            "Content-Type": "application/octet-stream",
            "Content-Disposition": "attachment",
            "Accept-Ranges": "bytes",
        }
        rng = _RANGE_RE.match(headers.get("range", ""))
        if rng and (rng.group(1) or rng.group(2)):
            a, b = rng.group(1), rng.group(2)
            if a:
                start, end = int(a), min(size, int(b) + 1) if b else size
            else:
                start, end = max(0, size - int(b)), size
            if start >= size or start >= end:
                raise HttpError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"})
            status = 206
            out["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        out["Content-Length"] = str(end - start)
        self._respond(writer, status, out)
        counter = self.metrics.media_bytes.labels(direction="out")
        async for piece in svc.blobs.read(blob, start, end):
            writer.write(piece)
            counter.inc(len(piece))
            try:
                async with asyncio.timeout(IDLE_TIMEOUT):
                    await writer.drain()
            except TimeoutError:
                raise ConnectionResetError("client stopped reading") from None


def _int(headers: dict[str, str], key: str) -> int:
    value = headers.get(key, "")
    if not value.isdigit() or len(value) > 18:
        raise HttpError(400, f"{key} must be a non-negative integer")
    return int(value)


def media_connection(base: type[ServerConnection], services: Services) -> type[ServerConnection]:
    """``base`` (the server's connection class) that hands ``/media/`` requests to the node's
    ``MediaHttp`` before websockets reads them; ``base`` itself when media is off."""
    media: MediaService | None = getattr(services, "media", None)
    if media is None:
        return base
    http = media.http

    class MediaConnection(base):  # type: ignore[valid-type,misc]
        _sniff: bytearray | None = None
        _sniff_transport: Any = None
        _sniff_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._sniff = bytearray()
            self._sniff_transport = transport
            self._sniff_timer = asyncio.get_running_loop().call_later(
                SNIFF_TIMEOUT,
                transport.abort,  # type: ignore[attr-defined]
            )

        def data_received(self, data: bytes) -> None:
            sniff = self._sniff
            if sniff is None:
                super().data_received(data)
                return
            sniff += data
            end = sniff.find(b"\r\n")
            if end < 0 and len(sniff) < 8192:
                return  # the request line is not complete yet
            head = bytes(sniff)
            transport = self._sniff_transport
            if self._sniff_timer is not None:
                self._sniff_timer.cancel()
            # Back to the class defaults (None): an idle connection keeps no sniffing state.
            del self._sniff, self._sniff_transport, self._sniff_timer
            if end >= 0 and is_media_request(head[:end]):
                http.take(transport, head)
                return
            super().connection_made(transport)
            super().data_received(head)
            # A WebSocket (or another request): from here on the plain connection class, and
            # the transport told again (uvloop keeps the bound ``data_received``), so that no
            # layer is left to run per chunk read.
            self.__class__ = base  # type: ignore[assignment]
            transport.set_protocol(self)

        def eof_received(self) -> bool | None:
            if self._sniff is not None:
                return None  # closed before a request line: nothing was started
            result: bool | None = super().eof_received()
            return result

        def connection_lost(self, exc: Exception | None) -> None:
            if self._sniff is not None:
                if self._sniff_timer is not None:
                    self._sniff_timer.cancel()
                del self._sniff, self._sniff_transport, self._sniff_timer
                self.release()  # websockets never started: its parser still holds it
                return
            super().connection_lost(exc)

    return MediaConnection
