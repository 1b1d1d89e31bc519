"""Media use cases: short-lived tokens for the HTTP routes, quotas, who may read a blob, and the
sweeper (SPEC.md 17).

Who may download a blob: the account that uploaded it, and members of a conversation it is
attached to (by its ``upload_token``, or by an ``attach_blob`` of a member who may download it).
Anyone else gets ``NOT_FOUND``, exactly as for a blob that does not exist. The sweeper deletes a
blob ``grace`` seconds after its upload_token unless a stored message references it (an
``attach_blob`` with a seq whose message still exists), so an upload never sent, a message
deleted or expired, or a crash between upload and send leaves nothing that lives forever."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os

from chatproto import frames as F
from chatproto.errors import ErrorCode

from chatd.errors import ChatdError, NotFound
from chatd.media.store import BlobStore
from chatd.services.deps import Deps

log = logging.getLogger(__name__)

UPLOAD_PATH = "/media/upload"
DOWNLOAD_PATH = "/media/blob"
DAY_MS = 86_400_000


def new_blob_id() -> str:
    """22 characters of base64url: 128 random bits."""
    return base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


def token_digest(token: str) -> bytes:
    """Tokens are stored hashed: a copy of the index hands out nothing usable."""
    return hashlib.sha256(token.encode()).digest()


class MediaService:
    def __init__(self, deps: Deps, blobs: BlobStore) -> None:
        self.deps = deps
        self.blobs = blobs
        self.settings = deps.settings.media
        self._stop = asyncio.Event()
        from chatd.media.http import MediaHttp  # http imports this module

        self.http = MediaHttp(self)

    # ------------------------------------------------------------------ WebSocket frames

    async def _token(self, kind: str, blob: str, account: int, path: str, rid: int) -> F.MediaToken:
        token = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        expires = self.deps.clock.now_ms() + int(self.settings.token_ttl * 1000)
        await self.blobs.put_token(token_digest(token), kind, blob, account, expires)
        return F.MediaToken(re=rid, blob=blob, token=token, path=path, expires=expires)

    async def _sender_of(self, conv: int, seq: int) -> int | None:
        """The author of stored message ``seq`` of ``conv``; None when there is none."""
        msgs = await self.deps.store.messages(conv, seq - 1, seq + 1, 1)
        return msgs[0].sender if msgs and msgs[0].seq == seq else None

    async def _member(self, conv: int, account: int) -> bool:
        return await self.deps.store.membership(conv, account) is not None

    async def upload_token(self, account: int, f: F.UploadToken) -> F.MediaToken:
        if not await self._member(f.conv, account):
            raise NotFound("no such conversation")
        if f.blob:  # resuming: a fresh token for the caller's own unfinished upload
            info = await self.blobs.info(f.blob)
            if info is None or info.owner != account or info.complete or info.size != f.size:
                raise NotFound("no such unfinished upload of yours")
            return await self._token("upload", f.blob, account, f"{UPLOAD_PATH}/{f.blob}", f.id)
        s = self.settings
        if f.size > s.max_file_bytes:
            raise ChatdError(
                f"a file is at most {s.max_file_bytes} bytes", ErrorCode.FILE_TOO_LARGE
            )
        now = self.deps.clock.now_ms()
        today, held = await self.blobs.usage(account, now - DAY_MS)
        if today + f.size > s.max_bytes_per_day:
            raise ChatdError(
                f"at most {s.max_bytes_per_day} bytes of uploads per 24 hours",
                ErrorCode.QUOTA_EXCEEDED,
            )
        if held + f.size > s.max_stored_bytes:
            raise ChatdError(
                f"at most {s.max_stored_bytes} bytes stored per account", ErrorCode.QUOTA_EXCEEDED
            )
        blob = new_blob_id()
        await self.blobs.create(blob, account, f.conv, f.size, now)
        return await self._token("upload", blob, account, f"{UPLOAD_PATH}/{blob}", f.id)

    async def may_read(self, account: int, blob: str) -> bool:
        info = await self.blobs.info(blob)
        if info is None:
            return False
        if info.owner == account:
            return True
        for conv in await self.blobs.convs(blob):
            if await self._member(conv, account):
                return True
        return False

    async def download_token(self, account: int, f: F.DownloadToken) -> F.MediaToken:
        info = await self.blobs.info(f.blob)
        if info is None or not info.complete or not await self.may_read(account, f.blob):
            raise NotFound("no such blob")
        return await self._token("download", f.blob, account, f"{DOWNLOAD_PATH}/{f.blob}", f.id)

    async def attach(self, account: int, f: F.AttachBlob) -> None:
        if not await self._member(f.conv, account) or not await self.may_read(account, f.blob):
            raise NotFound("no such blob")
        if f.seq and await self._sender_of(f.conv, f.seq) != account:
            raise NotFound("no such message of yours")
        await self.blobs.link(f.blob, f.conv)
        if f.seq:
            await self.blobs.add_ref(f.blob, f.conv, f.seq)

    async def detach(self, account: int, f: F.DetachBlob) -> None:
        if await self._sender_of(f.conv, f.seq) != account:
            raise NotFound("no such message of yours")
        if not await self.blobs.drop_ref(f.blob, f.conv, f.seq):
            raise NotFound("that message does not reference that blob")

    async def handle(
        self, account: int, frame: F.UploadToken | F.DownloadToken | F.AttachBlob | F.DetachBlob
    ) -> F.Frame:
        """Answer one media frame of a logged-in session."""
        match frame:
            case F.UploadToken():
                return await self.upload_token(account, frame)
            case F.DownloadToken():
                return await self.download_token(account, frame)
            case F.AttachBlob():
                await self.attach(account, frame)
                return F.Ok(re=frame.id)
            case F.DetachBlob():
                await self.detach(account, frame)
                return F.Ok(re=frame.id)
            case F.DetachBlob():
                await self.detach(account, frame)
                return F.Ok(re=frame.id)

    # ------------------------------------------------------------------ HTTP side

    async def check_token(self, token: str, kind: str, blob: str | None) -> str | None:
        """The blob of a valid ``kind`` token (for ``blob``, when given); download tokens are
        used up."""
        now = self.deps.clock.now_ms()
        got = await self.blobs.token(token_digest(token), kind, now, consume=kind == "download")
        if got is None or (blob is not None and got[0] != blob):
            return None
        return got[0]

    async def upload_done(self, token: str) -> None:
        """The upload is complete: its token is dead (a replay is refused)."""
        now = self.deps.clock.now_ms()
        await self.blobs.token(token_digest(token), "upload", now, consume=True)

    # ------------------------------------------------------------------ sweeper

    async def _referenced(self, blob: str) -> bool:
        for conv, seq in await self.blobs.refs(blob):
            if await self._sender_of(conv, seq) is not None:
                return True
        return False

    async def sweep(self, now: int, limit: int = 1000) -> list[str]:
        """Delete the blobs past their grace period that no stored message references; the
        blobs deleted. Time is passed in (tests)."""
        before = now - int(self.settings.grace * 1000)
        deleted = []
        for info in await self.blobs.sweep_candidates(before, now, limit):
            if not await self._referenced(info.blob):
                await self.blobs.delete(info.blob)
                deleted.append(info.blob)
        await self.blobs.drop_expired_tokens(now)
        m = self.deps.metrics
        m.media_sweeps.inc()
        m.media_deleted.inc(len(deleted))
        m.media_stored_bytes.set(await self.blobs.stored_bytes())
        if deleted:
            log.info("media swept", extra={"deleted": len(deleted)})
        return deleted

    async def run(self) -> None:
        """The sweeper loop (owned by the app's TaskGroup) until ``close``."""
        while not self._stop.is_set():
            try:
                await self.sweep(self.deps.clock.now_ms())
            except Exception:
                log.exception("media sweep failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.sweep_interval):
                    await self._stop.wait()

    def close(self) -> None:
        self._stop.set()
