"""Shared server set-ups for the channel, timeline and moderation tests: the frame limits high
enough that a test's own burst is never rate-limited, one server on a given database, three nodes
on one PostgreSQL and one Redis, and a registered SDK client. Written once here so the tests that
use them start the same servers the same way."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from chatclient import Client, KeyStore
from conftest import RunningServer, make_settings, run_server

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
"""Limits no test's own traffic reaches, for tests about something other than rate limits."""


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, db: str | None = None, **sections: dict[str, Any]
) -> AsyncIterator[RunningServer]:
    """One server with the ``FAST`` limits on ``db`` (a SQLite path or a PostgreSQL DSN; by
    default a SQLite file in ``tmp_path``), with ``sections`` added to its settings."""
    if db is not None:
        sections = {**sections, "store": {"db": db}}
    async with run_server(make_settings(tmp_path, limits=FAST, **sections)) as s:
        yield s


@contextlib.asynccontextmanager
async def three_nodes(
    pg_dsn: str, redis_url: str, tmp_path: Path, **sections: dict[str, Any]
) -> AsyncIterator[list[str]]:
    """Three nodes on one database and one Redis, each with its broker up, with ``sections``
    added to their settings; their URLs."""
    settings = make_settings(
        tmp_path, store={"db": pg_dsn}, broker={"url": redis_url}, limits=FAST, **sections
    )
    async with AsyncExitStack() as stack:
        running: list[RunningServer] = [
            await stack.enter_async_context(run_server(settings)) for _ in range(3)
        ]
        for node in running:
            async with asyncio.timeout(10):
                while not node.app.broker.healthy():
                    await asyncio.sleep(0.01)
        yield [node.url for node in running]


async def sdk_user(server: RunningServer, tmp_path: Path, handle: str) -> Client:
    """An SDK client connected to ``server`` and registered as ``handle`` (the caller closes it)."""
    c = Client(server.url, KeyStore.open(tmp_path / f"{handle}.key"))
    await c.__aenter__()
    await c.register(handle, handle.title())
    return c


@contextlib.asynccontextmanager
async def sdk_users(
    server: RunningServer, tmp_path: Path, *handles: str
) -> AsyncIterator[list[Client]]:
    """``sdk_user`` for each of ``handles``, in that order; all closed, in that order, at the end
    (those already made are closed too when a later one fails to register)."""
    clients: list[Client] = []
    try:
        for handle in handles:
            clients.append(await sdk_user(server, tmp_path, handle))
        yield clients
    finally:
        for c in clients:
            await c.aclose()
