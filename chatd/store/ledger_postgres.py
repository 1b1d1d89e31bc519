"""The ledger's operator entry points (``chatd wallet``) on a plain asyncpg connection:
``store.ledger``'s scripts over ``PostgresSql``."""

from __future__ import annotations

from typing import Any

from chatd.store import ledger
from chatd.store.base import EntryRow, LedgerAudit
from chatd.store.postgres import PostgresSql


async def mint(db: Any, account: int, amount: int, currency: str, now: int, note: str) -> str:
    return await ledger.mint(PostgresSql(db), account, amount, currency, now, note)


async def wallet_entries(
    db: Any, account: int, currency: str, before: int | None, limit: int
) -> list[EntryRow]:
    return await ledger.wallet_entries(PostgresSql(db), account, currency, before, limit)


async def audit(db: Any) -> LedgerAudit:
    return await ledger.audit(PostgresSql(db))
