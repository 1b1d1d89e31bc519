"""The shared store: PostgreSQL through asyncpg, safe when several chatd nodes use one database.

Same contract and observable semantics as ``SQLiteStore``; the transaction scripts are the
concern modules' (see ``chatd.store``), run through ``PostgresSql``. What is PostgreSQL's own is
how safety is had with several writers:

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
* Races the scripts' row locks cannot order (two nodes inserting one new handle, device key,
  direct conversation, transfer id...) fail the loser's insert with a unique violation; the
  whole batch is rolled back and run again, and the re-run's SELECT sees the winner. Deadlocks
  and serialization failures are retried the same way.

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
from typing import Any, TypeVar

import asyncpg

from chatd.core import rules
from chatd.errors import ChatdError, Conflict, NotFound, Unavailable
from chatd.store import Store
from chatd.store.base import Appended, NewMessage, StoredMessage, StoreStatistics
from chatd.store.migrate import migrate_postgres
from chatd.store.sql import CheckViolation, Op, OutOfRange, Sql
from chatd.store.writer import BatchObserver, GroupCommitWriter

log = logging.getLogger(__name__)
T = TypeVar("T")


Conn = Any  # asyncpg.Connection (asyncpg ships no type information)

_RETRY = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.UniqueViolationError,
    asyncpg.exceptions.ForeignKeyViolationError,
)
"""Errors that mean another node won a race: the batch is rolled back and run again.

A foreign key is one: every write checks in its own transaction that the rows it references
exist, so a violation means another node's transaction removed or referenced them in between
(a comment under a Moment its author deletes on another node: the comment's insert, or the
deletion of the Moment, finds the other committed). Run again, each sees the other: the
comment is ``NOT_FOUND``, or the deletion takes it too. Without this the whole batch failed,
every write in it answered ``UNAVAILABLE``."""

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

    __slots__ = ("_removals", "db", "sql")

    def __init__(self, db: Conn) -> None:
        self.db = db
        self.sql = PostgresSql(db)
        self._removals: dict[int, int] = {}

    def touched(self, conv: int) -> None:
        """Nothing is cached across batches: several nodes write."""

    async def next_seq(self, conv: int) -> int:
        row = await self.db.fetchrow(
            "UPDATE conversations SET last_seq = last_seq + 1 WHERE id=$1"
            " RETURNING last_seq, removals",
            conv,
        )
        assert row is not None
        self._removals[conv] = int(row[1])
        return int(row[0])

    def removals(self, conv: int) -> int:
        return self._removals.get(conv, 0)


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

_APPEND = "SELECT * FROM chatd_append2($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
"""Migrations 0005, 0013 and 0019: the whole batch of appends in one round trip (see the
function's comment), each with its conversation's count of removals."""


async def _appends(db: Conn, ops: Sequence[Op[Any]]) -> list[Any]:
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
        [m.fc for m in msgs],
    )
    results: list[Any] = []
    for m, (outcome, seq, ts, withheld, conv_kind, role, removals) in zip(msgs, rows, strict=True):
        if outcome in ("new", "duplicate"):
            stored = StoredMessage(
                *(m.conv, int(seq), int(ts), m.sender, m.device, m.cmid, m.kind, m.body),
                m.to,
                _ids(withheld),
                m.fc,
                int(removals),
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


class PostgresStore(Store, GroupCommitWriter[Op[Any]]):
    """``Store`` over a PostgreSQL database shared by any number of nodes. Run ``run()`` in the
    owner's TaskGroup after ``open()``."""

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

    async def _apply_batch(self, batch: list[Op[Any]]) -> list[Any]:
        now = time.monotonic()
        # The arrival rate: this batch arrived since the previous one was taken (smoothed).
        elapsed = max(now - self._last_batch, 1e-4)
        self._rate = 0.7 * self._rate + 0.3 * (len(batch) / elapsed)
        self._last_batch = now
        return await self._apply(batch)

    async def _apply(self, batch: list[Op[Any]]) -> list[Any]:
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
    async def _run_ops(tx: _Tx, batch: list[Op[Any]]) -> list[Any]:
        results: list[Any] = []
        i = 0
        while i < len(batch):
            if batch[i].message is not None:
                j = i
                while j < len(batch) and batch[j].message is not None:
                    j += 1
                results.extend(await _appends(tx.db, batch[i:j]))
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

    def statistics(self) -> StoreStatistics:
        return StoreStatistics("postgresql", self.queued, self.retries)

    # ------------------------------------------------------------------ plumbing

    def _submit(
        self,
        fn: Callable[[_Tx], Awaitable[T]] | None,
        message: NewMessage | None = None,
        then: Callable[[asyncio.Future[T]], None] | None = None,
    ) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._future()
        self._enqueue(Op(fn, future, message, then))
        return future

    async def _read(self, fn: Callable[[Sql], Awaitable[T]]) -> T:
        if self._pool is None:
            raise Unavailable("the store is not open")
        try:
            async with self._pool.acquire() as db:
                return await fn(PostgresSql(db))
        except ChatdError:
            raise
        except (*_LOST, asyncpg.exceptions.PostgresError) as exc:
            raise Unavailable("the store cannot be read now; retry") from exc

    # ------------------------------------------------------------------ messages

    def append(
        self, message: NewMessage, then: Callable[[asyncio.Future[Appended]], None] | None = None
    ) -> asyncio.Future[Appended]:
        return self._submit(None, message, then)  # run by chatd_append (_appends)


def _ids(value: Any) -> tuple[int, ...]:
    """A BIGINT[] column (None when NULL) as a tuple."""
    return () if value is None else tuple(int(v) for v in value)
