"""Accounts and their devices (``Accounts``), written once for both databases.

Two nodes registering one handle or device key race on the unique index: the loser's batch
fails with a unique violation, runs again (``postgres``), and its SELECT then sees the winner.
"""

from __future__ import annotations

from chatd.core.handles import SKELETON_SQL, skeleton
from chatd.errors import Conflict, HandleTaken
from chatd.store.base import AccountRow, DeviceRow
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

_ACCOUNT = "SELECT id, handle, name, type, last_seen, owner_id, suspended_at FROM accounts WHERE "
_LOOKALIKE = f"SELECT 1 FROM accounts WHERE {SKELETON_SQL}=?"
"""An account whose handle looks like the one given (its skeleton): the index's expression."""


def _account(r: Row | None) -> AccountRow | None:
    if r is None:
        return None
    return AccountRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), int(r[5]), int(r[6]))


async def _key_free(db: Sql, device_key: bytes) -> None:
    if await db.fetchval("SELECT 1 FROM devices WHERE public_key=?", device_key):
        raise Conflict("this device key is already registered")


async def set_suspended(tx: Tx, account: int, at: int) -> bool:
    """Suspend ``account`` as of ``at`` (ms; 0: lift it); False when there is no such account."""
    return bool(await tx.sql.execute("UPDATE accounts SET suspended_at=? WHERE id=?", at, account))


async def suspended_after(db: Sql, after: int) -> list[tuple[int, int]]:
    """``(account, suspended_at)`` of the accounts suspended later than ``after``."""
    rows = await db.fetch(
        "SELECT id, suspended_at FROM accounts WHERE suspended_at > ? ORDER BY suspended_at",
        after,
    )
    return [(int(a), int(t)) for a, t in rows]


async def create_account(
    tx: Tx,
    handle: str,
    name: str,
    type: str,
    device_key: bytes,
    device_name: str,
    now: int,
    owner: int = 0,
) -> tuple[AccountRow, DeviceRow]:
    """A new account (``type`` ``user`` or ``bot``) with its first device. ``HandleTaken``
    when the handle is, ``Conflict`` when the device key is registered."""
    db = tx.sql
    if await db.fetchval("SELECT 1 FROM accounts WHERE handle=?", handle):
        raise HandleTaken(f"handle {handle!r} is taken")
    if await db.fetchval(_LOOKALIKE, skeleton(handle)):  # SPEC 8.6
        raise HandleTaken(f"handle {handle!r} looks like one that is taken")
    await _key_free(db, device_key)
    account = int(
        await db.fetchval(
            "INSERT INTO accounts (handle, name, type, created_at, owner_id) VALUES (?,?,?,?,?)"
            " RETURNING id",
            *(handle, name, type, now, owner),
        )
    )
    device = await db.fetchval(
        "INSERT INTO devices (account_id, public_key, name, created_at) VALUES (?,?,?,?)"
        " RETURNING id",
        *(account, device_key, device_name, now),
    )
    return (
        AccountRow(account, handle, name, type, 0, owner),
        DeviceRow(int(device), account, device_key, device_name),
    )


async def add_device(
    tx: Tx, account: int, device_key: bytes, name: str, approver: int, now: int
) -> DeviceRow:
    """A new device of ``account``, approved by device ``approver`` (the caller checked it
    may). ``Conflict`` when the key is registered."""
    await _key_free(tx.sql, device_key)
    device = await tx.sql.fetchval(
        "INSERT INTO devices (account_id, public_key, name, approved_by, created_at)"
        " VALUES (?,?,?,?,?) RETURNING id",
        *(account, device_key, name, approver, now),
    )
    return DeviceRow(int(device), account, device_key, name)


async def device(db: Sql, device: int) -> DeviceRow | None:
    """The device, or None."""
    r = await db.fetchrow("SELECT id, account_id, public_key, name FROM devices WHERE id=?", device)
    return None if r is None else DeviceRow(int(r[0]), int(r[1]), bytes(r[2]), str(r[3]))


async def account(db: Sql, account: int) -> AccountRow | None:
    """The account, or None."""
    return _account(await db.fetchrow(_ACCOUNT + "id=?", account))


async def account_by_handle(db: Sql, handle: str) -> AccountRow | None:
    """The account with this handle, or None."""
    return _account(await db.fetchrow(_ACCOUNT + "handle=?", handle))


async def set_last_seen(tx: Tx, account: int, now: int) -> None:
    """Record ``now`` as the account's last activity (no error for no account)."""
    await tx.sql.execute("UPDATE accounts SET last_seen=? WHERE id=?", now, account)


class Accounts(Scripts):
    create_account = writes(create_account)
    add_device = writes(add_device)
    device = reads(device)
    account = reads(account)
    account_by_handle = reads(account_by_handle)
    set_last_seen = writes(set_last_seen)
    set_suspended = writes(set_suspended)
    suspended_after = reads(suspended_after)
