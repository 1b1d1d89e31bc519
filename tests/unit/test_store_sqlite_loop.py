"""SQLite's writes stay on the event loop's thread: every statement of a transaction script runs
there, without a thread hop or a turn of the loop; only a batch's COMMIT (the fsync) may go to
the writer thread (a large batch, a slow disk). The scripts are ``async def`` (written once for both databases), so
this is what keeps them as cheap on SQLite as the synchronous code they replaced."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatd.errors import Unavailable
from chatd.store.base import KeyUpload, NewMessage, PrekeyRow
from chatd.store.sql import Tx
from chatd.store.sqlite import SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "loop.db"))
    await s.open()
    writer = asyncio.create_task(s.run())
    try:
        yield s
    finally:
        await s.aclose()
        await writer


async def test_every_statement_but_commit_runs_on_the_loops_thread(store: SQLiteStore) -> None:
    seen: list[tuple[int, str]] = []
    assert store._w is not None
    store._w.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql)))
    loop_thread = threading.get_ident()

    alice, phone = await store.create_account("alice", "A", "user", b"a" * 32, "phone", 1)
    bob, _ = await store.create_account("bob", "B", "user", b"b" * 32, "phone", 1)
    conv = (await store.create_conversation("group", "g", alice.id, [bob.id], 1)).conv.id
    one_time = tuple(PrekeyRow(k, bytes([k]) * 32) for k in range(1, 4))
    upload = KeyUpload(phone.id, b"i" * 32, b"s" * 64, one_time=one_time)
    writes = [
        store.upload_keys(upload, 1, 100),
        store.claim_keys(alice.id),
        store.append(NewMessage(conv, alice.id, phone.id, "m1", "text", b"hi", 2)),
        store.rename(conv, alice.id, "renamed", 3),
        store.queue_to_device(phone.id, bob.id, 0, b"x", 4, 10),
    ]
    await asyncio.gather(*writes)
    store._w.set_trace_callback(None)

    commits = [(t, sql) for t, sql in seen if sql == "COMMIT"]
    elsewhere = [(t, sql) for t, sql in seen if t != loop_thread]
    assert len(seen) > 20  # the scripts above ran their statements
    assert len(commits) >= 2  # in more than one batch
    assert all(sql == "COMMIT" for _, sql in elsewhere)  # nothing but a COMMIT left the thread


async def test_a_script_that_would_suspend_fails_its_batch_and_writes_nothing(
    store: SQLiteStore,
) -> None:
    async def suspends(tx: Tx) -> None:
        await tx.sql.execute("UPDATE accounts SET name='x'")
        await asyncio.sleep(0)  # a turn of the loop in the middle of the transaction

    alice, _ = await store.create_account("alice", "A", "user", b"a" * 32, "phone", 1)
    with pytest.raises(Unavailable):
        await store._write(suspends)
    after = await store.account(alice.id)
    assert after is not None
    assert after.name == "A"


async def test_a_commit_on_the_writer_thread_asks_asyncio_for_no_loop(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer hands its COMMIT to the thread on the loop it already holds: asyncio's
    ``get_running_loop`` makes a ``getpid`` system call at every call (a fork check)."""
    alice, phone = await store.create_account("alice", "A", "user", b"a" * 32, "phone", 1)
    conv = (await store.create_conversation("group", "g", alice.id, [], 1)).conv.id
    asked: list[str] = []
    real = asyncio.get_running_loop

    def counting() -> asyncio.AbstractEventLoop:
        asked.append(sys._getframe(1).f_code.co_filename)
        return real()

    monkeypatch.setattr(store, "INLINE_BATCH_MAX", 0)  # every COMMIT goes to the thread
    commits: list[int] = []
    assert store._w is not None
    store._w.set_trace_callback(lambda sql: commits.append(threading.get_ident()))
    monkeypatch.setattr(asyncio, "get_running_loop", counting)
    appended = await store.append(NewMessage(conv, alice.id, phone.id, "m1", "text", b"hi", 2))
    monkeypatch.setattr(asyncio, "get_running_loop", real)
    store._w.set_trace_callback(None)
    assert appended.message.seq == 2  # after the creation's system message
    assert threading.get_ident() not in commits[-1:]  # the COMMIT ran on the writer thread
    assert [f for f in asked if f.endswith(("store/sqlite.py", "store/writer.py"))] == []
