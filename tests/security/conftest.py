"""Fixtures of the attack suite: a real chatd (in-process, ephemeral port) on SQLite or on a
throwaway PostgreSQL (one per test session, a fresh migrated database per test), and throwaway
redis-servers for the several-node cases. Nothing here mocks a store, a broker or the network."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pgserver import PostgresServer, pg_bindir
from redisd import RedisServer


@pytest.fixture(scope="session")
def security_pg() -> Iterator[PostgresServer]:
    """ONE throwaway PostgreSQL for the session, stopped (-m immediate) at teardown."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
async def pg_dsn(security_pg: PostgresServer) -> AsyncIterator[str]:
    """A fresh migrated database on the session's PostgreSQL, dropped afterwards."""
    dsn = await security_pg.create_database()
    try:
        yield dsn
    finally:
        await security_pg.drop_database(dsn)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``store.db`` for the test: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "chatd.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
