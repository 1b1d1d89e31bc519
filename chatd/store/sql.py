"""Running SQL on either database: one SQL text per statement, the dialect differences named.

Every transaction script (``accounts``, ``conversations``, ``bots``, ``messages``, ``keys``,
``ledger``) is written ONCE, as ``async def``, over ``Sql`` (``fetch``, ``fetchrow``,
``fetchval``, ``execute``, ``executemany``, ``savepoint``, ``snapshot``) and ``Tx`` (what the
group-commit writer's open batch adds: seqs). Its SQL is one text both databases run:

* placeholders are ``?`` (PostgreSQL's runner rewrites them to ``$1, $2, ...``);
* ``RETURNING`` and upserts (``ON CONFLICT ... DO UPDATE``/``DO NOTHING``, ``excluded.``) are
  written the same for both;
* row locks (``FOR UPDATE``, ``FOR NO KEY UPDATE``, ``SKIP LOCKED``) are written for
  PostgreSQL, where several nodes write at once; SQLite's runner drops them (its one writer
  holds the whole database for the batch);
* an ORDER BY that must be code point order whatever the database's collation is written
  ``COLLATE "C"`` (PostgreSQL's byte order); SQLite's runner reads it as ``COLLATE BINARY``,
  the same order for UTF-8 text;
* ``= ANY(?)`` takes a list: PostgreSQL binds an array, SQLite reads it with ``json_each``;
* what the two schemas store differently is an attribute of the runner: ``last_seq`` (the SQL
  of conversation ``c``'s last seq: a counter column in PostgreSQL, the highest message seq in
  SQLite) and ``ids`` (decodes an id-list column: BIGINT[] or packed u64s);
* the database refusing a value is ``CheckViolation`` (a CHECK) or ``OutOfRange`` (too large),
  whatever the driver calls it.

SQLite's runner (``sqlite.SQLiteSql``) is synchronous underneath: its coroutines never
suspend, so ``run_sync`` drives a script to its end on the loop's thread, with no thread hop and
no turn of the loop in between, and raises if a script ever does suspend (so it is checked on
every write, not assumed).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypeVar

T = TypeVar("T")
P = ParamSpec("P")
Row = Sequence[Any]


class CheckViolation(Exception):
    """The database refused a row: a CHECK constraint failed (an overdraft, say)."""


class OutOfRange(Exception):
    """The database refused a value too large for its column."""


class Sql(Protocol):
    """One connection, as transaction scripts and reads see it (``?`` placeholders)."""

    last_seq: str
    """The SQL expression of the last seq of the conversation aliased ``c``."""

    def ids(self, value: Any) -> tuple[int, ...]:
        """An id-list column's value (NULL: none) as a tuple."""

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        """Every row of ``sql``."""

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row of ``sql``; None when there is none."""

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row; None when there is no row."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run ``sql``; the number of rows it inserted, updated or deleted."""

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per row of arguments (nothing for no rows)."""

    def savepoint(self) -> AbstractAsyncContextManager[None]:
        """A nested transaction: an exception out of it undoes exactly its writes."""

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """Reads inside it see one consistent state of the database."""


class Tx(Protocol):
    """What a write script sees: the batch transaction's connection and its seq allocator."""

    @property
    def sql(self) -> Sql: ...

    async def next_seq(self, conv: int) -> int:
        """The next seq of ``conv`` (gapless: the batch's rollback gives it back)."""

    def removals(self, conv: int) -> int:
        """``conv``'s count of members gone, as read with its last ``next_seq`` (see
        ``StoredMessage.removals``)."""

    def touched(self, conv: int) -> None:
        """``conv``'s members or bot accesses changed (a backend drops what it cached)."""


class Op(Generic[T]):
    """One queued write: ``fn`` runs inside the batch's transaction, or ``message`` is appended
    (the hot path, each backend's own). ``fn`` raises a ``ChatdError`` only before it writes
    anything (or inside a savepoint), so a refused op leaves the transaction as it found it and
    the rest of the batch commits. It may run more than once (PostgreSQL runs a batch again
    after losing a race), so it keeps no state outside the database. ``then``, if set, is
    called with the resolved future by the writer itself (``GroupCommitWriter._commit``)."""

    __slots__ = ("fn", "future", "message", "queued_at", "then")

    def __init__(
        self,
        fn: Callable[[Any], Any] | None,
        future: asyncio.Future[T],
        message: Any = None,
        then: Callable[[asyncio.Future[T]], None] | None = None,
    ) -> None:
        self.fn = fn
        self.future = future
        self.message = message
        self.then = then
        self.queued_at = 0.0


class Scripts:
    """The base of the store's concern classes, which bind each script to its method
    (``writes``, ``queues``, ``reads``). A backend supplies ``_submit`` (queue a write script
    for the group-commit writer; its future resolves with the script's result once committed,
    or with its refusal) and ``_read`` (run a read script on a read connection)."""

    healthy: bool
    _closing: bool

    def _submit(self, fn: Callable[[Tx], Awaitable[T]]) -> asyncio.Future[T]:
        raise NotImplementedError

    async def _write(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        return await self._submit(fn)

    async def _read(self, fn: Callable[[Sql], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def ping(self) -> bool:
        """True when the database answers and the last commit succeeded; never raises."""
        try:
            await self._read(lambda db: db.fetchval("SELECT 1"))
        except Exception:
            return False
        return self.healthy and not self._closing


async def server_key(tx: Tx, name: str, seed: bytes) -> bytes:
    """The server's secret ``name`` (a ``server_keys`` row), storing ``seed`` if there is none:
    the first node's wins, and every node (and restart) gets it back."""
    await tx.sql.execute(
        "INSERT INTO server_keys (name, seed) VALUES (?, ?) ON CONFLICT DO NOTHING", name, seed
    )
    return bytes(await tx.sql.fetchval("SELECT seed FROM server_keys WHERE name=?", name))


def writes(
    script: Callable[Concatenate[Tx, P], Awaitable[T]],
) -> Callable[Concatenate[Scripts, P], Coroutine[Any, Any, T]]:
    """``name = writes(script)`` in a store class: ``store.name(...)`` runs ``script(tx, ...)``
    as one write of the group commit and returns its result once it is committed."""

    async def method(store: Scripts, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._write(lambda tx: script(tx, *args, **kwargs))

    return method


def queues(
    script: Callable[Concatenate[Tx, P], Awaitable[T]],
) -> Callable[Concatenate[Scripts, P], asyncio.Future[T]]:
    """Like ``writes``, but ``store.name(...)`` returns the write's future at once (queued)."""

    def method(store: Scripts, /, *args: P.args, **kwargs: P.kwargs) -> asyncio.Future[T]:
        return store._submit(lambda tx: script(tx, *args, **kwargs))

    return method


def reads(
    script: Callable[Concatenate[Sql, P], Awaitable[T]],
) -> Callable[Concatenate[Scripts, P], Coroutine[Any, Any, T]]:
    """``name = reads(script)``: ``store.name(...)`` runs ``script(db, ...)`` on a read
    connection."""

    async def method(store: Scripts, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await store._read(lambda db: script(db, *args, **kwargs))

    return method


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Drive ``coro`` to its end without an event loop turn; it must never suspend (SQLite's
    scripts do not: ``RuntimeError`` if one does)."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a SQLite script suspended: it would leave the loop's thread or turn")
