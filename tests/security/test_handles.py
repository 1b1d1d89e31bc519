"""Issue 14.9, lookalike handles, against a real server on SQLite and on PostgreSQL: ``a1ice``,
``alice.`` and ``alice_`` were accepted beside ``alice``; a handle whose skeleton (TR39,
``chatd.core.handles``) is an existing handle's is now refused with ``HANDLE_TAKEN``."""

from __future__ import annotations

import random
import sqlite3
import string
from pathlib import Path

import asyncpg
import pytest
from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

from chatd.core.handles import SKELETON_SQL, skeleton
from chatd.store.accounts import _LOOKALIKE
from chatd.store.migrate import migrate_sqlite

LOOKALIKES = ["a1ice", "alice.", "alice_", "al.ice", "a_l_i_c_e", "a1_ice"]


async def register(url: str, handle: str) -> str:
    c = await Raw.open(url)
    try:
        f = await c.request(
            F.Register(
                id=1,
                handle=handle,
                name="x",
                device_key=c.key.public_key,
                device_name="raw",
                sig=c.login_sig(),
            )
        )
        return "ok" if isinstance(f, F.Welcome) else ErrorCode(f.code).name
    finally:
        await c.close()


async def test_a_lookalike_of_an_existing_handle_is_refused(db: str, tmp_path: Path) -> None:
    async with run_server(make_settings(tmp_path, store={"db": db})) as server:
        assert await register(server.url, "alice") == "ok"
        assert await register(server.url, "mallory") == "ok"
        assert await register(server.url, "b0b") == "ok"
        # Before: every one of these was a new account.
        for handle in [*LOOKALIKES, "rnallory", "ma11ory", "bob", "b_o_b"]:
            assert await register(server.url, handle) == "HANDLE_TAKEN", handle
        # What does not look like a taken handle still registers.
        for handle in ["alicia", "alice2", "bobby", "rnalice"]:
            assert await register(server.url, handle) == "ok", handle


@pytest.mark.parametrize("handle", ["a1ice", "alice.", "alice_"])
async def test_the_lookalike_that_registers_first_holds_the_skeleton(
    tmp_path: Path, handle: str
) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        assert await register(server.url, handle) == "ok"
        assert await register(server.url, "alice") == "HANDLE_TAKEN"


def test_the_index_computes_the_skeleton_for_every_account_and_serves_the_check(
    tmp_path: Path,
) -> None:
    """The index is over the SQL form of ``skeleton`` (so the accounts from before the migration
    are covered with no backfill): for any handle it equals the Python one, and the store's
    lookalike query is answered from the index."""
    db = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    migrate_sqlite(db, until=6)
    rng = random.Random(149)
    alphabet = string.ascii_lowercase + string.digits + "_."
    handles = ["alice", "a1ice", "mallory", "rnallory"] + [
        rng.choice(string.ascii_lowercase) + "".join(rng.choices(alphabet, k=rng.randint(2, 12)))
        for _ in range(500)
    ]
    for i, h in enumerate(dict.fromkeys(handles)):
        db.execute(
            "INSERT INTO accounts (id, handle, name, type, created_at) VALUES (?,?,?,?,?)",
            (i + 1, h, h, "user", 0),
        )
    assert migrate_sqlite(db)[0] == "0007_handle_skeleton.sql"  # and what came after it
    for handle, in_sql in db.execute(f"SELECT handle, {SKELETON_SQL} FROM accounts"):
        assert in_sql == skeleton(handle), handle
    plan = " ".join(
        str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + _LOOKALIKE, ("alice",))
    )
    assert "USING INDEX accounts_skeleton" in plan, plan
    # Lookalikes that existed before the rule both stay; a third is found by either.
    assert (
        db.execute(_LOOKALIKE.replace("SELECT 1", "SELECT count(*)"), ("alice",)).fetchone()[0] == 2
    )
    db.close()


async def test_postgresql_answers_the_lookalike_query_from_the_index(pg_dsn: str) -> None:
    """The store's query repeats the index's expression exactly, so PostgreSQL can use it
    (sequential scans off: a table this small would otherwise be scanned)."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("SET enable_seqscan = off")
        sql = _LOOKALIKE.replace("?", "$1")
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, "alice"))
        assert "accounts_skeleton" in plan, plan
    finally:
        await conn.close()
