"""Message franking tags and reports (``ReportStore``, SPEC.md 18.7, E2E.md 17), written once for
both databases.

A franked message leaves one ``franking_tags`` row: the server's tag and the sender and ts it
binds (never the commitment, never any plaintext). A verified report stores what the reporter
revealed, for the operator (``chatd admin reports``).
"""

from __future__ import annotations

from chatd.store.base import FrankingTag, ReportRow
from chatd.store.sql import Row, Scripts, Sql, Tx, queues, reads, writes

_REPORT = (
    "id, reporter, conv_id, seq, sender, ts, plaintext, reason, created_at, resolved_at, resolution"
)


async def franking_secret(tx: Tx, secret: bytes) -> bytes:
    """The server's franking secret, storing ``secret`` if there is none (the first node wins)."""
    await tx.sql.execute(
        "INSERT INTO server_keys (name, seed) VALUES ('franking', ?) ON CONFLICT DO NOTHING", secret
    )
    return bytes(await tx.sql.fetchval("SELECT seed FROM server_keys WHERE name='franking'"))


async def put_franking_tag(tx: Tx, t: FrankingTag) -> None:
    """Record ``t`` (a resend of the same message records nothing new)."""
    await tx.sql.execute(
        "INSERT INTO franking_tags (conv_id, seq, sender, ts, tag) VALUES (?,?,?,?,?)"
        " ON CONFLICT (conv_id, seq) DO NOTHING",
        *(t.conv, t.seq, t.sender, t.ts, t.tag),
    )


async def franking_tag(db: Sql, conv: int, seq: int) -> FrankingTag | None:
    r = await db.fetchrow(
        "SELECT sender, ts, tag FROM franking_tags WHERE conv_id=? AND seq=?", conv, seq
    )
    return None if r is None else FrankingTag(conv, seq, int(r[0]), int(r[1]), bytes(r[2]))


async def add_report(
    tx: Tx, reporter: int, t: FrankingTag, plaintext: bytes, reason: str, now: int
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
    put_franking_tag = queues(put_franking_tag)
    franking_tag = reads(franking_tag)
    add_report = writes(add_report)
    reports = reads(reports)
