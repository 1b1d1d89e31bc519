"""Where the group-commit writer runs a COMMIT: on the loop's thread for small batches on a fast
disk (no thread hand-off), on the writer thread for large batches and while the disk is slow
(the loop is never held by a slow fsync for long)."""

from __future__ import annotations

from typing import Any

import pytest

from chatd.store import writer
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
