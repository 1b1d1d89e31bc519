"""Creators' money under kill -9 (issue 19.5): a real chatd process killed in the middle of a
storm of tips while subscriptions renew every second, then restarted on the same file. Every
acknowledged tip is there with exactly its receipt, nothing is half applied (the audit: balances
are their entries, every tip and charge has its matching receipt, every mandate's charges are
periods 1 .. charged), no period is charged twice or overlaps the one before, retries of every
tip after the restart apply each at most once, and no money appeared or vanished."""

from __future__ import annotations

import asyncio
import itertools
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

from chatproto import creators
from chatproto import frames as F
from creatorkit import channel, mandate, publish, set_price, subscribe_frame, tip_frame, tip_intent
from paykit import audit, balances, mint, resend
from testkit import Raw, ServerProcess

PERIOD = 1  # second: renewals fall due while the storm runs


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


async def test_kill_9_in_a_storm_of_tips_and_renewals_loses_no_acked_tip_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chatd.db"
    srv = ServerProcess(
        db,
        env={
            "CHATD_LIMITS__FRAMES_PER_SECOND": "100000",
            "CHATD_LIMITS__FRAME_BURST": "100000",
            "CHATD_PAYMENTS__SWEEP_INTERVAL": "0.05",
            "CHATD_PAYMENTS__SUBSCRIPTION_MIN_PERIOD": str(PERIOD),
            "CHATD_PAYMENTS__SUBSCRIPTION_RETRY": "0.2",
            "CHATD_PAYMENTS__SUBSCRIPTION_GRACE": "1",
        },
    )
    await srv.start()
    links: list[Raw] = []
    try:
        creator = await Raw.open(srv.url)
        await creator.register("creator")
        ch = await channel(creator, "storm_news")
        await publish(creator, ch, 1)
        await set_price(creator, ch, 7, PERIOD)
        fans = []
        minted = 0
        for i in range(6):
            r = await Raw.open(srv.url)
            await r.register(f"fan{i}")
            # two fans can afford the first period only: their first renewal (at 1 s) finds the
            # wallet short, so they are past due, then lapsed, before the kill
            amount = 100_000 if i < 4 else 10
            await mint(db, r.account, amount)
            minted += amount
            fans.append(r)
        mandates = {}
        for r in fans:
            m = mandate(r, creator.account, ch, 7, PERIOD, 100)
            await r.request(subscribe_frame(r, m), F.Subscribed)
            mandates[r.account] = m.mandate_id
        subscribed_at = time.monotonic()

        rng = random.Random(19)
        plans: dict[int, list[F.Tip]] = {r.account: [] for r in fans[:4]}
        """Every tip frame each fan sent (retried after the restart)."""
        acked: dict[str, F.Tipped] = {}

        async def storm(r: Raw) -> None:
            """Waves of 40 pipelined tips until the server dies under them."""
            try:
                while True:
                    wave = [
                        tip_frame(r, tip_intent(r, creator.account, ch, 1, rng.randint(1, 50)))
                        for _ in range(40)
                    ]
                    plans[r.account] += wave
                    for f in wave:
                        await r.send_frame(f)
                    by_id = {f.id: f for f in wave}
                    while by_id:
                        reply = await r.expect(F.Tipped, timeout=10)
                        f = by_id.pop(reply.re, None)
                        if f is not None:
                            acked[f.intent.tip_id] = reply
            except Exception:  # the server died: what was not answered is unknown
                return

        tasks = [asyncio.create_task(storm(r)) for r in fans[:4]]
        # kill once renewals have fallen due a few times, tips in flight
        while len(acked) < 300 or time.monotonic() < subscribed_at + 2.5 * PERIOD:
            await asyncio.sleep(0.001)
        srv.kill9()
        await asyncio.gather(*tasks)
        sent = sum(len(p) for p in plans.values())
        assert 300 <= len(acked) < sent
        for r in (creator, *fans):
            r.ws.transport.abort()

        await srv.start()  # its start-up sweep charges the periods that fell due meanwhile
        reader = await Raw.open(srv.url)
        links.append(reader)
        await reader.login(creator.device, creator.key)
        key = await reader.request(F.GetPaymentKey(id=reader.next_id()), F.PaymentKey)

        # 1. Every acked tip is stored with exactly the receipt it was acked with.
        for tid, tipped in acked.items():
            got = await reader.request(
                F.GetCreatorReceipts(id=reader.next_id(), ref=tid), F.CreatorReceipts
            )
            assert got.items == [tipped.receipt], tid
            creators.verify_receipt(key.server, key.key, tipped.receipt)
        # 2. Nothing half applied, no charge without its receipt, charges gapless per mandate.
        report = audit(db)
        assert report.ok, report
        # 3. No period charged twice, and no period overlapping the one before.
        charges = _rows(
            db, "SELECT mandate, n, starts, ends FROM subscription_charges ORDER BY mandate, n"
        )
        by_mandate: dict[str, list[tuple[int, int, int]]] = {}
        for m, n, starts, ends in charges:
            by_mandate.setdefault(str(m), []).append((int(n), int(starts), int(ends)))  # type: ignore[call-overload]
        assert set(by_mandate) == set(mandates.values())
        for periods in by_mandate.values():
            assert [n for n, _, _ in periods] == list(range(1, len(periods) + 1))
            for (_, _, end), (_, start, _) in itertools.pairwise(periods):
                assert start >= end
        assert max(len(p) for p in by_mandate.values()) >= 2  # renewals happened
        poor = [mandates[r.account] for r in fans[4:]]
        states = dict(_rows(db, "SELECT mandate_id, state FROM subscriptions"))
        assert all(states[m] in ("past_due", "lapsed") for m in poor), states

        # 4. Retrying every tip after the restart applies each at most once.
        async def retry(r: Raw) -> None:
            for f, reply in await resend(srv.url, r, plans[r.account], links):
                tid = f.intent.tip_id
                if tid in acked:
                    assert isinstance(reply, F.Tipped) and reply.replay
                    assert reply.receipt == acked[tid].receipt
                else:
                    assert isinstance(reply, F.Tipped | F.Error), reply

        await asyncio.gather(*(retry(r) for r in fans[:4]))
        tips = Counter(
            str(r[0]) for r in _rows(db, "SELECT ref FROM creator_receipts WHERE type='tip'")
        )
        assert set(tips.values()) == {1}
        assert len(tips) >= len(acked)
        report = audit(db)
        assert report.ok, report
        # 5. No money appeared or vanished: what the fans lost, the creator holds.
        held = sum(balances(db, r.account).get("USD", 0) for r in (creator, *fans))
        assert held == minted
    finally:
        for link in links:
            link.ws.transport.abort()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()
