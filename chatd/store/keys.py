"""End-to-end keys and the to-device queue (``Keys``), written
once for both databases.

Across nodes: a device's uploads are ordered by its device row's lock, its to-device tids by
its ``to_device_state`` row's; a one-time prekey is taken and deleted in one statement that
skips a row another claim holds (``SKIP LOCKED``), so no two claims ever get the same key. On
SQLite the single writer orders all of it. The limits (a device's prekey pool and queue, a
sender's quota in it, device list versions) are ``core.keys``, checked under those locks.
"""

from __future__ import annotations

from chatd.core import keys
from chatd.core.consent import Quota
from chatd.errors import NotFound
from chatd.store.base import BundleRow, DeviceListRow, KeyUpload, PrekeyRow, ToDeviceRow
from chatd.store.sql import Scripts, Sql, Tx, reads, writes


async def _account_exists(db: Sql, account: int) -> None:
    if not await db.fetchval("SELECT 1 FROM accounts WHERE id=?", account):
        raise NotFound(f"no account {account}")


async def upload_keys(tx: Tx, upload: KeyUpload, now: int, max_one_time: int) -> int:
    """Store ``upload`` for its device in one transaction; the device's unclaimed one-time
    prekey count afterwards. A new identity key discards the device's stored prekeys; a kid
    the device already has is ignored; ``Invalid`` (nothing stored) when the pool would pass
    ``max_one_time``; ``NotFound`` for no such device."""
    u, db = upload, tx.sql
    fresh: dict[int, PrekeyRow] = {}
    for k in u.one_time:  # a kid repeated inside one upload: the first one counts
        fresh.setdefault(k.kid, k)
    # The device row is the lock that orders this device's uploads across nodes.
    if not await db.fetchval("SELECT 1 FROM devices WHERE id=? FOR NO KEY UPDATE", u.device):
        raise NotFound("no such device")
    prior = await db.fetchval("SELECT identity_key FROM identity_keys WHERE device_id=?", u.device)
    new_identity = prior is not None and bytes(prior) != u.identity_key
    held, known = 0, set()
    if not new_identity:
        held = await one_time_count(db, u.device)
        if fresh:
            known = {
                int(r[0])
                for r in await db.fetch(
                    "SELECT kid FROM one_time_prekeys WHERE device_id=? AND kid = ANY(?)",
                    *(u.device, list(fresh)),
                )
            }
    added = [k for kid, k in fresh.items() if kid not in known]
    keys.check_pool(held, len(added), max_one_time)
    # Checks done; writes from here on.
    if new_identity:  # prekeys signed for the old identity go with it
        await db.execute("DELETE FROM signed_prekeys WHERE device_id=?", u.device)
        await db.execute("DELETE FROM one_time_prekeys WHERE device_id=?", u.device)
    await db.execute(
        "INSERT INTO identity_keys (device_id, identity_key, identity_sig, updated_at)"
        " VALUES (?,?,?,?) ON CONFLICT (device_id) DO UPDATE SET"
        " identity_key=excluded.identity_key, identity_sig=excluded.identity_sig,"
        " updated_at=excluded.updated_at",
        *(u.device, u.identity_key, u.identity_sig, now),
    )
    await db.executemany(
        "INSERT INTO signed_prekeys (device_id, type, kid, key, sig, updated_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (device_id, type) DO UPDATE SET"
        " kid=excluded.kid, key=excluded.key, sig=excluded.sig, updated_at=excluded.updated_at",
        [
            (u.device, type, pk.kid, pk.key, pk.sig, now)
            for type, pk in (("ec", u.signed_prekey), ("pq", u.pq_prekey))
            if pk is not None
        ],
    )
    await db.executemany(
        "INSERT INTO one_time_prekeys (device_id, kid, key) VALUES (?,?,?)",
        [(u.device, k.kid, k.key) for k in added],
    )
    return held + len(added)


async def one_time_count(db: Sql, device: int) -> int:
    """The device's unclaimed one-time prekeys (0 for no such device)."""
    return int(await db.fetchval("SELECT count(*) FROM one_time_prekeys WHERE device_id=?", device))


async def claim_keys(
    tx: Tx, account: int, exclude_device: int = 0, one_time: bool = True
) -> list[BundleRow]:
    """A bundle per device of ``account`` with an identity key (but ``exclude_device``),
    ascending by device, each with the device's lowest-kid one-time prekey, deleted in the
    same transaction: no two claims ever get the same one. ``NotFound`` for no account.
    Without ``one_time``, the signed prekeys only (the last resort, SPEC.md 18.5)."""
    db = tx.sql
    await _account_exists(db, account)
    devices = await db.fetch(
        "SELECT d.id, d.public_key, i.identity_key, i.identity_sig FROM devices d"
        " JOIN identity_keys i ON i.device_id = d.id"
        " WHERE d.account_id=? AND d.id != ? ORDER BY d.id",
        *(account, exclude_device),
    )
    if not devices:
        return []
    signed: dict[tuple[int, str], PrekeyRow] = {
        (int(d), str(t)): PrekeyRow(int(kid), bytes(key), bytes(sig))
        for d, t, kid, key, sig in await db.fetch(
            "SELECT device_id, type, kid, key, sig FROM signed_prekeys WHERE device_id = ANY(?)",
            [int(d[0]) for d in devices],
        )
    }
    out = []
    for device, signing_key, identity_key, identity_sig in devices:
        d = int(device)
        # Taken and deleted in one statement; a row another node is claiming right now is
        # locked and skipped, so no two claims ever get the same key.
        row = None
        if one_time:
            row = await db.fetchrow(
                "DELETE FROM one_time_prekeys WHERE device_id=? AND kid = ("
                " SELECT kid FROM one_time_prekeys WHERE device_id=?"
                " ORDER BY kid LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING kid, key",
                *(d, d),
            )
        out.append(
            BundleRow(
                *(d, bytes(signing_key), bytes(identity_key), bytes(identity_sig)),
                signed.get((d, "ec")),
                signed.get((d, "pq")),
                None if row is None else PrekeyRow(int(row[0]), bytes(row[1])),
            )
        )
    return out


