"""A small migration runner: numbered SQL files per dialect and a ``schema_migrations`` table."""

from __future__ import annotations

import sqlite3
from importlib import resources
from typing import Any

POSTGRES_LOCK_KEY = 0x63686174_64000001
"""The advisory lock held while migrating, so nodes starting together migrate once."""


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` of every migration of ``dialect`` (``sqlite``, ``postgres``), in
    order."""
    folder = resources.files("chatd.store").joinpath("migrations", dialect)
    out = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text()))
    return sorted(out)


def migrate_sqlite(db: sqlite3.Connection, until: int | None = None) -> list[str]:
    """Apply every migration not yet applied (up to version ``until``: a file of an older
    version, for tests and benchmarks), each in its own transaction. Returns their names.

    ``secure_delete`` is turned on first, whatever the build's default, as chatd's own
    connections do: a migration that rebuilds a table drops the old one, whose pages would
    otherwise keep every body in the file as free pages, deleted ones included (SPEC.md 18.9)."""
    db.execute("PRAGMA secure_delete=ON")
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in migrations("sqlite"):
        if until is not None and version > until:
            break
        if version in done:
            continue
        # A migration that rebuilds a table other tables reference (SQLite cannot change a
        # CHECK in place) says so on its first line: foreign keys are off while it runs (the
        # pragma is ignored inside a transaction), and checked before it commits.
        rebuild = sql.startswith(REBUILDS)
        fks = db.execute("PRAGMA foreign_keys").fetchone()[0]
        if rebuild:
            db.execute("PRAGMA foreign_keys=OFF")
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                db.execute(statement)
            if rebuild and db.execute("PRAGMA foreign_key_check").fetchone() is not None:
                raise sqlite3.IntegrityError(f"{name} broke a foreign key")
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, datetime('now'))", (version, name)
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.execute(f"PRAGMA foreign_keys={'ON' if fks else 'OFF'}")
        applied.append(name)
    return applied


REBUILDS = "-- sqlite: rebuilds tables"
"""The first line of a SQLite migration that rebuilds a table (the 12 steps of SQLite's
"Making Other Kinds Of Table Schema Changes")."""


def _statements(sql: str) -> list[str]:
    """The statements of a script; a ``;`` inside a trigger body does not end its statement."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    out, pending = [], ""
    for piece in "\n".join(lines).split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending.strip())
            pending = ""
    return out


async def migrate_postgres(conn: Any) -> list[str]:
    """Apply every PostgreSQL migration not yet applied on the asyncpg connection ``conn``, each
    in its own transaction, under a session advisory lock: a second node starting at the same
    time waits, then finds everything applied. Returns the names applied here."""
    await conn.execute("SELECT pg_advisory_lock($1)", POSTGRES_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {int(r[0]) for r in await conn.fetch("SELECT version FROM schema_migrations")}
        applied = []
        for version, name, sql in migrations("postgres"):
            if version in done:
                continue
            async with conn.transaction():
                # A script of comments only (a version one dialect has nothing to do for,
                # numbered alike on both) is recorded without running: asyncpg fails on it.
                if _statements(sql):
                    await conn.execute(sql)  # no arguments: the simple protocol runs a script
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(name)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", POSTGRES_LOCK_KEY)
