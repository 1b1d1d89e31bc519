"""The ledger under kill -9: a real chatd process killed in the middle of a transfer storm and
restarted on the same file. Every acknowledged transfer is there with its receipt, nothing is
half applied, retries of the unanswered intents apply each at most once, and a red packet that
expired while the server was down is refunded when it comes back."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections import Counter
from pathlib import Path

from chatproto import frames as F
from paykit import (
    audit,
    balances,
    group,
    intent,
    mint,
    packet_frame,
    pay_frame,
    receipt,
    resend,
    stored_receipts,
)
from testkit import Raw, ServerProcess


async def test_kill_9_in_a_transfer_storm_loses_no_acked_transfer_and_half_applies_none(
    tmp_path: Path,
) -> None:
    db = tmp_path / "chatd.db"
    srv = ServerProcess(
        db,
        env={
            "CHATD_LIMITS__FRAMES_PER_SECOND": "100000",
            "CHATD_LIMITS__FRAME_BURST": "100000",
            "CHATD_PAYMENTS__RED_PACKET_TTL": "3",
            "CHATD_PAYMENTS__SWEEP_INTERVAL": "600",  # after the start-up sweep, not again
        },
    )
    await srv.start()
    links: list[Raw] = []
    try:
        people = []
        for i in range(8):
            r = await Raw.open(srv.url)
            await r.register(f"payer{i}")
            people.append(r)
        conv = await group(people[0], *people[1:])
        for p in people:
            await mint(db, p.account, 100_000)
        sender = people[0]
        made = await sender.request(packet_frame(sender, conv, 5_000, 5, pid="lucky"), F.Posted)
        packet_expires = receipt(made).expires_at
        await people[1].request(F.Claim(id=people[1].next_id(), packet_id="lucky"), F.Posted)

        rng = random.Random(9)
        plans = {
            p.account: [
                pay_frame(
                    p,
                    intent(
                        p,
                        rng.choice([q for q in people if q is not p]).account,
                        rng.randint(1, 900),
                        conv,
                        ttl_ms=120_000,
                    ),
                )
                for _ in range(250)
            ]
            for p in people
        }
        acked: dict[str, F.Posted] = {}

        async def storm(p: Raw) -> None:
            for f in plans[p.account]:
                await p.send_frame(f)
            by_id = {f.id: f for f in plans[p.account]}
            try:
                while by_id:
                    reply = await p.expect(F.Posted, timeout=10)
                    f = by_id.pop(reply.re, None)
                    if f is not None:
                        acked[f.intent.transfer_id] = reply
            except Exception:  # the server died: what was not answered is unknown
                return

        tasks = [asyncio.create_task(storm(p)) for p in people]
        while len(acked) < 400:
            await asyncio.sleep(0.001)
        srv.kill9()
        await asyncio.gather(*tasks)
        assert 400 <= len(acked) < 2_000
        for p in people:
            p.ws.transport.abort()

        while time.time() * 1000 < packet_expires + 200:  # expired while the server is down
            await asyncio.sleep(0.05)
        await srv.start()
        reader = await Raw.open(srv.url)
        links.append(reader)
        await reader.login(sender.device, sender.key)

        # 1. Every acked transfer is stored with exactly its acked receipt.
        stored = await stored_receipts(reader, conv)
        by_ref = Counter(r.ref for _, r in stored if r.type == "transfer")
        assert max(by_ref.values()) == 1
        seqs = {r.ref: s for s, r in stored if r.type == "transfer"}
        for tid, posted in acked.items():
            assert seqs.get(tid) == posted.seq, tid
        # 2. Nothing half applied: a receipt for every ledger transfer and a transfer for every
        # receipt; every transfer has its two entries; balances are their entries.
        report = audit(db)
        assert report.ok, report
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            in_ledger = {
                str(r[0]): int(r[1])
                for r in conn.execute("SELECT id, seq FROM transfers WHERE type='transfer'")
            }
        finally:
            conn.close()
        assert in_ledger == seqs

        # 3. The red packet that expired meanwhile is refunded by the start-up sweep.
        async with asyncio.timeout(10):
            while not any(r.type == "refund" for _, r in await stored_receipts(reader, conv)):
                await asyncio.sleep(0.05)
        refund = next(r for _, r in await stored_receipts(reader, conv) if r.type == "refund")
        assert (refund.ref, refund.payee, refund.shares) == ("lucky", sender.account, 4)

        # 4. Retrying every intent after the restart applies each at most once.
        async def retry(p: Raw) -> None:
            for f, reply in await resend(srv.url, p, plans[p.account], links):
                tid = f.intent.transfer_id
                if tid in seqs:
                    assert isinstance(reply, F.Posted) and reply.replay and reply.seq == seqs[tid]
                else:
                    assert isinstance(reply, F.Posted | F.Error), reply

        await asyncio.gather(*(retry(p) for p in people))
        final = await stored_receipts(reader, conv)
        refs = Counter(r.ref for _, r in final if r.type == "transfer")
        assert set(refs.values()) == {1}
        assert [s for s, _ in final] == sorted(s for s, _ in final)
        report = audit(db)
        assert report.ok, report
        total = sum(balances(db, p.account).get("USD", 0) for p in people)
        assert total == 8 * 100_000  # escrow empty: the packet's rest went back to its sender
    finally:
        for link in links:  # abort: a link that stopped reading deliveries would wait to close
            link.ws.transport.abort()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()
