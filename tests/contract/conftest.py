"""The store contract runs against every backend listed in ``BACKENDS``.

A backend is a ``StoreBackend``: it opens a store on ONE durable location (so a test can close
the store and open another on the same data), runs its writer for the test, and closes it.
To add PostgreSQL, write a ``PostgresBackend`` with the same three methods (skip it when no
database is configured) and add it to ``BACKENDS``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from chatd.store.base import AccountRow, DeviceRow, Store
from chatd.store.sqlite import SQLiteStore


class StoreBackend(Protocol):
    name: str
    one_writer_per_location: bool
    """True when a second store on the same data must refuse to open while one is open."""

    def new_store(self) -> Any:
        """A store on this backend's location, not yet opened."""
        ...

    async def start(self, store: Any) -> None:
        """Open ``store`` and run its writer in a task until ``stop``."""
        ...

    async def stop(self, store: Any) -> None: ...


class SQLiteBackend:
    name = "sqlite"
    one_writer_per_location = True

    def __init__(self, tmp_path: Path) -> None:
        self.path = str(tmp_path / "contract.db")
        self._writers: dict[int, asyncio.Task[None]] = {}

    def new_store(self) -> SQLiteStore:
        return SQLiteStore(self.path)

    async def start(self, store: SQLiteStore) -> None:
        await store.open()
        self._writers[id(store)] = asyncio.create_task(store.run(), name="sqlite-writer")

    async def stop(self, store: SQLiteStore) -> None:
        task = self._writers.pop(id(store))
        await store.aclose()
        await asyncio.wait_for(task, 10)


BACKENDS: dict[str, Callable[[Path], Any]] = {"sqlite": SQLiteBackend}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    factory: Callable[[Path], StoreBackend] = BACKENDS[request.param]
    return factory(tmp_path)


class Stores:
    """Opens running stores on one backend's data and closes whatever is still open at teardown.

    ``await stores.open()`` can be called again after ``await stores.close(s)`` to reopen the
    same data (restart), or while another store is open (second writer).
    """

    def __init__(self, backend: StoreBackend) -> None:
        self.backend = backend
        self._running: list[Any] = []

    async def open(self) -> Store:
        store = self.backend.new_store()
        await self.backend.start(store)
        self._running.append(store)
        return store  # type: ignore[no-any-return]

    async def close(self, store: Store) -> None:
        """Close ``store``: it drains its queued writes, then stops its writer."""
        for i, s in enumerate(self._running):
            if s is store:
                del self._running[i]
                await self.backend.stop(store)
                return

    async def close_all(self) -> None:
        while self._running:
            await self.close(self._running[-1])


@pytest.fixture
async def stores(backend: StoreBackend) -> AsyncIterator[Stores]:
    s = Stores(backend)
    try:
        yield s
    finally:
        await s.close_all()


@pytest.fixture
async def store(stores: Stores) -> Store:
    return await stores.open()


_keys = itertools.count(1)


def device_key() -> bytes:
    """A fresh 32-byte device public key (the schema requires exactly 32 bytes)."""
    return next(_keys).to_bytes(32, "big")


MakeAccount = Callable[..., Awaitable[tuple[AccountRow, DeviceRow]]]


@pytest.fixture
def make_account(store: Store) -> MakeAccount:
    """``await make_account("alice")`` -> (account, device) with a fresh device key."""

    async def _make(handle: str, *, type: str = "user") -> tuple[AccountRow, DeviceRow]:
        return await store.create_account(handle, handle.title(), type, device_key(), "laptop", 1)

    return _make
