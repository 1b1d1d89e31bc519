"""Subscriptions through two chatd nodes on one PostgreSQL database (issue 19.5): both nodes
sweep for due periods at the same moment, again and again, and every period is charged exactly
once, with its receipt signed by the one key of the cluster; a subscriber cancelling through one
node while the other sweeps is charged at most the period that was due."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from chatproto import creators
from chatproto import frames as F
from conftest import make_settings, run_server
from creatorkit import MovableClock, channel, mandate, set_price, subscribe_frame
from paykit import Clients

from chatd.store import ledger
from chatd.store.postgres import PostgresSql

from .conftest import PostgresServer

DAY = 86_400


async def test_two_nodes_sweeping_at_once_charge_each_period_once(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await postgres_server.create_database()
    clock = MovableClock()  # one clock for both nodes: the periods fall due on both at once
    settings = make_settings(
        tmp_path,
        store={"db": dsn},
        limits={"frames_per_second": 100_000.0, "frame_burst": 100_000.0},
        payments={"sweep_interval": 600.0},
    )
    async with run_server(settings, clock) as node_a, run_server(settings, clock) as node_b:
        on_a, on_b = Clients(node_a.url), Clients(node_b.url)
        try:
            owner = await on_a.registered("owner")
            ch = await channel(owner, "cluster_news")
            await set_price(owner, ch, 250, DAY)
            fans = [await on_a.registered(f"fan{i}") for i in range(12)]
            conn = await asyncpg.connect(dsn)
            try:
                for fan in fans:
                    await ledger.mint(PostgresSql(conn), fan.account, 10_000, "USD", 1, "test")
            finally:
                await conn.close()
            mandates = []
            for fan in fans:
                m = mandate(fan, owner.account, ch, 250, DAY, 4)
                await fan.request(subscribe_frame(fan, m), F.Subscribed)
                mandates.append(m.mandate_id)
            sweepers = [n.app.services.creators for n in (node_a, node_b) if n.app.services]
            quitters = {}  # six fans cancel through node B while both nodes sweep
            for fan, mid in list(zip(fans, mandates, strict=True))[6:]:
                link = await on_b.connect()
                await link.login(fan.device, fan.key)
                quitters[mid] = link
            clock.advance(DAY)
            cancels = [
                link.request(F.Unsubscribe(id=link.next_id(), mandate_id=mid), F.SubscriptionAnswer)
                for mid, link in quitters.items()
            ]
            await asyncio.gather(*(s.sweep() for s in sweepers for _ in range(3)), *cancels)
            for _ in range(2):
                clock.advance(DAY)
                await asyncio.gather(*(s.sweep() for s in sweepers for _ in range(3)))
            # the last period ended: both complete it, neither charges again
            clock.advance(DAY)
            await asyncio.gather(*(s.sweep() for s in sweepers))
            twin = await on_b.connect()
            await twin.login(owner.device, owner.key)
            key = await twin.request(F.GetPaymentKey(id=twin.next_id()), F.PaymentKey)
            charged = 0
            for mid in mandates:
                got = await twin.request(
                    F.GetCreatorReceipts(id=twin.next_id(), ref=mid), F.CreatorReceipts
                )
                for r in got.items:
                    creators.verify_receipt(key.server, key.key, r)
                sub = await twin.request(
                    F.GetSubscription(id=twin.next_id(), mandate_id=mid), F.SubscriptionAnswer
                )
                n = [r.n for r in got.items]
                charged += len(n)
                if mid in quitters:  # the period due when it cancelled, at most
                    assert sub.subscription.state == "cancelled" and n in ([1], [1, 2])
                else:
                    assert n == [1, 2, 3, 4] and sub.subscription.state == "completed"
            conn = await asyncpg.connect(dsn)
            try:
                report = await ledger.audit(PostgresSql(conn))
            finally:
                await conn.close()
            assert report.ok, report
            balance = await owner.request(F.GetBalance(id=owner.next_id()), F.Balances)
            assert [b.amount for b in balance.balances] == [charged * 250]
        finally:
            await on_a.aclose()
            await on_b.aclose()
    await postgres_server.drop_database(dsn)
