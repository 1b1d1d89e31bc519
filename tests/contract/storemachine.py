"""The harness of the store's model-based property tests (hypothesis state machines over a real
store): a machine owns its own event loop (hypothesis calls rules synchronously), opens its
store at the start of each example and closes it in ``teardown``; the openers make a fresh
SQLite file or PostgreSQL database per example, so no example sees another's rows."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import uvloop
from hypothesis.stateful import RuleBasedStateMachine

from chatd.store import Store
from chatd.store.postgres import PostgresStore
from chatd.store.sqlite import SQLiteStore

from .conftest import PostgresServer

T = TypeVar("T")
OpenStore = Callable[[], Awaitable[tuple[Store, Callable[[], Awaitable[None]]]]]
"""Opens a fresh store with its writer running; the store and how to close it (and drop it)."""


class StoreMachine(RuleBasedStateMachine):
    """A state machine over ``open_store()``'s store (set by the test before running it)."""

    open_store: ClassVar[OpenStore]

    def __init__(self) -> None:
        super().__init__()
        self._runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
        self.store, self._close = self._run(type(self).open_store())

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coro)

    def teardown(self) -> None:
        try:
            self._run(self._close())
        finally:
            self._runner.close()


def sqlite_opener(prefix: str, filename: str) -> OpenStore:
    """A new SQLite store in a new temporary folder each time, removed when closed."""

    async def open_store() -> tuple[Store, Callable[[], Awaitable[None]]]:
        folder = tempfile.mkdtemp(prefix=prefix)
        store = SQLiteStore(str(Path(folder) / filename), synchronous="NORMAL", max_batch=64)
        await store.open()
        writer = asyncio.get_running_loop().create_task(store.run())

        async def close() -> None:
            await store.aclose()
            await writer
            shutil.rmtree(folder, ignore_errors=True)

        return store, close

    return open_store


def postgres_opener(postgres_server: PostgresServer) -> OpenStore:
    """A new PostgreSQL database on ``postgres_server`` each time, dropped when closed."""

    async def open_store() -> tuple[Store, Callable[[], Awaitable[None]]]:
        dsn = await postgres_server.create_database()
        store = PostgresStore(dsn, read_pool=2, max_batch=64)
        await store.open()
        writer = asyncio.get_running_loop().create_task(store.run())

        async def close() -> None:
            await store.aclose()
            await writer
            await postgres_server.drop_database(dsn)

        return store, close

    return open_store
