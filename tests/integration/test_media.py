"""Encrypted attachments against a real server (SPEC.md 17, E2E.md 14): files, images and voice
notes sent with the SDK, uploads resumed after dropped connections, blobs tampered with on
disk, quotas and the sweeper."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from chatclient import Client, Message
from chatclient.errors import RequestError
from chatclient.events import Event
from chatclient.media import AttachmentRefused
from chatproto import kinds
from chatproto.e2e import attachment as A
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from PIL import Image
from testkit import http_get

from chatd.app import App
from chatd.media.service import DAY_MS


async def take(client: Client, pred: Callable[[Event], bool], timeout: float = 10.0) -> Event:
    deadline = time.monotonic() + timeout
    while True:
        for ev in client.events_nowait():
            if pred(ev):
                return ev
        if time.monotonic() > deadline:
            raise AssertionError("no matching event")
        await asyncio.sleep(0.01)


def attachment_of(conv: int) -> Callable[[Event], bool]:
    return lambda ev: (
        isinstance(ev, Message) and ev.conv == conv and isinstance(ev.content, kinds.Attachment)
    )


@contextlib.asynccontextmanager
async def pair(url: str) -> AsyncIterator[tuple[Client, Client, int]]:
    async with Client(url) as a, Client(url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        conv = (await a.create("group", "G", [b.account])).conv
        yield a, b, conv


def blob_files(app: App) -> list[Path]:
    assert app.media is not None
    root = Path(app.media.blobs.root)  # type: ignore[attr-defined]
    return [p for p in (root / "blobs").rglob("*") if p.is_file()]


async def test_a_file_round_trips_byte_identical_and_the_server_holds_only_padded_ciphertext(
    server: RunningServer, tmp_path: Path
) -> None:
    data = os.urandom(300_001)
    src = tmp_path / "report.pdf"
    src.write_bytes(data)
    async with pair(server.url) as (a, b, conv):
        seen: list[tuple[int, int]] = []
        await a.send_file(
            conv, src, caption="the report", progress=lambda d, t: seen.append((d, t))
        )
        assert seen[-1] == (A.padded_size(len(data)), A.padded_size(len(data)))
        m = await take(b, attachment_of(conv))
        assert isinstance(m, Message)
        att = m.content
        assert isinstance(att, kinds.Attachment)
        assert (att.name, att.media_type, att.size, att.caption) == (
            "report.pdf",
            "application/pdf",
            len(data),
            "the report",
        )
        out = await b.download(m, tmp_path / "got.pdf")
        assert out.read_bytes() == data
        assert not (tmp_path / "got.pdf.part").exists()
        [stored] = blob_files(server.app)
        assert stored.stat().st_size == A.padded_size(len(data))
        assert hashlib.sha256(stored.read_bytes()).digest() == att.digest


async def test_an_image_gets_dimensions_and_a_thumbnail_and_a_voice_note_its_waveform(
    server: RunningServer, tmp_path: Path
) -> None:
    img = tmp_path / "cat.png"
    Image.frombytes("RGB", (400, 300), os.urandom(400 * 300 * 3)).save(img)  # ~360 KB
    voice = tmp_path / "hello.ogg"
    voice.write_bytes(os.urandom(5000))
    async with pair(server.url) as (a, b, conv):
        await a.send_image(conv, img)
        m = await take(b, attachment_of(conv))
        assert isinstance(m, Message)
        att = m.content
        assert isinstance(att, kinds.Attachment)
        assert (att.width, att.height, att.media_type) == (400, 300, "image/png")
        with Image.open(io.BytesIO(att.thumbnail)) as thumb:
            assert max(thumb.size) <= 320
        await a.send_voice(conv, voice, duration_ms=1500, waveform=bytes(range(0, 200, 4)))
        v = await take(b, attachment_of(conv))
        assert isinstance(v, Message)
        assert isinstance(v.content, kinds.Attachment)
        assert v.content.duration_ms == 1500
        assert v.content.media_type == "audio/ogg"
        assert (await b.download(v, tmp_path / "v.ogg")).read_bytes() == voice.read_bytes()
        # A range decrypts alone: the second chunk's bytes of the image.
        got = b"".join([p async for p in b.media.chunks(att, 70_000, 70_100)])
        assert got == img.read_bytes()[70_000:70_100]


async def test_50_mb_upload_survives_three_dropped_connections_and_round_trips(
    server: RunningServer, tmp_path: Path
) -> None:
    data = os.urandom(50 * 1024 * 1024)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    total = A.padded_size(len(data))
    async with pair(server.url) as (a, b, conv):
        cuts = [total // 4, total // 2, 3 * total // 4]
        dropped: list[int] = []

        def progress(done: int, _total: int) -> None:
            if cuts and done >= cuts[0]:
                cuts.pop(0)
                dropped.append(done)
                a.media.drop_connection()

        await a.send_file(conv, src, progress=progress)
        assert len(dropped) == 3
        m = await take(b, attachment_of(conv))
        out = await b.download(m, tmp_path / "big.out")  # type: ignore[arg-type]
        assert out.read_bytes() == data


async def test_a_flipped_bit_on_disk_is_refused_by_the_receiver(
    server: RunningServer, tmp_path: Path
) -> None:
    src = tmp_path / "a.txt"
    src.write_bytes(b"pay 10 to alice\n" * 1000)
    async with pair(server.url) as (a, b, conv):
        await a.send_file(conv, src)
        m = await take(b, attachment_of(conv))
        [stored] = blob_files(server.app)
        raw = bytearray(stored.read_bytes())
        raw[len(raw) // 3] ^= 0x04
        stored.write_bytes(bytes(raw))
        with pytest.raises(AttachmentRefused):
            await b.download(m, tmp_path / "out.txt")  # type: ignore[arg-type]
        assert not (tmp_path / "out.txt").exists()
        assert not (tmp_path / "out.txt.part").exists()


async def test_the_sweeper_deletes_an_orphan_and_keeps_a_referenced_blob(
    server: RunningServer, tmp_path: Path
) -> None:
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(10_000))
    app = server.app
    assert app.media is not None
    async with pair(server.url) as (a, b, conv):
        orphan, _, _ = await a.media.upload(conv, src, A.new_key())  # uploaded, never sent
        await a.send_file(conv, src)
        m = await take(b, attachment_of(conv))
        assert isinstance(m, Message)
        assert isinstance(m.content, kinds.Attachment)
        kept = m.content.blob
        now = int(time.time() * 1000)
        assert await app.media.sweep(now) == []  # within the grace period: both stay
        later = now + int(app.settings.media.grace * 1000) + 1
        assert await app.media.sweep(later) == [orphan]
        assert app.port is not None
        status, metrics = await http_get(app.port, "/metrics")
        assert status == 200
        values = {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("chatd_media")
        }
        assert values["chatd_media_stored_bytes"] == A.padded_size(10_000)
        assert values["chatd_media_sweeper_runs_total"] >= 2
        assert values["chatd_media_blobs_deleted_total"] == 1
        assert values['chatd_media_bytes_total{direction="in"}'] == 2 * A.padded_size(10_000)
        assert values["chatd_media_uploads_in_progress"] == 0
        assert await app.media.blobs.info(orphan) is None
        assert await app.media.blobs.info(kept) is not None
        assert len(blob_files(app)) == 1
        assert (await b.download(m, tmp_path / "f.out")).read_bytes() == src.read_bytes()


async def test_size_and_quota_limits_refuse_before_a_byte_is_stored(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        media={"max_file_bytes": 100_000, "max_bytes_per_day": 150_000, "max_stored_bytes": 10**9},
    )
    async with run_server(settings) as server, pair(server.url) as (a, b, conv):
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(200_000))
        with pytest.raises(RequestError) as err:
            await a.send_file(conv, big)
        assert err.value.code == ErrorCode.FILE_TOO_LARGE
        mid = tmp_path / "mid.bin"
        mid.write_bytes(os.urandom(80_000))
        await a.send_file(conv, mid)  # 80 KB of today's 150 KB
        with pytest.raises(RequestError) as err:
            await a.send_file(conv, mid)
        assert err.value.code == ErrorCode.QUOTA_EXCEEDED
        assert len(blob_files(server.app)) == 1
        assert server.app.media is not None
        assert await server.app.media.blobs.usage(a.account, 0) == (
            A.padded_size(80_000),
            A.padded_size(80_000),
        )
        # Bob's own quota is untouched by Alice's uploads.
        await b.send_file(conv, mid)


async def test_stored_bytes_quota(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, media={"max_stored_bytes": 100_000})
    async with run_server(settings) as server, pair(server.url) as (a, _b, conv):
        f = tmp_path / "f.bin"
        f.write_bytes(os.urandom(60_000))
        await a.send_file(conv, f)
        with pytest.raises(RequestError) as err:
            await a.send_file(conv, f)
        assert err.value.code == ErrorCode.QUOTA_EXCEEDED
        assert server.app.media is not None
        assert await server.app.media.sweep(int(time.time() * 1000) + 2 * DAY_MS) == []


async def test_a_forwarded_file_reuses_the_blob_and_opens_for_the_new_conversation_only(
    server: RunningServer, tmp_path: Path
) -> None:
    src = tmp_path / "plan.txt"
    src.write_bytes(os.urandom(20_000))
    async with pair(server.url) as (a, b, conv), Client(server.url) as c:
        await c.register("carol", "Carol")
        await a.send_file(conv, src)
        m = await take(b, attachment_of(conv))
        assert isinstance(m, Message)
        other = (await b.create("group", "Other", [c.account])).conv
        await b.forward(m, other)
        fwd = await take(
            c,
            lambda ev: (
                isinstance(ev, Message)
                and ev.conv == other
                and isinstance(ev.content, kinds.Forward)
            ),
        )
        assert isinstance(fwd, Message)
        out = await c.download(fwd, tmp_path / "carol.txt")
        assert out.read_bytes() == src.read_bytes()
        assert len(blob_files(server.app)) == 1  # nothing uploaded again
        # The forward is a message referencing the blob too: the sweeper keeps it.
        assert server.app.media is not None
        later = int(time.time() * 1000) + int(server.app.settings.media.grace * 1000) + 1
        assert await server.app.media.sweep(later) == []


async def test_the_image_bot_answers_an_image_with_its_size_and_a_thumbnail(
    server: RunningServer, tmp_path: Path
) -> None:
    from chatclient.bots import Bot

    from tests.botkit import example

    module = example("image_bot")
    img = tmp_path / "photo.png"
    Image.frombytes("RGB", (300, 200), os.urandom(300 * 200 * 3)).save(img)
    async with (
        Bot(server.url, tmp_path / "image_bot.key", module.router, handle="image_bot") as bot,
        Client(server.url) as alice,
    ):
        await alice.register("alice", "Alice")
        conv = await alice.direct(bot.me.account)
        await alice.send_image(conv, img)
        got: dict[type, Message] = {}
        deadline = time.monotonic() + 20
        while len(got) < 2 and time.monotonic() < deadline:  # the thumbnail, then the text
            for ev in alice.events_nowait():
                if isinstance(ev, Message) and ev.sender == bot.me.account:
                    got[type(ev.content)] = ev
            await asyncio.sleep(0.02)
        answer, thumb = got[kinds.Text].content, got[kinds.Attachment]
        assert isinstance(answer, kinds.Text)
        assert answer.text == f"photo.png: {img.stat().st_size} bytes, 300x200 pixels"
        out = await alice.download(thumb, tmp_path / "thumb.jpg")  # type: ignore[arg-type]
        with Image.open(out) as got:
            assert max(got.size) == 128


async def test_a_file_deleted_for_everyone_is_swept_and_one_still_referenced_is_kept(
    server: RunningServer, tmp_path: Path
) -> None:
    src = tmp_path / "oops.txt"
    src.write_bytes(os.urandom(9_000))
    app = server.app
    assert app.media is not None
    async with pair(server.url) as (a, b, conv):
        first = await a.send_file(conv, src)
        second = await a.send_file(conv, src)
        m2 = await take(b, lambda ev: isinstance(ev, Message) and ev.seq == second.seq)
        assert isinstance(m2, Message)
        await a.media.delete(conv, first.seq)
        with pytest.raises(RequestError) as err:  # bob cannot detach alice's message
            await b.media.delete(conv, second.seq)
        assert err.value.code == ErrorCode.NOT_FOUND
        later = int(time.time() * 1000) + int(app.settings.media.grace * 1000) + 1
        swept = await app.media.sweep(later)
        assert len(swept) == 1  # the first file's blob; the second is still referenced
        assert await app.media.blobs.info(swept[0]) is None
        assert isinstance(m2.content, kinds.Attachment)
        assert (await b.download(m2, tmp_path / "kept.txt")).read_bytes() == src.read_bytes()


async def test_a_websocket_reads_through_the_plain_connection_once_sniffed(
    server: RunningServer,
) -> None:
    """Media on: each connection's first bytes are sniffed for a ``/media/`` request; once it
    is a WebSocket, its reads no longer pass through the sniffing layer (one call per read)."""
    from websockets.asyncio.server import ServerConnection
    from websockets.protocol import State

    from chatd.transport.server import _Connection

    assert server.app.media is not None
    async with pair(server.url) as (a, b, conv):
        # Open ones only: closed connections of earlier tests (same worker) may linger.
        conns = [
            o
            for o in gc.get_objects()
            if issubclass(type(o), ServerConnection) and o.protocol.state is State.OPEN
        ]
        assert len(conns) == 2
        assert all(type(c) is _Connection for c in conns)
        await a.send_text(conv, "still delivered")
        m = await take(b, lambda ev: isinstance(ev, Message) and ev.conv == conv)
        assert isinstance(m, Message)
