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
import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import pytest
from redisd import RedisServer

from chatd.store.base import AccountRow, DeviceRow, Store
from chatd.store.migrate import migrate_postgres
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


# ------------------------------------------------------------------ a throwaway PostgreSQL

PG_USER = "nobody"
"""initdb refuses to run as root: as root, the server runs as this unprivileged user."""


def pg_bindir() -> str | None:
    """A directory holding both ``initdb`` and ``pg_ctl``: PATH, /usr/local/bin, then Debian's
    /usr/lib/postgresql/<version>/bin (newest first)."""
    found = shutil.which("initdb")
    candidates = [os.path.dirname(found)] if found else []
    candidates.append("/usr/local/bin")
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    for d in candidates:
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(
            os.path.join(d, "pg_ctl"), os.X_OK
        ):
            return d
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temp dir, on a free port on 127.0.0.1 (never the system's)."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="chatd-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(PG_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", PG_USER, "--"]
        self._databases = itertools.count(1)
        self._template = False

    def _run(self, *args: str) -> None:
        subprocess.run(
            [*self._as_user, os.path.join(self.bindir, args[0]), *args[1:]],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
            cwd=self.dir,
        )

    def start(self) -> None:
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", self.data, "-o", options, "-l", f"{self.dir}/log", "-w", "start")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def create_database(self) -> str:
        """A fresh, migrated database (a copy of the template); its DSN."""
        if not self._template:
            await self._make_template()
            self._template = True
        name = f"chatd_{os.getpid()}_{next(self._databases)}"
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE chatd_template')
        finally:
            await admin.close()
        return self.dsn(name)

    async def drop_database(self, dsn: str) -> None:
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()

    async def _make_template(self) -> None:
        """The migrated database every test's database is copied from (made on first use)."""
        admin = await asyncpg.connect(self.dsn())
        try:
            await admin.execute("CREATE DATABASE chatd_template")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.dsn("chatd_template"))
        try:
            await migrate_postgres(conn)
        finally:
            await conn.close()


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
