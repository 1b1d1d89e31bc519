"""The shared store: PostgreSQL through asyncpg, safe when several chatd nodes use one database.

Same contract and observable semantics as ``SQLiteStore``; what changes is how safety is had
with several writers:

* Group commit per node. Writes queue on this node and one writer task commits everything queued
  as one transaction (``run()``, like SQLite's). Consecutive appends in a batch are handled
  together by one call of the server-side function ``chatd_append`` (migration 0005): it locks
  their conversations, reads the roles and earlier cmids, moves the counters and inserts the
  messages. A batch of nothing but appends (the hot path) is that one statement, its own
  transaction: ONE round trip per batch, where BEGIN, five statements and COMMIT took seven.
* The gathering window adapts to load (``_gather_window``): an idle node commits a lone write at
  once; once the arrival rate expects more writes within ``commit_interval`` (``GATHER_WORTH``),
  the writer waits that long, so batches grow with the load.
* Seqs. ``conversations.last_seq`` is a counter row. A batch first locks the conversation rows
  it appends to (``SELECT ... ORDER BY id FOR NO KEY UPDATE``: sorted, so two nodes lock in the
  same order), then reads roles and cmids, assigns seqs from the locked counter and writes the
  counter back. Another node appending to the same conversation waits on the row lock until this
  transaction commits or rolls back, and its statements then see the committed counter
  (READ COMMITTED takes a new snapshot per statement): seqs are unique and, since a rollback
  restores the counter, gapless. The alternative, ``max(seq) + 1`` under ``FOR UPDATE`` of the
  conversation, costs an index probe per conversation and still needs the same lock; the counter
  is O(1) and also serves ``last_seq`` to readers without touching messages.
* Idempotency. Every message insert happens under its conversation's row lock, and the cmid
  look-up runs after the lock is taken, so it sees any duplicate another node committed first:
  a concurrent resend through another node resolves to the first row, never an error. The unique
  index ``(conv_id, device, cmid)`` stays as the backstop.
* Races on other unique keys (handle, device key, direct conversation, first device list or
  to-device row of a device) are checked with a SELECT first; when two nodes race, the loser's
  insert fails with a unique violation, the whole batch is rolled back and run again, and the
  re-run's SELECT sees the winner (``HandleTaken``, ``Conflict``, ``existed``). Deadlocks and
  serialization failures are retried the same way.
* One-time prekeys are claimed with ``DELETE ... WHERE kid = (SELECT ... FOR UPDATE SKIP LOCKED
  LIMIT 1) RETURNING``: a row another node is claiming is skipped, never handed out twice.
* To-device tids come from the device's ``to_device_state`` row, read ``FOR UPDATE``.

Errors: refusals raise the same ``chatd.errors`` classes as SQLite; a database that cannot be
reached (or a commit whose outcome is unknown) is ``Unavailable``: nothing is acked that is not
known to be committed. The writer reconnects on the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, Generic, TypeVar

import asyncpg
import msgspec
from chatproto import kinds

from chatd.core import rules
from chatd.errors import (
    ChatdError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unavailable,
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
from chatd.store.ledger_postgres import PostgresLedger
from chatd.store.migrate import migrate_postgres
from chatd.store.sql import CheckViolation, OutOfRange, Sql
from chatd.store.writer import BatchObserver, GroupCommitWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


Conn = Any  # asyncpg.Connection (asyncpg ships no type information)

_RETRY = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.UniqueViolationError,
)
"""Errors that mean another node won a race: the batch is rolled back and run again."""

_LOST = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)
"""Errors after which the connection's state is unknown: it is dropped and made anew."""

MAX_ATTEMPTS = 5

GATHER_WORTH = 0.25
"""Writes expected within ``commit_interval`` from which the writer waits for them (at 2 ms:
from 125 writes/s; below, a write commits as soon as the writer is free)."""

_MESSAGE_COLS = "seq, ts, sender, device, cmid, kind, body, to_accounts, withheld"


