"""``chatd admin``: operator commands on accounts, on the store's own connection next to a
running server (as ``chatd wallet``).

``chatd admin suspend ACCOUNT`` marks the account suspended: its logins fail with ``SUSPENDED``
and every node closes its connections within a second (``services.suspension``);
``unsuspend`` lifts it. ACCOUNT is ``@handle`` or an account id.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from chatd.settings import Settings
from chatd.store.migrate import migrate_postgres
from chatd.wallet_cli import _account_sql, _is_postgres, _now, _sqlite

log = logging.getLogger("chatd.admin")


def add_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="operator commands on accounts (suspend, unsuspend)")
    commands = admin.add_subparsers(dest="admin_command", required=True)
    for name, text in (
        ("suspend", "close the account's connections and refuse its logins"),
        ("unsuspend", "let the account log in again"),
    ):
        p = commands.add_parser(name, help=text)
        p.add_argument("account", help="@handle or account id")
        p.add_argument("--config", help="TOML config file")
        p.add_argument("--db", help="SQLite database file, or postgresql://[user:pass@]host/db")
        p.set_defaults(host=None, port=None, broker=None)


def run(args: argparse.Namespace, settings: Settings) -> int:
    at = _now() if args.admin_command == "suspend" else 0
    found = set_suspended(settings.store.db, args.account, at)
    if found is None:
        print(f"chatd admin: no account {args.account}", file=sys.stderr)
        return 1
    log.warning(args.admin_command + "ed", extra={"account": found})
    print(f"{args.admin_command}ed account {found}")
    return 0


def set_suspended(db: str, who: str, at: int) -> int | None:
    """Suspend ``who`` as of ``at`` (0: lift it) on database ``db``; its id, or None."""
    column, value = _account_sql(who)
    sql = f"UPDATE accounts SET suspended_at=? WHERE {column}=? RETURNING id"
    if _is_postgres(db):
        return asyncio.run(_set_pg(db, sql.replace("?", "$1", 1).replace("?", "$2", 1), at, value))
    conn = _sqlite(db)
    try:
        row = conn.execute(sql, (at, value)).fetchone()
        return None if row is None else int(row[0])
    finally:
        conn.close()


async def _set_pg(dsn: str, sql: str, at: int, value: Any) -> int | None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate_postgres(conn)
        found = await conn.fetchval(sql, at, value)
        return None if found is None else int(found)
    finally:
        await conn.close()
