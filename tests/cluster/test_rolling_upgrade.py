"""A rolling upgrade across the newest migration: a node of the previous schema (the code of the
commit before the newest migration, taken from git history) runs beside a node of this tree on
one PostgreSQL and one Redis; the new node migrates the database under the old one, clients on
either node chat across them, then the old node is replaced by a new one and nothing is lost.
And statically: every migration after the first only adds (tables, indexes, triggers, nullable
or defaulted columns), which is what lets old and new nodes share a database meanwhile."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

import asyncpg
import pytest
from chatclient import Client, KeyStore, Message
from pgserver import PostgresServer
from redisd import RedisServer
from testkit import Checker, free_port, http_get

from chatd.store.migrate import migrate_sqlite, migrations

from .conftest import REDIS_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30

ADDITIVE = re.compile(
    r"^(CREATE (TABLE|INDEX|UNIQUE INDEX|TRIGGER|FUNCTION)\b"
    r"|ALTER TABLE \w+ ADD COLUMN \w+ [\w\[\]]+( NOT NULL DEFAULT .+| DEFAULT .+)?$"
    r"|END\b|\$\$|INSERT INTO)",
    re.S,
)


ADDED_COLUMN = re.compile(r"^ALTER TABLE (\w+) ADD COLUMN (\w+) ")
BACKFILL = re.compile(r"^UPDATE (\w+) SET (\w+) = [^,]+$")
"""``UPDATE t SET c = ...`` of one column: additive when the same migration added ``t.c``."""


WIDENS = {
    "0024_creators.sql": "transfers.type and its receipt CHECK admit two more posting types"
    " (tip, charge); every row an older node writes passes the new CHECKs as it passed the old",
}
"""Migrations that replace a CHECK by a wider one (what older code writes still passes): on
PostgreSQL the constraint is dropped and added again, on SQLite the table is rebuilt."""
RESTORES = {
    "0027_messages_in_commit_order.sql": "SQLite's messages is rebuilt as a rowid table: the"
    " same columns, constraints and keys, so every statement of older code runs on it unchanged",
}
"""SQLite migrations that rebuild a table into the same columns, constraints and keys (only how
its rows are stored changes): ``test_a_table_rebuilt_in_place_keeps_its_columns_and_keys``
checks that they do."""
REKEYS = {
    "0028_cmid_index_cmid_first.sql": "SQLite's messages_by_cmid is made again with its columns"
    " in another order: the same unique set, so an older node's resend still finds its message"
    " and inserts nothing",
}
"""SQLite migrations that drop a unique index and create it again over the same columns in
another order (only where its entries go changes): ``test_a_rekeyed_index_keeps_its_unique_set``
checks that they do."""
WIDENING = re.compile(
    r"^(DO \$\$ \$\$|ALTER TABLE \w+ ADD CONSTRAINT \w+ CHECK\b|DROP TABLE \w+"
    r"|ALTER TABLE \w+ RENAME TO \w+)"
)


def statements(sql: str) -> Iterator[str]:
    text = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    text = re.sub(r"\$\$.*?\$\$", "$$ $$", text, flags=re.S)  # a function's body changes no table
    for piece in text.split(";"):
        s = " ".join(piece.split())
        if s:
            yield s


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_every_migration_after_the_first_only_adds(dialect: str) -> None:
    for _, name, sql in migrations(dialect)[1:]:
        added: set[str] = set()  # columns this migration added: it may fill them (a backfill)
        for statement in statements(sql):
            if statement.startswith(("BEGIN", "RETURN", "IF ", "RAISE", "END IF")):
                continue  # inside a function or trigger body
            if column := ADDED_COLUMN.match(statement):
                added.add(f"{column[1]}.{column[2]}")
            if (fill := BACKFILL.match(statement)) and f"{fill[1]}.{fill[2]}" in added:
                continue  # old code never reads a column it does not know
            if (name in WIDENS or name in RESTORES) and WIDENING.match(statement):
                continue
            if name in REKEYS and re.fullmatch(r"DROP INDEX \w+", statement):
                continue
            assert ADDITIVE.match(statement), f"{name}: not additive: {statement[:120]}"
    assert [v for v, _, _ in migrations("sqlite")] == [v for v, _, _ in migrations("postgres")]


def table_shape(db: sqlite3.Connection, table: str) -> tuple[object, ...]:
    """What a statement of older code sees of ``table``: its definition without its name and
    storage clause, its columns, foreign keys and every index with the columns it covers."""
    sql = db.execute("SELECT sql FROM sqlite_schema WHERE type='table' AND name=?", (table,))
    definition = " ".join(sql.fetchone()[0].replace("WITHOUT ROWID", "").split())
    definition = definition[definition.index("(") :]
    indexes = sorted(
        (
            unique,
            origin,
            partial,
            tuple(r[2] for r in db.execute(f"PRAGMA index_info('{index}')")),
            # None for a primary key's own index (a WITHOUT ROWID table's has no row at all)
            (
                db.execute("SELECT sql FROM sqlite_schema WHERE name=?", (index,)).fetchone()
                or [None]
            )[0],
        )
        for _, index, unique, origin, partial in db.execute(f"PRAGMA index_list('{table}')")
    )
    return (
        definition,
        db.execute(f"PRAGMA table_info('{table}')").fetchall(),
        db.execute(f"PRAGMA foreign_key_list('{table}')").fetchall(),
        indexes,
    )


def unique_set(db: sqlite3.Connection, index: str) -> tuple[object, ...]:
    """What ``index`` keeps unique: its table, whether it is unique, a partial index's
    condition and its columns in any order."""
    row = db.execute("SELECT tbl_name, sql FROM sqlite_schema WHERE name=?", (index,))
    table, definition = row.fetchone()
    unique = [u for _, i, u, _, _ in db.execute(f"PRAGMA index_list('{table}')") if i == index]
    where = definition.split(" WHERE ", 1)[1:]
    columns = sorted(r[2] for r in db.execute(f"PRAGMA index_info('{index}')"))
    return table, unique, where, columns


def across(
    name: str, dropped: str, shape: Callable[[sqlite3.Connection, str], tuple[object, ...]]
) -> list[tuple[str, tuple[object, ...], tuple[object, ...]]]:
    """Each object (a ``dropped``: TABLE or INDEX) that SQLite migration ``name`` drops and makes
    again, with its ``shape`` before and after the migration."""
    found = [(v, sql) for v, n, sql in migrations("sqlite") if n == name]
    assert found, f"{name} is not a SQLite migration"
    version, sql = found[0]
    names = re.findall(rf"^DROP {dropped} (\w+)", sql, re.M)
    assert names, f"{name} drops no {dropped.lower()}"
    db = sqlite3.connect(":memory:", isolation_level=None)
    migrate_sqlite(db, until=version - 1)
    before = {n: shape(db, n) for n in names}
    assert migrate_sqlite(db, until=version) == [name]
    return [(n, before[n], shape(db, n)) for n in names]


@pytest.mark.parametrize("name", sorted(RESTORES))
def test_a_table_rebuilt_in_place_keeps_its_columns_and_keys(name: str) -> None:
    for table, before, after in across(name, "TABLE", table_shape):
        assert after == before, f"{name} changed {table}"


@pytest.mark.parametrize("name", sorted(REKEYS))
def test_a_rekeyed_index_keeps_its_unique_set(name: str) -> None:
    for index, before, after in across(name, "INDEX", unique_set):
        assert after == before, f"{name} changed what {index} keeps unique"
        assert before[1] == [1], f"{index} is not a unique index"


def previous_schema_tree(dest: Path) -> Path:
    """The code of the commit before the newest migration, unpacked in ``dest``."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and the repository's history")

    def run(*args: str) -> bytes:
        return subprocess.run([git, *args], cwd=ROOT, capture_output=True, check=True).stdout

    # The previous schema: a parent of a commit that changed the migrations, holding exactly
    # today's migrations but the newest (a merge's other parent when branches added
    # migrations side by side and one was renumbered: its own parent holds both).
    folder = "chatd/store/migrations/postgres/"
    previous = [name for _, name, _ in migrations("postgres")][:-1]
    try:
        found = None
        for line in run("log", "-50", "--format=%P", "--", "chatd/store/migrations").split():
            parent = line.decode()
            held = run("ls-tree", "--name-only", parent, folder).decode().split()
            if sorted(Path(h).name for h in held) == previous:
                found = parent
                break
        if found is None:
            pytest.skip("no commit with the previous schema in this clone's recent history")
        archive = run("archive", found, "chatd", "protocol")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"the previous schema's commit is not in this clone: {exc.stderr!r}")
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest


