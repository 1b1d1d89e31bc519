"""``BlobStore`` in PostgreSQL, so every node of a cluster serves every blob: the bytes are rows
of up to 1 MiB (``media_chunks``, keyed by their offset), each committed together with the
blob's new offset (so the acknowledged offset is durable and no torn tail exists); the index
is the ``media_*`` tables, created on ``open`` if missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from chatd.media.store import BlobInfo, OffsetMismatch

_SCHEMA = """
CREATE TABLE IF NOT EXISTS media_blobs (
    blob TEXT PRIMARY KEY, owner BIGINT NOT NULL, size BIGINT NOT NULL,
    "offset" BIGINT NOT NULL DEFAULT 0, created BIGINT NOT NULL, checked BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS media_blobs_owner ON media_blobs (owner, created);
CREATE INDEX IF NOT EXISTS media_blobs_checked ON media_blobs (checked);
CREATE TABLE IF NOT EXISTS media_chunks (
    blob TEXT NOT NULL, "offset" BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (blob, "offset")
);
CREATE TABLE IF NOT EXISTS media_convs (blob TEXT NOT NULL, conv BIGINT NOT NULL, PRIMARY KEY (blob, conv));
CREATE TABLE IF NOT EXISTS media_refs (
    blob TEXT NOT NULL, conv BIGINT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (blob, conv, seq)
);
CREATE TABLE IF NOT EXISTS media_tokens (
    digest BYTEA PRIMARY KEY, kind TEXT NOT NULL, blob TEXT NOT NULL, account BIGINT NOT NULL,
    expires BIGINT NOT NULL
);
"""
_ROW = 1024 * 1024
_LOCK = 0x6D65_6469_61  # advisory lock id: one node creates the schema at a time


class PgBlobStore:
    def __init__(self, dsn: str, *, pool_size: int = 4, timeout: float = 30.0) -> None:
        self.dsn = dsn
        self._pool_size = pool_size
        self._timeout = timeout
        self._pool: Any = None

    @property
    def pool(self) -> Any:
        if self._pool is None:
            raise RuntimeError("PgBlobStore is not open")
        return self._pool

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self._pool_size,
            timeout=self._timeout,
            command_timeout=self._timeout,
        )
        async with self.pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await db.execute(_SCHEMA)

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def create(self, blob: str, owner: int, conv: int, size: int, now: int) -> None:
        async with self.pool.acquire() as db, db.transaction():
            await db.execute(
                "INSERT INTO media_blobs (blob, owner, size, created) VALUES ($1, $2, $3, $4)",
                blob,
                owner,
                size,
                now,
            )
            await db.execute(
                "INSERT INTO media_convs VALUES ($1, $2) ON CONFLICT DO NOTHING", blob, conv
            )

    async def info(self, blob: str) -> BlobInfo | None:
        row = await self.pool.fetchrow(
            'SELECT owner, size, "offset", created FROM media_blobs WHERE blob = $1', blob
        )
        return None if row is None else BlobInfo(blob, row[0], row[1], row[2], row[3])

    async def usage(self, owner: int, since: int) -> tuple[int, int]:
        row = await self.pool.fetchrow(
            "SELECT COALESCE(SUM(size) FILTER (WHERE created >= $2), 0),"
            " COALESCE(SUM(size), 0) FROM media_blobs WHERE owner = $1",
            owner,
            since,
        )
        return int(row[0]), int(row[1])

    async def _append(self, blob: str, offset: int, data: bytes) -> None:
        async with self.pool.acquire() as db, db.transaction():
            moved = await db.execute(
                'UPDATE media_blobs SET "offset" = $3 WHERE blob = $1 AND "offset" = $2',
                blob,
                offset,
                offset + len(data),
            )
            if moved != "UPDATE 1":
                raise OffsetMismatch(blob)
            await db.execute("INSERT INTO media_chunks VALUES ($1, $2, $3)", blob, offset, data)

    async def write(self, blob: str, offset: int, data: AsyncIterator[bytes]) -> int:
        info = await self.info(blob)
        if info is None or info.offset != offset or info.complete:
            raise OffsetMismatch(blob)
        buf = bytearray()
        try:
            async for piece in data:
                buf += piece
                if len(buf) >= _ROW:
                    await self._append(blob, offset, bytes(buf))
                    offset += len(buf)
                    buf.clear()
        finally:
            if buf:
                await self._append(blob, offset, bytes(buf))
                offset += len(buf)
        return offset

    async def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        pos = start
        while pos < end:
            rows = await self.pool.fetch(
                'SELECT "offset", data FROM media_chunks WHERE blob = $1'
                ' AND "offset" + length(data) > $2 AND "offset" < $3 ORDER BY "offset" LIMIT 4',
                blob,
                pos,
                end,
            )
            if not rows:
                raise OSError(f"blob {blob} is shorter than its size")
            for off, data in rows:
                piece = bytes(data)[pos - off : end - off]
                pos += len(piece)
                yield piece

    async def delete(self, blob: str) -> None:
        async with self.pool.acquire() as db, db.transaction():
            for table in (
                "media_chunks",
                "media_convs",
                "media_refs",
                "media_tokens",
                "media_blobs",
            ):
                await db.execute(f"DELETE FROM {table} WHERE blob = $1", blob)

    async def link(self, blob: str, conv: int) -> None:
        await self.pool.execute(
            "INSERT INTO media_convs VALUES ($1, $2) ON CONFLICT DO NOTHING", blob, conv
        )

    async def convs(self, blob: str) -> list[int]:
        rows = await self.pool.fetch(
            "SELECT conv FROM media_convs WHERE blob = $1 ORDER BY conv", blob
        )
        return [int(r[0]) for r in rows]

    async def add_ref(self, blob: str, conv: int, seq: int) -> None:
        await self.pool.execute(
            "INSERT INTO media_refs VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", blob, conv, seq
        )

    async def refs(self, blob: str) -> list[tuple[int, int]]:
        rows = await self.pool.fetch(
            "SELECT conv, seq FROM media_refs WHERE blob = $1 ORDER BY conv, seq", blob
        )
        return [(int(r[0]), int(r[1])) for r in rows]

    async def drop_ref(self, blob: str, conv: int, seq: int) -> bool:
        status: str = await self.pool.execute(
            "DELETE FROM media_refs WHERE blob = $1 AND conv = $2 AND seq = $3", blob, conv, seq
        )
        return status != "DELETE 0"

    async def sweep_candidates(self, before: int, now: int, limit: int) -> list[BlobInfo]:
        rows = await self.pool.fetch(
            "UPDATE media_blobs SET checked = $2 WHERE blob IN (SELECT blob FROM media_blobs"
            " WHERE created < $1 ORDER BY checked, blob LIMIT $3 FOR UPDATE SKIP LOCKED)"
            ' RETURNING blob, owner, size, "offset", created',
            before,
            now,
            limit,
        )
        return sorted((BlobInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows), key=lambda b: b.blob)

    async def put_token(
        self, digest: bytes, kind: str, blob: str, account: int, expires: int
    ) -> None:
        await self.pool.execute(
            "INSERT INTO media_tokens VALUES ($1, $2, $3, $4, $5)",
            digest,
            kind,
            blob,
            account,
            expires,
        )

    async def token(
        self, digest: bytes, kind: str, now: int, consume: bool
    ) -> tuple[str, int] | None:
        if consume:
            sql = "DELETE FROM media_tokens WHERE digest = $1 AND kind = $2 AND expires > $3 RETURNING blob, account"
        else:
            sql = "SELECT blob, account FROM media_tokens WHERE digest = $1 AND kind = $2 AND expires > $3"
        row = await self.pool.fetchrow(sql, digest, kind, now)
        return None if row is None else (str(row[0]), int(row[1]))

    async def drop_expired_tokens(self, now: int) -> int:
        status: str = await self.pool.execute("DELETE FROM media_tokens WHERE expires <= $1", now)
        return int(status.split()[-1])

    async def stored_bytes(self) -> int:
        row = await self.pool.fetchrow('SELECT COALESCE(SUM("offset"), 0) FROM media_blobs')
        return int(row[0])
