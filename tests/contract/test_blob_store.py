"""One contract for every ``BlobStore`` (chatd/media/store.py): the local filesystem and
PostgreSQL (a throwaway server, ``postgres_server``; a fresh database per test)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatd.media.fs import FsBlobStore
from chatd.media.pg import PgBlobStore
from chatd.media.store import BlobStore, OffsetMismatch

from .conftest import PostgresServer

NOW = 1_700_000_000_000


@pytest.fixture(params=["fs", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    s: Any
    if request.param == "fs":
        s = FsBlobStore(tmp_path / "media")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        dsn = await server.create_database()
        s = PgBlobStore(dsn)
    await s.open()
    try:
        yield s
    finally:
        await s.aclose()


async def _pieces(data: bytes, step: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        yield data[i : i + step]


async def _read(store: BlobStore, blob: str, start: int, end: int) -> bytes:
    return b"".join([p async for p in store.read(blob, start, end)])


BLOB = "AAAAAAAAAAAAAAAAAAAAAA"


async def test_a_blob_written_in_parts_reads_back_whole_and_in_ranges(store: BlobStore) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    await store.create(BLOB, 1, 10, len(data), NOW)
    info = await store.info(BLOB)
    assert info is not None
    assert (info.owner, info.size, info.offset, info.complete) == (1, len(data), 0, False)
    cut = 1_500_001
    assert await store.write(BLOB, 0, _pieces(data[:cut])) == cut
    with pytest.raises(OffsetMismatch):  # not where the stored offset is
        await store.write(BLOB, 0, _pieces(b"x"))
    assert await store.write(BLOB, cut, _pieces(data[cut:])) == len(data)
    info = await store.info(BLOB)
    assert info is not None
    assert info.complete
    assert await _read(store, BLOB, 0, len(data)) == data
    assert await _read(store, BLOB, 1_048_570, 2_100_000) == data[1_048_570:2_100_000]
    assert await _read(store, BLOB, len(data) - 1, len(data)) == data[-1:]
    with pytest.raises(OffsetMismatch):  # complete: nothing more is written
        await store.write(BLOB, len(data), _pieces(b"x"))


async def test_a_write_cut_short_keeps_what_arrived(store: BlobStore) -> None:
    await store.create(BLOB, 1, 10, 500_000, NOW)

    async def dropped() -> AsyncIterator[bytes]:
        yield b"a" * 200_000
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.write(BLOB, 0, dropped())
    info = await store.info(BLOB)
    assert info is not None
    assert info.offset == 200_000
    assert await store.write(BLOB, 200_000, _pieces(b"b" * 300_000)) == 500_000
    assert await _read(store, BLOB, 199_999, 200_001) == b"ab"


async def test_usage_links_refs_and_delete(store: BlobStore) -> None:
    other = "BBBBBBBBBBBBBBBBBBBBBB"
    await store.create(BLOB, 1, 10, 4096, NOW - 86_400_000)
    await store.create(other, 1, 11, 8192, NOW)
    await store.create("CCCCCCCCCCCCCCCCCCCCCC", 2, 11, 4096, NOW)
    assert await store.usage(1, NOW - 1000) == (8192, 4096 + 8192)
    await store.link(BLOB, 12)
    await store.link(BLOB, 12)
    assert await store.convs(BLOB) == [10, 12]
    await store.add_ref(BLOB, 12, 7)
    await store.add_ref(BLOB, 12, 7)
    assert await store.refs(BLOB) == [(12, 7)]
    await store.add_ref(BLOB, 12, 9)
    assert await store.drop_ref(BLOB, 12, 9)
    assert not await store.drop_ref(BLOB, 12, 9)
    assert await store.refs(BLOB) == [(12, 7)]
    await store.write(BLOB, 0, _pieces(bytes(4096)))
    assert await store.stored_bytes() == 4096
    await store.delete(BLOB)
    await store.delete(BLOB)
    assert await store.info(BLOB) is None
    assert await store.convs(BLOB) == []
    assert await store.refs(BLOB) == []
    assert await store.usage(1, 0) == (8192, 8192)
    assert await store.stored_bytes() == 0


async def test_sweep_candidates_are_old_blobs_least_recently_checked_first(
    store: BlobStore,
) -> None:
    names = [c * 22 for c in "DEFG"]
    for i, name in enumerate(names):
        await store.create(name, 1, 10, 4096, NOW + i)
    first = await store.sweep_candidates(NOW + 3, NOW + 100, 2)
    assert {b.blob for b in first} == set(names[:2])
    second = await store.sweep_candidates(NOW + 3, NOW + 200, 2)
    assert {b.blob for b in second} == {names[2], names[0]}  # G is too young


async def test_tokens_expire_and_single_use_ones_are_consumed(store: BlobStore) -> None:
    await store.put_token(b"u" * 32, "upload", BLOB, 1, NOW + 1000)
    await store.put_token(b"d" * 32, "download", BLOB, 2, NOW + 1000)
    assert await store.token(b"u" * 32, "upload", NOW, consume=False) == (BLOB, 1)
    assert await store.token(b"u" * 32, "upload", NOW, consume=False) == (BLOB, 1)
    assert await store.token(b"u" * 32, "download", NOW, consume=False) is None  # wrong kind
    assert await store.token(b"u" * 32, "upload", NOW + 1000, consume=False) is None  # expired
    assert await store.token(b"d" * 32, "download", NOW, consume=True) == (BLOB, 2)
    assert await store.token(b"d" * 32, "download", NOW, consume=True) is None  # replayed
    assert await store.drop_expired_tokens(NOW + 1000) == 1
    assert await store.token(b"u" * 32, "upload", NOW, consume=False) is None


async def test_requests_at_the_same_time_neither_fail_nor_see_each_others_halves(
    store: BlobStore,
) -> None:
    """Uploads, downloads' token checks and links of many blobs at once, as a busy node serves
    them (one index connection shared on the filesystem store: a commit while another request's
    read was open failed with 'SQL statements in progress', an HTTP 500 to that download)."""
    blobs = [f"B{i:021d}" for i in range(40)]

    async def one(i: int, blob: str) -> None:
        await store.create(blob, i, 10, 3, NOW)
        assert await store.write(blob, 0, _pieces(b"abc")) == 3
        await store.put_token(b"%032d" % i, "download", blob, i, NOW + 60_000)
        assert await store.token(b"%032d" % i, "download", NOW, False) == (blob, i)
        await store.link(blob, 20 + i)
        assert await store.convs(blob) == [10, 20 + i]
        for n in range(5):  # a download's token is spent as others are made
            await store.put_token(b"n%029d%02d" % (i, n), "download", blob, i, NOW + 60_000)
            assert await store.token(b"n%029d%02d" % (i, n), "download", NOW, True) == (blob, i)
            assert await store.info(blob) is not None
        assert await store.token(b"%032d" % i, "download", NOW, True) == (blob, i)
        assert await _read(store, blob, 0, 3) == b"abc"

    await asyncio.gather(*(one(i, b) for i, b in enumerate(blobs)))
    assert await store.stored_bytes() == 3 * len(blobs)
