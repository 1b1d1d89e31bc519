"""Files, images and voice notes, end to end (E2E.md 14, SPEC.md 17): ``client.media``.

Sending: the file is encrypted with a fresh key while it is read (never whole in memory: one
64 KiB chunk at a time), the padded ciphertext uploaded with tus 1.0 (a dropped connection
resumes from the offset the server holds, re-encrypting from that chunk), then an
``attachment`` message carries the key, digest, name and type inside the conversation's
end-to-end encryption, and ``attach_blob`` tells the server the message references the blob (so
the sweeper keeps it). Images get a thumbnail (Pillow) and their dimensions.

Receiving: ``download`` fetches the ciphertext into ``<path>.part`` (resuming with Range after a
drop), checks its length and SHA-256 against the message BEFORE decrypting anything, then
decrypts into ``path``. A blob that does not match is deleted and ``AttachmentRefused`` raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import mimetypes
import os
import ssl
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e import attachment as A
from chatproto.errors import DecryptError, ErrorCode

from chatclient.errors import ChatClientError, RequestError
from chatclient.events import Message

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from chatclient.connection import Connection
    from chatclient.events import Undecryptable

    SendFn = Callable[..., Awaitable[F.Ack]]
    """``Client.send``: (conv, content, *, to=None, reply_to=None, cmid=None) -> Ack."""
    MessageFn = Callable[[int, int], Awaitable[Message | Undecryptable]]
    """``Client.message``: message ``seq`` of ``conv`` from history, decrypted."""

Progress = Callable[[int, int], None]
"""``progress(bytes_done, bytes_total)`` of the blob (padded ciphertext) as it moves."""

PIECE = 256 * 1024
THUMB_PIXELS = 320
THUMB_MAX_BYTES = 24 * 1024
MAX_ATTEMPTS = 20


class AttachmentRefused(ChatClientError):
    """The downloaded blob is not the one the message describes (length or digest): tampered
    with, or another blob. Nothing decrypted from it was kept."""


class TransferFailed(ChatClientError):
    """An upload or download failed after every retry, or the server refused it (HTTP status)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _ciphertext(path: Path, key: bytes, size: int, offset: int) -> Iterator[bytes]:
    """The padded ciphertext of ``path`` from byte ``offset`` on, made chunk by chunk."""
    fkey = A.file_key(key)
    n = A.chunk_count(size)
    ct_size = A.ciphertext_size(size)
    index = min(offset // A.CT_CHUNK_BYTES, n)
    skip = offset - index * A.CT_CHUNK_BYTES
    if offset < ct_size:
        with path.open("rb") as f:
            f.seek(index * A.CHUNK_BYTES)
            while index < n:
                data = f.read(A.CHUNK_BYTES)
                final = index == n - 1
                if (final and len(data) != size - index * A.CHUNK_BYTES) or (
                    not final and len(data) != A.CHUNK_BYTES
                ):
                    raise TransferFailed(f"{path} changed while it was being sent")
                ct = A.encrypt_chunk(fkey, index, data, final)
                yield ct[skip:] if skip else ct
                skip = 0
                index += 1
        pad = A.padded_size(size) - ct_size
    else:
        pad = A.padded_size(size) - offset
    while pad > 0:
        step = min(pad, PIECE)
        yield bytes(step)
        pad -= step


def _digest_of(path: Path, key: bytes, size: int) -> bytes:
    sha = A.Digest()
    for piece in _ciphertext(path, key, size, 0):
        sha.update(piece)
    return sha.digest()


def image_info(path: Path) -> tuple[int, int, bytes]:
    """``(width, height, JPEG thumbnail)`` of an image (at most 320 px a side, 24 KiB)."""
    from PIL import Image, ImageOps

    with Image.open(path) as src:
        img = ImageOps.exif_transpose(src) or src
        width, height = img.size
        thumb = img.convert("RGB")
        thumb.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
        for quality in (75, 60, 45, 30):
            out = io.BytesIO()
            thumb.save(out, "JPEG", quality=quality)
            if out.tell() <= THUMB_MAX_BYTES:
                return width, height, out.getvalue()
            thumb.thumbnail((thumb.width * 3 // 4, thumb.height * 3 // 4))
    return width, height, b""


class _Response:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status = status
        self.headers = headers
        self.reader = reader
        self.writer = writer

    def close(self) -> None:
        self.writer.close()


class Media:
    """Attachments for one ``Client`` (``client.media``)."""

    def __init__(
        self, conn: Connection, send: SendFn, message: MessageFn, *, encrypt: bool
    ) -> None:
        self._client = conn
        self._send = send
        self._message = message
        self._encrypt = encrypt
        self._current: asyncio.StreamWriter | None = None
        self._sent: dict[tuple[int, int], str] = {}
        """(conv, seq) -> blob of the last 1000 attachments sent here (for ``delete``)."""

    # ------------------------------------------------------------------ HTTP

    def _origin(self) -> tuple[str, int, ssl.SSLContext | None]:
        u = urlsplit(self._client.url)
        tls = u.scheme == "wss"
        return (
            u.hostname or "127.0.0.1",
            u.port or (443 if tls else 80),
            (ssl.create_default_context() if tls else None),
        )

    async def _request(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: Iterator[bytes] | None = None,
        sent: Callable[[int], None] | None = None,
    ) -> _Response:
        host, port, tls = self._origin()
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, limit=64 * 1024)
        self._current = writer
        try:
            head = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
            head += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
            for piece in body or ():
                writer.write(piece)
                await writer.drain()
                if sent is not None:
                    sent(len(piece))
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
        except BaseException:
            writer.close()
            raise
        lines = raw[:-4].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        got = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            got[name.strip().lower()] = value.strip()
        return _Response(status, got, reader, writer)

    def drop_connection(self) -> None:
        """Abort the current transfer's connection as a network failure would (tests, demos):
        the transfer resumes."""
        if self._current is not None:
            self._current.transport.abort()

    async def _token(self, frame: Any) -> F.MediaToken:
        token: F.MediaToken = await self._client.call(frame, F.MediaToken)
        return token

    # ------------------------------------------------------------------ upload

    async def upload(
        self, conv: int, path: Path, key: bytes, progress: Progress | None = None
    ) -> tuple[str, bytes, int]:
        """Encrypt and upload ``path``; ``(blob, digest, size)``. Resumes after drops."""
        size = (await asyncio.to_thread(path.stat)).st_size
        total = A.padded_size(size)
        digest = await asyncio.to_thread(_digest_of, path, key, size)
        c = self._client
        tok = await self._token(F.UploadToken(id=c.next_id(), conv=conv, size=total))
        auth = {"Authorization": f"Bearer {tok.token}", "Tus-Resumable": "1.0.0"}
        r = await self._request(
            "POST", "/media/upload", {**auth, "Upload-Length": str(total), "Content-Length": "0"}
        )
        r.close()
        if r.status != 201:
            raise TransferFailed(f"upload refused: HTTP {r.status}", r.status)
        location = r.headers.get("location", tok.path)
        offset = 0
        attempts = 0
        pause = 0.05
        while True:
            done = offset

            def sent(n: int) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(done, total)

            try:
                if attempts:  # where did the server get to?
                    r = await self._request("HEAD", location, auth)
                    r.close()
                    if r.status == 401:  # complete (token used up), or the token expired
                        if await self._complete(tok.blob):
                            return tok.blob, digest, size
                        tok = await self._token(
                            F.UploadToken(id=c.next_id(), conv=conv, size=total, blob=tok.blob)
                        )
                        auth["Authorization"] = f"Bearer {tok.token}"
                        r = await self._request("HEAD", location, auth)
                        r.close()
                    if r.status != 200:
                        raise TransferFailed(f"upload lost: HTTP {r.status}", r.status)
                    offset = int(r.headers["upload-offset"])
                    done = offset
                    if offset == total:
                        return tok.blob, digest, size
                headers = {
                    **auth,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Content-Length": str(total - offset),
                }
                r = await self._request(
                    "PATCH", location, headers, _ciphertext(path, key, size, offset), sent
                )
                r.close()
                if r.status == 204 and int(r.headers.get("upload-offset", -1)) == total:
                    return tok.blob, digest, size
                if r.status in (404, 413, 415):
                    raise TransferFailed(f"upload refused: HTTP {r.status}", r.status)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                pass
            attempts += 1
            if attempts > MAX_ATTEMPTS:
                raise TransferFailed("upload failed after every retry")
            await asyncio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _complete(self, blob: str) -> bool:
        c = self._client
        try:
            await self._token(F.DownloadToken(id=c.next_id(), blob=blob))
        except RequestError as exc:
            if exc.code == ErrorCode.NOT_FOUND:
                return False
            raise
        return True

    async def send_file(
        self,
        conv: int,
        path: str | os.PathLike[str],
        *,
        media_type: str = "",
        caption: str = "",
        progress: Progress | None = None,
        extra: dict[str, Any] | None = None,
    ) -> F.Ack:
        """Upload ``path`` encrypted and send it as an ``attachment`` message; the ``Ack``."""
        if not self._encrypt:
            raise ChatClientError("attachments are sent only end-to-end encrypted")
        p = Path(path)
        key = A.new_key()
        blob, digest, size = await self.upload(conv, p, key, progress)
        content = kinds.Attachment(
            blob=blob,
            key=key,
            digest=digest,
            size=size,
            media_type=media_type or mimetypes.guess_type(p.name)[0] or "application/octet-stream",
            name=p.name[-255:],
            caption=caption,
            **(extra or {}),
        )
        return await self.send_attachment(conv, content)

    async def attach(self, conv: int, blob: str, seq: int = 0) -> None:
        """``attach_blob``: members of ``conv`` may download ``blob``; with ``seq``, message
        ``seq`` (ours) references it, so the sweeper keeps it."""
        c = self._client
        await c.call(F.AttachBlob(id=c.next_id(), conv=conv, blob=blob, seq=seq), F.Ok)

    async def send_attachment(self, conv: int, content: kinds.Attachment) -> F.Ack:
        """Send an ``attachment`` (a new one, or one received elsewhere: sharing re-uses the
        blob, key and digest; nothing is uploaded) and tell the server the message references
        its blob."""
        await self.attach(conv, content.blob)
        ack = await self._send(conv, content)
        await self.attach(conv, content.blob, ack.seq)
        self._sent[(conv, ack.seq)] = content.blob
        while len(self._sent) > 1000:
            del self._sent[next(iter(self._sent))]
        return ack

    async def delete(self, conv: int, seq: int, blob: str = "") -> None:
        """Delete our attachment message ``seq`` for everyone: ``detach_blob`` (so that the
        blob, once nothing else references it, is swept), then ``delete_message`` (the server
        keeps a tombstone in its place, SPEC.md 18.9). ``blob``:
        the message's blob when this client did not send it in this session."""
        c = self._client
        blob = blob or self._sent.get((conv, seq), "")
        if not blob:
            m = await self._message(conv, seq)
            blob = self.blob_of(m.content) if isinstance(m, Message) else ""
        if blob:
            await c.call(F.DetachBlob(id=c.next_id(), conv=conv, seq=seq, blob=blob), F.Ok)
            self._sent.pop((conv, seq), None)
        await c.call(F.DeleteMessage(id=c.next_id(), conv=conv, seq=seq), F.Ok)

    @staticmethod
    def blob_of(content: kinds.Content | None) -> str:
        """The blob an attachment, or a forwarded attachment, refers to ("" for none)."""
        if isinstance(content, kinds.Forward) and content.kind == kinds.Attachment.KIND:
            with contextlib.suppress(Exception):
                content = kinds.decode_content(content.kind, content.body)
        return content.blob if isinstance(content, kinds.Attachment) else ""

    async def send_image(self, conv: int, path: str | os.PathLike[str], **kw: Any) -> F.Ack:
        """``send_file`` with the image's dimensions and a JPEG thumbnail (inside the message)."""
        width, height, thumb = await asyncio.to_thread(image_info, Path(path))
        extra = {"width": width, "height": height, "thumbnail": thumb}
        return await self.send_file(conv, path, extra=extra, **kw)

    async def send_voice(
        self,
        conv: int,
        path: str | os.PathLike[str],
        *,
        duration_ms: int = 0,
        waveform: bytes = b"",
        **kw: Any,
    ) -> F.Ack:
        """``send_file`` of a voice note with its duration and waveform (<= 256 samples)."""
        extra = {"duration_ms": duration_ms, "waveform": waveform[:256]}
        kw.setdefault("media_type", "audio/ogg")
        return await self.send_file(conv, path, extra=extra, **kw)

    # ------------------------------------------------------------------ download

    async def download(
        self,
        message: Message | kinds.Attachment,
        path: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> Path:
        """Fetch, verify (length and digest) and decrypt an attachment into ``path``."""
        att = message if isinstance(message, kinds.Attachment) else message.content
        if isinstance(att, kinds.Forward) and not isinstance(message, kinds.Attachment):
            att = message.forwarded
        if not isinstance(att, kinds.Attachment):
            raise ChatClientError("not an attachment message")
        dest = Path(path)
        part = dest.with_name(dest.name + ".part")
        total = A.padded_size(att.size)
        c = self._client
        attempts, pause = 0, 0.05
        have = part.stat().st_size if part.exists() else 0
        if have > total:
            part.unlink()
            have = 0
        while have < total:
            try:
                tok = await self._token(F.DownloadToken(id=c.next_id(), blob=att.blob))
                headers = {"Authorization": f"Bearer {tok.token}"}
                if have:
                    headers["Range"] = f"bytes={have}-"
                r = await self._request("GET", tok.path, headers)
                try:
                    if r.status not in (200, 206):
                        raise TransferFailed(f"download refused: HTTP {r.status}", r.status)
                    if r.status == 200:
                        have = 0
                    have = await self._receive(r, part, have, total, progress)
                finally:
                    r.close()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                attempts += 1
                if attempts > MAX_ATTEMPTS:
                    raise TransferFailed("download failed after every retry") from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 2.0)
                have = part.stat().st_size if part.exists() else 0
        await asyncio.to_thread(_verify_and_decrypt, att, part, dest)
        return dest

    async def _receive(
        self, r: _Response, part: Path, have: int, total: int, progress: Progress | None
    ) -> int:
        length = int(r.headers.get("content-length", "0"))
        mode = "ab" if have else "wb"
        with part.open(mode) as f:
            left = length
            while left:
                piece = await r.reader.read(min(PIECE, left))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", left)
                f.write(piece)
                left -= len(piece)
                have += len(piece)
                if have > total:
                    raise AttachmentRefused("the server sent more than the blob's size")
                if progress is not None:
                    progress(have, total)
        return have

    async def chunks(self, att: kinds.Attachment, start: int, end: int) -> AsyncIterator[bytes]:
        """Plaintext bytes ``start .. end - 1`` of an attachment, fetched with one Range request
        and decrypted chunk by chunk (each chunk authenticates itself)."""
        idx = A.chunks_for_range(att.size, start, end)
        lo = A.chunk_span(att.size, idx[0])[0]
        hi = A.chunk_span(att.size, idx[-1])[1]
        c = self._client
        tok = await self._token(F.DownloadToken(id=c.next_id(), blob=att.blob))
        r = await self._request(
            "GET",
            tok.path,
            {"Authorization": f"Bearer {tok.token}", "Range": f"bytes={lo}-{hi - 1}"},
        )
        try:
            if r.status != 206:
                raise TransferFailed(f"range refused: HTTP {r.status}", r.status)
            fkey = A.file_key(att.key)
            n = A.chunk_count(att.size)
            for i in idx:
                s, e = A.chunk_span(att.size, i)
                plain = A.decrypt_chunk(fkey, i, await r.reader.readexactly(e - s), i == n - 1)
                base = i * A.CHUNK_BYTES
                yield plain[max(0, start - base) : end - base]
        finally:
            r.close()


def _verify_and_decrypt(att: kinds.Attachment, part: Path, dest: Path) -> None:
    """Digest first (E2E.md 14); only a matching blob is decrypted, into a temp file renamed
    over ``dest``. A mismatch deletes the download."""
    sha = A.Digest()
    with part.open("rb") as f:
        while piece := f.read(1024 * 1024):
            sha.update(piece)
    if sha.length != A.padded_size(att.size) or not sha.matches(att.digest):
        part.unlink(missing_ok=True)
        raise AttachmentRefused("the blob's digest does not match the message: refused")
    tmp = dest.with_name(dest.name + ".tmp")
    fkey, n = A.file_key(att.key), A.chunk_count(att.size)
    try:  # chunk by chunk: the whole blob's digest (padding included) was checked above
        with part.open("rb") as f, tmp.open("wb") as out:
            for i in range(n):
                start, end = A.chunk_span(att.size, i)
                out.write(A.decrypt_chunk(fkey, i, f.read(end - start), i == n - 1))
    except DecryptError as exc:
        tmp.unlink(missing_ok=True)
        part.unlink(missing_ok=True)
        raise AttachmentRefused(f"the blob does not decrypt: {exc}") from None
    os.replace(tmp, dest)
    part.unlink()