class _Op(Generic[T]):
    """One queued write. ``fn`` runs inside the batch transaction and may run more than once (the
    batch is re-run after a lost race), so it keeps no state outside the database. It raises a
    ``ChatdError`` only before it writes anything."""

    __slots__ = ("fn", "future", "message")

    def __init__(
        self,
        fn: Callable[[_Tx], Awaitable[T]] | None,
        future: asyncio.Future[T],
        message: NewMessage | None = None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.message = message


class PostgresSql:
    """``sql.Sql`` over one asyncpg connection."""

    __slots__ = ("db",)

    last_seq = "c.last_seq"

    def __init__(self, db: Conn) -> None:
        self.db = db

    @staticmethod
    def ids(value: Any) -> tuple[int, ...]:
        return _ids(value)

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        return await _refusals(self.db.fetch(_dialect(sql), *args))  # type: ignore[no-any-return]

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await _refusals(self.db.fetchrow(_dialect(sql), *args))

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await _refusals(self.db.fetchval(_dialect(sql), *args))

    async def execute(self, sql: str, *args: Any) -> int:
        status = await _refusals(self.db.execute(_dialect(sql), *args))
        return int(status.rsplit(" ", 1)[-1])  # "INSERT 0 1", "DELETE 3"

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            await _refusals(self.db.executemany(_dialect(sql), rows))

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        return self.db.transaction()  # type: ignore[no-any-return]

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        return self.db.transaction(isolation="repeatable_read", readonly=True)  # type: ignore[no-any-return]


async def _refusals(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except asyncpg.exceptions.CheckViolationError as exc:
        raise CheckViolation(str(exc)) from None
    except asyncpg.exceptions.NumericValueOutOfRangeError as exc:
        raise OutOfRange(str(exc)) from None


@functools.cache
def _dialect(sql: str) -> str:
    """PostgreSQL's text of a statement: ``?`` placeholders numbered ``$1, $2, ...``."""
    parts = sql.split("?")
    return "".join(f"{p}${i}" for i, p in enumerate(parts[:-1], 1)) + parts[-1]


class _Tx:
    """What an op sees (``sql.Tx``): the writer connection inside the open batch transaction."""

    __slots__ = ("db", "sql")

    def __init__(self, db: Conn) -> None:
        self.db = db
        self.sql = PostgresSql(db)

    def touched(self, conv: int) -> None:
        """Nothing is cached across batches: several nodes write."""

    async def lock_conv(self, conv: int) -> str | None:
        """Lock ``conv``'s row until commit (orders its seqs and membership across nodes);
        its kind, or None when there is no such conversation."""
        kind = await self.db.fetchval(
            "SELECT kind FROM conversations WHERE id=$1 FOR NO KEY UPDATE", conv
        )
        return None if kind is None else str(kind)

    async def next_seq(self, conv: int) -> int:
        return int(
            await self.db.fetchval(
                "UPDATE conversations SET last_seq = last_seq + 1 WHERE id=$1 RETURNING last_seq",
                conv,
            )
        )

    async def system_message(self, conv: int, now: int, event: kinds.SystemEvent) -> StoredMessage:
        _, body = kinds.encode_content(event)
        return await self.server_message(conv, now, "system", body)

    async def server_message(self, conv: int, now: int, kind: str, body: bytes) -> StoredMessage:
        """Append a message the server writes itself (sender 0: system events, receipts)."""
        m = StoredMessage(conv, await self.next_seq(conv), now, 0, 0, None, kind, body)
        await self.db.execute(
            "INSERT INTO messages (conv_id, seq, ts, sender, device, cmid, kind, body)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8)",
            m.conv,
            m.seq,
            m.ts,
            m.sender,
            m.device,
            m.cmid,
            m.kind,
            m.body,
        )
        return m

    async def log_head(self, conv: int) -> rules.LogHead | None:
        return await _log_head(self.db, conv)

    async def link(self, conv: int, entry: SignedChange | None, *, create: bool = False) -> None:
        """Refuse (before anything is written) a change that does not extend the log; run
        under the conversation's row lock, so two nodes never extend it from one head."""
        head = await self.log_head(conv)
        rules.check_link(head, None if entry is None else entry.link, create=create)
        if entry is not None and entry.epoch == 1:
            await self.group_free(entry.group)

    async def group_free(self, group: bytes) -> None:
        if await self.db.fetchval("SELECT 1 FROM member_log WHERE group_id=$1 AND epoch=1", group):
            raise Conflict("this membership log's group id belongs to another conversation")

    async def signed_message(
        self, conv: int, now: int, event: kinds.SystemEvent, entry: SignedChange | None
    ) -> StoredMessage:
        """The change's system message, carrying its signed entry, and the log row."""
        if entry is None:
            return await self.system_message(conv, now, event)
        m = await self.system_message(
            conv, now, msgspec.structs.replace(event, entry=entry.body, sig=entry.sig)
        )
        await self.log(conv, m.seq, entry)
        return m

    async def log(self, conv: int, seq: int, entry: SignedChange) -> None:
        await self.db.execute(
            "INSERT INTO member_log (conv_id, epoch, seq, hash, group_id, body, sig)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7)",
            *(conv, entry.epoch, seq, entry.hash, entry.group, entry.body, entry.sig),
        )

    async def role(self, conv: int, account: int) -> tuple[str, str]:
        """Lock ``conv``, then ``(kind, role)`` of a member; ``NotFound`` for a non-member, as
        for no conversation. Read after the lock: the role at commit time."""
        kind = await self.lock_conv(conv)
        if kind is None:
            raise NotFound("no such conversation")
        role = await self.db.fetchval(
            "SELECT role FROM members WHERE conv_id=$1 AND account_id=$2", conv, account
        )
        if role is None:
            raise NotFound("no such conversation")
        return kind, str(role)

    async def target_role(self, conv: int, account: int) -> str:
        role = await self.db.fetchval(
            "SELECT role FROM members WHERE conv_id=$1 AND account_id=$2", conv, account
        )
        if role is None:
            raise NotFound("not a member")
        return str(role)

    async def conv_row(self, conv: int, account: int) -> ConvRow:
        return await _conv_row(self.db, conv, account, 0)

    async def exists(self, table: str, id: int) -> bool:
        return bool(await self.db.fetchval(f"SELECT 1 FROM {table} WHERE id=$1", id))

    async def account_type(self, account: int) -> str | None:
        found = await self.db.fetchval("SELECT type FROM accounts WHERE id=$1", account)
        return None if found is None else str(found)

    async def appends(self, ops: list[_Op[Any]]) -> list[Any]:
        """A run of consecutive appends, in order: results or refusals (``ChatdError``)."""
        return await _appends(self.db, ops)


def _refused_sends() -> list[str]:
    out = []
    for kind in ("direct", "group", "channel"):
        for role in ("owner", "admin", "member"):
            try:
                rules.check_send(kind, role)
            except ChatdError:
                out.append(f"{kind} {role}")
    return out


_REFUSED_SENDS = _refused_sends()
"""The (conversation kind, role) pairs ``rules.check_send`` refuses, as ``chatd_append`` takes
them: the rule stays written once, in ``core``."""
_ALWAYS_DELIVERED = sorted(rules.ALWAYS_DELIVERED)

_APPEND = "SELECT * FROM chatd_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
"""Migration 0005: the whole batch of appends in one round trip (see the function's comment)."""


async def _appends(db: Conn, ops: Sequence[_Op[Any]]) -> list[Any]:
    """Commit the appends ``ops`` with one call of ``chatd_append``: their results (``Appended``)
    or refusals (``ChatdError``), in order. Inside a transaction it joins it; outside, the one
    statement is its own transaction."""
    msgs = [op.message for op in ops if op.message is not None]
    assert len(msgs) == len(ops)
    rows = await db.fetch(
        _APPEND,
        [m.conv for m in msgs],
        [m.sender for m in msgs],
        [m.device for m in msgs],
        [m.cmid for m in msgs],
        [m.kind for m in msgs],
        [m.body for m in msgs],
        [m.ts for m in msgs],
        ["{" + ",".join(map(str, m.to)) + "}" for m in msgs],
        _REFUSED_SENDS,
        _ALWAYS_DELIVERED,
    )
    results: list[Any] = []
    for m, (outcome, seq, ts, withheld, conv_kind, role) in zip(msgs, rows, strict=True):
        if outcome in ("new", "duplicate"):
            stored = StoredMessage(
                *(m.conv, int(seq), int(ts), m.sender, m.device, m.cmid, m.kind, m.body),
                m.to,
                _ids(withheld),
            )
            results.append(Appended(stored, duplicate=outcome == "duplicate"))
        elif outcome == "absent":
            results.append(NotFound("no such conversation"))
        elif outcome == "conflict":
            results.append(Conflict("this cmid was already used for another message"))
        else:
            results.append(_refusal(str(conv_kind), str(role)))
    return results


def _refusal(kind: str, role: str) -> ChatdError:
    """The error ``rules.check_send`` raises for a send ``chatd_append`` refused."""
    try:
        rules.check_send(kind, role)
    except ChatdError as refused:
        return refused
    raise AssertionError(f"chatd_append refused a send check_send allows: {kind} {role}")


class PostgresStore(Accounts, Keys, PostgresLedger, GroupCommitWriter["_Op[Any]"]):
    """``Store`` over a PostgreSQL database shared by any number of nodes. Run ``run()`` in the
    owner's TaskGroup after ``open()``. The ledger's part is ``PostgresLedger``."""

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 1024,
        queue_bound: int = 16384,
        commit_interval: float = 0.0,
        read_pool: int = 8,
        timeout: float = 10.0,
        on_batch: BatchObserver | None = None,
    ) -> None:
        super().__init__(
            max_batch=max_batch,
            queue_bound=queue_bound,
            commit_interval=commit_interval,
            on_batch=on_batch,
        )
        self.dsn = dsn
        self._read_pool = read_pool
        self._timeout = timeout
        self._w: Conn | None = None
        self._pool: Any = None
        self._rate = 0.0
        """Writes per second arriving lately (``_gather_window``)."""
        self._last_batch = time.monotonic()
        self.retries = 0
        """Batches re-run after losing a race to another node (a counter for metrics)."""

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect and apply pending migrations (once, however many nodes start together)."""
        self._w = await self._connect()
        applied = await migrate_postgres(self._w)
        if applied:
            log.info("migrated", extra={"applied": applied})
        self._pool = await asyncpg.create_pool(
            self.dsn,
            min_size=1,
            max_size=self._read_pool,
            timeout=self._timeout,
            command_timeout=self._timeout,
        )

    async def _connect(self) -> Conn:
        return await asyncpg.connect(self.dsn, timeout=self._timeout, command_timeout=self._timeout)

    def _gather_window(self) -> float:
        """Wait ``commit_interval`` only when the recent arrival rate expects at least
        ``GATHER_WORTH`` more writes in it: an idle or lightly used node commits a lone write
        at once, a loaded one gathers batches that grow with the load. Each commit costs a
        round trip and a WAL flush whatever its size, and a node of a cluster sees only its
        share of the load, so gathering from a modest rate keeps its CPU per message near a
        single node's."""
        # The smoothed rate, unless what is queued came slower: the first write after a quiet
        # spell commits at once, however busy the node was before it.
        since = max(time.monotonic() - self._last_batch, 1e-4)
        rate = min(self._rate, len(self._pending) / since)
        if rate * self._commit_interval >= GATHER_WORTH:
            return self._commit_interval
        return 0.0

    async def _apply_batch(self, batch: list[_Op[Any]]) -> list[Any]:
        now = time.monotonic()
        # The arrival rate: this batch arrived since the previous one was taken (smoothed).
        elapsed = max(now - self._last_batch, 1e-4)
        self._rate = 0.7 * self._rate + 0.3 * (len(batch) / elapsed)
        self._last_batch = now
        return await self._apply(batch)

    async def _apply(self, batch: list[_Op[Any]]) -> list[Any]:
        """One transaction for the whole batch, run again when another node won a race."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            db = self._w
            if db is None or db.is_closed():
                self._w = db = await self._connect()
            try:
                if all(op.message is not None for op in batch):
                    return await _appends(db, batch)  # the hot path: one round trip
                async with db.transaction():
                    return await self._run_ops(_Tx(db), batch)
            except _RETRY as exc:
                if attempt == MAX_ATTEMPTS:
                    raise
                self.retries += 1
                log.info("batch retried", extra={"error": repr(exc), "attempt": attempt})
            except asyncpg.exceptions.PostgresError as exc:
                if isinstance(exc, _LOST):
                    self._drop_writer()
                raise  # a server-side error: the connection rolled back and stays usable
            except Exception:
                self._drop_writer()  # lost, timed out or cancelled: the state is unknown
                raise
        raise AssertionError("unreachable")

    def _drop_writer(self) -> None:
        db, self._w = self._w, None
        if db is not None:
            db.terminate()

    @staticmethod
    async def _run_ops(tx: _Tx, batch: list[_Op[Any]]) -> list[Any]:
        results: list[Any] = []
        i = 0
        while i < len(batch):
            if batch[i].message is not None:
                j = i
                while j < len(batch) and batch[j].message is not None:
                    j += 1
                results.extend(await tx.appends(batch[i:j]))
                i = j
                continue
            fn = batch[i].fn
            assert fn is not None
            try:
                results.append(await fn(tx))
            except ChatdError as refused:
                results.append(refused)
            i += 1
        return results

    async def aclose(self) -> None:
        """Refuse new writes, let the writer commit what is queued, then close the connections."""
        if not await self._drain():
            return
        if self._w is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._w.close(), self._timeout)
            self._drop_writer()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self._timeout)
            except Exception:
                self._pool.terminate()

    async def ping(self) -> bool:
        try:
            await self._read_raw(lambda db: db.fetchval("SELECT 1"))
        except Exception:
            return False
        return self.healthy and not self._closing

    # ------------------------------------------------------------------ plumbing

    def _queue(self, op: _Op[T]) -> asyncio.Future[T]:
        self._enqueue(op)
        return op.future

    def _submit(self, fn: Callable[[_Tx], Awaitable[T]]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        return self._queue(_Op(fn, future))

    async def _write(self, fn: Callable[[_Tx], Awaitable[T]]) -> T:
        return await self._submit(fn)

    async def _read(self, fn: Callable[[Sql], Awaitable[T]]) -> T:
        return await self._read_raw(lambda db: fn(PostgresSql(db)))

    async def _read_raw(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        if self._pool is None:
            raise Unavailable("the store is not open")
        try:
            async with self._pool.acquire() as db:
                return await fn(db)
        except ChatdError:
            raise
        except (*_LOST, asyncpg.exceptions.PostgresError) as exc:
            raise Unavailable("the store cannot be read now; retry") from exc

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

        async def op(tx: _Tx) -> CreatedConv:
            db = tx.db
            type_of = {
                int(r[0]): str(r[1])
                for r in await db.fetch(
                    "SELECT id, type FROM accounts WHERE id = ANY($1::bigint[])", [creator, *others]
                )
            }
            for account in others:
                if account not in type_of:
                    raise NotFound(f"no account {account}")
            bots = {a for a, t in type_of.items() if t == "bot"}
            key = None
            if kind == "direct":
                if len(others) != 1 or len(set(members)) != 1:
                    raise Invalid("a direct conversation has exactly one other account")
                key = rules.direct_key(creator, others[0])
                existing = await db.fetchval(
                    "SELECT id FROM conversations WHERE direct_key=$1", key
                )
                if existing is not None:
                    existing = int(existing)
                    if entry is not None:
                        await tx.lock_conv(existing)
                        if await tx.log_head(existing) is None:
                            # A direct conversation from before logs: its first entry, now.
                            rules.check_roster(kind, creator, others, bots, entry.roster)
                            await tx.link(existing, entry, create=True)
                            await tx.log(existing, 0, entry)
                    return CreatedConv(await tx.conv_row(existing, creator), (), existed=True)
            if entry is not None:
                rules.check_roster(kind, creator, others, bots, entry.roster)
                await tx.group_free(entry.group)
            conv = int(
                await db.fetchval(
                    "INSERT INTO conversations (kind, title, created_at, direct_key)"
                    " VALUES ($1,$2,$3,$4) RETURNING id",
                    kind,
                    "" if kind == "direct" else title,
                    now,
                    key,
                )
            )
            created = await tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(
                    event="created", actor=creator, title=title if kind != "direct" else ""
                ),
                entry,
            )
            creator_role = "member" if kind == "direct" else "owner"
            access = rules.initial_access(kind)
            await db.executemany(
                "INSERT INTO members (conv_id, account_id, role, joined_seq, access)"
                " VALUES ($1,$2,$3,$4,$5)",
                [
                    (conv, a, role, created.seq, access if type_of.get(a) == "bot" else rules.ALL)
                    for a, role in ((creator, creator_role), *((a, "member") for a in others))
                ],
            )
            return CreatedConv(await tx.conv_row(conv, creator), (created,))

        return await self._write(op)

    async def conversation(self, conv: int, account: int, device: int) -> ConvRow:
        return await self._read_raw(
            lambda db: _conv_row(db, conv, account, device, with_members=True)
        )

    async def conversations_of(self, account: int, device: int) -> list[ConvRow]:
        rows = await self._read_raw(
            lambda db: db.fetch(
                "SELECT c.id, c.kind, c.title, c.last_seq, m.role,"
                " (SELECT count(*) FROM members x WHERE x.conv_id = c.id),"
                " coalesce(k.read, 0), coalesce(k.delivered, 0), m.joined_seq,"
                " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END"
                " FROM members m JOIN conversations c ON c.id = m.conv_id"
                " JOIN accounts a ON a.id = m.account_id"
                " LEFT JOIN cursors k ON k.conv_id = c.id AND k.device_id = $1"
                " WHERE m.account_id = $2 ORDER BY c.id",
                device,
                account,
            )
        )
        return [_conv(r) for r in rows]

    async def conversation_ids_of(self, account: int) -> list[int]:
        rows = await self._read_raw(
            lambda db: db.fetch("SELECT conv_id FROM members WHERE account_id=$1", account)
        )
        return [int(r[0]) for r in rows]

    async def member_kind(self, conv: int, account: int) -> tuple[str, str] | None:
        row = await self._read_raw(
            lambda db: db.fetchrow(
                "SELECT c.kind, m.role FROM members m JOIN conversations c ON c.id = m.conv_id"
                " WHERE m.conv_id=$1 AND m.account_id=$2",
                conv,
                account,
            )
        )
        return (str(row[0]), str(row[1])) if row else None

    async def membership(self, conv: int, account: int) -> Membership | None:
        row = await self._read_raw(
            lambda db: db.fetchrow(
                "SELECT c.kind, m.role, m.joined_seq, a.type, m.access FROM members m"
                " JOIN conversations c ON c.id = m.conv_id JOIN accounts a ON a.id = m.account_id"
                " WHERE m.conv_id=$1 AND m.account_id=$2",
                conv,
                account,
            )
        )
        if row is None:
            return None
        return Membership(str(row[0]), str(row[1]), int(row[2]), row[3] == "bot", str(row[4]))

    async def contacts_of(self, account: int) -> list[int]:
        """Accounts sharing a direct conversation or group with ``account`` (presence audience)."""
        rows = await self._read_raw(
            lambda db: db.fetch(
                "SELECT DISTINCT o.account_id FROM members m"
                " JOIN conversations c ON c.id = m.conv_id AND c.kind IN ('direct', 'group')"
                " JOIN members o ON o.conv_id = m.conv_id AND o.account_id != m.account_id"
                " WHERE m.account_id = $1",
                account,
            )
        )
        return [int(r[0]) for r in rows]

    async def invite(
        self, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        async def op(tx: _Tx) -> MembershipChange:
            kind, role = await tx.role(conv, actor)
            rules.check_manage_members(kind, role)
            account_type = await tx.account_type(account)
            if account_type is None:
                raise NotFound(f"no account {account}")
            bot = account_type == "bot"
            if bot:
                rules.check_add_bot(kind, role)
            if await tx.db.fetchval(
                "SELECT 1 FROM members WHERE conv_id=$1 AND account_id=$2", conv, account
            ):
                raise Conflict("already a member")
            await tx.link(conv, entry)
            if entry is not None:
                rules.check_new_member_access(kind, bot, entry.access)
            access = rules.initial_access(kind) if bot else rules.ALL
            m = await tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(
                    event="joined", actor=actor, account=account, access=access if bot else ""
                ),
                entry,
            )
            await tx.db.execute(
                "INSERT INTO members (conv_id, account_id, role, joined_seq, access)"
                " VALUES ($1,$2,$3,$4,$5)",
                conv,
                account,
                "member",
                m.seq,
                access,
            )
            return MembershipChange(conv, m, added=(account,))

        return await self._write(op)

    async def remove(
        self, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        async def op(tx: _Tx) -> MembershipChange:
            kind, role = await tx.role(conv, actor)
            if account == actor:
                raise Invalid("use leave to leave a conversation")
            rules.check_remove(kind, role, await tx.target_role(conv, account))
            await tx.link(conv, entry)
            m = await tx.signed_message(
                conv, now, kinds.SystemEvent(event="removed", actor=actor, account=account), entry
            )
            await tx.db.execute(
                "DELETE FROM members WHERE conv_id=$1 AND account_id=$2", conv, account
            )
            return MembershipChange(conv, m, removed=(account,))

        return await self._write(op)

    async def leave(
        self, conv: int, actor: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        async def op(tx: _Tx) -> MembershipChange:
            kind, role = await tx.role(conv, actor)
            rules.check_leave(kind)
            await tx.link(conv, entry)
            m = await tx.signed_message(
                conv, now, kinds.SystemEvent(event="left", actor=actor), entry
            )
            await tx.db.execute(
                "DELETE FROM members WHERE conv_id=$1 AND account_id=$2", conv, actor
            )
            if role == "owner":
                remaining = await tx.db.fetch(
                    "SELECT account_id, role, joined_seq FROM members WHERE conv_id=$1", conv
                )
                heir = rules.next_owner([(int(a), str(r), int(j)) for a, r, j in remaining])
                if heir is not None:
                    await tx.db.execute(
                        "UPDATE members SET role='owner' WHERE conv_id=$1 AND account_id=$2",
                        conv,
                        heir,
                    )
                    await tx.system_message(
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
        async def op(tx: _Tx) -> MembershipChange:
            kind, actor_role = await tx.role(conv, actor)
            rules.check_set_role(kind, actor_role, await tx.target_role(conv, account))
            await tx.link(conv, entry)
            m = await tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(event="role", actor=actor, account=account, role=role),
                entry,
            )
            await tx.db.execute(
                "UPDATE members SET role=$1 WHERE conv_id=$2 AND account_id=$3", role, conv, account
            )
            return MembershipChange(conv, m)

        return await self._write(op)

    async def rename(self, conv: int, actor: int, title: str, now: int) -> MembershipChange:
        async def op(tx: _Tx) -> MembershipChange:
            kind, role = await tx.role(conv, actor)
            rules.check_rename(kind, role)
            m = await tx.system_message(
                conv, now, kinds.SystemEvent(event="renamed", actor=actor, title=title)
            )
            await tx.db.execute("UPDATE conversations SET title=$1 WHERE id=$2", title, conv)
            return MembershipChange(conv, m)

        return await self._write(op)

    async def member_log(self, conv: int, after: int, limit: int) -> list[LogRow]:
        rows = await self._read_raw(
            lambda db: db.fetch(
                "SELECT epoch, seq, body, sig FROM member_log WHERE conv_id=$1 AND epoch>$2"
                " ORDER BY epoch LIMIT $3",
                conv,
                after,
                limit,
            )
        )
        return [LogRow(int(e), int(q), bytes(b), bytes(g)) for e, q, b, g in rows]

    async def log_head(self, conv: int) -> rules.LogHead | None:
        return await self._read_raw(lambda db: _log_head(db, conv))

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
        async def op(tx: _Tx) -> MembershipChange | None:
            kind, role = await tx.role(conv, actor)  # locks conv: orders it with the appends
            rules.check_set_bot_access(kind, role)
            row = await tx.db.fetchrow(
                "SELECT m.access, a.type FROM members m JOIN accounts a ON a.id = m.account_id"
                " WHERE m.conv_id=$1 AND m.account_id=$2",
                conv,
                account,
            )
            if row is None:
                raise NotFound("not a member")
            if row[1] != "bot":
                raise Invalid("only a bot member has an access")
            if row[0] == access:
                return None
            await tx.link(conv, entry)
            m = await tx.signed_message(
                conv,
                now,
                kinds.SystemEvent(event="bot_access", actor=actor, account=account, access=access),
                entry,
            )
            await tx.db.execute(
                "UPDATE members SET access=$1 WHERE conv_id=$2 AND account_id=$3",
                access,
                conv,
                account,
            )
            return MembershipChange(conv, m)

        return await self._write(op)

    async def set_bot_profile(self, account: int, body: bytes, now: int) -> None:
        async def op(tx: _Tx) -> None:
            if await tx.account_type(account) != "bot":
                raise Forbidden("only a bot account has a bot profile")
            await tx.db.execute(
                "INSERT INTO bot_profiles (account_id, body, updated_at) VALUES ($1,$2,$3)"
                " ON CONFLICT (account_id) DO UPDATE SET body=excluded.body,"
                " updated_at=excluded.updated_at",
                account,
                body,
                now,
            )

        await self._write(op)

    async def bot_profile(self, account: int) -> BotProfileRow | None:
        row = await self._read_raw(
            lambda db: db.fetchrow(
                "SELECT a.type, p.body, p.updated_at FROM accounts a"
                " LEFT JOIN bot_profiles p ON p.account_id = a.id WHERE a.id=$1",
                account,
            )
        )
        if row is None or row[0] != "bot":
            return None
        return BotProfileRow(account, bytes(row[1] or b""), int(row[2] or 0))

    # ------------------------------------------------------------------ messages

    def append(self, message: NewMessage) -> asyncio.Future[Appended]:
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        return self._queue(_Op(None, future, message))

    async def messages(
        self, conv: int, after: int, before: int | None, limit: int
    ) -> list[StoredMessage]:
        async def q(db: Conn) -> list[Any]:
            if before is not None:
                rows = await db.fetch(
                    f"SELECT {_MESSAGE_COLS} FROM messages WHERE conv_id=$1 AND seq<$2 AND seq>$3"
                    " ORDER BY seq DESC LIMIT $4",
                    conv,
                    before,
                    after,
                    limit,
                )
                return list(reversed(rows))
            return list(
                await db.fetch(
                    f"SELECT {_MESSAGE_COLS} FROM messages WHERE conv_id=$1 AND seq>$2"
                    " ORDER BY seq LIMIT $3",
                    conv,
                    after,
                    limit,
                )
            )

        return [
            StoredMessage(
                conv,
                int(r[0]),
                int(r[1]),
                int(r[2]),
                int(r[3]),
                None if r[4] is None else str(r[4]),
                str(r[5]),
                bytes(r[6]),
                _ids(r[7]),
                _ids(r[8]),
            )
            for r in await self._read_raw(q)
        ]

    # ------------------------------------------------------------------ cursors

    async def move_cursor(self, device: int, conv: int, type: str, seq: int) -> bool:
        column = {"delivered": "delivered", "read": "read"}[type]

        async def op(tx: _Tx) -> bool:
            last = await tx.db.fetchval("SELECT last_seq FROM conversations WHERE id=$1", conv)
            if last is None:
                raise NotFound("no such conversation")
            target = min(seq, int(last))
            status = await tx.db.execute(
                f"INSERT INTO cursors (device_id, conv_id, {column}) VALUES ($1,$2,$3)"
                f" ON CONFLICT (device_id, conv_id) DO UPDATE SET {column}=excluded.{column}"
                f" WHERE excluded.{column} > cursors.{column}",
                device,
                conv,
                target,
            )
            return int(status.rsplit(" ", 1)[-1]) > 0 and target > 0

        return await self._write(op)


async def _log_head(db: Conn, conv: int) -> rules.LogHead | None:
    row = await db.fetchrow(
        "SELECT epoch, hash, group_id FROM member_log WHERE conv_id=$1 ORDER BY epoch DESC LIMIT 1",
        conv,
    )
    return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))


def _conv(r: Any) -> ConvRow:
    return ConvRow(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        int(r[3]),
        str(r[4]),
        int(r[5]),
        int(r[6]),
        int(r[7]),
        int(r[8]),
        access=str(r[9]),
    )


Ids = tuple[int, ...]


def _ids(value: Any) -> Ids:
    """A BIGINT[] column (None when NULL) as a tuple."""
    return () if value is None else tuple(int(v) for v in value)


async def _conv_row(
    db: Conn, conv: int, account: int, device: int, *, with_members: bool = False
) -> ConvRow:
    row = await db.fetchrow(
        "SELECT c.id, c.kind, c.title, c.last_seq, m.role,"
        " (SELECT count(*) FROM members x WHERE x.conv_id = c.id),"
        " coalesce(k.read, 0), coalesce(k.delivered, 0), m.joined_seq,"
        " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END"
        " FROM conversations c JOIN members m ON m.conv_id = c.id AND m.account_id = $1"
        " JOIN accounts a ON a.id = m.account_id"
        " LEFT JOIN cursors k ON k.conv_id = c.id AND k.device_id = $2"
        " WHERE c.id = $3",
        account,
        device,
        conv,
    )
    if row is None:
        raise NotFound("no such conversation")
    members: tuple[MemberRow, ...] = ()
    if with_members:
        members = tuple(
            MemberRow(int(a), str(r), str(h), int(j), str(x))
            for a, r, h, j, x in await db.fetch(
                "SELECT m.account_id, m.role, a.handle, m.joined_seq,"
                " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END FROM members m"
                " JOIN accounts a ON a.id = m.account_id WHERE m.conv_id=$1"
                " ORDER BY m.joined_seq, m.account_id",
                conv,
            )
        )
    return replace(_conv(row), members=members)
