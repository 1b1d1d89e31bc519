"""``chatd serve|migrate|check-config|version|vapid-keygen|backup|wallet|admin``."""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import re
import sys
from typing import Any

from chatd import __version__, admin_cli, wallet_cli
from chatd.settings import ConfigError, Settings, load_settings, redact_url, redacted


def _flags(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    flags: dict[str, dict[str, Any]] = {}
    for section, key, value in (
        ("server", "host", args.host),
        ("server", "port", args.port),
        ("server", "node_id", getattr(args, "node_id", None)),
        ("store", "db", args.db),
        ("broker", "url", args.broker),
        ("log", "level", getattr(args, "log_level", None)),
    ):
        if value is not None:
            flags.setdefault(section, {})[key] = value
    return flags


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config, flags=_flags(args))


class StartError(Exception):
    """A foreseeable reason the server cannot start; ``str()`` is the one line to print."""


_ERRNO = re.compile(r"^\[Errno \d+\] ")


def _leaves(exc: BaseException) -> list[BaseException]:
    """``exc``, or the exceptions inside it if it is an exception group (the TaskGroup's)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _start_error(exc: BaseException, settings: Settings) -> StartError | None:
    """One clear line for what stops ``serve`` at start (None: not a foreseeable failure)."""
    where = f"{settings.server.host}:{settings.server.port}"
    for leaf in _leaves(exc):
        if isinstance(leaf, OSError) and leaf.errno == errno.EADDRINUSE:
            return StartError(
                f"cannot listen on {where}: the address is already in use (another chatd or"
                " another program holds it): stop it, or choose another port with --port"
            )
        if isinstance(leaf, OSError) and leaf.errno == errno.EACCES:
            return StartError(
                f"cannot listen on {where}: permission denied (ports below 1024 need"
                " privileges): choose another port with --port"
            )
        if isinstance(leaf, RuntimeError) and "in use by another chatd process" in str(leaf):
            return StartError(f"{leaf}: stop the other server first, or give this one its own --db")
        db = settings.store.db
        if isinstance(leaf, OSError) and db.startswith(("postgresql://", "postgres://")):
            return StartError(
                f"cannot reach the database {redact_url(db)}: {_ERRNO.sub('', str(leaf))}"
                " (is PostgreSQL running there? --db)"
            )
        if isinstance(leaf, OSError):  # e.g. a --db in a directory that cannot be made
            return StartError(f"cannot start: {_ERRNO.sub('', str(leaf))}")
    return None


def _run(settings: Settings) -> None:
    from chatd import logs

    logs.configure(settings.log.level, settings.log.format, node=settings.server.node_id)
    from chatd.app import App  # after configure: a warning at import is logged as JSON too

    async def main() -> None:
        await App(settings).run(install_signals=True)

    try:
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
            asyncio.run(main())
        else:
            uvloop.run(main())
    except Exception as exc:
        failure = _start_error(exc, settings)
        if failure is None:
            raise  # a bug: its traceback is what a report needs
        raise failure from None


def _migrate(settings: Settings) -> None:
    """Apply pending migrations to the configured store (several nodes: run it once, or let
    each ``serve`` do it: PostgreSQL migrations run under an advisory lock)."""
    db_url = settings.store.db
    if db_url.startswith(("postgresql://", "postgres://")):
        import asyncpg

        from chatd.store.migrate import migrate_postgres

        async def pg() -> list[str]:
            conn = await asyncpg.connect(db_url, timeout=10)
            try:
                return await migrate_postgres(conn)
            finally:
                await conn.close()

        applied = asyncio.run(pg())
    else:
        import sqlite3

        from chatd.store.migrate import migrate_sqlite

        db = sqlite3.connect(db_url, isolation_level=None)
        applied = migrate_sqlite(db)
        db.close()
    print("applied: " + ", ".join(applied) if applied else "up to date")


def _backup(settings: Settings, destination: str) -> int:
    import sqlite3

    from chatd.backup import BackupError, backup_sqlite

    try:
        b = backup_sqlite(settings.store.db, destination)
    except (BackupError, sqlite3.Error, OSError) as exc:
        print(f"chatd backup: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {settings.store.db} to {b.path}: {b.bytes} bytes in {b.seconds:.2f} s")
    return 0


def _vapid_keygen(path: str) -> int:
    """Write a new VAPID private key (PEM, 0600) to ``path`` and say how to use it."""
    import base64
    import os

    from chatd.services.push import new_vapid_pem

    pem, public = new_vapid_pem()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        print(f"chatd vapid-keygen: {_ERRNO.sub('', str(exc))}", file=sys.stderr)
        return 1
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    key = base64.urlsafe_b64encode(public).rstrip(b"=").decode()
    print(f"wrote {path}; public key (applicationServerKey): {key}")
    print(f'[push]\nvapid_private_key_file = "{path}"\nsubject = "mailto:you@example.com"')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatd", description="chatd messaging server")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the server"),
        ("migrate", "apply database migrations and exit"),
        ("check-config", "print the effective configuration (secrets redacted)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="TOML config file")
        p.add_argument("--host")
        p.add_argument("--port", type=int)
        p.add_argument("--db", help="SQLite database file, or postgresql://[user:pass@]host/db")
        p.add_argument(
            "--broker",
            help="redis://[user:pass@]host:port/db or rediss://... (default: in-process)",
        )
        if name == "serve":
            p.add_argument("--node-id", help="this node's name in logs, /status and metrics")
            p.add_argument("--log-level")
    p = sub.add_parser("backup", help="copy the SQLite database while the server runs")
    p.add_argument("destination", help="the new file to write (never overwritten)")
    p.add_argument("--config", help="TOML config file")
    p.add_argument("--db", help="SQLite database file (default: the configured one)")
    p.set_defaults(host=None, port=None, broker=None)
    sub.add_parser("version", help="print the version")
    p = sub.add_parser("vapid-keygen", help="make the VAPID key Web Push needs ([push])")
    p.add_argument("file", help="the PEM file to write (mode 0600; never overwritten)")
    wallet_cli.add_parser(sub)
    admin_cli.add_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "vapid-keygen":
        return _vapid_keygen(args.file)
    try:
        settings = _settings(args)
    except ConfigError as exc:
        print(f"chatd: config error: {exc.message}", file=sys.stderr)
        return 2
    if args.command == "check-config":
        print(json.dumps(redacted(settings), indent=2))
    elif args.command == "backup":
        return _backup(settings, args.destination)
    elif args.command == "migrate":
        _migrate(settings)
    elif args.command == "wallet":
        return wallet_cli.run(args, settings)
    elif args.command == "admin":
        return admin_cli.run(args, settings)
    else:
        try:
            _run(settings)
        except StartError as exc:
            print(f"chatd: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
