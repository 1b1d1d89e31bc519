"""Where the group-commit writer runs a COMMIT: on the loop's thread for small batches on a fast
disk (no thread hand-off), on the writer thread for large batches and while the disk is slow
(the loop is never held by a slow fsync for long); and what a commit sets off runs in the
writer's own turn (acks and deliveries leave without waiting for further turns)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chatd.errors import NotFound, Unavailable
from chatd.store import writer
from chatd.store.sql import Op
from chatd.store.writer import GroupCommitWriter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(writer, "time", c)
    return c


def new_writer() -> GroupCommitWriter[Any]:
    return GroupCommitWriter(max_batch=1024, queue_bound=16, commit_interval=0.0, on_batch=None)


FAST = GroupCommitWriter.INLINE_COMMIT_MAX / 4
SLOW = GroupCommitWriter.INLINE_COMMIT_MAX * 4


def test_small_batches_commit_on_the_loop_and_large_ones_on_the_thread(clock: Clock) -> None:
    w = new_writer()
    assert w._commit_on_loop(1)
    assert w._commit_on_loop(GroupCommitWriter.INLINE_BATCH_MAX)
    assert not w._commit_on_loop(GroupCommitWriter.INLINE_BATCH_MAX + 1)


def test_a_slow_commit_on_the_loop_sends_the_next_ones_to_the_thread_for_a_while(
    clock: Clock,
) -> None:
    w = new_writer()
    w._commit_took(SLOW, on_loop=True)
    assert not w._commit_on_loop(1)
    clock.now += GroupCommitWriter.INLINE_BACKOFF * 0.9
    assert not w._commit_on_loop(1)
    clock.now += GroupCommitWriter.INLINE_BACKOFF * 0.2
    assert w._commit_on_loop(1)  # tried on the loop again


def test_each_slow_try_on_the_loop_doubles_the_wait_up_to_its_bound(clock: Clock) -> None:
    w = new_writer()
    waits = []
    for _ in range(8):
        w._commit_took(SLOW, on_loop=True)
        start = clock.now
        while not w._commit_on_loop(1):
            clock.now += 0.25
        waits.append(clock.now - start)
    assert waits[:3] == [1.0, 2.0, 4.0]
    assert max(waits) == GroupCommitWriter.INLINE_BACKOFF_MAX


def test_a_fast_commit_on_the_thread_brings_commits_back_to_the_loop(clock: Clock) -> None:
    w = new_writer()
    w._commit_took(SLOW, on_loop=True)
    w._commit_took(SLOW, on_loop=False)  # slow on the thread: the disk or the GIL, unknown
    assert not w._commit_on_loop(1)
    w._commit_took(FAST, on_loop=False)
    assert w._commit_on_loop(1)
    w._commit_took(SLOW, on_loop=True)  # and the wait starts again from its first length
    clock.now += GroupCommitWriter.INLINE_BACKOFF + 0.01
    assert w._commit_on_loop(1)


# --------------------------------------------------------------------------- what a commit sets off


class Ops(GroupCommitWriter[Op[Any]]):
    """A writer whose transaction answers each op with its ``message`` (an exception refuses
    it), or fails whole when ``fail`` is set."""

    fail = False

    async def _apply_batch(self, batch: list[Op[Any]]) -> list[Any]:
        if self.fail:
            raise OSError("disk gone")
        return [op.message for op in batch]


def queue(w: Ops, seen: list[Any], answer: Any) -> asyncio.Future[Any]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()

    def then(f: asyncio.Future[Any]) -> None:
        seen.append(("then", answer, f.exception() or f.result()))

    w._enqueue(Op(None, future, answer, then))
    return future


async def test_acks_and_deliveries_of_a_commit_leave_in_its_own_turn_in_commit_order() -> None:
    """Each op's ``then`` runs as its future resolves, in queue order, and the outbox is flushed
    once after all of them, before the loop runs anything else: a done callback would run a turn
    later and its writes another turn after that."""
    w = Ops(max_batch=1024, queue_bound=16, commit_interval=0.0, on_batch=None)
    seen: list[Any] = []
    w.after_batch = lambda: seen.append("flush")
    refused = NotFound("no such conversation")
    for answer in ("a", refused, "c"):
        queue(w, seen, answer)
    asyncio.get_running_loop().call_soon(seen.append, "next turn")
    await w._commit(w._pending[:])
    assert seen[:4] == [("then", "a", "a"), ("then", refused, refused), ("then", "c", "c"), "flush"]
    await asyncio.sleep(0)
    assert seen[4:] == ["next turn"]


async def test_a_failed_commit_tells_every_op_and_a_failing_callback_stops_none() -> None:
    w = Ops(max_batch=1024, queue_bound=16, commit_interval=0.0, on_batch=None)
    w.fail = True
    seen: list[Any] = []
    flushed: list[int] = []
    w.after_batch = lambda: flushed.append(1)
    loop = asyncio.get_running_loop()
    broken: asyncio.Future[Any] = loop.create_future()

    def raising(f: asyncio.Future[Any]) -> None:
        raise RuntimeError("a bug in one callback")

    w._enqueue(Op(None, broken, "x", raising))
    queue(w, seen, "y")
    await w._commit(w._pending[:])
    assert [type(r) for _, _, r in seen] == [Unavailable]
    assert type(broken.exception()) is Unavailable
    assert flushed == [1]


async def test_a_refused_enqueue_calls_back_on_the_next_turn_not_inside_the_senders_call() -> None:
    """Overloaded (or closing): the caller's own code is still running when ``_enqueue``
    refuses, so its callback waits for the next turn, as a done callback would."""
    w = Ops(max_batch=1024, queue_bound=1, commit_interval=0.0, on_batch=None)
    seen: list[Any] = []
    queue(w, seen, "fits")
    queue(w, seen, "one too many")
    assert seen == []
    await asyncio.sleep(0)
    assert [(a, type(r)) for _, a, r in seen] == [("one too many", Unavailable)]
