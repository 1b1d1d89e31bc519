"""The ledger's operator entry points (``chatd wallet``) on a plain sqlite3 connection, inside
the caller's transaction: ``store.ledger``'s scripts, run to their end on this thread. A mint
touches only ledger tables, never messages, so it is safe next to a running server (SQLite
serialises the two writers; the server's seq cache is not involved)."""

from __future__ import annotations

import sqlite3

from chatd.store import ledger
from chatd.store.base import EntryRow, LedgerAudit
from chatd.store.sql import run_sync
from chatd.store.sqlite import SQLiteSql


def mint(
    db: sqlite3.Connection, account: int, amount: int, currency: str, now: int, note: str
) -> str:
    return run_sync(ledger.mint(SQLiteSql(db), account, amount, currency, now, note))


def balances(db: sqlite3.Connection, account: int) -> list[tuple[str, int]]:
    return run_sync(ledger.balances(SQLiteSql(db), account))


def wallet_entries(
    db: sqlite3.Connection, account: int, currency: str, before: int | None, limit: int
) -> list[EntryRow]:
    return run_sync(ledger.wallet_entries(SQLiteSql(db), account, currency, before, limit))


def audit(db: sqlite3.Connection) -> LedgerAudit:
    return run_sync(ledger.audit(SQLiteSql(db)))
