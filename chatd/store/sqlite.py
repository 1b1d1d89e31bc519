"""The embedded store: one SQLite file in WAL mode, one writer with group commit.

What is SQLite's own (the transaction scripts are the concern modules', see ``chatd.store``):

* ``SQLiteSql``, the ``sql.Sql`` runner: sqlite3 underneath, so its coroutines never suspend,
  and ``sql.run_sync`` drives every script on the event loop's thread (no thread hop per
  statement, as aiosqlite or an executor per call would cost; no turn of the loop inside it).
* The writer: every write is an op queued for the group-commit writer (``store.writer``); a
  whole batch (every write queued since the last commit) is ONE transaction. Its statements run
  on the loop's thread, in chunks with a turn of the loop between them. A small batch commits
  on the loop too while commits take under 3 ms (``GroupCommitWriter._commit_on_loop``:
  a hand-off would cost more than the fsync it moved); a large batch's COMMIT, or a slow disk's,
  runs on one dedicated writer thread while the loop goes on serving sockets, and the next batch
  begins only after it. Commit order is queue order, and there is at most one thread hand-off
  per batch (running the statements on the thread as well measured slower: the two threads then
  pass the GIL back and forth at every statement). Reads use a second connection on the loop's
  thread (WAL: they never wait for the writer).
* Seqs come from an in-memory cache of each conversation's last seq, loaded from the messages
  table (its highest seq: no counter row is written per commit); after a failed commit, or a
  refused script that took seqs, the cache is dropped and reloaded, so seqs stay gapless.
* ``append``, the hot path: synchronous, one INSERT per message in the common case.

Only one process may write a database file: the writer takes an exclusive lock on a sidecar lock
file, and a second ``chatd`` on the same file refuses to start.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import json
import logging
import os
import re
import sqlite3
import struct
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

from chatproto import kinds

from chatd.core import rules
from chatd.errors import ChatdError, Conflict, NotFound
from chatd.store import Store, messages
from chatd.store.base import Appended, NewMessage, StoredMessage, StoreStatistics
from chatd.store.migrate import migrate_sqlite
from chatd.store.sql import CheckViolation, Op, OutOfRange, Sql, run_sync
from chatd.store.writer import BatchObserver, GroupCommitWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


class SQLiteSql:
    """``sql.Sql`` over one sqlite3 connection: synchronous underneath, so its coroutines
    never suspend (``sql.run_sync`` drives a script on the loop's thread)."""

    __slots__ = ("db",)

    last_seq = "(SELECT coalesce(max(seq), 0) FROM messages WHERE conv_id = c.id)"

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    @staticmethod
    def ids(value: Any) -> tuple[int, ...]:
        return _unpack_ids(value)

    def _run(self, sql: str, args: tuple[Any, ...]) -> sqlite3.Cursor:
        text, lists = _dialect(sql)
        if lists:
            args = tuple(json.dumps(a) if type(a) is list else a for a in args)
        try:
            return self.db.execute(text, args)
        except sqlite3.IntegrityError as exc:
            raise _refusal(exc) from None

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return self._run(sql, args).fetchall()

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return self._run(sql, args).fetchone()

    async def fetchval(self, sql: str, *args: Any) -> Any:
        row = self._run(sql, args).fetchone()
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        return self._run(sql, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            self.db.executemany(_dialect(sql)[0], rows)
        except sqlite3.IntegrityError as exc:
            raise _refusal(exc) from None

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        self.db.execute("SAVEPOINT s")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK TO s")
            self.db.execute("RELEASE s")
            raise
        self.db.execute("RELEASE s")

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        if self.db.in_transaction:  # the caller's transaction is the snapshot
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")


_LOCKS = re.compile(r" FOR (NO KEY )?UPDATE( SKIP LOCKED)?")


@functools.cache
def _dialect(sql: str) -> tuple[str, bool]:
    """SQLite's text of a statement (row locks dropped, ``COLLATE "C"`` read as BINARY: both
    are code point order for UTF-8, and SQLite knows no collation named C; ``= ANY(?)`` read
    with json_each) and whether it takes a list."""
    text = _LOCKS.sub("", sql).replace(' COLLATE "C"', " COLLATE BINARY")
    lists = "= ANY(?)" in text
    return text.replace("= ANY(?)", "IN (SELECT value FROM json_each(?))"), lists


def _refusal(exc: sqlite3.IntegrityError) -> Exception:
    if "CHECK" in str(exc):
        return CheckViolation(str(exc))
    if "cannot store" in str(exc):  # STRICT: a sum past 64 bits became REAL
        return OutOfRange(str(exc))
    return exc


class _Tx:
    """What an op sees (``sql.Tx``): the write connection (``db``, and ``sql`` over it), the seq
    allocator of the open batch, the cache of each conversation's bots with access
    ``addressed`` (exact: this process is the file's only writer, and every op that changes
    them drops the conversation's entry) and ``append``'s cache of senders' roles (exact too:
    ``_apply_batch`` empties it before any write that is not an append)."""

    __slots__ = ("addressed", "db", "last_seq", "roles", "sql", "taken")

    ROLES_MAX = 65536
    """Entries of the role cache at most (emptied when full)."""

    def __init__(
        self,
        sql: SQLiteSql,
        last_seq: dict[int, int],
        addressed: dict[int, tuple[int, ...]],
        roles: dict[tuple[int, int], tuple[str, str]],
    ) -> None:
        self.sql = sql
        self.db = sql.db
        self.last_seq = last_seq
        self.addressed = addressed
        self.roles = roles
        self.taken: set[int] = set()
        """Conversations a script took seqs of (forgotten if it is refused: see ``_apply_batch``)."""

    async def next_seq(self, conv: int) -> int:
        self.taken.add(conv)
        return self.take_seq(conv)

    def removals(self, conv: int) -> int:
        """0: one node (SQLite is never shared) publishes every removal and message itself, in
        commit order, so its hub has nothing to re-check."""
        return 0

    def touched(self, conv: int) -> None:
        self.addressed.pop(conv, None)

    def addressed_bots(self, conv: int) -> tuple[int, ...]:
        """The bot members of ``conv`` whose access is ``addressed``, ascending."""
        bots = self.addressed.get(conv)
        if bots is None:
            bots = self.addressed[conv] = tuple(
                int(r[0])
                for r in self.db.execute(
                    "SELECT account_id FROM members WHERE conv_id=? AND access='addressed'"
                    " ORDER BY account_id",
                    (conv,),
                )
            )
        return bots

    def take_seq(self, conv: int) -> int:
        """The next seq of ``conv``. The messages table is the only record of seqs (its highest
        seq is the conversation's last), so a commit writes no counter row besides the message."""
        seq = self.last_seq.get(conv)
        if seq is None:
            seq = _last_seq(self.db, conv)
        seq += 1
        self.last_seq[conv] = seq
        return seq

    def undo_seq(self, conv: int, seq: int) -> None:
        """Give back ``seq`` (the last one handed out) when its insert turned out a duplicate."""
        assert self.last_seq.get(conv) == seq
        self.last_seq[conv] = seq - 1

    def insert_message(self, m: StoredMessage) -> bool:
        """Insert ``m``, unless its cmid is stored (False then).

        The body is bound as a ``bytearray`` copy: sqlite3 binds ``int``, ``float``, ``str``
        and ``bytearray`` directly but sends every other value (``bytes`` included) through its
        adapter lookup first (a ``(type, protocol)`` key built and looked up, then
        ``__adapt__`` and ``__conform__`` looked for), ~3,300 instructions per message against
        ~200 for copying a 200-byte body. It is stored as the same BLOB."""
        if m.to or m.withheld or m.fc is not None:
            cur = self.db.execute(
                "INSERT OR IGNORE INTO messages (conv_id, seq, ts, sender, device, cmid, kind,"
                " body, to_accounts, withheld, fc) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    *(m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, bytearray(m.body)),
                    _pack_ids(m.to),
                    _pack_ids(m.withheld),
                    m.fc,
                ),
            )
        else:  # the common case keeps its statement (and its cached plan) as it was
            cur = self.db.execute(
                "INSERT OR IGNORE INTO messages (conv_id, seq, ts, sender, device, cmid, kind,"
                " body) VALUES (?,?,?,?,?,?,?,?)",
                (m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, bytearray(m.body)),
            )
        return cur.rowcount == 1

    def system_message(self, conv: int, now: int, event: kinds.SystemEvent) -> StoredMessage:
        """Append a system message now (for a plain-function op, as tests tamper with)."""
        return run_sync(messages.system_message(self, conv, now, event))

    def role(self, conv: int, account: int) -> tuple[str, str]:
        """``append``'s check: ``(kind, role)`` of a member; ``NotFound`` for a non-member."""
        row = self.db.execute(
            "SELECT c.kind, m.role FROM members m JOIN conversations c ON c.id = m.conv_id"
            " WHERE m.conv_id=? AND m.account_id=?",
            (conv, account),
        ).fetchone()
        if row is None:
            raise NotFound("no such conversation")
        return str(row[0]), str(row[1])

    def sender_role(self, conv: int, account: int) -> tuple[str, str]:
        """``role``, cached for ``append`` (one statement less per message): an append changes
        no membership, role or conversation, and ``_apply_batch`` empties the cache before
        running any other write, and when a batch fails."""
        key = (conv, account)
        found = self.roles.get(key)
        if found is None:
            found = self.role(conv, account)  # a non-member is never cached
            if len(self.roles) >= self.ROLES_MAX:
                self.roles.clear()
            self.roles[key] = found
        return found


def _commit(db: sqlite3.Connection) -> float:
    """COMMIT (on the writer thread); seconds it took."""
    started = time.perf_counter()
    db.execute("COMMIT")
    return time.perf_counter() - started


class _Checkpointer:
    """Checkpoints the WAL into the database file every ``EVERY`` commits on its own connection
    and thread, instead of SQLite's automatic checkpoint, which runs inside the COMMIT that
    passes 1,000 WAL pages: a few milliseconds every ~100 small commits, during which that
    commit's acks wait (and, for a commit on the loop, everything else). PASSIVE: it never waits
    for the writer or the readers, so commits go on meanwhile; the frames they add are copied by
    a short catch-up on the writer's connection, on the writer thread, before its next
    transaction (``catch_up_due``), after which the writer starts the WAL over from its
    beginning (it would otherwise grow as long as every checkpoint overlaps a commit)."""

    EVERY = 500
    """Commits between checkpoints: ~5,000 WAL pages at the ~10 of a small commit (a WAL of ~20
    MiB at most). A checkpoint copies the newest frame of each page it backfills, and small
    commits keep rewriting the same few pages (the table's last leaf and the cmid index's, each
    conversation's leaf of the (conv_id, seq) index): five times rarer, it copies far fewer
    pages per message. At 2,000 msgs/s in groups of 10 (``bench_relay.py --count``) every 100
    commits cost 2.4 system calls per delivery, every 500 2.2 (the checkpoint's
    ``pread64``/``pwrite64``), every 1,000 no fewer."""

    def __init__(self, db: sqlite3.Connection) -> None:
        db.execute("PRAGMA wal_autocheckpoint=0")
        self._db = db
        self._thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="sqlite-checkpoint"
        )
        self._running: concurrent.futures.Future[None] | None = None
        self._commits = 0

    def committed(self) -> None:
        self._commits += 1
        if self._commits >= self.EVERY and self._running is None:
            self._commits = 0
            self._running = self._thread.submit(self._checkpoint)

    def catch_up_due(self) -> bool:
        """True once, when a checkpoint is done: before its next transaction the writer copies
        what was committed during it (a few pages; ``_checkpoint`` on its own connection)."""
        running = self._running
        if running is not None and running.done():
            self._running = None
            return True
        return False

    def _checkpoint(self) -> None:
        _checkpoint(self._db)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._db.close()