class Node:
    def __init__(self, name: str, port: int, env: dict[str, str], log: Path) -> None:
        self.name, self.port, self.env, self.log = name, port, env, log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self, pythonpath: str | None = None) -> None:
        env = {**os.environ, **self.env, "CHATD_SERVER__NODE_ID": self.name}
        env["CHATD_SERVER__PORT"] = str(self.port)
        if pythonpath:
            env["PYTHONPATH"] = pythonpath
            # A previous version from before consent refuses settings it does not know: the
            # test suite's own [consent] defaults (tests/conftest.py) are not for it, as an
            # operator would not give a new setting to a node of the old version. One that
            # knows consent gets them, as the new node does (the group below is of strangers).
            old_root = Path(pythonpath.split(os.pathsep)[0])
            if not (old_root / "chatd" / "core" / "consent.py").exists():
                env = {k: v for k, v in env.items() if not k.startswith("CHATD_CONSENT__")}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatd", "serve"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.log.parent,
            )
        async with asyncio.timeout(TIMEOUT):
            while True:
                assert self.proc.poll() is None, self.log.read_text()[-3000:]
                try:
                    if (await http_get(self.port, "/readyz"))[0] == 200:
                        return
                except (OSError, IndexError, ValueError):
                    pass
                await asyncio.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def test_old_and_new_nodes_side_by_side_then_the_old_one_upgraded(
    cluster_pg: PostgresServer, tmp_path: Path
) -> None:
    old_tree = previous_schema_tree(tmp_path / "old")
    old_path = f"{old_tree}:{old_tree / 'protocol'}"
    admin = await asyncpg.connect(cluster_pg.dsn())
    try:  # an empty database: the old node creates the previous schema itself
        await admin.execute("CREATE DATABASE chatd_upgrade")
    finally:
        await admin.close()
    dsn = cluster_pg.dsn("chatd_upgrade")
    redis = RedisServer(tmp_path, password=REDIS_PASSWORD)
    redis.start()
    env = {"CHATD_STORE__DB": dsn, "CHATD_BROKER__URL": redis.url, "CHATD_LOG__FORMAT": "json"}
    old = Node("old", free_port(), env, tmp_path / "old.log")
    new = Node("new", free_port(), env, tmp_path / "new.log")
    clients: list[Client] = []
    try:
        await old.start(old_path)
        newest = migrations("postgres")[-1][1]
        conn = await asyncpg.connect(dsn)
        try:
            applied = {r[0] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            assert newest not in applied  # the old node's schema: one migration behind
            await new.start()  # ... migrates the database while the old node serves
            applied = {r[0] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            assert newest in applied
        finally:
            await conn.close()

        checker = Checker()
        people = {"ann": old, "ben": new, "cat": old, "dan": new}
        keys = {name: KeyStore.memory() for name in people}
        by_name: dict[str, Client] = {}
        for name, node in people.items():
            c = Client([node.url, new.url], keys[name], encrypt=False, backoff_max=0.5)
            clients.append(c)
            await c.__aenter__()
            await c.register(name, name.title())
            by_name[name] = c
        group = (
            await by_name["ann"].create("group", "mixed", [by_name[n].account for n in people][1:])
        ).conv
        members = {group: list(people)}

        async def record(name: str, c: Client) -> None:
            async for ev in c.events():
                if isinstance(ev, Message):
                    checker.deliver(name, ev.conv, ev.seq)

        async def round_of(tag: str) -> None:
            for name, c in by_name.items():
                ack = await c.send_text(group, f"{tag} {name}")
                checker.ack(group, ack.seq)

        async def delivered() -> None:
            async with asyncio.timeout(TIMEOUT):
                while checker.report(members)["lost"]:
                    await asyncio.sleep(0.05)

        async with asyncio.TaskGroup() as tg:
            for name, c in by_name.items():
                tg.create_task(record(name, c))
            await round_of("side by side")
            await delivered()
            # The upgrade: the old node drains (its clients move to the new one), and comes
            # back as a new node on the same port; its clients may return to it.
            old.stop()
            await round_of("one node")
            upgraded = Node("old-upgraded", old.port, env, tmp_path / "upgraded.log")
            await upgraded.start()
            old.proc = upgraded.proc
            await round_of("both upgraded")
            await delivered()
            for c in clients:
                await c.aclose()
        report = checker.report(members)
        assert sum(len(s) for s in checker.acked.values()) == 3 * len(people)
        assert report == {"lost": 0, "duplicates": 0, "order_violations": 0}
    finally:
        for c in clients:
            await c.aclose()
        old.stop()
        new.stop()
        redis.kill()
        admin = await asyncpg.connect(cluster_pg.dsn())
        try:
            await admin.execute('DROP DATABASE IF EXISTS "chatd_upgrade" WITH (FORCE)')
        finally:
            await admin.close()
