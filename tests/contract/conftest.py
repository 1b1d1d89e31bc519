"""The store contract runs against every backend listed in ``BACKENDS``.

A backend is a ``StoreBackend``: it opens a store on ONE durable location (so a test can close
the store and open another on the same data), runs its writer for the test, and closes it.
A factory in ``BACKENDS`` gets the test's request and tmp_path. ``PostgresBackend`` gives each
test a fresh database (copied from a migrated template) on ONE throwaway PostgreSQL server per
test session (``postgres_server``: initdb + pg_ctl on a free port and a temp dir, run as an
unprivileged user when the tests run as root; skipped when the binaries are missing).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer

from chatd.store import Store
from chatd.store.base import AccountRow, DeviceRow
from chatd.store.postgres import PostgresStore
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """ONE throwaway PostgreSQL for the test session, stopped (-m immediate) at teardown."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not found on PATH, /usr/local/bin or"
            " /usr/lib/postgresql/*/bin: apt-get install -y postgresql"
        )
    server = PostgresServer(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A throwaway redis-server on a free port (SIGKILL-able: ``kill()``, then ``start()``)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


class PostgresBackend:
    name = "postgres"
    one_writer_per_location = False

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.dsn = ""
        self._writers: dict[int, asyncio.Task[None]] = {}

    async def setup(self) -> None:
        self.dsn = await self.server.create_database()

    async def teardown(self) -> None:
        await self.server.drop_database(self.dsn)

    def new_store(self) -> PostgresStore:
        return PostgresStore(self.dsn, read_pool=2)

    async def start(self, store: PostgresStore) -> None:
        await store.open()
        self._writers[id(store)] = asyncio.create_task(store.run(), name="postgres-writer")

    async def stop(self, store: PostgresStore) -> None:
        task = self._writers.pop(id(store))
        await store.aclose()
        await asyncio.wait_for(task, 10)


def _sqlite(request: pytest.FixtureRequest, tmp_path: Path) -> SQLiteBackend:
    return SQLiteBackend(tmp_path)


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> PostgresBackend:
    return PostgresBackend(request.getfixturevalue("postgres_server"))


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Any]] = {
    "sqlite": _sqlite,
    "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreBackend]:
    factory: Callable[[pytest.FixtureRequest, Path], StoreBackend] = BACKENDS[request.param]
    b = factory(request, tmp_path)
    setup = getattr(b, "setup", None)
    if setup is not None:
        await setup()
    try:
        yield b
    finally:
        teardown = getattr(b, "teardown", None)
        if teardown is not None:
            await teardown()


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
