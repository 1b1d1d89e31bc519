"""Message franking tags and reports (``Reports``, SPEC.md 18.7, E2E.md 17), written once for
both databases.

A franked message's commitment ``fc`` is in its own ``messages`` row (schema 13; it reveals
nothing without the franking key, which only the members hold); messages franked before that
have a ``franking_tags`` row with the server's tag instead. No plaintext is stored but what a
verified report revealed, for the operator (``chatd admin reports``).
"""

from __future__ import annotations

from chatd.store.base import Franked, ReportRow
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, server_key, writes

_REPORT = (
    "id, reporter, conv_id, seq, sender, ts, plaintext, reason, created_at, resolved_at, resolution"
)


async def franking_secret(tx: Tx, secret: bytes) -> bytes:
    """The server's franking secret, storing ``secret`` if there is none (the first node wins)."""
    return await server_key(tx, "franking", secret)


async def franked(db: Sql, conv: int, seq: int) -> Franked | None:
    """The commitment of message ``seq`` of ``conv`` with its sender and ts, or the tag kept for
    it before commitments were stored; None when it has neither."""
    r = await db.fetchrow(
        "SELECT sender, ts, fc FROM messages WHERE conv_id=? AND seq=?", conv, seq
    )
    if r is not None and r[2] is not None:
        return Franked(conv, seq, int(r[0]), int(r[1]), fc=bytes(r[2]))
    r = await db.fetchrow(
        "SELECT sender, ts, tag FROM franking_tags WHERE conv_id=? AND seq=?", conv, seq
    )
    return None if r is None else Franked(conv, seq, int(r[0]), int(r[1]), tag=bytes(r[2]))


async def add_report(
    tx: Tx, reporter: int, t: Franked, plaintext: bytes, reason: str, now: int
) -> int:
    """Store a verified report; its id (the same report again: the first one's id)."""
    found = await tx.sql.fetchval(
        "SELECT id FROM reports WHERE reporter=? AND conv_id=? AND seq=?", reporter, t.conv, t.seq
    )
    if found is not None:
        return int(found)
    return int(
        await tx.sql.fetchval(
            "INSERT INTO reports (reporter, conv_id, seq, sender, ts, plaintext, reason,"
            " created_at) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
            *(reporter, t.conv, t.seq, t.sender, t.ts, plaintext, reason, now),
        )
    )


def report_row(r: Row) -> ReportRow:
    return ReportRow(
        id=int(r[0]),
        reporter=int(r[1]),
        conv=int(r[2]),
        seq=int(r[3]),
        sender=int(r[4]),
        ts=int(r[5]),
        plaintext=bytes(r[6]),
        reason=str(r[7]),
        created_at=int(r[8]),
        resolved_at=int(r[9]),
        resolution=str(r[10]),
    )


async def reports(db: Sql, everything: bool, after: int, limit: int) -> list[ReportRow]:
    """Reports with an id above ``after``, oldest first; only open ones unless ``everything``."""
    where = "" if everything else " AND resolved_at=0"
    rows = await db.fetch(
        f"SELECT {_REPORT} FROM reports WHERE id>?{where} ORDER BY id LIMIT ?", after, limit
    )
    return [report_row(r) for r in rows]


class Reports(Scripts):
    franking_secret = writes(franking_secret)
    franked = reads(franked)
    add_report = writes(add_report)
    reports = reads(reports)
