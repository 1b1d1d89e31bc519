"""Payments through two chatd nodes on one PostgreSQL database: both sign receipts with the one
key kept in the database, a transfer retried through the other node is applied once, and a red
packet claimed through both nodes gives each share once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from chatproto import frames as F
from chatproto import payments
from conftest import make_settings, run_server
from paykit import Clients, group, intent, packet_frame, pay_frame, receipt
from testkit import Raw

from chatd.store import ledger
from chatd.store.postgres import PostgresSql

from .conftest import PostgresServer


async def test_two_nodes_sign_with_one_key_and_apply_a_retried_transfer_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await postgres_server.create_database()
    settings = make_settings(
        tmp_path,
        store={"db": dsn},
        limits={"frames_per_second": 100_000.0, "frame_burst": 100_000.0},
    )
    try:
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            on_a, on_b = Clients(node_a.url), Clients(node_b.url)
            try:
                people = [await on_a.registered(f"user{i}") for i in range(6)]
                conv = await group(people[0], *people[1:])
                conn = await asyncpg.connect(dsn)
                try:
                    for p in people:
                        await ledger.mint(PostgresSql(conn), p.account, 10_000, "USD", 1, "test")
                finally:
                    await conn.close()
                twins = []
                for p in people:  # the same devices, logged in on node B too
                    twin = await on_b.connect()
                    await twin.login(p.device, p.key)
                    twins.append(twin)
                keys = [
                    await r.request(F.GetPaymentKey(id=r.next_id()), F.PaymentKey)
                    for r in (people[0], twins[0])
                ]
                assert keys[0].key == keys[1].key  # one receipt key for the whole cluster

                frames = []
                for i in range(60):
                    payer, payee = people[i % 6], people[(i + 1) % 6]
                    frames.append(
                        (i % 6, pay_frame(payer, intent(payer, payee.account, 100 + i, conv)))
                    )

                async def pipelined(r: Raw, mine: list[F.Frame]) -> list[F.ServerFrame]:
                    """Send every frame on ``r`` at once, then read their answers."""
                    for f in mine:
                        await r.send_frame(f)
                    return [await r._reply(f.id, timeout=30) for f in mine]  # type: ignore[attr-defined]

                def again(r: Raw, f: F.Pay) -> F.Pay:
                    return F.Pay(id=r.next_id(), intent=f.intent, device=f.device, sig=f.sig)

                per_link = [
                    (link, [again(link, f) for j, f in frames if j == i])
                    for i in range(6)
                    for link in (people[i], twins[i])
                ]
                answers = [
                    a
                    for batch in await asyncio.gather(*(pipelined(r, m) for r, m in per_link))
                    for a in batch
                ]
                posted = [a for a in answers if isinstance(a, F.Posted)]
                assert len(posted) == 120, [a for a in answers if not isinstance(a, F.Posted)]
                assert sum(not p.replay for p in posted) == 60
                for p in posted:
                    payments.verify_receipt(keys[0].server, keys[0].key, receipt(p), conv=conv)

                made = await people[0].request(
                    packet_frame(people[0], conv, 600, 4, pid="rp"), F.Posted
                )
                assert receipt(made).shares == 4
                claims = [
                    a
                    for batch in await asyncio.gather(
                        *(
                            pipelined(r, [F.Claim(id=r.next_id(), packet_id="rp")])
                            for r in people + twins
                        )
                    )
                    for a in batch
                ]
                won = {
                    receipt(c).payee: receipt(c).amount for c in claims if isinstance(c, F.Posted)
                }
                assert len(won) == 4 and sum(won.values()) == 600
            finally:
                await on_a.aclose()
                await on_b.aclose()
        conn = await asyncpg.connect(dsn)
        try:
            audit = await ledger.audit(PostgresSql(conn))
        finally:
            await conn.close()
        assert audit.ok, audit
        assert audit.transfers == 6 + 60 + 1 + 4  # mints, transfers, the packet, its claims
    finally:
        await postgres_server.drop_database(dsn)