async def put_device_list(tx: Tx, row: DeviceListRow, now: int) -> None:
    """Replace the account's device list; ``Conflict`` unless ``row.version`` is higher,
    ``NotFound`` for no account."""
    db = tx.sql
    await _account_exists(db, row.account)
    prior = await db.fetchval(
        "SELECT version FROM device_lists WHERE account_id=? FOR UPDATE", row.account
    )
    keys.check_version(None if prior is None else int(prior), row.version)
    await db.execute(
        "INSERT INTO device_lists (account_id, version, body, sig, master_key, updated_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT (account_id) DO UPDATE SET"
        " version=excluded.version, body=excluded.body, sig=excluded.sig,"
        " master_key=excluded.master_key, updated_at=excluded.updated_at",
        *(row.account, row.version, row.body, row.sig, row.master_key, now),
    )


async def device_list(db: Sql, account: int) -> DeviceListRow | None:
    """The account's device list, or None when it has none."""
    r = await db.fetchrow(
        "SELECT version, body, sig, master_key FROM device_lists WHERE account_id=?", account
    )
    if r is None:
        return None
    return DeviceListRow(account, int(r[0]), bytes(r[1]), bytes(r[2]), bytes(r[3]))


# --------------------------------------------------------------------------- to-device queue


async def queue_to_device(
    tx: Tx,
    target: int,
    sender: int,
    sender_device: int,
    body: bytes,
    now: int,
    max_queued: int,
    quota: Quota | None = None,
) -> ToDeviceRow:
    """Append to ``target``'s queue; resolves once committed. ``NotFound`` for no such
    device, ``RateLimited`` when ``max_queued`` items are already queued for it, or when
    ``sender``'s items there with this one would pass ``quota`` (counted under the queue's
    lock, so concurrent items from any node cannot pass it together)."""
    db = tx.sql
    if not await db.fetchval("SELECT 1 FROM devices WHERE id=?", target):
        raise NotFound("no such device")
    # The state row's lock orders the device's tids across nodes. It is made first if missing:
    # two nodes' first items for a device would otherwise both read "no row" and pick tid 1
    # (PostgreSQL's insert waits for the other's commit, then finds the row and does nothing).
    await db.execute(
        "INSERT INTO to_device_state (device_id, last_tid, queued) VALUES (?,0,0)"
        " ON CONFLICT (device_id) DO NOTHING",
        target,
    )
    state = await db.fetchrow(
        "SELECT last_tid, queued FROM to_device_state WHERE device_id=? FOR UPDATE", target
    )
    assert state is not None  # made above
    last, queued = int(state[0]), int(state[1])
    keys.check_queue(target, queued, max_queued)
    if quota is not None:  # under the lock: every node's items for this device wait on it
        mine = await db.fetchrow(
            "SELECT count(*), coalesce(sum(length(body)), 0) FROM to_device"
            " WHERE device_id=? AND sender=?",
            *(target, sender),
        )
        items, size = (0, 0) if mine is None else (int(mine[0]), int(mine[1]))
        keys.check_quota(quota, items, size, len(body))
    tid = last + 1
    await db.execute(
        "UPDATE to_device_state SET last_tid=?, queued=? WHERE device_id=?",
        *(tid, queued + 1, target),
    )
    await db.execute(
        "INSERT INTO to_device (device_id, tid, sender, sender_device, body, queued_at)"
        " VALUES (?,?,?,?,?,?)",
        *(target, tid, sender, sender_device, body, now),
    )
    return ToDeviceRow(target, tid, sender, sender_device, body)


async def to_device_items(db: Sql, device: int, after: int, limit: int) -> list[ToDeviceRow]:
    """Queued items of ``device`` with tid > ``after``, ascending, at most ``limit``."""
    rows = await db.fetch(
        "SELECT tid, sender, sender_device, body FROM to_device"
        " WHERE device_id=? AND tid>? ORDER BY tid LIMIT ?",
        *(device, after, limit),
    )
    return [ToDeviceRow(device, int(t), int(s), int(d), bytes(b)) for t, s, d, b in rows]


async def ack_to_device(tx: Tx, device: int, up_to: int) -> int:
    """Delete ``device``'s items with tid <= ``up_to``; how many were deleted."""
    deleted = await tx.sql.execute(
        "DELETE FROM to_device WHERE device_id=? AND tid<=?", device, up_to
    )
    if deleted > 0:
        await tx.sql.execute(
            "UPDATE to_device_state SET queued = queued - ? WHERE device_id=?", deleted, device
        )
    return deleted


class Keys(Scripts):
    """Public end-to-end keys of devices, signed device lists of accounts, and a bounded queue
    per device of opaque to-device items, each with a tid increasing per device. The store
    enforces atomicity only; who may write what (a device its own keys) is fixed by the caller."""

    upload_keys = writes(upload_keys)
    one_time_count = reads(one_time_count)
    claim_keys = writes(claim_keys)
    put_device_list = writes(put_device_list)
    device_list = reads(device_list)
    queue_to_device = writes(queue_to_device)
    to_device_items = reads(to_device_items)
    ack_to_device = writes(ack_to_device)
