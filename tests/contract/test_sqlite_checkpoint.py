"""The SQLite store checkpoints its WAL off the writer's path (its own connection and thread):
the WAL still starts over instead of growing with every commit, and nothing committed is lost
across a close and reopen."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from chatd.store.base import NewMessage
from chatd.store.sqlite import SQLiteStore, _Checkpointer

from .conftest import device_key

EVERY = 8
COMMITS = 50 * EVERY


async def test_the_wal_starts_over_while_messages_are_committed_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_Checkpointer, "EVERY", EVERY)  # more checkpoints in a short test
    path = str(tmp_path / "wal.db")
    store = SQLiteStore(path)
    await store.open()
    writer = asyncio.create_task(store.run())
    try:
        a, ad = await store.create_account("alice", "A", "user", device_key(), "p", 1)
        b, _ = await store.create_account("bob", "B", "user", device_key(), "p", 1)
        conv = (await store.create_conversation("direct", None, a.id, [b.id], 1)).conv.id
        page = os.sysconf("SC_PAGE_SIZE")
        for i in range(COMMITS):  # awaited one by one: one commit each
            await store.append(NewMessage(conv, a.id, ad.id, f"m{i}", "text", b"x" * 200, 1))
        # Every commit wrote at least one page (the message's): had the WAL never started over,
        # it would hold COMMITS of them (it grew to 9.6 MB so); it holds what a few checkpoint
        # intervals wrote (a commit writes a few pages: message, indexes, the conversation's
        # counter; 132 frames were seen for 400 commits checkpointed every 8). How long the WAL
        # grows between restarts depends on how soon the checkpoint thread runs: on a busy
        # machine (two test workers beside other work) it held 235 pages once, so the bound is
        # 1.5 pages per commit, a quarter of the 6 per commit a WAL that never restarts holds.
        wal = Path(path + "-wal").stat().st_size  # noqa: ASYNC240 - one stat, nothing runs
        assert wal < COMMITS * page * 3 // 2
    finally:
        await store.aclose()
        await writer
    again = SQLiteStore(path)
    await again.open()
    writer = asyncio.create_task(again.run())
    try:
        stored = await again.messages(conv, 0, None, 10_000)
        assert [m.cmid for m in stored if m.kind == "text"] == [f"m{i}" for i in range(COMMITS)]
    finally:
        await again.aclose()
        await writer
