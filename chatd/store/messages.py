"""Messages and cursors (``Messages``, all but ``append``), written once for
both databases, and the messages the server itself appends (system events, receipts).

``append``, the hot path, is each backend's own: SQLite's runs synchronously on its single
writer with seqs from memory (``sqlite.SQLiteStore.append``); PostgreSQL's sends a whole batch
of appends as one call of its server function ``chatd_append`` (``postgres``, migration 0005).
"""

from __future__ import annotations

from chatproto import kinds

from chatd.errors import NotFound
from chatd.store.base import StoredMessage
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

COLUMNS = "seq, ts, sender, device, cmid, kind, body, to_accounts, withheld, fc"


def stored(db: Sql, conv: int, r: Row) -> StoredMessage:
    """A row of ``COLUMNS`` as a message of ``conv`` (both drivers give ints, str and bytes)."""
    fc = None if r[9] is None else bytes(r[9])
    if r[7] is None and r[8] is None:  # the common case: no addressees, nothing withheld
        return StoredMessage(conv, r[0], r[1], r[2], r[3], r[4], r[5], r[6], fc=fc)
    return StoredMessage(
        conv, r[0], r[1], r[2], r[3], r[4], r[5], r[6], db.ids(r[7]), db.ids(r[8]), fc
    )


async def message_at(db: Sql, conv: int, seq: int) -> StoredMessage:
    """The stored message ``seq`` of ``conv`` (it must exist)."""
    row = await db.fetchrow(f"SELECT {COLUMNS} FROM messages WHERE conv_id=? AND seq=?", conv, seq)
    assert row is not None, (conv, seq)
    return stored(db, conv, row)


async def server_message(tx: Tx, conv: int, now: int, kind: str, body: bytes) -> StoredMessage:
    """Append a message the server writes itself (sender 0: system events, receipts)."""
    seq = await tx.next_seq(conv)
    m = StoredMessage(conv, seq, now, 0, 0, None, kind, body, removals=tx.removals(conv))
    await tx.sql.execute(
        "INSERT INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body)"
        " VALUES (?,?,?,?,?,?,?,?)",
        *(m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body),
    )
    return m


async def system_message(tx: Tx, conv: int, now: int, event: kinds.SystemEvent) -> StoredMessage:
    return await server_message(tx, conv, now, "system", kinds.encode_content(event)[1])


async def messages(
    db: Sql, conv: int, after: int, before: int | None, limit: int
) -> list[StoredMessage]:
    """Messages of ``conv`` with ``after`` < seq (< ``before``), ascending: the first
    ``limit`` of them, or with ``before`` the last ``limit`` (the caller checked access)."""
    if before is None:
        rows = await db.fetch(
            f"SELECT {COLUMNS} FROM messages WHERE conv_id=? AND seq>? ORDER BY seq LIMIT ?",
            *(conv, after, limit),
        )
        return [stored(db, conv, r) for r in rows]
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM messages WHERE conv_id=? AND seq<? AND seq>?"
        " ORDER BY seq DESC LIMIT ?",
        *(conv, before, after, limit),
    )
    return [stored(db, conv, r) for r in reversed(rows)]


async def message_page(
    db: Sql, conv: int, after: int, before: int | None, limit: int, max_bytes: int
) -> tuple[list[StoredMessage], bool]:
    """Like ``messages``, but the page also stops before its bodies would pass ``max_bytes``
    (at least one message is read whatever its size); True when the range holds more. The
    sizes are read first, so no more than ``max_bytes`` of bodies is ever loaded."""
    if before is None:
        sizes = await db.fetch(
            "SELECT seq, length(body) FROM messages WHERE conv_id=? AND seq>? ORDER BY seq LIMIT ?",
            *(conv, after, limit + 1),
        )
    else:
        sizes = await db.fetch(
            "SELECT seq, length(body) FROM messages WHERE conv_id=? AND seq<? AND seq>?"
            " ORDER BY seq DESC LIMIT ?",
            *(conv, before, after, limit + 1),
        )
    more = len(sizes) > limit
    total, count = 0, 0
    for _, size in sizes[:limit]:
        total += int(size)
        if count and total > max_bytes:
            more = True
            break
        count += 1
    if not count:
        return [], more
    low, high = sorted((int(sizes[0][0]), int(sizes[count - 1][0])))
    rows = await db.fetch(
        f"SELECT {COLUMNS} FROM messages WHERE conv_id=? AND seq>=? AND seq<=? ORDER BY seq",
        *(conv, low, high),
    )
    return [stored(db, conv, r) for r in rows], more


async def move_cursor(tx: Tx, device: int, conv: int, type: str, seq: int) -> bool:
    """Raise the device's ``type`` (``delivered`` or ``read``) cursor to ``seq`` (at most
    the conversation's last seq); True when it moved. ``NotFound`` for no conversation."""
    column = {"delivered": "delivered", "read": "read"}[type]
    last = await tx.sql.fetchval(
        f"SELECT {tx.sql.last_seq} FROM conversations c WHERE c.id=?", conv
    )
    if last is None:
        raise NotFound("no such conversation")
    target = min(seq, int(last))
    moved = await tx.sql.execute(
        f"INSERT INTO cursors (device_id, conv_id, {column}) VALUES (?,?,?)"
        f" ON CONFLICT (device_id, conv_id) DO UPDATE SET {column}=excluded.{column}"
        f" WHERE excluded.{column} > cursors.{column}",
        *(device, conv, target),
    )
    return moved > 0 and target > 0


class Messages(Scripts):
    messages = reads(messages)
    message_page = reads(message_page)
    move_cursor = writes(move_cursor)
