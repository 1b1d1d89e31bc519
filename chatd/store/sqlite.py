"""The embedded store: one SQLite file in WAL mode, one writer with group commit.

Every write is an op queued for the group-commit writer (``store.writer``): a whole batch
(membership check, idempotency look-up, seq assignment, insert, for every write queued since the
last commit) is ONE transaction. Its statements run on the event loop's thread, in chunks with a
turn of the loop between them; the COMMIT of a large batch, where the fsync is, runs on one
dedicated writer thread while the loop goes on serving sockets, and the next batch begins only
after it. So the loop does not wait for the disk, commit order is queue order, and there is one
thread hand-off per batch (not per statement, as aiosqlite or an executor per call would cost;
running the statements on the thread as well measured slower: the two threads then pass the GIL
back and forth at every statement). A small batch commits on the loop while commits take under a
millisecond (``GroupCommitWriter._commit_on_loop``): there the hand-off cost more CPU and latency
than the fsync it moved. Reads use a second connection on the loop's thread (WAL: they never wait
for the writer).

Seqs come from an in-memory cache of each conversation's last seq, loaded from the messages
table (its highest seq); after a failed commit the cache is dropped and reloaded, so seqs stay
gapless.
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
from dataclasses import replace
from typing import Any, Generic, TypeVar

import msgspec
from chatproto import kinds

from chatd.core import rules
from chatd.errors import (
    ChatdError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
)
from chatd.store.accounts import Accounts
from chatd.store.base import (
    Appended,
    BotProfileRow,
    ConvRow,
    CreatedConv,
    LogRow,
    MemberRow,
    Membership,
    MembershipChange,
    NewMessage,
    SignedChange,
    StoredMessage,
)
from chatd.store.keys import Keys
from chatd.store.ledger_sqlite import SQLiteLedger
from chatd.store.migrate import migrate_sqlite
from chatd.store.sql import CheckViolation, OutOfRange, Sql, run_sync
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
    """SQLite's text of a statement (row locks dropped, ``= ANY(?)`` read with json_each) and
    whether it takes a list."""
    text = _LOCKS.sub("", sql)
    lists = "= ANY(?)" in text
    return text.replace("= ANY(?)", "IN (SELECT value FROM json_each(?))"), lists


def _refusal(exc: sqlite3.IntegrityError) -> Exception:
    if "CHECK" in str(exc):
        return CheckViolation(str(exc))
    if "cannot store" in str(exc):  # STRICT: a sum past 64 bits became REAL
        return OutOfRange(str(exc))
    return exc


class _Op(Generic[T]):
    """One queued write: ``fn`` (a ``sql.Tx`` script, or a plain function of ``_Tx``) runs on
    the loop's thread inside the batch transaction.

    ``fn`` must raise a ``ChatdError`` only before it writes anything (or inside a savepoint),
    so a refused op leaves the transaction as it found it and the rest of the batch commits.
    """

    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[_Tx], Any], future: asyncio.Future[T]) -> None:
        self.fn = fn
        self.future = future


class _Tx:
    """What an op sees (``sql.Tx``): the write connection (``db``, and ``sql`` over it), the seq
    allocator of the open batch, and the cache of each conversation's bots with access
    ``addressed`` (exact: this process is the file's only writer, and every op that changes
    them drops the conversation's entry)."""

    __slots__ = ("addressed", "db", "last_seq", "sql", "taken")

    def __init__(
        self,
        sql: SQLiteSql,
        last_seq: dict[int, int],
        addressed: dict[int, tuple[int, ...]],
    ) -> None:
        self.sql = sql
        self.db = sql.db
        self.last_seq = last_seq
        self.addressed = addressed
        self.taken: set[int] = set()
        """Conversations a script took seqs of (forgotten if it is refused: see ``_apply_batch``)."""

    async def next_seq(self, conv: int) -> int:
        self.taken.add(conv)
        return self.take_seq(conv)

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

    def is_bot(self, account: int) -> bool:
        row = self.db.execute("SELECT type FROM accounts WHERE id=?", (account,)).fetchone()
        return row is not None and row[0] == "bot"

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

    def insert_message(self, m: StoredMessage, *, if_new: bool = False) -> bool:
        """Insert ``m``; with ``if_new``, skip (and return False) when its cmid is stored."""
        if m.to or m.withheld:
            cur = self.db.execute(
                ("INSERT OR IGNORE" if if_new else "INSERT")
                + " INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body,"
                " to_accounts, withheld) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    *(m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body),
                    _pack_ids(m.to),
                    _pack_ids(m.withheld),
                ),
            )
        else:  # the common case keeps its statement (and its cached plan) as it was
            cur = self.db.execute(
                ("INSERT OR IGNORE" if if_new else "INSERT")
                + " INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (m.conv, m.seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body),
            )
        return cur.rowcount == 1

    def system_message(self, conv: int, now: int, event: kinds.SystemEvent) -> StoredMessage:
        _, body = kinds.encode_content(event)
        m = StoredMessage(conv, self.take_seq(conv), now, 0, 0, None, "system", body)
        self.insert_message(m)
        return m

    def log_head(self, conv: int) -> rules.LogHead | None:
        row = self.db.execute(
            "SELECT epoch, hash, group_id FROM member_log WHERE conv_id=?"
            " ORDER BY epoch DESC LIMIT 1",
            (conv,),
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))

    def link(self, conv: int, entry: SignedChange | None, *, create: bool = False) -> None:
        """Refuse (before anything is written) a change that does not extend the log."""
        rules.check_link(self.log_head(conv), None if entry is None else entry.link, create=create)
        if entry is not None and entry.epoch == 1:
            self.group_free(entry.group)

    def group_free(self, group: bytes) -> None:
        if self.db.execute(
            "SELECT 1 FROM member_log WHERE group_id=? AND epoch=1", (group,)
        ).fetchone():
            raise Conflict("this membership log's group id belongs to another conversation")

    def signed_message(
        self, conv: int, now: int, event: kinds.SystemEvent, entry: SignedChange | None
    ) -> StoredMessage:
        """The change's system message, carrying its signed entry, and the log row."""
        if entry is None:
            return self.system_message(conv, now, event)
        m = self.system_message(
            conv, now, msgspec.structs.replace(event, entry=entry.body, sig=entry.sig)
        )
        self.log(conv, m.seq, entry)
        return m

    def log(self, conv: int, seq: int, entry: SignedChange) -> None:
        self.db.execute(
            "INSERT INTO member_log (conv_id, epoch, seq, hash, group_id, body, sig)"
            " VALUES (?,?,?,?,?,?,?)",
            (conv, entry.epoch, seq, entry.hash, entry.group, entry.body, entry.sig),
        )

    def role(self, conv: int, account: int) -> tuple[str, str]:
        """``(kind, role)`` of a member; ``NotFound`` for a non-member, as for no conversation."""
        row = self.db.execute(
            "SELECT c.kind, m.role FROM members m JOIN conversations c ON c.id = m.conv_id"
            " WHERE m.conv_id=? AND m.account_id=?",
            (conv, account),
        ).fetchone()
        if row is None:
            raise NotFound("no such conversation")
        return str(row[0]), str(row[1])

    def conv_row(self, conv: int, account: int) -> ConvRow:
        """The conversation as ``account`` sees it, this batch's writes included."""
        return _conv_row(self.db, conv, account, 0)

    def target_role(self, conv: int, account: int) -> str:
        row = self.db.execute(
            "SELECT role FROM members WHERE conv_id=? AND account_id=?", (conv, account)
        ).fetchone()
        if row is None:
            raise NotFound("not a member")
        return str(row[0])


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
    a short catch-up on the writer's connection before its next transaction (``catch_up``),
    after which the writer starts the WAL over from its beginning (it would otherwise grow as
    long as every checkpoint overlaps a commit)."""

    EVERY = 32

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

    def catch_up(self, writer: sqlite3.Connection) -> None:
        """Between two transactions of ``writer``: once a checkpoint is done, copy what was
        committed during it (a few pages)."""
        running = self._running
        if running is not None and running.done():
            self._running = None
            _checkpoint(writer)

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
    return db


class SQLiteStore(Accounts, Keys, SQLiteLedger, GroupCommitWriter["_Op[Any]"]):
    """``Store`` over one SQLite file. Run ``run()`` in the owner's TaskGroup after ``open()``.
    The ledger's part (wallets, postings, red packets, requests) is ``SQLiteLedger``."""

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

    async def _apply_batch(self, batch: list[_Op[Any]]) -> list[Any]:
        """One transaction for the whole batch: the ops run here, on the loop's thread, in
        chunks of ``CHUNK`` with a turn of the loop between chunks (the transaction stays open;
        only this writer uses the write connection), and the COMMIT (the fsync) runs on the
        writer thread while the loop goes on."""
        db = self._w
        assert db is not None
        assert self._sql is not None
        tx = _Tx(self._sql, self._last_seq, self._addressed)
        results: list[Any] = []
        if self._checkpointer is not None:
            self._checkpointer.catch_up(db)
        db.execute("BEGIN IMMEDIATE")
        try:
            for i, op in enumerate(batch):
                if i and not i % self.CHUNK:
                    await asyncio.sleep(0)
                try:
                    result = op.fn(tx)
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
                done = asyncio.get_running_loop().run_in_executor(self._thread, _commit, db)
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
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise
        return results

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

    async def ping(self) -> bool:
        try:
            await self._read(lambda db: db.fetchval("SELECT 1"))
        except Exception:
            return False
        return self.healthy and not self._closing

    # ------------------------------------------------------------------ plumbing

    def _submit(self, fn: Callable[[_Tx], Awaitable[T] | T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Op(fn, future))
        return future

    async def _write(self, fn: Callable[[_Tx], Awaitable[T] | T]) -> T:
        return await self._submit(fn)

    async def _read(self, fn: Callable[[Sql], Awaitable[T]]) -> T:
        assert self._reader is not None
        return run_sync(fn(self._reader))  # type: ignore[arg-type]

    async def _read_raw(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._r
        assert db is not None
        return fn(db)

    # ------------------------------------------------------------------ conversations

    async def create_conversation(
        self,
        kind: str,
        title: str,
        creator: int,
        members: Sequence[int],
        now: int,
        entry: SignedChange | None = None,
    ) -> CreatedConv:
        others = sorted(set(members) - {creator})

        def op(tx: _Tx) -> CreatedConv:
            db = tx.db
            bots = set()
            for account in (creator, *others):
                row = db.execute("SELECT type FROM accounts WHERE id=?", (account,)).fetchone()
                if row is None:
                    raise NotFound(f"no account {account}")
                if row[0] == "bot":
                    bots.add(account)
            key = None
            if kind == "direct":
                if len(others) != 1 or len(set(members)) != 1:
                    raise Invalid("a direct conversation has exactly one other account")
                key = rules.direct_key(creator, others[0])
                row = db.execute(
                    "SELECT id FROM conversations WHERE direct_key=?", (key,)
                ).fetchone()
                if row is not None:
                    existing = int(row[0])
                    if entry is not None and tx.log_head(existing) is None:
                        # A direct conversation from before logs: its first entry, signed now.
                        rules.check_roster(kind, creator, others, bots, entry.roster)
                        tx.link(existing, entry, create=True)
                        tx.log(existing, 0, entry)
                    return CreatedConv(tx.conv_row(existing, creator), (), existed=True)
            if entry is not None:
                rules.check_roster(kind, creator, others, bots, entry.roster)
                tx.group_free(entry.group)
            cur = db.execute(
                "INSERT INTO conversations (kind, title, created_at, direct_key) VALUES (?,?,?,?)",
                (kind, "" if kind == "direct" else title, now, key),
            )
            conv = int(cur.lastrowid or 0)
            created = tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(
                    event="created", actor=creator, title=title if kind != "direct" else ""
                ),
                entry,
            )
            creator_role = "member" if kind == "direct" else "owner"
            access = rules.initial_access(kind)
            db.executemany(
                "INSERT INTO members (conv_id, account_id, role, joined_seq, access)"
                " VALUES (?,?,?,?,?)",
                [
                    (conv, a, role, created.seq, access if a in bots else rules.ALL)
                    for a, role in ((creator, creator_role), *((a, "member") for a in others))
                ],
            )
            tx.addressed.pop(conv, None)
            return CreatedConv(tx.conv_row(conv, creator), (created,))

        return await self._write(op)

    async def conversation(self, conv: int, account: int, device: int) -> ConvRow:
        def q(db: sqlite3.Connection) -> ConvRow:
            if not db.execute(
                "SELECT 1 FROM members WHERE conv_id=? AND account_id=?", (conv, account)
            ).fetchone():
                raise NotFound("no such conversation")
            return _conv_row(db, conv, account, device, with_members=True)

        return await self._read_raw(q)

    async def conversations_of(self, account: int, device: int) -> list[ConvRow]:
        def q(db: sqlite3.Connection) -> list[ConvRow]:
            rows = db.execute(
                "SELECT c.id, c.kind, c.title,"
                " (SELECT coalesce(max(seq), 0) FROM messages WHERE conv_id = c.id), m.role,"
                " (SELECT count(*) FROM members x WHERE x.conv_id = c.id),"
                " coalesce(k.read, 0), coalesce(k.delivered, 0), m.joined_seq,"
                " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END"
                " FROM members m JOIN conversations c ON c.id = m.conv_id"
                " JOIN accounts a ON a.id = m.account_id"
                " LEFT JOIN cursors k ON k.conv_id = c.id AND k.device_id = ?"
                " WHERE m.account_id = ? ORDER BY c.id",
                (device, account),
            ).fetchall()
            return [_conv(r) for r in rows]

        return await self._read_raw(q)

    async def conversation_ids_of(self, account: int) -> list[int]:
        rows = await self._read_raw(
            lambda db: db.execute(
                "SELECT conv_id FROM members WHERE account_id=?", (account,)
            ).fetchall()
        )
        return [int(r[0]) for r in rows]

    async def member_kind(self, conv: int, account: int) -> tuple[str, str] | None:
        row = await self._read_raw(
            lambda db: db.execute(
                "SELECT c.kind, m.role FROM members m JOIN conversations c ON c.id = m.conv_id"
                " WHERE m.conv_id=? AND m.account_id=?",
                (conv, account),
            ).fetchone()
        )
        return (str(row[0]), str(row[1])) if row else None

    async def membership(self, conv: int, account: int) -> Membership | None:
        row = await self._read_raw(
            lambda db: db.execute(
                "SELECT c.kind, m.role, m.joined_seq, a.type, m.access FROM members m"
                " JOIN conversations c ON c.id = m.conv_id JOIN accounts a ON a.id = m.account_id"
                " WHERE m.conv_id=? AND m.account_id=?",
                (conv, account),
            ).fetchone()
        )
        if row is None:
            return None
        return Membership(str(row[0]), str(row[1]), int(row[2]), row[3] == "bot", str(row[4]))

    async def contacts_of(self, account: int) -> list[int]:
        """Accounts sharing a direct conversation or group with ``account`` (presence audience)."""
        rows = await self._read_raw(
            lambda db: db.execute(
                "SELECT DISTINCT o.account_id FROM members m"
                " JOIN conversations c ON c.id = m.conv_id AND c.kind IN ('direct', 'group')"
                " JOIN members o ON o.conv_id = m.conv_id AND o.account_id != m.account_id"
                " WHERE m.account_id = ?",
                (account,),
            ).fetchall()
        )
        return [int(r[0]) for r in rows]

    async def invite(
        self, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        def op(tx: _Tx) -> MembershipChange:
            kind, role = tx.role(conv, actor)
            rules.check_manage_members(kind, role)
            if not tx.db.execute("SELECT 1 FROM accounts WHERE id=?", (account,)).fetchone():
                raise NotFound(f"no account {account}")
            bot = tx.is_bot(account)
            if bot:
                rules.check_add_bot(kind, role)
            if tx.db.execute(
                "SELECT 1 FROM members WHERE conv_id=? AND account_id=?", (conv, account)
            ).fetchone():
                raise Conflict("already a member")
            tx.link(conv, entry)
            if entry is not None:
                rules.check_new_member_access(kind, bot, entry.access)
            access = rules.initial_access(kind) if bot else rules.ALL
            m = tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(
                    event="joined", actor=actor, account=account, access=access if bot else ""
                ),
                entry,
            )
            tx.db.execute(
                "INSERT INTO members (conv_id, account_id, role, joined_seq, access)"
                " VALUES (?,?,?,?,?)",
                (conv, account, "member", m.seq, access),
            )
            tx.addressed.pop(conv, None)
            return MembershipChange(conv, m, added=(account,))

        return await self._write(op)

    async def remove(
        self, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        def op(tx: _Tx) -> MembershipChange:
            kind, role = tx.role(conv, actor)
            if account == actor:
                raise Invalid("use leave to leave a conversation")
            rules.check_remove(kind, role, tx.target_role(conv, account))
            tx.link(conv, entry)
            m = tx.signed_message(
                conv, now, kinds.SystemEvent(event="removed", actor=actor, account=account), entry
            )
            tx.db.execute("DELETE FROM members WHERE conv_id=? AND account_id=?", (conv, account))
            tx.addressed.pop(conv, None)
            return MembershipChange(conv, m, removed=(account,))

        return await self._write(op)

    async def leave(
        self, conv: int, actor: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        def op(tx: _Tx) -> MembershipChange:
            kind, role = tx.role(conv, actor)
            rules.check_leave(kind)
            tx.link(conv, entry)
            m = tx.signed_message(conv, now, kinds.SystemEvent(event="left", actor=actor), entry)
            tx.db.execute("DELETE FROM members WHERE conv_id=? AND account_id=?", (conv, actor))
            tx.addressed.pop(conv, None)
            if role == "owner":
                remaining = tx.db.execute(
                    "SELECT account_id, role, joined_seq FROM members WHERE conv_id=?", (conv,)
                ).fetchall()
                heir = rules.next_owner([(int(a), str(r), int(j)) for a, r, j in remaining])
                if heir is not None:
                    tx.db.execute(
                        "UPDATE members SET role='owner' WHERE conv_id=? AND account_id=?",
                        (conv, heir),
                    )
                    tx.system_message(
                        conv,
                        now,
                        kinds.SystemEvent(event="role", actor=0, account=heir, role="owner"),
                    )
            return MembershipChange(conv, m, removed=(actor,))

        return await self._write(op)

    async def set_role(
        self,
        conv: int,
        actor: int,
        account: int,
        role: str,
        now: int,
        entry: SignedChange | None = None,
    ) -> MembershipChange:
        def op(tx: _Tx) -> MembershipChange:
            kind, actor_role = tx.role(conv, actor)
            rules.check_set_role(kind, actor_role, tx.target_role(conv, account))
            tx.link(conv, entry)
            m = tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(event="role", actor=actor, account=account, role=role),
                entry,
            )
            tx.db.execute(
                "UPDATE members SET role=? WHERE conv_id=? AND account_id=?", (role, conv, account)
            )
            return MembershipChange(conv, m)

        return await self._write(op)

    async def rename(self, conv: int, actor: int, title: str, now: int) -> MembershipChange:
        def op(tx: _Tx) -> MembershipChange:
            kind, role = tx.role(conv, actor)
            rules.check_rename(kind, role)
            m = tx.system_message(
                conv, now, kinds.SystemEvent(event="renamed", actor=actor, title=title)
            )
            tx.db.execute("UPDATE conversations SET title=? WHERE id=?", (title, conv))
            return MembershipChange(conv, m)

        return await self._write(op)

    async def member_log(self, conv: int, after: int, limit: int) -> list[LogRow]:
        rows = await self._read_raw(
            lambda db: db.execute(
                "SELECT epoch, seq, body, sig FROM member_log WHERE conv_id=? AND epoch>?"
                " ORDER BY epoch LIMIT ?",
                (conv, after, limit),
            ).fetchall()
        )
        return [LogRow(int(e), int(q), bytes(b), bytes(g)) for e, q, b, g in rows]

    async def log_head(self, conv: int) -> rules.LogHead | None:
        row = await self._read_raw(
            lambda db: db.execute(
                "SELECT epoch, hash, group_id FROM member_log WHERE conv_id=?"
                " ORDER BY epoch DESC LIMIT 1",
                (conv,),
            ).fetchone()
        )
        return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))

    # ------------------------------------------------------------------ bots

    async def set_bot_access(
        self,
        conv: int,
        actor: int,
        account: int,
        access: str,
        now: int,
        entry: SignedChange | None = None,
    ) -> MembershipChange | None:
        def op(tx: _Tx) -> MembershipChange | None:
            kind, role = tx.role(conv, actor)
            rules.check_set_bot_access(kind, role)
            row = tx.db.execute(
                "SELECT m.access, a.type FROM members m JOIN accounts a ON a.id = m.account_id"
                " WHERE m.conv_id=? AND m.account_id=?",
                (conv, account),
            ).fetchone()
            if row is None:
                raise NotFound("not a member")
            if row[1] != "bot":
                raise Invalid("only a bot member has an access")
            if row[0] == access:
                return None
            tx.link(conv, entry)
            m = tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(event="bot_access", actor=actor, account=account, access=access),
                entry,
            )
            tx.db.execute(
                "UPDATE members SET access=? WHERE conv_id=? AND account_id=?",
                (access, conv, account),
            )
            tx.addressed.pop(conv, None)
            return MembershipChange(conv, m)

        return await self._write(op)

    async def set_bot_profile(self, account: int, body: bytes, now: int) -> None:
        def op(tx: _Tx) -> None:
            if not tx.is_bot(account):
                raise Forbidden("only a bot account has a bot profile")
            tx.db.execute(
                "INSERT INTO bot_profiles (account_id, body, updated_at) VALUES (?,?,?)"
                " ON CONFLICT (account_id) DO UPDATE SET body=excluded.body,"
                " updated_at=excluded.updated_at",
                (account, body, now),
            )

        await self._write(op)

    async def bot_profile(self, account: int) -> BotProfileRow | None:
        row = await self._read_raw(
            lambda db: db.execute(
                "SELECT a.type, p.body, p.updated_at FROM accounts a"
                " LEFT JOIN bot_profiles p ON p.account_id = a.id WHERE a.id=?",
                (account,),
            ).fetchone()
        )
        if row is None or row[0] != "bot":
            return None
        return BotProfileRow(account, bytes(row[1] or b""), int(row[2] or 0))

    # ------------------------------------------------------------------ messages

    def append(self, message: NewMessage) -> asyncio.Future[Appended]:
        m = message

        def op(tx: _Tx) -> Appended:
            kind, role = tx.role(m.conv, m.sender)
            rules.check_send(kind, role)
            # Insert first: a resend is rare, so the common path costs one statement. The unique
            # (conv, device, cmid) index turns a resend into "no row inserted".
            seq = tx.take_seq(m.conv)
            bots = tx.addressed_bots(m.conv)
            withheld = rules.withheld_from(m.kind, m.sender, m.to, bots) if bots else ()
            stored = StoredMessage(
                m.conv, seq, m.ts, m.sender, m.device, m.cmid, m.kind, m.body, m.to, withheld
            )
            if tx.insert_message(stored, if_new=True):
                return Appended(stored, duplicate=False)
            tx.undo_seq(m.conv, seq)
            prior = tx.db.execute(
                "SELECT seq, ts, kind, body, to_accounts, withheld FROM messages"
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
            )
            return Appended(stored, duplicate=True)

        return self._submit(op)

    async def messages(
        self, conv: int, after: int, before: int | None, limit: int
    ) -> list[StoredMessage]:
        def q(db: sqlite3.Connection) -> list[StoredMessage]:
            cols = "seq, ts, sender, device, cmid, kind, body, to_accounts, withheld"
            if before is not None:
                rows = db.execute(
                    f"SELECT {cols} FROM messages WHERE conv_id=? AND seq<? AND seq>?"
                    " ORDER BY seq DESC LIMIT ?",
                    (conv, before, after, limit),
                ).fetchall()
                rows.reverse()
            else:
                rows = db.execute(
                    f"SELECT {cols} FROM messages WHERE conv_id=? AND seq>? ORDER BY seq LIMIT ?",
                    (conv, after, limit),
                ).fetchall()
            return [_message(conv, r) for r in rows]

        return await self._read_raw(q)

    # ------------------------------------------------------------------ cursors

    async def move_cursor(self, device: int, conv: int, type: str, seq: int) -> bool:
        column = {"delivered": "delivered", "read": "read"}[type]

        def op(tx: _Tx) -> bool:
            if not tx.db.execute("SELECT 1 FROM conversations WHERE id=?", (conv,)).fetchone():
                raise NotFound("no such conversation")
            target = min(seq, _last_seq(tx.db, conv))
            cur = tx.db.execute(
                f"INSERT INTO cursors (device_id, conv_id, {column}) VALUES (?,?,?)"
                f" ON CONFLICT (device_id, conv_id) DO UPDATE SET {column}=excluded.{column}"
                f" WHERE excluded.{column} > cursors.{column}",
                (device, conv, target),
            )
            return cur.rowcount > 0 and target > 0

        return await self._write(op)


