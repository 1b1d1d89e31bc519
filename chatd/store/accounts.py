"""Accounts and their devices (``AccountStore``), written once for both databases.

Two nodes registering one handle or device key race on the unique index: the loser's batch
fails with a unique violation, runs again (``postgres``), and its SELECT then sees the winner.
"""

from __future__ import annotations

from chatd.core.handles import SKELETON_SQL, skeleton
from chatd.errors import Conflict, HandleTaken
from chatd.store.base import AccountRow, DeviceRow
from chatd.store.sql import Row, Scripts, Sql, Tx

_ACCOUNT = "SELECT id, handle, name, type, last_seen FROM accounts WHERE "
_LOOKALIKE = f"SELECT 1 FROM accounts WHERE {SKELETON_SQL}=?"
"""An account whose handle looks like the one given (its skeleton): the index's expression."""


def _account(r: Row | None) -> AccountRow | None:
    return None if r is None else AccountRow(int(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]))


async def _key_free(db: Sql, device_key: bytes) -> None:
    if await db.fetchval("SELECT 1 FROM devices WHERE public_key=?", device_key):
        raise Conflict("this device key is already registered")


class Accounts(Scripts):
    async def create_account(
        self, handle: str, name: str, type: str, device_key: bytes, device_name: str, now: int
    ) -> tuple[AccountRow, DeviceRow]:
        async def op(tx: Tx) -> tuple[AccountRow, DeviceRow]:
            db = tx.sql
            if await db.fetchval("SELECT 1 FROM accounts WHERE handle=?", handle):
                raise HandleTaken(f"handle {handle!r} is taken")
            if await db.fetchval(_LOOKALIKE, skeleton(handle)):  # SPEC 8.6
                raise HandleTaken(f"handle {handle!r} looks like one that is taken")
            await _key_free(db, device_key)
            account = int(
                await db.fetchval(
                    "INSERT INTO accounts (handle, name, type, created_at) VALUES (?,?,?,?)"
                    " RETURNING id",
                    *(handle, name, type, now),
                )
            )
            device = await db.fetchval(
                "INSERT INTO devices (account_id, public_key, name, created_at) VALUES (?,?,?,?)"
                " RETURNING id",
                *(account, device_key, device_name, now),
            )
            return (
                AccountRow(account, handle, name, type, 0),
                DeviceRow(int(device), account, device_key, device_name),
            )

        return await self._write(op)

    async def add_device(
        self, account: int, device_key: bytes, name: str, approver: int, now: int
    ) -> DeviceRow:
        async def op(tx: Tx) -> DeviceRow:
            await _key_free(tx.sql, device_key)
            device = await tx.sql.fetchval(
                "INSERT INTO devices (account_id, public_key, name, approved_by, created_at)"
                " VALUES (?,?,?,?,?) RETURNING id",
                *(account, device_key, name, approver, now),
            )
            return DeviceRow(int(device), account, device_key, name)

        return await self._write(op)

    async def device(self, device: int) -> DeviceRow | None:
        async def q(db: Sql) -> DeviceRow | None:
            r = await db.fetchrow(
                "SELECT id, account_id, public_key, name FROM devices WHERE id=?", device
            )
            return None if r is None else DeviceRow(int(r[0]), int(r[1]), bytes(r[2]), str(r[3]))

        return await self._read(q)

    async def account(self, account: int) -> AccountRow | None:
        async def q(db: Sql) -> AccountRow | None:
            return _account(await db.fetchrow(_ACCOUNT + "id=?", account))

        return await self._read(q)

    async def account_by_handle(self, handle: str) -> AccountRow | None:
        async def q(db: Sql) -> AccountRow | None:
            return _account(await db.fetchrow(_ACCOUNT + "handle=?", handle))

        return await self._read(q)

    async def set_last_seen(self, account: int, now: int) -> None:
        async def op(tx: Tx) -> None:
            await tx.sql.execute("UPDATE accounts SET last_seen=? WHERE id=?", now, account)

        await self._write(op)