def _checkpoint(db: sqlite3.Connection) -> None:
    try:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    except sqlite3.Error as exc:  # the next one tries again; closing checkpoints anyway
        log.warning("checkpoint failed", extra={"error": repr(exc)})


def _connect(path: str, *, readonly: bool, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA foreign_keys=ON")
    if readonly:
        db.execute("PRAGMA query_only=ON")
    else:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        # What a write removes is overwritten with zeros, overflow pages included: the body of
        # a message deleted for everyone leaves the file (SPEC.md 18.9). Many builds (Debian's)
        # default to it already; others do not.
        db.execute("PRAGMA secure_delete=ON")
    return db


class SQLiteStore(Store, GroupCommitWriter[Op[Any]]):
    """``Store`` over one SQLite file. Run ``run()`` in the owner's TaskGroup after ``open()``."""

    CHUNK = 64
    """Ops run between two turns of the loop inside a batch (~2 ms of work at most)."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        max_batch: int = 1024,
        queue_bound: int = 16384,
        commit_interval: float = 0.0,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError("synchronous must be FULL, NORMAL or EXTRA")
        super().__init__(
            max_batch=max_batch,
            queue_bound=queue_bound,
            commit_interval=commit_interval,
            on_batch=on_batch,
        )
        self.path = path
        self._synchronous = synchronous.upper()
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._last_seq: dict[int, int] = {}
        self._addressed: dict[int, tuple[int, ...]] = {}
        self._roles: dict[tuple[int, int], tuple[str, str]] = {}
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._checkpointer: _Checkpointer | None = None
        self._sql: SQLiteSql | None = None
        self._reader: SQLiteSql | None = None

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Take the file's writer lock, connect, and apply pending migrations."""
        self._lock_fd = self._take_lock()
        self._w = _connect(self.path, readonly=False, synchronous=self._synchronous)
        applied = migrate_sqlite(self._w)
        if applied:
            log.info("migrated", extra={"applied": applied, "db": self.path})
            # A migration that copies a table leaves a WAL as large as the table: into the
            # file with it, and the WAL file back to nothing, before serving (no reader yet).
            self._w.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._r = _connect(self.path, readonly=True, synchronous="NORMAL")
        self._sql, self._reader = SQLiteSql(self._w), SQLiteSql(self._r)
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        if self.path != ":memory:":
            self._w.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's job
            self._checkpointer = _Checkpointer(
                _connect(self.path, readonly=False, synchronous=self._synchronous)
            )

    def _take_lock(self) -> int | None:
        if self.path == ":memory:":
            return None
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(
                f"{self.path} is in use by another chatd process; one SQLite file has one writer"
                " (use PostgreSQL to run several nodes)"
            ) from None
        return fd

    async def _apply_batch(self, batch: list[Op[Any]]) -> list[Any]:
        """One transaction for the whole batch: the ops run here, on the loop's thread, in
        chunks of ``CHUNK`` with a turn of the loop between chunks (the transaction stays open;
        only this writer uses the write connection), and the COMMIT (the fsync) runs here too
        or, for a large batch or a slow disk, on the writer thread while the loop goes on."""
        db = self._w
        assert db is not None
        assert self._sql is not None
        tx = _Tx(self._sql, self._last_seq, self._addressed, self._roles)
        roles = self._roles
        results: list[Any] = []
        if self._checkpointer is not None and self._checkpointer.catch_up_due():
            await self._on_thread(_checkpoint, db)  # its fsyncs, off the loop
        db.execute("BEGIN IMMEDIATE")
        try:
            for i, op in enumerate(batch):
                if i and not i % self.CHUNK:
                    await asyncio.sleep(0)
                try:
                    fn = op.fn
                    if fn is None:  # ``append``: the hot path
                        result = _append(tx, op.message)
                    else:
                        roles.clear()  # any other write may change a membership or a role
                        result = fn(tx)
                        if type(result) is types.CoroutineType:
                            result = run_sync(result)  # on this thread, no turn of the loop
                    results.append(result)
                except ChatdError as refused:
                    for conv in tx.taken:  # reload: its savepoint gave back what it took
                        self._last_seq.pop(conv, None)
                    results.append(refused)
                tx.taken.clear()
            if self._thread is None or self._commit_on_loop(len(batch)):
                started = time.perf_counter()
                db.execute("COMMIT")
                self._commit_took(time.perf_counter() - started, on_loop=True)
                if self._checkpointer is not None:
                    self._checkpointer.committed()
            else:
                done = self._running_loop().run_in_executor(self._thread, _commit, db)
                try:
                    self._commit_took(await asyncio.shield(done), on_loop=False)
                    if self._checkpointer is not None:
                        self._checkpointer.committed()
                except asyncio.CancelledError:
                    await done  # never ROLLBACK under a COMMIT still running on the thread
                    raise
        except BaseException:
            self._last_seq.clear()  # seqs handed out in this batch were never stored
            self._addressed.clear()  # nor were the access changes read into it
            roles.clear()  # nor the memberships
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return results

    async def _on_thread(self, fn: Callable[[sqlite3.Connection], T], db: sqlite3.Connection) -> T:
        """``fn(db)`` on the writer thread (on the loop's when there is none)."""
        if self._thread is None:
            return fn(db)
        done = self._running_loop().run_in_executor(self._thread, fn, db)
        try:
            return await asyncio.shield(done)
        except asyncio.CancelledError:
            await done  # the connection is the thread's until it returns
            raise

    async def aclose(self) -> None:
        """Refuse new writes, let the writer commit what is queued, then close the files."""
        if not await self._drain():
            return
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._w is not None:
            self._w.close()
        if self._r is not None:
            self._r.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)

    def statistics(self) -> StoreStatistics:
        return StoreStatistics("sqlite", self.queued)

    # ------------------------------------------------------------------ plumbing

    def _submit(self, fn: Callable[[_Tx], Awaitable[T] | T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._future()
        self._enqueue(Op(fn, future))
        return future

    async def _read(self, fn: Callable[[Sql], Awaitable[T]]) -> T:
        assert self._reader is not None
        return run_sync(fn(self._reader))  # type: ignore[arg-type]

    # ------------------------------------------------------------------ messages

    def append(
        self, message: NewMessage, then: Callable[[asyncio.Future[Appended]], None] | None = None
    ) -> asyncio.Future[Appended]:
        """Queue ``message`` for the next commit: an op without a function (no closure per
        message), run by ``_apply_batch`` as ``_append``."""
        future: asyncio.Future[Appended] = self._future()
        self._enqueue(Op(None, future, message, then))
        return future


def _append(tx: _Tx, m: NewMessage) -> Appended:
    """Append ``m`` (``SQLiteStore.append``) inside the batch's transaction."""
    kind, role = tx.sender_role(m.conv, m.sender)
    rules.check_send(kind, role)
    # Insert first: a resend is rare, so the common path costs one statement. The unique
    # (cmid, device, conv) index turns a resend into "no row inserted".
    seq = tx.take_seq(m.conv)
    bots = tx.addressed_bots(m.conv)
    withheld = rules.withheld_from(m.kind, m.sender, m.to, bots) if bots else ()
    stored = StoredMessage(
        m.conv, seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body, m.to, withheld, m.fc
    )
    if tx.insert_message(stored):
        return Appended(stored, duplicate=False)
    tx.undo_seq(m.conv, seq)
    prior = tx.db.execute(
        "SELECT seq, ts, kind, body, to_accounts, withheld, fc FROM messages"
        " WHERE conv_id=? AND device=? AND cmid=?",
        (m.conv, m.device, m.cmid),
    ).fetchone()
    if prior[2] != m.kind or prior[3] != m.body or _unpack_ids(prior[4]) != m.to:
        raise Conflict("this cmid was already used for another message")
    stored = StoredMessage(
        *(m.conv, int(prior[0]), int(prior[1]), m.sender, m.device, m.cmid, m.kind),
        m.body,
        m.to,
        _unpack_ids(prior[5]),
        None if prior[6] is None else bytes(prior[6]),  # the first send's commitment
    )
    return Appended(stored, duplicate=True)


def _last_seq(db: sqlite3.Connection, conv: int) -> int:
    row = db.execute("SELECT max(seq) FROM messages WHERE conv_id=?", (conv,)).fetchone()
    return int(row[0] or 0)


def _pack_ids(ids: tuple[int, ...]) -> bytes | None:
    """Account ids as big-endian u64s (NULL when there are none): compact and ordered."""
    return struct.pack(f">{len(ids)}Q", *ids) if ids else None


def _unpack_ids(blob: bytes | None) -> tuple[int, ...]:
    if not blob:
        return ()
    return struct.unpack(f">{len(blob) // 8}Q", blob)
