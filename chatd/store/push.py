"""Web Push subscriptions (``Push``, SPEC.md 21), written once for both databases: one per
device, replaced by a new ``set_push``, deleted by ``clear_push`` or when its push service says
it is gone (404/410)."""

from __future__ import annotations

from chatd.store.base import PushSubscription
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

_COLUMNS = "device_id, account_id, endpoint, p256dh, auth, show_conv, created_at"


def _row(r: Row) -> PushSubscription:
    return PushSubscription(
        device=int(r[0]),
        account=int(r[1]),
        endpoint=str(r[2]),
        p256dh=bytes(r[3]),
        auth=bytes(r[4]),
        show_conv=bool(r[5]),
        created_at=int(r[6]),
    )


async def set_push(tx: Tx, sub: PushSubscription) -> None:
    """Store ``sub`` as its device's subscription (replacing any earlier one)."""
    await tx.sql.execute(
        f"INSERT INTO push_subscriptions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (device_id) DO UPDATE SET account_id=excluded.account_id,"
        " endpoint=excluded.endpoint, p256dh=excluded.p256dh, auth=excluded.auth,"
        " show_conv=excluded.show_conv, created_at=excluded.created_at",
        *(sub.device, sub.account, sub.endpoint, sub.p256dh, sub.auth, int(sub.show_conv)),
        sub.created_at,
    )


async def clear_push(tx: Tx, device: int, endpoint: str | None) -> bool:
    """Delete ``device``'s subscription (only if it is still ``endpoint``, when given: a push
    service's 410 for an old endpoint must not delete the one that replaced it). True when one
    was deleted."""
    if endpoint is None:
        n = await tx.sql.execute("DELETE FROM push_subscriptions WHERE device_id=?", device)
    else:
        n = await tx.sql.execute(
            "DELETE FROM push_subscriptions WHERE device_id=? AND endpoint=?", device, endpoint
        )
    return n > 0


async def push_of(db: Sql, device: int) -> PushSubscription | None:
    """``device``'s subscription, or None when it has none."""
    r = await db.fetchrow(f"SELECT {_COLUMNS} FROM push_subscriptions WHERE device_id=?", device)
    return None if r is None else _row(r)


async def push_targets(db: Sql, conv: int) -> list[PushSubscription]:
    """The subscriptions of every device of every member of ``conv``."""
    rows = await db.fetch(
        "SELECT p.device_id, p.account_id, p.endpoint, p.p256dh, p.auth, p.show_conv,"
        " p.created_at FROM members m JOIN push_subscriptions p ON p.account_id=m.account_id"
        " WHERE m.conv_id=? ORDER BY p.device_id",
        conv,
    )
    return [_row(r) for r in rows]


class Push(Scripts):
    set_push = writes(set_push)
    clear_push = writes(clear_push)
    push_of = reads(push_of)
    push_targets = reads(push_targets)