def _last_seq(db: sqlite3.Connection, conv: int) -> int:
    row = db.execute("SELECT max(seq) FROM messages WHERE conv_id=?", (conv,)).fetchone()
    return int(row[0] or 0)


def _conv_row(
    db: sqlite3.Connection, conv: int, account: int, device: int, *, with_members: bool = False
) -> ConvRow:
    row = db.execute(
        "SELECT c.id, c.kind, c.title,"
        " (SELECT coalesce(max(seq), 0) FROM messages WHERE conv_id = c.id), m.role,"
        " (SELECT count(*) FROM members x WHERE x.conv_id = c.id),"
        " coalesce(k.read, 0), coalesce(k.delivered, 0), m.joined_seq,"
        " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END"
        " FROM conversations c JOIN members m ON m.conv_id = c.id AND m.account_id = ?"
        " JOIN accounts a ON a.id = m.account_id"
        " LEFT JOIN cursors k ON k.conv_id = c.id AND k.device_id = ?"
        " WHERE c.id = ?",
        (account, device, conv),
    ).fetchone()
    if row is None:
        raise NotFound("no such conversation")
    members: tuple[MemberRow, ...] = ()
    if with_members:
        members = tuple(
            MemberRow(int(a), str(r), str(h), int(j), str(x))
            for a, r, h, j, x in db.execute(
                "SELECT m.account_id, m.role, a.handle, m.joined_seq,"
                " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END FROM members m"
                " JOIN accounts a ON a.id = m.account_id WHERE m.conv_id=? ORDER BY m.joined_seq,"
                " m.account_id",
                (conv,),
            )
        )
    return replace(_conv(row), members=members)


def _conv(r: Any) -> ConvRow:
    return ConvRow(
        *(int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), int(r[5]), int(r[6])),
        *(int(r[7]), int(r[8])),
        access=str(r[9]),
    )


def _message(conv: int, r: Any) -> StoredMessage:
    """A row of (seq, ts, sender, device, cmid, kind, body, to_accounts, withheld)."""
    if r[7] is None and r[8] is None:
        return StoredMessage(conv, r[0], r[1], r[2], r[3], r[4], r[5], r[6])
    return StoredMessage(
        *(conv, r[0], r[1], r[2], r[3], r[4], r[5], r[6]),
        _unpack_ids(r[7]),
        _unpack_ids(r[8]),
    )


def _pack_ids(ids: tuple[int, ...]) -> bytes | None:
    """Account ids as big-endian u64s (NULL when there are none): compact and ordered."""
    return struct.pack(f">{len(ids)}Q", *ids) if ids else None


def _unpack_ids(blob: bytes | None) -> tuple[int, ...]:
    if not blob:
        return ()
    return struct.unpack(f">{len(blob) // 8}Q", blob)
