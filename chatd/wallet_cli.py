"""``chatd wallet mint|statement``: the operator's side of the ledger.

``mint ACCOUNT AMOUNT CURRENCY`` tops an account up from the issuance account (the only way
money enters the ledger), recorded as a ``mint`` posting with who ran it and a note, and logged.
``statement ACCOUNT [--currency C] [--csv]`` prints the account's entries oldest first with the
running balance after each. ``audit [--json]`` checks the ledger's invariants in one snapshot
(``LedgerAudit``) and exits 1 when one fails: what a benchmark or an operator audits with,
without importing the store.

Both work next to a running server: on SQLite they use a connection of their own (a mint
writes only ledger tables, which the server's writer does not cache; SQLite serialises the two
writers), on PostgreSQL a connection like any node's.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import getpass
import json
import logging
import socket
import sqlite3
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from chatproto import money
from chatproto.errors import MoneyError

from chatd.core import ledger
from chatd.errors import ChatdError
from chatd.settings import Settings
from chatd.store import ledger as stored
from chatd.store.base import EntryRow, LedgerAudit
from chatd.store.migrate import migrate_postgres, migrate_sqlite
from chatd.store.postgres import PostgresSql
from chatd.store.sql import run_sync
from chatd.store.sqlite import SQLiteSql

log = logging.getLogger("chatd.wallet")

_SYSTEM_NAMES = {ledger.ISSUANCE: "issuance", ledger.ESCROW: "escrow"}


def add_parser(sub: Any) -> None:
    """The ``wallet`` command and its subcommands, on ``chatd``'s subparsers."""
    wallet = sub.add_parser(
        "wallet", help="operator commands for the ledger (mint, statement, audit)"
    )
    commands = wallet.add_subparsers(dest="wallet_command", required=True)
    mint = commands.add_parser("mint", help="top an account up from the issuance account (logged)")
    mint.add_argument("account", help="@handle or account id")
    mint.add_argument("amount", help="decimal amount in major units, e.g. 12.50")
    mint.add_argument("currency", help="ISO 4217 code, e.g. USD")
    mint.add_argument("--note", default="", help="why (kept with the posting)")
    statement = commands.add_parser(
        "statement", help="an account's entries with the running balance"
    )
    statement.add_argument("account", help="@handle or account id")
    statement.add_argument("--currency", default="", help="only this currency")
    statement.add_argument("--csv", action="store_true", help="CSV on stdout")
    check = commands.add_parser(
        "audit", help="check the ledger's invariants (exit status 1 when one fails)"
    )
    check.add_argument("--json", action="store_true", help="the findings as JSON on stdout")
    check.set_defaults(currency="")
    for p in (mint, statement, check):
        p.add_argument("--config", help="TOML config file")
        p.add_argument("--db", help="SQLite database file, or postgresql://[user:pass@]host/db")
        p.set_defaults(host=None, port=None, broker=None)


def run(args: argparse.Namespace, settings: Settings) -> int:
    db = settings.store.db
    # The same spellings as chat's: "usd" is USD, "@Alice" is @alice.
    args.currency = args.currency.upper()
    try:
        if args.wallet_command == "mint":
            note = f"{args.note} (by {getpass.getuser()}@{socket.gethostname()})".strip()
            limits = ledger.Limits(
                per_transfer=ledger.parse_limits(settings.payments.max_transfer), per_day={}
            )
            ledger.check_currency(limits, args.currency)
            amount = money.parse_amount(args.amount, args.currency)
            account, tid = mint_to(db, args.account, amount, args.currency, note)
            log.warning(
                "minted",
                extra={
                    "account": account,
                    "amount": amount,
                    "currency": args.currency,
                    "transfer": tid,
                    "note": note,
                },
            )
            who = handles_of(db, [account]).get(account, "?")
            minted = money.format_money(amount, args.currency)
            print(f"minted {minted} to @{who} (account {account}): {tid}")
        elif args.wallet_command == "audit":
            found = audit_of(db)
            if args.json:
                print(json.dumps({**dataclasses.asdict(found), "ok": found.ok}))
            else:
                print(f"{'ok' if found.ok else 'FAILED'}: {found.transfers} transfers, {found}")
            return 0 if found.ok else 1
        else:
            account, rows = statement_of(db, args.account, args.currency)
            handles = handles_of(db, sorted({e.counterparty for e in rows if e.counterparty > 0}))
            write_statement(rows, sys.stdout, as_csv=args.csv, handles=handles)
    except (ChatdError, MoneyError) as exc:
        print(f"chatd wallet: {exc.message}", file=sys.stderr)
        return 1
    return 0


def _account_sql(account: str) -> tuple[str, Any]:
    if account.lstrip("@").isdigit() and not account.startswith("@"):
        return "id", int(account)
    return "handle", account.removeprefix("@").lower()


def handles_of(db: str, accounts: Sequence[int]) -> dict[int, str]:
    """Account id -> handle, for what statements show (handles, not account numbers)."""
    if not accounts:
        return {}
    if _is_postgres(db):

        async def pg() -> dict[int, str]:
            import asyncpg

            conn = await asyncpg.connect(db, timeout=10)
            try:
                sql = "SELECT id, handle FROM accounts WHERE id = ANY($1::bigint[])"
                return {int(r[0]): str(r[1]) for r in await conn.fetch(sql, list(accounts))}
            finally:
                await conn.close()

        return asyncio.run(pg())
    conn = _sqlite(db)
    try:
        marks = ",".join("?" * len(accounts))
        sql = f"SELECT id, handle FROM accounts WHERE id IN ({marks})"
        return {int(i): str(h) for i, h in conn.execute(sql, list(accounts))}
    finally:
        conn.close()


