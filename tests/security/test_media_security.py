"""Media (SPEC.md 17) from the attacker's side: strangers, stale or replayed tokens, forged
HTTP requests, and what a server operator can read (a marker scan of every byte on the wire and
every file the server wrote)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from chatclient import Client, Message
from chatclient.errors import NotFound
from chatclient.events import Event
from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import attachment as A
from conftest import make_settings, run_server

from chatd.app import App
from chatd.clock import SystemClock

MARKER = b"MARKER-media-5d1e"


class ShiftedClock(SystemClock):
    """The system clock, moved forward by ``shift`` ms (token expiry without sleeping)."""

    def __init__(self) -> None:
        self.shift = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.shift


@contextlib.asynccontextmanager
async def running(tmp_path: Path, clock: ShiftedClock | None = None) -> AsyncIterator[App]:
    async with run_server(make_settings(tmp_path), clock) as server:
        yield server.app


async def http(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"{method} {path} HTTP/1.1", "Host: x"] + [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head_raw, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_raw.decode().split("\r\n")
    got = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), got, rest


async def take(client: Client, pred: Callable[[Event], bool], timeout: float = 10.0) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        for ev in client.events_nowait():
            if pred(ev):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError("no matching event")
        await asyncio.sleep(0.01)


def is_attachment(ev: Event) -> bool:
    return isinstance(ev, Message) and isinstance(ev.content, kinds.Attachment)


async def three(url: str) -> tuple[Client, Client, Client, int]:
    a, b, c = Client(url), Client(url), Client(url)
    for cl, h in ((a, "alice"), (b, "bob"), (c, "carol")):
        await cl.__aenter__()
        await cl.register(h, h.title())
    conv = (await a.create("group", "G", [b.account])).conv
    return a, b, c, conv


async def test_a_stranger_cannot_download_nor_attach_nor_tell_a_blob_exists(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        url = f"ws://127.0.0.1:{app.port}/ws"
        a, b, c, conv = await three(url)
        try:
            f = tmp_path / "secret.bin"
            f.write_bytes(os.urandom(5000))
            await a.send_file(conv, f)
            m = await take(b, is_attachment)
            assert isinstance(m, Message)
            assert isinstance(m.content, kinds.Attachment)
            blob = m.content.blob
            answers = []
            for target in (blob, "Z" * 22):  # real, and one that never existed
                with pytest.raises(NotFound) as err:
                    await c._call(F.DownloadToken(id=c._next_id(), blob=target), F.MediaToken)
                answers.append((err.value.code, str(err.value)))
            assert answers[0] == answers[1]
            own = (await c.create("group", "Mine", [])).conv
            with pytest.raises(NotFound):  # attaching it to her own conversation
                await c._call(F.AttachBlob(id=c._next_id(), conv=own, blob=blob), F.Ok)
            with pytest.raises(NotFound):  # nor an upload into a conversation she is not in
                await c._call(F.UploadToken(id=c._next_id(), conv=conv, size=4096), F.MediaToken)
            with pytest.raises(NotFound):  # bob cannot claim alice's message references it
                await b._call(F.AttachBlob(id=b._next_id(), conv=conv, blob=blob, seq=2), F.Ok)
            # Once carol is a member, she can (the blob is attached to the conversation).
            await a.invite(conv, c.account)
            tok = await c._call(F.DownloadToken(id=c._next_id(), blob=blob), F.MediaToken)
            assert tok.blob == blob
        finally:
            for cl in (a, b, c):
                await cl.aclose()


async def test_expired_replayed_and_foreign_tokens_are_refused(tmp_path: Path) -> None:
    clock = ShiftedClock()
    async with running(tmp_path, clock) as app:
        assert app.port is not None
        url = f"ws://127.0.0.1:{app.port}/ws"
        a, b, c, conv = await three(url)
        try:
            f = tmp_path / "f.bin"
            f.write_bytes(os.urandom(5000))
            await a.send_file(conv, f)
            m = await take(b, is_attachment)
            assert isinstance(m, Message)
            assert isinstance(m.content, kinds.Attachment)
            blob = m.content.blob
            tok = await b._call(F.DownloadToken(id=b._next_id(), blob=blob), F.MediaToken)
            auth = {"Authorization": f"Bearer {tok.token}"}
            status, headers, body = await http(app.port, "GET", tok.path, auth)
            assert status == 200
            assert len(body) == A.padded_size(5000)
            assert headers["content-type"] == "application/octet-stream"
            assert headers["content-disposition"] == "attachment"
            assert headers["x-content-type-options"] == "nosniff"
            assert (await http(app.port, "GET", tok.path, auth))[0] == 401  # replayed
            assert (await http(app.port, "GET", tok.path, {}))[0] == 401  # none
            # A token is bound to its blob: bob's token for another of his blobs does not open it.
            await b.send_file(conv, f)
            other = await take(
                a,
                lambda ev: (
                    is_attachment(ev) and ev.content.blob != blob  # type: ignore[attr-defined]
                ),
            )
            assert isinstance(other, Message)
            assert isinstance(other.content, kinds.Attachment)
            tok2 = await b._call(
                F.DownloadToken(id=b._next_id(), blob=other.content.blob), F.MediaToken
            )
            bearer2 = {"Authorization": f"Bearer {tok2.token}"}
            assert (await http(app.port, "GET", tok.path, bearer2))[0] == 401
            # Expired.
            tok3 = await b._call(F.DownloadToken(id=b._next_id(), blob=blob), F.MediaToken)
            clock.shift = int(app.settings.media.token_ttl * 1000) + 1
            bearer3 = {"Authorization": f"Bearer {tok3.token}"}
            assert (await http(app.port, "GET", tok3.path, bearer3))[0] == 401
            clock.shift = 0
            # An upload token is dead once its upload completed.
            up = await a._call(F.UploadToken(id=a._next_id(), conv=conv, size=4096), F.MediaToken)
            tus = {"Authorization": f"Bearer {up.token}", "Tus-Resumable": "1.0.0"}
            patch = {
                **tus,
                "Content-Type": "application/offset+octet-stream",
                "Upload-Offset": "0",
                "Content-Length": "4096",
            }
            assert (await http(app.port, "PATCH", up.path, patch, bytes(4096)))[0] == 204
            assert (await http(app.port, "HEAD", up.path, tus))[0] == 401
            assert (await http(app.port, "PATCH", up.path, patch, bytes(4096)))[0] == 401
        finally:
            for cl in (a, b, c):
                await cl.aclose()


async def test_forged_uploads_are_refused_before_a_byte_is_stored(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        assert app.port is not None and app.media is not None
        url = f"ws://127.0.0.1:{app.port}/ws"
        a, b, c, conv = await three(url)
        try:
            up = await a._call(F.UploadToken(id=a._next_id(), conv=conv, size=5000), F.MediaToken)
            tus = {"Authorization": f"Bearer {up.token}", "Tus-Resumable": "1.0.0"}
            port = app.port
            status, headers, _ = await http(
                port, "POST", "/media/upload", {**tus, "Upload-Length": "9999"}
            )
            assert status == 413
            status, headers, _ = await http(
                port, "POST", "/media/upload", {**tus, "Upload-Length": "5000"}
            )
            assert (status, headers["location"]) == (201, up.path)
            ct = {**tus, "Content-Type": "application/offset+octet-stream"}
            too_long = {**ct, "Upload-Offset": "0", "Content-Length": "5001"}
            assert (await http(port, "PATCH", up.path, too_long, bytes(5001)))[0] == 413
            wrong_offset = {**ct, "Upload-Offset": "10", "Content-Length": "10"}
            assert (await http(port, "PATCH", up.path, wrong_offset, bytes(10)))[0] == 409
            no_length = {**ct, "Upload-Offset": "0"}
            assert (await http(port, "PATCH", up.path, no_length))[0] == 411
            chunked = {**ct, "Upload-Offset": "0", "Transfer-Encoding": "chunked"}
            assert (await http(port, "PATCH", up.path, chunked, b"0\r\n\r\n"))[0] == 411
            info = await app.media.blobs.info(up.blob)
            assert info is not None and info.offset == 0
            # Another upload's token does not write this one.
            up2 = await a._call(F.UploadToken(id=a._next_id(), conv=conv, size=5000), F.MediaToken)
            other = {**ct, "Authorization": f"Bearer {up2.token}", "Upload-Offset": "0"}
            other["Content-Length"] = "10"
            assert (await http(port, "PATCH", up.path, other, bytes(10)))[0] == 401
            # The WebSocket endpoint and the health routes are untouched by the media routes.
            assert (await http(port, "GET", "/healthz", {}))[0] == 200
            assert (await http(port, "GET", "/media/nothing", {}))[0] == 404
        finally:
            for cl in (a, b, c):
                await cl.aclose()


class Recorder:
    """A loopback TCP proxy that keeps every byte in both directions."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.seen = bytearray()
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                self.seen += data
                w.write(data)
                await w.drain()
        except ConnectionError:
            pass
        finally:
            w.close()

    async def _conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._writers |= {w, uw}
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))

    async def aclose(self) -> None:
        if self.server is not None:
            self.server.close()
            for w in self._writers:
                w.close()
            await self.server.wait_closed()


