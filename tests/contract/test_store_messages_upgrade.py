"""A SQLite file from before version 27 (messages in a WITHOUT ROWID table keyed by conversation
and seq) upgraded to messages in commit order and, in version 28, the cmid index keyed cmid
first: every message reads back as it was stored, a resend of a stored cmid is still recognised
(through the index), and the next message takes the next seq."""

from __future__ import annotations

import asyncio
import sqlite3
import struct
from pathlib import Path

import pytest

from chatd.errors import Conflict
from chatd.store.base import NewMessage
from chatd.store.migrate import migrate_sqlite
from chatd.store.sqlite import SQLiteStore

NOW = 1_700_000_000_000


def ids(*accounts: int) -> bytes:
    return struct.pack(f">{len(accounts)}Q", *accounts)


SECRET = b"a body to delete for everyone later " * 3
"""Found in the file's bytes as long as some page holds it."""

# conv, seq, ts, sender, device, cmid, kind, body, to_accounts, withheld, fc
ROWS = [
    (7, 1, NOW, 1, 11, None, "system", b"\x81created", None, None, None),
    (7, 2, NOW + 1, 1, 11, "a1", "e2e", b"hello" * 40, None, None, None),
    (8, 1, NOW + 2, 2, 21, "b1", "e2e", b"other conversation", None, None, None),
    (7, 3, NOW + 3, 2, 21, "b2", "e2e", b"to the bot", ids(3), None, b"\x01" * 32),
    (7, 4, NOW + 4, 1, 11, "a2", "e2e", b"not for the bot", None, ids(3), None),
    (7, 5, NOW + 5, 1, 11, "a3", "e2e", b"", None, None, None),  # an empty body
    (7, 6, NOW + 6, 1, 11, "a4", "e2e", SECRET, None, None, None),
]


def old_file(path: Path) -> None:
    """A version-26 file with two conversations' messages, written as version 26 wrote them."""
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate_sqlite(db, until=26)[-1] == "0026_declines.sql"
    assert (
        "WITHOUT ROWID"
        in db.execute("SELECT sql FROM sqlite_schema WHERE name='messages'").fetchone()[0]
    )
    for account, handle, kind in ((1, "alice", "user"), (2, "bob", "user"), (3, "bot", "bot")):
        db.execute(
            "INSERT INTO accounts (id, handle, name, type, created_at) VALUES (?,?,?,?,0)",
            (account, handle, handle, kind),
        )
    for device, account in ((11, 1), (21, 2), (31, 3)):
        db.execute(
            "INSERT INTO devices (id, account_id, public_key, name, created_at)"
            " VALUES (?,?,?,'d',0)",
            (device, account, bytes([device]) * 32),
        )
    for conv in (7, 8):
        db.execute(
            "INSERT INTO conversations (id, kind, title, created_at) VALUES (?, 'group', 'g', 0)",
            (conv,),
        )
        db.execute(
            "INSERT INTO members (conv_id, account_id, role, joined_seq) VALUES (?,1,'owner',0)",
            (conv,),
        )
        db.execute(
            "INSERT INTO members (conv_id, account_id, role, joined_seq) VALUES (?,2,'member',0)",
            (conv,),
        )
    db.executemany(
        "INSERT INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body, to_accounts,"
        " withheld, fc) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        ROWS,
    )
    db.close()


async def test_a_file_from_before_version_27_keeps_every_message_and_every_cmid(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    old_file(path)
    store = SQLiteStore(str(path))
    await store.open()
    # The copy's WAL went into the file before serving, not left on disk beside it.
    assert wal_size(path) == 0
    writer = asyncio.create_task(store.run())
    try:
        for conv in (7, 8):
            read = await store.messages(conv, 0, None, 100)
            expected = [r for r in ROWS if r[0] == conv]
            assert [
                (m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body) for m in read
            ] == [r[:8] for r in expected]
        by_seq = {m.seq: m for m in await store.messages(7, 0, None, 100)}
        assert by_seq[3].to == (3,) and by_seq[3].fc == b"\x01" * 32
        assert by_seq[4].withheld == (3,)
        assert [m.seq for m in await store.messages(7, 1, 5, 2)] == [3, 4]  # the last 2 before 5

        # A resend of a message stored before the upgrade is that message, not a new one.
        again = await store.append(NewMessage(7, 1, 11, "a1", "e2e", b"hello" * 40, NOW + 9))
        assert again.duplicate and again.message.seq == 2 and again.message.ts == NOW + 1
        with pytest.raises(Conflict):
            await store.append(NewMessage(7, 1, 11, "a1", "e2e", b"another body", NOW + 9))
        # The next message of each conversation takes the next seq.
        new = await store.append(NewMessage(7, 2, 21, "b3", "e2e", b"after", NOW + 10))
        assert (new.duplicate, new.message.seq) == (False, 7)
        other = await store.append(NewMessage(8, 1, 11, "a1", "e2e", b"same cmid, other conv", NOW))
        assert (other.duplicate, other.message.seq) == (False, 2)
    finally:
        await store.aclose()
        await writer

    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        schema = db.execute("SELECT sql FROM sqlite_schema WHERE name='messages'").fetchone()[0]
        assert "WITHOUT ROWID" not in schema
        assert db.execute("SELECT count(*) FROM messages").fetchone() == (len(ROWS) + 2,)
        # The stored rows were copied in their old order: each conversation's side by side.
        copied = db.execute("SELECT conv_id, seq FROM messages ORDER BY rowid").fetchall()
        assert copied[: len(ROWS)] == sorted((r[0], r[1]) for r in ROWS)
        # A resend is found through the cmid index (version 28 keys it cmid first), not a scan.
        plan = db.execute(
            "EXPLAIN QUERY PLAN SELECT seq FROM messages WHERE conv_id=? AND device=? AND cmid=?",
            (7, 11, "a1"),
        ).fetchall()
        assert any("USING INDEX messages_by_cmid" in row[-1] for row in plan), plan
        key = [r[2] for r in db.execute("PRAGMA index_info('messages_by_cmid')")]
        assert key == ["cmid", "device", "conv_id"]
    finally:
        db.close()


def wal_size(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size


def copies(path: Path, data: bytes) -> int:
    """How many times ``data`` is in the file and its WAL."""
    wal = Path(f"{path}-wal")
    return path.read_bytes().count(data) + (wal.read_bytes().count(data) if wal.exists() else 0)


async def test_the_upgrade_leaves_no_copy_of_a_body_and_a_later_deletion_leaves_none(
    tmp_path: Path,
) -> None:
    """The copy drops the old table. Its pages must not keep the bodies as free pages, even
    where SQLite's build does not zero them by default, or a message deleted for everyone
    later would stay readable in the file (SPEC.md 18.9)."""
    path = tmp_path / "old.db"
    old_file(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA secure_delete=OFF")  # a build that does not zero freed pages
    assert migrate_sqlite(db) == [
        "0027_messages_in_commit_order.sql",
        "0028_cmid_index_cmid_first.sql",
    ]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert copies(path, SECRET) == 1  # the new table's row; the old table's page is zeroed

    store = SQLiteStore(str(path))
    await store.open()
    writer = asyncio.create_task(store.run())
    try:
        assert await store.delete_message(7, 6, 1, NOW + 20) is not None
    finally:
        await store.aclose()
        await writer
    assert copies(path, SECRET) == 0
