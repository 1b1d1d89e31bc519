"""Several chatd nodes on one PostgreSQL database: two ``PostgresStore`` instances (two nodes,
each with its own writer and group commit) racing on the same rows."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator

import asyncpg
import pytest

from chatd.errors import HandleTaken, Unavailable
from chatd.store.base import Appended, KeyUpload, NewMessage, PrekeyRow
from chatd.store.migrate import migrations
from chatd.store.postgres import PostgresStore

from .conftest import PostgresServer, device_key

NOW = 1_700_000_000_000


@pytest.fixture
async def nodes(postgres_server: PostgresServer) -> AsyncIterator[tuple[PostgresStore, ...]]:
    dsn = await postgres_server.create_database()
    # Small batches: each node commits many transactions that interleave with the other's.
    stores = tuple(PostgresStore(dsn, read_pool=2, max_batch=16) for _ in range(2))
    tasks = []
    try:
        for s in stores:
            await s.open()
            tasks.append(asyncio.create_task(s.run()))
        yield stores
    finally:
        for s in stores:
            await s.aclose()
        await asyncio.gather(*tasks)
        await postgres_server.drop_database(dsn)


async def test_two_nodes_appending_to_the_same_conversations_stay_gapless_and_idempotent(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    alice, dev = await a.create_account("alice", "Alice", "user", device_key(), "p", NOW)
    convs = [
        (await b.create_conversation("group", "g", alice.id, [], NOW)).conv.id for _ in range(5)
    ]
    rng = random.Random(4)
    msgs = [
        NewMessage(rng.choice(convs), alice.id, dev.id, f"c{i}", "text", b"%d" % i, NOW + i)
        for i in range(900)
    ]
    # 2 x 500 appends: node A sends 0..499, node B 400..899, so 100 cmids reach both nodes.
    on_a, on_b = msgs[:500], msgs[400:]
    order = [(a, m) for m in on_a] + [(b, m) for m in on_b]
    rng.shuffle(order)
    results: list[Appended] = await asyncio.gather(*(node.append(m) for node, m in order))

    by_cmid: dict[str, list[Appended]] = defaultdict(list)
    for (_, m), r in zip(order, results, strict=True):
        assert r.message.conv == m.conv and r.message.body == m.body
        by_cmid[m.cmid].append(r)
    assert len(by_cmid) == 900
    for cmid, rs in by_cmid.items():
        assert len({r.message.seq for r in rs}) == 1, cmid  # a resend resolves to the first row
        assert sum(not r.duplicate for r in rs) == 1, cmid
    per_conv: dict[int, int] = defaultdict(int)
    for m in msgs:
        per_conv[m.conv] += 1
    for conv in convs:
        stored = await a.messages(conv, 0, None, 10_000)
        assert [m.seq for m in stored] == list(range(1, per_conv[conv] + 2))  # gapless, unique
        cmids = [m.cmid for m in stored[1:]]
        assert len(cmids) == len(set(cmids)) == per_conv[conv]  # each cmid stored once
        assert (await b.conversation(conv, alice.id, dev.id)).last_seq == per_conv[conv] + 1


async def test_two_nodes_claiming_one_time_prekeys_never_hand_out_a_key_twice(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    account, phone = await a.create_account("alice", "Alice", "user", device_key(), "p", NOW)
    laptop = await b.add_device(account.id, device_key(), "laptop", phone.id, NOW)
    for d, n in ((phone, 150), (laptop, 40)):
        keys = tuple(PrekeyRow(k, k.to_bytes(32, "big")) for k in range(1, n + 1))
        up = KeyUpload(d.id, (7).to_bytes(32, "big"), (7).to_bytes(64, "big"), one_time=keys)
        assert await a.upload_keys(up, NOW, 500) == n
    claims = [node.claim_keys(account.id) for _ in range(50) for node in (a, b)]
    random.Random(2).shuffle(claims)
    handed: dict[int, list[int]] = {phone.id: [], laptop.id: []}
    for bundles in await asyncio.gather(*claims):
        for bundle in bundles:
            if bundle.one_time is not None:
                handed[bundle.device].append(bundle.one_time.kid)
    # 100 claims: 100 of the phone's 150 keys, each once (SKIP LOCKED may pass over a key another
    # node holds, so not necessarily the lowest 100), and the laptop's 40, each once.
    assert len(handed[phone.id]) == len(set(handed[phone.id])) == 100
    assert sorted(handed[laptop.id]) == list(range(1, 41))
    assert await a.one_time_count(phone.id) == 50
    assert await b.one_time_count(laptop.id) == 0


async def test_two_nodes_queueing_to_one_device_get_distinct_increasing_tids(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    sender, sdev = await a.create_account("s", "S", "user", device_key(), "p", NOW)
    _, target = await b.create_account("t", "T", "user", device_key(), "p", NOW)
    rows = await asyncio.gather(
        *(
            node.queue_to_device(target.id, sender.id, sdev.id, b"%d" % i, NOW, 1000)
            for i in range(100)
            for node in ((a, b)[i % 2],)
        )
    )
    assert sorted(r.tid for r in rows) == list(range(1, 101))
    items = await b.to_device_items(target.id, 0, 1000)
    assert [i.tid for i in items] == list(range(1, 101))


async def test_the_same_handle_registered_on_two_nodes_at_once_is_taken_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    results = await asyncio.gather(
        *(
            node.create_account("same", "Same", "user", device_key(), "p", NOW)
            for node in (a, b, a, b)
        ),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, HandleTaken) for r in results if isinstance(r, BaseException))
    assert await b.account_by_handle("same") == won[0][0]


async def test_migrations_run_once_when_nodes_start_together(
    postgres_server: PostgresServer,
) -> None:
    admin = await asyncpg.connect(postgres_server.dsn())
    try:
        await admin.execute("CREATE DATABASE chatd_empty")
    finally:
        await admin.close()
    dsn = postgres_server.dsn("chatd_empty")
    stores = [PostgresStore(dsn, read_pool=1) for _ in range(3)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        conn = await asyncpg.connect(dsn)
        try:
            versions = [r[0] for r in await conn.fetch("SELECT version FROM schema_migrations")]
        finally:
            await conn.close()
        assert sorted(versions) == [v for v, _, _ in migrations("postgres")]  # each once
    finally:
        for s in stores:
            await s.aclose()
        await postgres_server.drop_database(dsn)


async def test_an_unreachable_database_is_unavailable_not_acked(
    postgres_server: PostgresServer,
) -> None:
    dsn = await postgres_server.create_database()
    store = PostgresStore(dsn, read_pool=1, timeout=2)
    await store.open()
    task = asyncio.create_task(store.run())
    try:
        account, _ = await store.create_account("a", "A", "user", device_key(), "p", NOW)
        await postgres_server.drop_database(dsn)  # every connection of the store is cut
        with pytest.raises(Unavailable):
            await store.create_account("b", "B", "user", device_key(), "p", NOW)
        with pytest.raises(Unavailable):
            await store.account(account.id)
        assert not await store.ping()
    finally:
        await store.aclose()
        await task


async def test_the_writer_waits_for_more_writes_only_under_load(
    postgres_server: PostgresServer,
) -> None:
    """No fixed gathering wait when idle: a lone write after a quiet spell commits at once (well
    inside ``commit_interval``), even right after a burst; a stream of writes is gathered into a
    few commits."""
    dsn = await postgres_server.create_database()
    batches: list[int] = []
    store = PostgresStore(
        dsn, read_pool=1, commit_interval=1.0, on_batch=lambda n, _: batches.append(n)
    )
    await store.open()
    writer = asyncio.create_task(store.run())
    try:
        alice, dev = await store.create_account("alice", "Alice", "user", device_key(), "p", NOW)
        conv = (await store.create_conversation("group", "g", alice.id, [], NOW)).conv.id

        async def lone(cmid: str) -> float:
            await asyncio.sleep(5.0)  # quiet: well under a quarter of a write per second
            started = asyncio.get_running_loop().time()
            await store.append(NewMessage(conv, alice.id, dev.id, cmid, "text", b"x", NOW))
            return asyncio.get_running_loop().time() - started

        assert await lone("first") < 0.9
        before = len(batches)
        stream = []
        for i in range(30):  # 100 writes/s: 100 expected per window
            stream.append(
                store.append(NewMessage(conv, alice.id, dev.id, f"s{i}", "text", b"x", 1))
            )
            await asyncio.sleep(0.01)
        await asyncio.gather(*stream)
        assert len(batches) - before <= 5  # gathered (without the window: ~30 commits)
        assert await lone("after the burst") < 0.9
    finally:
        await store.aclose()
        await writer
        await postgres_server.drop_database(dsn)
