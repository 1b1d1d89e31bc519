"""The blob store interface: the bytes of encrypted attachments and what the server knows about
them (owner, size, upload offset, which conversations may read them, which messages reference
them, and short-lived HTTP tokens). Two implementations share one contract suite
(tests/contract/test_blob_store.py): ``fs.FsBlobStore`` (one node: files + a SQLite index) and
``pg.PgBlobStore`` (every node of a cluster: PostgreSQL rows).

A blob is written front to back by ``write`` (tus PATCH); the offset it returns is durable.
The store never sees plaintext: blobs are padded AEAD ciphertext (E2E.md 14)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class BlobInfo:
    blob: str
    owner: int
    size: int
    """The declared length (the padded ciphertext); the upload is complete at ``offset == size``."""
    offset: int
    """Bytes durably stored so far."""
    created: int
    """Unix ms of the ``upload_token`` that reserved it."""

    @property
    def complete(self) -> bool:
        return self.offset == self.size


class OffsetMismatch(Exception):
    """A write did not start at the stored offset (another writer moved it)."""


class BlobStore(Protocol):
    async def open(self) -> None: ...

    async def aclose(self) -> None: ...

    async def create(self, blob: str, owner: int, conv: int, size: int, now: int) -> None:
        """Reserve ``blob`` (offset 0) readable by members of ``conv``."""
        ...

    async def info(self, blob: str) -> BlobInfo | None: ...

    async def usage(self, owner: int, since: int) -> tuple[int, int]:
        """``(bytes reserved since the Unix ms since, bytes held now)`` of ``owner``."""
        ...

    async def write(self, blob: str, offset: int, data: AsyncIterator[bytes]) -> int:
        """Append ``data`` at ``offset`` (which must be the stored offset: ``OffsetMismatch``
        otherwise) and return the new offset once it is durable (fsync / commit). If ``data``
        raises (the client went away), what arrived is kept durably, then the error propagates.
        The caller never passes more than ``size - offset`` bytes."""
        ...

    def read(self, blob: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start .. end - 1`` of a complete blob, in pieces."""
        ...

    async def delete(self, blob: str) -> None:
        """Remove the bytes and every row about ``blob`` (idempotent)."""
        ...

    async def link(self, blob: str, conv: int) -> None: ...

    async def convs(self, blob: str) -> list[int]: ...

    async def add_ref(self, blob: str, conv: int, seq: int) -> None: ...

    async def refs(self, blob: str) -> list[tuple[int, int]]: ...

    async def drop_ref(self, blob: str, conv: int, seq: int) -> bool:
        """Remove one reference; whether it existed."""
        ...

    async def sweep_candidates(self, before: int, now: int, limit: int) -> list[BlobInfo]:
        """Up to ``limit`` blobs created before ``before``, least recently checked first; each
        is marked checked at ``now``."""
        ...

    async def put_token(
        self, digest: bytes, kind: str, blob: str, account: int, expires: int
    ) -> None: ...

    async def token(
        self, digest: bytes, kind: str, now: int, consume: bool
    ) -> tuple[str, int] | None:
        """``(blob, account)`` of an unexpired token, deleted first when ``consume``."""
        ...

    async def drop_expired_tokens(self, now: int) -> int: ...

    async def stored_bytes(self) -> int:
        """Bytes held on this store (all accounts), for the metrics."""
        ...
