"""``BlobStore`` on the local filesystem (one node): each blob is a file, written under
``partial/`` while its upload runs and renamed into ``blobs/`` (atomic, directory fsynced) once
complete; the index (owners, sizes, offsets, links, references, tokens) is a SQLite database
beside them. Every offset acknowledged to a client was fsynced first; bytes past the
acknowledged offset (a write torn by a crash) are cut off before the next write."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite

from chatd.media.store import BlobInfo, OffsetMismatch

_SCHEMA = """
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
CREATE TABLE IF NOT EXISTS blobs (
    blob TEXT PRIMARY KEY, owner INTEGER NOT NULL, size INTEGER NOT NULL,
    "offset" INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL, checked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS blobs_owner ON blobs (owner, created);
CREATE INDEX IF NOT EXISTS blobs_checked ON blobs (checked);
CREATE TABLE IF NOT EXISTS blob_convs (blob TEXT NOT NULL, conv INTEGER NOT NULL, PRIMARY KEY (blob, conv));
CREATE TABLE IF NOT EXISTS blob_refs (
    blob TEXT NOT NULL, conv INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (blob, conv, seq)
);
CREATE TABLE IF NOT EXISTS blob_tokens (
    digest BLOB PRIMARY KEY, kind TEXT NOT NULL, blob TEXT NOT NULL, account INTEGER NOT NULL,
    expires INTEGER NOT NULL
);
"""
_PIECE = 256 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FsBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def _index(self) -> AsyncIterator[aiosqlite.Connection]:
        """The index connection, one request at a time: it is shared, and one request's commit
        while another's statement is open fails ('SQL statements in progress') or commits the
        other's half-done writes."""
        if self._db is None:
            raise RuntimeError("FsBlobStore is not open")
        async with self._lock:
            yield self._db

    def _final(self, blob: str) -> Path:
        return self.root / "blobs" / blob[:2] / blob

    def _partial(self, blob: str) -> Path:
        return self.root / "partial" / blob

    async def open(self) -> None:
        for sub in ("blobs", "partial"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.root / "index.db")
        await self._db.executescript(_SCHEMA)
        await self._db.commit()

    async def aclose(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def create(self, blob: str, owner: int, conv: int, size: int, now: int) -> None:
        async with self._index() as db:
            await db.execute(
                "INSERT INTO blobs (blob, owner, size, created) VALUES (?, ?, ?, ?)",
                (blob, owner, size, now),
            )
            await db.execute("INSERT OR IGNORE INTO blob_convs VALUES (?, ?)", (blob, conv))
            await db.commit()

    async def info(self, blob: str) -> BlobInfo | None:
        async with (
            self._index() as db,
            db.execute(
                'SELECT owner, size, "offset", created FROM blobs WHERE blob = ?', (blob,)
            ) as cur,
        ):
            row = await cur.fetchone()
        return None if row is None else BlobInfo(blob, row[0], row[1], row[2], row[3])

    async def usage(self, owner: int, since: int) -> tuple[int, int]:
        async with (
            self._index() as db,
            db.execute(
                "SELECT COALESCE(SUM(CASE WHEN created >= ? THEN size ELSE 0 END), 0),"
                " COALESCE(SUM(size), 0) FROM blobs WHERE owner = ?",
                (since, owner),
            ) as cur,
        ):
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    async def write(self, blob: str, offset: int, data: AsyncIterator[bytes]) -> int:
        info = await self.info(blob)
        if info is None or info.offset != offset or info.complete:
            raise OffsetMismatch(blob)
        path = self._partial(blob)
        written = offset
        f = await asyncio.to_thread(path.open, "ab")  # creates it; appends after what is there
        with f:
            f.truncate(offset)  # bytes past the acknowledged offset were never acknowledged
            try:
                async for piece in data:
                    f.write(piece)
                    written += len(piece)
            finally:
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
                if written == info.size:
                    final = self._final(blob)
                    final.parent.mkdir(exist_ok=True)
                    os.replace(path, final)
                    await asyncio.to_thread(_fsync_dir, final.parent)
                if written != offset:
                    async with self._index() as db:
                        await db.execute(
                            'UPDATE blobs SET "offset" = ? WHERE blob = ?', (written, blob)
                        )
                        await db.commit()
        return written

    async def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        f = await asyncio.to_thread(self._final(blob).open, "rb")
        with f:
            f.seek(start)
            left = end - start
            while left > 0:
                piece = await asyncio.to_thread(f.read, min(_PIECE, left))
                if not piece:
                    raise OSError(f"blob {blob} is shorter than its size")
                left -= len(piece)
                yield piece

    async def delete(self, blob: str) -> None:
        for path in (self._final(blob), self._partial(blob)):
            path.unlink(missing_ok=True)
        async with self._index() as db:
            for table in ("blobs", "blob_convs", "blob_refs", "blob_tokens"):
                await db.execute(f"DELETE FROM {table} WHERE blob = ?", (blob,))
            await db.commit()

    async def link(self, blob: str, conv: int) -> None:
        async with self._index() as db:
            await db.execute("INSERT OR IGNORE INTO blob_convs VALUES (?, ?)", (blob, conv))
            await db.commit()

    async def convs(self, blob: str) -> list[int]:
        async with (
            self._index() as db,
            db.execute("SELECT conv FROM blob_convs WHERE blob = ? ORDER BY conv", (blob,)) as cur,
        ):
            return [int(r[0]) for r in await cur.fetchall()]

    async def add_ref(self, blob: str, conv: int, seq: int) -> None:
        async with self._index() as db:
            await db.execute("INSERT OR IGNORE INTO blob_refs VALUES (?, ?, ?)", (blob, conv, seq))
            await db.commit()

    async def refs(self, blob: str) -> list[tuple[int, int]]:
        async with (
            self._index() as db,
            db.execute(
                "SELECT conv, seq FROM blob_refs WHERE blob = ? ORDER BY conv, seq", (blob,)
            ) as cur,
        ):
            return [(int(r[0]), int(r[1])) for r in await cur.fetchall()]

    async def drop_ref(self, blob: str, conv: int, seq: int) -> bool:
        async with self._index() as db:
            cur = await db.execute(
                "DELETE FROM blob_refs WHERE blob = ? AND conv = ? AND seq = ?", (blob, conv, seq)
            )
            await db.commit()
            return cur.rowcount > 0

    async def sweep_candidates(self, before: int, now: int, limit: int) -> list[BlobInfo]:
        async with self._index() as db:
            async with db.execute(
                'SELECT blob, owner, size, "offset", created FROM blobs WHERE created < ?'
                " ORDER BY checked, blob LIMIT ?",
                (before, limit),
            ) as cur:
                rows = await cur.fetchall()
            out = [BlobInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows]
            await db.executemany(
                "UPDATE blobs SET checked = ? WHERE blob = ?", [(now, b.blob) for b in out]
            )
            await db.commit()
        return out

    async def put_token(
        self, digest: bytes, kind: str, blob: str, account: int, expires: int
    ) -> None:
        async with self._index() as db:
            await db.execute(
                "INSERT INTO blob_tokens VALUES (?, ?, ?, ?, ?)",
                (digest, kind, blob, account, expires),
            )
            await db.commit()

    async def token(
        self, digest: bytes, kind: str, now: int, consume: bool
    ) -> tuple[str, int] | None:
        if consume:
            sql = "DELETE FROM blob_tokens WHERE digest = ? AND kind = ? AND expires > ? RETURNING blob, account"
        else:
            sql = "SELECT blob, account FROM blob_tokens WHERE digest = ? AND kind = ? AND expires > ?"
        async with self._index() as db:
            async with db.execute(sql, (digest, kind, now)) as cur:
                row = await cur.fetchone()
            if consume:
                await db.commit()
        return None if row is None else (str(row[0]), int(row[1]))

    async def drop_expired_tokens(self, now: int) -> int:
        async with self._index() as db:
            cur = await db.execute("DELETE FROM blob_tokens WHERE expires <= ?", (now,))
            await db.commit()
            return cur.rowcount

    async def stored_bytes(self) -> int:
        async with (
            self._index() as db,
            db.execute('SELECT COALESCE(SUM("offset"), 0) FROM blobs') as cur,
        ):
            row = await cur.fetchone()
        return int(row[0]) if row else 0