async def test_a_marker_in_name_content_and_thumbnail_never_reaches_the_server(
    tmp_path: Path,
) -> None:
    server_dir, client_dir = tmp_path / "server", tmp_path / "client"
    server_dir.mkdir()
    client_dir.mkdir()
    async with running(server_dir) as app:
        assert app.port is not None
        proxy = Recorder(app.port)
        url = f"ws://127.0.0.1:{await proxy.start()}/ws"
        a, b, c, conv = await three(url)
        try:
            src = client_dir / f"{MARKER.decode()}.txt"
            src.write_bytes(MARKER * 20_000)
            extra = {"thumbnail": MARKER * 10, "width": 1, "height": 1}
            await a.send_file(conv, src, caption=MARKER.decode(), extra=extra)
            m = await take(b, is_attachment)
            out = await b.download(m, client_dir / "copy.txt")  # type: ignore[arg-type]
            assert out.read_bytes() == MARKER * 20_000
            assert isinstance(m, Message)
            assert isinstance(m.content, kinds.Attachment)
            assert m.content.thumbnail == MARKER * 10
        finally:
            for cl in (a, b, c):
                await cl.aclose()
            await proxy.aclose()
    assert len(proxy.seen) > A.padded_size(20_000 * len(MARKER))  # the blob went through
    assert MARKER not in proxy.seen
    files = [p for p in server_dir.rglob("*") if p.is_file()]
    assert any(p.parent.parent.name == "blobs" for p in files)
    for p in files:
        assert MARKER not in p.read_bytes(), p
        assert MARKER.decode() not in p.name


