"""asyncio primitives for the hot path that do not ask for the running loop on every call.

In CPython 3.11 every ``asyncio.get_running_loop()`` (and so ``asyncio.Event.wait``,
``asyncio.sleep``, ``asyncio.timeout``, ``create_task``) checks the loop's pid with a
``getpid()`` system call, and on a virtual machine a system call costs microseconds (3.7 us each
on the benchmark machine, a Firecracker guest). A node of a cluster made 9 of them per message,
one node 2.3 (``strace -c``, ``loadtest/bench_cluster_instr.py --strace``). These take the loop
once and keep it.
"""

from __future__ import annotations

import asyncio


class Wake:
    """An ``asyncio.Event`` for ONE waiting task that waits on the loop it is given."""

    __slots__ = ("_flag", "_waiter")

    def __init__(self) -> None:
        self._flag = False
        self._waiter: asyncio.Future[None] | None = None

    def set(self) -> None:
        if self._flag:
            return
        self._flag = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Return once ``set()`` (at once if it is set); ``loop`` is the running loop."""
        if self._flag:
            return
        waiter = self._waiter = loop.create_future()
        try:
            await waiter
        finally:
            self._waiter = None


async def sleep(loop: asyncio.AbstractEventLoop, seconds: float) -> None:
    """``asyncio.sleep`` on a loop the caller already holds."""
    waiter: asyncio.Future[None] = loop.create_future()
    timer = loop.call_later(seconds, _wake_up, waiter)
    try:
        await waiter
    finally:
        timer.cancel()


def _wake_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