# --------------------------------------------------------------------------- backends


def _is_postgres(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


def _sqlite(db: str) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    migrate_sqlite(conn)
    return conn


def _now() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def mint_to(db: str, who: str, amount: int, currency: str, note: str) -> tuple[int, str]:
    """Issuance -> ``who`` (``@handle`` or an id) on database ``db``: (account, transfer id)."""
    column, value = _account_sql(who)
    if _is_postgres(db):
        return asyncio.run(_mint_pg(db, column, value, amount, currency, note))
    conn = _sqlite(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(f"SELECT id FROM accounts WHERE {column}=?", (value,)).fetchone()
            if row is None:
                raise ChatdError(f"no account {who}")
            tid = run_sync(
                stored.mint(SQLiteSql(conn), int(row[0]), amount, currency, _now(), note)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0]), tid
    finally:
        conn.close()


async def _mint_pg(
    dsn: str, column: str, value: Any, amount: int, currency: str, note: str
) -> tuple[int, str]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate_postgres(conn)
        async with conn.transaction():
            account = await conn.fetchval(f"SELECT id FROM accounts WHERE {column}=$1", value)
            if account is None:
                raise ChatdError(f"no account {value}")
            tid = await stored.mint(PostgresSql(conn), int(account), amount, currency, _now(), note)
        return int(account), tid
    finally:
        await conn.close()


def audit_of(db: str) -> LedgerAudit:
    """The ledger's invariants on database ``db``, read in one snapshot."""
    if _is_postgres(db):

        async def pg() -> LedgerAudit:
            import asyncpg

            conn = await asyncpg.connect(db, timeout=10)
            try:
                return await stored.audit(PostgresSql(conn))
            finally:
                await conn.close()

        return asyncio.run(pg())
    conn = _sqlite(db)
    try:
        conn.execute("BEGIN")  # one read snapshot for every query of the audit
        try:
            return run_sync(stored.audit(SQLiteSql(conn)))
        finally:
            conn.execute("COMMIT")
    finally:
        conn.close()


def statement_of(db: str, who: str, currency: str) -> tuple[int, list[EntryRow]]:
    """Every entry of the account, oldest first."""
    column, value = _account_sql(who)
    if _is_postgres(db):
        return asyncio.run(_statement_pg(db, column, value, currency))
    conn = _sqlite(db)
    try:
        row = conn.execute(f"SELECT id FROM accounts WHERE {column}=?", (value,)).fetchone()
        if row is None:
            raise ChatdError(f"no account {who}")
        account = int(row[0])
        rows: list[EntryRow] = []
        before: int | None = None
        while page := run_sync(
            stored.wallet_entries(SQLiteSql(conn), account, currency, before, 1000)
        ):
            rows += page
            before = page[-1].entry
        return account, rows[::-1]
    finally:
        conn.close()


async def _statement_pg(
    dsn: str, column: str, value: Any, currency: str
) -> tuple[int, list[EntryRow]]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        account = await conn.fetchval(f"SELECT id FROM accounts WHERE {column}=$1", value)
        if account is None:
            raise ChatdError(f"no account {value}")
        rows: list[EntryRow] = []
        before: int | None = None
        while page := await stored.wallet_entries(
            PostgresSql(conn), int(account), currency, before, 1000
        ):
            rows += page
            before = page[-1].entry
        return int(account), rows[::-1]
    finally:
        await conn.close()


# --------------------------------------------------------------------------- output


STATEMENT_COLUMNS = (
    "entry",
    "posted_at",
    "type",
    "ref",
    "counterparty",
    "conv",
    "currency",
    "amount",
    "balance",
)


def statement_rows(
    rows: Sequence[EntryRow], handles: Mapping[int, str] | None = None
) -> list[list[str]]:
    """One row of text per entry: amounts formatted with their currency's decimals, the other
    side as its @handle when ``handles`` knows it."""
    names = {**{a: f"@{h}" for a, h in (handles or {}).items()}, **_SYSTEM_NAMES}
    out = []
    for e in rows:
        when = datetime.fromtimestamp(e.posted_at / 1000, UTC).isoformat(timespec="milliseconds")
        out.append(
            [
                str(e.entry),
                when.replace("+00:00", "Z"),
                e.type,
                e.ref,
                names.get(e.counterparty, str(e.counterparty)),
                str(e.conv) if e.conv else "",
                e.currency,
                money.format_amount(e.amount, e.currency),
                money.format_amount(e.balance, e.currency),
            ]
        )
    return out


def write_statement(
    rows: Sequence[EntryRow],
    out: TextIO,
    *,
    as_csv: bool,
    handles: Mapping[int, str] | None = None,
) -> None:
    table = statement_rows(rows, handles)
    if as_csv:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STATEMENT_COLUMNS)
        writer.writerows(table)
        return
    widths = [
        max(len(h), *(len(r[i]) for r in table)) if table else len(h)
        for i, h in enumerate(STATEMENT_COLUMNS)
    ]
    right = {0, 5, 7, 8}
    for line in (list(STATEMENT_COLUMNS), *table):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.write("  ".join(cells).rstrip() + "\n")
    if not table:
        out.write("(no entries)\n")
