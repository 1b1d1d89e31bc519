"""``chatd backup``: an online copy of a SQLite store while the server keeps writing.

sqlite3's backup API copies every page in one step (``pages=-1``), inside one read transaction:
the copy is the database as of one commit, and in WAL mode a reader blocks no writer, so the
server keeps accepting and acking meanwhile. The copy is written beside the destination as
``DEST.part``, checked with ``PRAGMA integrity_check``, made durable, then renamed into place,
so a crash never leaves a half-written file under the final name.

PostgreSQL has its own tools (``pg_dump``, base backups with WAL archiving for point-in-time
recovery): docs/operations.md says how; this command refuses a ``postgresql://`` store.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from chatd.errors import ChatdError


class BackupError(ChatdError):
    """The backup could not be made; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    pages: int
    bytes: int
    seconds: float


def backup_sqlite(db: str, dest: str | Path) -> Backup:
    """Copy the SQLite database ``db`` to the new file ``dest`` (never overwritten)."""
    if db.startswith(("postgresql://", "postgres://")):
        raise BackupError(
            "the store is PostgreSQL: back it up with pg_dump (or a base backup with WAL"
            " archiving for point-in-time recovery); see docs/operations.md"
        )
    if db == ":memory:" or not Path(db).is_file():
        raise BackupError(f"no SQLite database at {db}")
    target = Path(dest)
    if target.exists():
        raise BackupError(f"{target} exists; a backup never overwrites a file")
    part = target.with_name(target.name + ".part")
    part.unlink(missing_ok=True)
    started = time.monotonic()
    src = sqlite3.connect(db, timeout=30)
    try:
        out = sqlite3.connect(part)
        try:
            src.backup(out)  # all pages in one step: one consistent snapshot
            check = out.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
            out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal
            pages = int(out.execute("PRAGMA page_count").fetchone()[0])
        finally:
            out.close()
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(part, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)
    return Backup(target, pages, target.stat().st_size, time.monotonic() - started)