async def test_a_stalled_upload_is_cut_and_keeps_what_arrived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatd.media import http as media_http

    monkeypatch.setattr(media_http, "IDLE_TIMEOUT", 0.3)
    async with running(tmp_path) as app:
        assert app.port is not None
        a, b, c, conv = await three(f"ws://127.0.0.1:{app.port}/ws")
        try:
            up = await a._call(F.UploadToken(id=a._next_id(), conv=conv, size=4096), F.MediaToken)
            tus = {"Authorization": f"Bearer {up.token}", "Tus-Resumable": "1.0.0"}
            head = [
                f"PATCH {up.path} HTTP/1.1",
                "Content-Type: application/offset+octet-stream",
                "Upload-Offset: 0",
                "Content-Length: 4096",
                *(f"{k}: {v}" for k, v in tus.items()),
            ]
            reader, writer = await asyncio.open_connection("127.0.0.1", app.port)
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + b"x" * 1000)
            await writer.drain()
            async with asyncio.timeout(10):
                assert await reader.read() == b""  # cut by the server, no answer
            writer.close()
            status, headers, _ = await http(app.port, "HEAD", up.path, tus)
            assert (status, headers["upload-offset"]) == (200, "1000")
        finally:
            for cl in (a, b, c):
                await cl.aclose()


async def test_an_upload_outlives_its_token_only_for_its_own_uploader(tmp_path: Path) -> None:
    """The token expires mid-upload (the clock moves past its ttl while the connection drops):
    the SDK gets a new token for the same unfinished blob and completes it; nobody else can."""
    clock = ShiftedClock()
    async with running(tmp_path, clock) as app:
        assert app.port is not None and app.media is not None
        a, b, c, conv = await three(f"ws://127.0.0.1:{app.port}/ws")
        try:
            data = os.urandom(2_000_000)
            src = tmp_path / "slow.bin"
            src.write_bytes(data)
            total = A.padded_size(len(data))
            blobs: list[str] = []

            def progress(done: int, _total: int) -> None:
                if not blobs and done >= total // 2:
                    blobs.append("cut")
                    clock.shift = int(app.settings.media.token_ttl * 1000) + 1
                    a.media.drop_connection()

            await a.send_file(conv, src, progress=progress)
            assert blobs == ["cut"]
            m = await take(b, is_attachment)
            assert (await b.download(m, tmp_path / "got.bin")).read_bytes() == data  # type: ignore[arg-type]
            # An unfinished upload of alice's cannot be taken over by bob, a member.
            up = await a._call(F.UploadToken(id=a._next_id(), conv=conv, size=8192), F.MediaToken)
            with pytest.raises(NotFound):
                await b._call(
                    F.UploadToken(id=b._next_id(), conv=conv, size=8192, blob=up.blob),
                    F.MediaToken,
                )
            again = await a._call(
                F.UploadToken(id=a._next_id(), conv=conv, size=8192, blob=up.blob), F.MediaToken
            )
            assert again.blob == up.blob and again.token != up.token
            _, held = await app.media.blobs.usage(a.account, 0)
            assert held == total + 8192  # the renewal reserved nothing more
        finally:
            for cl in (a, b, c):
                await cl.aclose()
