"""``chatd admin``: operator commands on accounts, on the store's own connection next to a
running server (as ``chatd wallet``).

``chatd admin suspend ACCOUNT`` marks the account suspended: its logins fail with ``SUSPENDED``
and every node closes its connections within a second (``services.suspension``);
``unsuspend`` lifts it. ACCOUNT is ``@handle`` or an account id.

``chatd admin reports`` lists the open reports of messages (SPEC.md 18.7: each one verified by
message franking, so its sender really sent that plaintext), ``--all`` the resolved ones too;
``chatd admin reports resolve ID [--note TEXT]`` closes one.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from chatproto import franking, kinds

from chatd.settings import Settings
from chatd.store.migrate import migrate_postgres
from chatd.wallet_cli import _account_sql, _is_postgres, _now, _sqlite

log = logging.getLogger("chatd.admin")


def add_parser(sub: Any) -> None:
    admin = sub.add_parser("admin", help="operator commands (suspend, unsuspend, reports)")
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
    p = commands.add_parser("reports", help="list reported messages; 'resolve ID' closes one")
    p.add_argument("action", nargs="?", choices=["resolve"], help="resolve report ID")
    p.add_argument("report", nargs="?", type=int, help="the report's id (with resolve)")
    p.add_argument("--all", action="store_true", help="list resolved reports too")
    p.add_argument("--note", default="resolved", help="the resolution recorded (with resolve)")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--db", help="SQLite database file, or postgresql://[user:pass@]host/db")
    p.set_defaults(host=None, port=None, broker=None)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.admin_command == "reports":
        return _reports(args, settings.store.db)
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


_COLUMNS = "id, reporter, conv_id, seq, sender, ts, plaintext, reason, resolved_at, resolution"


def _reports(args: argparse.Namespace, db: str) -> int:
    if args.action == "resolve":
        if args.report is None:
            print("chatd admin reports resolve: give the report's id", file=sys.stderr)
            return 2
        sql = (
            "UPDATE reports SET resolved_at=?, resolution=? WHERE id=? AND resolved_at=0"
            " RETURNING id"
        )
        done = _query(db, sql, [(_now(), args.note[:256], args.report)])
        if not done:
            print(f"chatd admin: no open report {args.report}", file=sys.stderr)
            return 1
        log.warning("report resolved", extra={"report": args.report})
        print(f"resolved report {args.report}")
        return 0
    where = "" if args.all else " WHERE resolved_at=0"
    rows = _query(db, f"SELECT {_COLUMNS} FROM reports{where} ORDER BY id", [])
    for r in rows:
        state = f"resolved: {r[9]}" if int(r[8]) else "open"
        print(
            f"#{r[0]} conv {r[2]} seq {r[3]} sender {r[4]} reported by {r[1]}"
            f" ({state}) reason: {r[7]!r}\n    {_shown(bytes(r[6]))}"
        )
    if not rows:
        print("no reports" if args.all else "no open reports")
    return 0


def _shown(plaintext: bytes) -> str:
    """A reported plaintext for the operator: its text when it is a franked ``text`` payload
    (E2E.md 17), else its bytes in hex."""
    try:
        kind, body = franking.decode_plaintext(plaintext)
        content = kinds.decode_content(kind, body)
    except Exception:
        return "bytes " + plaintext[:512].hex()
    text = getattr(content, "text", None)
    return f"{kind}: {text!r}" if isinstance(text, str) else f"{kind}: {content!r}"


def _query(db: str, sql: str, args: list[tuple[Any, ...]]) -> list[Any]:
    """Run ``sql`` (``?`` placeholders) once with ``args[0]`` (or none); its rows."""
    values = args[0] if args else ()
    if _is_postgres(db):
        n = iter(range(1, 100))
        pg = "".join(f"${next(n)}" if c == "?" else c for c in sql)
        return asyncio.run(_query_pg(db, pg, values))
    conn = _sqlite(db)
    try:
        return list(conn.execute(sql, values).fetchall())
    finally:
        conn.close()


async def _query_pg(dsn: str, sql: str, values: tuple[Any, ...]) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate_postgres(conn)
        return list(await conn.fetch(sql, *values))
    finally:
        await conn.close()
