"""Two nodes posting to one PostgreSQL ledger at once: the same wallets, the same ids, the same
red packet, through two writers whose batches interleave (and sometimes deadlock and re-run)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from chatd.core import ledger
from chatd.store.base import Posting
from chatd.store.postgres import PostgresStore

from .conftest import PostgresServer, device_key
from .test_ledger import NOW, balance, packet, receipt_of, sign, transfer


@pytest.fixture
async def nodes(postgres_server: PostgresServer) -> AsyncIterator[tuple[PostgresStore, ...]]:
    dsn = await postgres_server.create_database()
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


async def test_two_nodes_posting_the_same_transfers_apply_each_once_and_never_overdraw(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    people = [
        (await a.create_account(f"user{i}", "U", "user", device_key(), "d", NOW))[0].id
        for i in range(6)
    ]
    conv = (await a.create_conversation("group", "g", people[0], people[1:], NOW)).conv.id
    for p in people:
        await b.mint(p, 1_000, "USD", NOW, "")
    rng = random.Random(7)
    transfers = []
    for i in range(300):
        payer, payee = rng.sample(people, 2)
        transfers.append(transfer(f"t{i}", payer, payee, rng.randint(1, 400), conv))
    # Every transfer goes through both nodes (a retry through another node), in random order.
    order = [(node, t) for t in transfers for node in (a, b)]
    rng.shuffle(order)
    results = await asyncio.gather(
        *(node.post_transfer(t, sign) for node, t in order), return_exceptions=True
    )
    applied: dict[str, Posting] = {}
    for (_, t), r in zip(order, results, strict=True):
        if isinstance(r, Posting):
            if not r.replay:
                assert t.transfer_id not in applied, t.transfer_id
                applied[t.transfer_id] = r
        else:
            assert isinstance(r, ledger.InsufficientFunds), r
    for (_, t), r in zip(order, results, strict=True):
        if isinstance(r, Posting):
            assert r.message == applied[t.transfer_id].message  # both answers are the first
    audit = await a.ledger_audit()
    assert audit.ok, audit
    assert audit.transfers == len(applied) + len(people)  # + the mints
    stored = await b.messages(conv, 0, None, 10_000)
    assert [m.seq for m in stored] == list(range(1, len(applied) + 2))
    receipts = [receipt_of(Posting(m)).ref for m in stored[1:]]
    assert sorted(receipts) == sorted(applied)
    assert sum([await balance(a, p) for p in people]) == 6_000


async def test_thirty_claims_through_two_nodes_take_ten_shares_exactly_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    people = [
        (await a.create_account(f"user{i}", "U", "user", device_key(), "d", NOW))[0].id
        for i in range(30)
    ]
    conv = (await a.create_conversation("group", "g", people[0], people[1:], NOW)).conv.id
    await a.mint(people[0], 1_000, "CNY", NOW, "")
    shares = tuple(ledger.split_random(1_000, 10, random.Random(3).randrange))
    await a.create_red_packet(packet("p1", people[0], conv, shares, currency="CNY"), sign)
    claims = [
        (a if i % 2 else b).claim_red_packet("p1", p, NOW + 1, sign) for i, p in enumerate(people)
    ]
    claims += [
        (b if i % 2 else a).claim_red_packet("p1", p, NOW + 1, sign)
        for i, p in enumerate(people[:10])
    ]
    results = await asyncio.gather(*claims, return_exceptions=True)
    won = {receipt_of(r).payee: receipt_of(r).amount for r in results if isinstance(r, Posting)}
    assert len(won) == 10
    assert sum(won.values()) == 1_000
    assert sorted(won.values()) == sorted(shares)
    assert all(isinstance(r, Posting | ledger.Closed) for r in results), [
        r for r in results if not isinstance(r, Posting)
    ]
    assert await balance(a, ledger.ESCROW, "CNY") == 0
    audit = await b.ledger_audit()
    assert audit.ok, audit


async def test_two_nodes_sweeping_at_once_refund_a_packet_once(
    nodes: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = nodes
    alice = (await a.create_account("alice", "A", "user", device_key(), "d", NOW))[0].id
    conv = (await a.create_conversation("group", "g", alice, [], NOW)).conv.id
    await a.mint(alice, 1_000, "USD", NOW, "")
    for i in range(20):
        await a.create_red_packet(packet(f"p{i}", alice, conv, (10, 10, 10)), sign)
    later = NOW + 10 * 3_600_000
    swept = await asyncio.gather(
        a.sweep_payments(later, sign, 7),
        b.sweep_payments(later, sign, 7),
        a.sweep_payments(later, sign, 100),
        b.sweep_payments(later, sign, 100),
    )
    refunds = [receipt_of(p).ref for batch in swept for p in batch]
    assert sorted(refunds) == sorted(f"p{i}" for i in range(20))
    assert await balance(a, alice) == 1_000
    audit = await a.ledger_audit()
    assert audit.ok, audit
