"""Group commit, shared by the store backends: one writer per store commits everything queued
since its last commit (up to ``max_batch``) as ONE transaction, then resolves the callers'
futures in order. A backend supplies ``_apply_batch`` (run the ops inside one transaction and
return one result — or a refused ``ChatdError`` — per op).

What a commit sets off runs in the writer's own turn of the loop: an op's ``then`` as its
future resolves, then ``after_batch`` (the server flushes its outbox there). A done callback
would wait for the next turn, and the outbox's own flush for the one after; on uvloop each turn
first reads every socket that has data, so at ~75% of a core each hop cost a message ~0.3 ms
at the median and several at p99 (README, "Ninth session"). ``on_write`` reports each write's
wait and its time to done (``chatd_store_wait_seconds``, ``chatd_store_done_seconds``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from chatd import aio
from chatd.errors import Unavailable

log = logging.getLogger(__name__)

BatchObserver = Callable[[int, float], None]
"""Called after each commit with (batch size, seconds the transaction took)."""

WriteObserver = Callable[[float, float], None]
"""Called for each write once its batch is done with (seconds it waited in the queue before its
commit started, seconds from queued to done: committed, its ``then`` run and the outbox
flushed; for a message, from its ``send`` being read to its ack and deliveries written)."""


class QueuedOp(Protocol):
    @property
    def future(self) -> asyncio.Future[Any]: ...
    @property
    def then(self) -> Callable[[asyncio.Future[Any]], None] | None: ...

    queued_at: float


OpT = TypeVar("OpT", bound=QueuedOp)


class GroupCommitWriter(Generic[OpT]):
    """The queue, the writer loop and shutdown of a group-committing store."""

    def __init__(
        self,
        *,
        max_batch: int,
        queue_bound: int,
        commit_interval: float,
        on_batch: BatchObserver | None,
    ) -> None:
        self._max_batch = max_batch
        self._queue_bound = queue_bound
        self._commit_interval = commit_interval
        self._on_batch = on_batch
        self._pending: list[OpT] = []
        self._wake = aio.Wake()
        self._loop: asyncio.AbstractEventLoop | None = None
        """The running loop while ``run()`` runs (``chatd.aio``: asking for it costs a system call)."""
        self._closing = False
        self._running = False
        self._stopped = asyncio.Event()
        self._last_start = -1e9
        self._inline_after = 0.0
        self._backoff = self.INLINE_BACKOFF
        self.healthy = True
        self.after_batch: Callable[[], None] | None = None
        """Called once a batch's futures are resolved and their ``then`` ran (the server's
        outbox flush: a commit's acks and deliveries leave in this turn)."""
        self.on_write: WriteObserver | None = None
        """Where each write's time goes (the server's metrics)."""

    INLINE_BATCH_MAX = 16
    """Ops: a larger batch always commits off the loop, where the backend can (see
    ``_commit_on_loop``)."""
    INLINE_COMMIT_MAX = 0.003
    """Seconds: a COMMIT on the loop slower than this blocked it too long. Not lower: on this
    repository's machine a small COMMIT takes 0.8 ms (median; 1.0-1.5 ms at p90-p99, the WAL's
    pwrites and fdatasync), so a 1 ms bound sent ~30% of commits to the thread, where each took
    2-6 ms (GIL passes) and a delivery cost 60% more context switches, for no CPU saved; see
    the README, "The fast path, sixth session"."""
    INLINE_BACKOFF = 1.0
    INLINE_BACKOFF_MAX = 30.0

    @property
    def queued(self) -> int:
        """Writes waiting for the next group commit."""
        return len(self._pending)

    async def _apply_batch(self, batch: list[OpT]) -> list[Any]:
        """One transaction for the whole batch (the backend's part)."""
        raise NotImplementedError

    def _commit_on_loop(self, size: int) -> bool:
        """Whether a backend that can commit on a thread (the fsync off the loop) should rather
        commit this batch of ``size`` ops on the loop's own thread: a small batch, unless a
        recent commit on the loop was slow. Handing a commit to a thread and back costs
        wake-ups, context switches and passes of the GIL (each waits for the loop to let go of
        it, up to the interpreter's switch interval when the loop is busy): on a fast disk that
        costs more CPU and latency than the fsync it moves, which then blocks the loop for a
        fraction of a millisecond. A large batch always goes to the thread."""
        return size <= self.INLINE_BATCH_MAX and time.monotonic() >= self._inline_after

    def _commit_took(self, seconds: float, *, on_loop: bool) -> None:
        """Record how long a COMMIT took. One on the loop slower than ``INLINE_COMMIT_MAX`` (a
        busy disk) sends the next commits to the thread for ``_backoff`` seconds, doubled at
        each slow try up to ``INLINE_BACKOFF_MAX``; a fast commit (on the loop, or on the
        thread, whose time is an upper bound of the disk's: it includes waiting for the GIL)
        brings them back at once. A slow one on the thread says nothing (the disk or the GIL)."""
        if seconds < self.INLINE_COMMIT_MAX:
            self._inline_after = 0.0
            self._backoff = self.INLINE_BACKOFF
        elif on_loop:
            self._inline_after = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.INLINE_BACKOFF_MAX)

    def _gather_window(self) -> float:
        """Seconds to wait for more writes before the next commit, unless the backend adapts it
        otherwise: what is left of ``commit_interval`` since the last commit started, so an idle
        writer commits at once and at most one commit starts per interval."""
        return self._last_start + self._commit_interval - time.monotonic()

    async def run(self) -> None:
        """The writer: commits everything queued (up to ``max_batch``) as one transaction and
        resolves the futures in order; it returns once ``aclose`` was called and nothing is left
        to commit.

        Gathering is adaptive (``_gather_window``): an idle writer commits at once (no fixed
        wait), and at most one commit starts per ``commit_interval``; the writes that arrive
        meanwhile, and while a commit is in flight, form the next batch, so batches grow with the
        load."""
        self._running = True
        loop = self._loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait(loop)
                window = self._gather_window() if len(self._pending) < self._max_batch else 0.0
                if window > 0:
                    await aio.sleep(loop, window)
                self._wake.clear()
                if self._pending:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    self._last_start = time.monotonic()
                    await self._commit(batch)
                    if self._pending:
                        self._wake.set()  # more: commit it after letting the loop breathe
                        continue
                if self._closing:
                    return
        finally:
            self._loop = None
            self._stopped.set()

    async def _commit(self, batch: list[OpT]) -> None:
        begun = time.monotonic()
        try:
            results = await self._apply_batch(batch)
        except Exception as exc:  # the whole transaction failed: nothing was stored
            self.healthy = False
            log.error("commit failed", extra={"error": repr(exc), "batch": len(batch)})
            results = [Unavailable("the store could not commit; retry") for _ in batch]
        else:
            self.healthy = True
            if self._on_batch is not None:
                self._on_batch(len(batch), time.monotonic() - begun)
        for op, result in zip(batch, results, strict=True):
            future = op.future
            if future.done():  # the caller gave up waiting; the write still happened
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
            then = op.then
            if then is not None:
                try:
                    then(future)
                except Exception:  # as the loop would for a done callback: the batch goes on
                    log.exception("a committed write's callback failed")
        if self.after_batch is not None:
            self.after_batch()
        on_write = self.on_write
        if on_write is not None:
            done = time.monotonic()
            for op in batch:
                on_write(begun - op.queued_at, done - op.queued_at)

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop: the writer's while it runs, without asking asyncio, whose
        ``get_running_loop`` makes a ``getpid`` system call each time (it checks for a fork)."""
        loop = self._loop
        return loop if loop is not None else asyncio.get_running_loop()

    def _future(self) -> asyncio.Future[Any]:
        """A future on the running loop (the writer's, while it runs: no system call)."""
        return self._running_loop().create_future()

    def _enqueue(self, op: OpT) -> None:
        """Queue ``op`` for the next commit, or fail its future at once (closing, overloaded)."""
        if self._closing or len(self._pending) >= self._queue_bound:
            if op.then is not None:  # on the next turn, as the caller's own code has not returned
                op.future.add_done_callback(op.then)
            op.future.set_exception(
                Unavailable(
                    "the server is shutting down"
                    if self._closing
                    else "the store is overloaded; retry"
                )
            )
        else:
            op.queued_at = time.monotonic()
            self._pending.append(op)
            self._wake.set()

    async def _drain(self) -> bool:
        """Refuse new writes and commit what is queued. False when already closing."""
        if self._closing:
            return False
        self._closing = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()
        elif self._pending:  # the writer never ran: commit here rather than lose acks
            batch, self._pending = self._pending, []
            await self._commit(batch)
        return True
