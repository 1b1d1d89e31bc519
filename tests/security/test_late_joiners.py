"""Issue 14.8, late joiners (and an ``addressed`` bot) read every earlier payment receipt in
clear, against the README's "late joiners read only what follows their arrival". History now
starts at the reader's own join (SPEC.md 7.8): ``fetch`` and ``sync`` answer nothing stored
before it, server messages and payment receipts included, for users and bots alike; the
``joined`` message itself is read. On SQLite and PostgreSQL, against a real server."""

from __future__ import annotations

from pathlib import Path

import paykit
from chatproto import frames as F
from conftest import make_settings, run_server
from testkit import Raw


async def history(r: Raw, conv: int, after: int = 0) -> list[F.Message]:
    page = await r.request(F.Fetch(id=r.next_id(), conv=conv, after=after, limit=500), F.Messages)
    assert not page.more
    return list(page.messages)


async def synced(r: Raw, conv: int) -> list[int]:
    """The seqs a ``sync`` from 0 sends, through its ``synced``."""
    rid = r.next_id()
    await r.send_frame(F.Sync(id=rid, conv=conv, after=0))
    seqs = []
    while True:
        f = await r.recv()
        if isinstance(f, F.Deliver) and f.conv == conv:
            seqs.append(f.seq)
        elif isinstance(f, F.Synced) and f.re == rid:
            return seqs
        elif isinstance(f, F.Error):
            raise AssertionError(f)


async def test_late_joiners_and_an_addressed_bot_read_nothing_from_before_their_join(
    db: str, tmp_path: Path
) -> None:
    async with run_server(make_settings(tmp_path, store={"db": db})) as server:
        clients = paykit.Clients(server.url)
        try:
            alice = await clients.registered("alice")
            bob = await clients.registered("bobby")
            carol = await clients.registered("carol")
            bot = await clients.connect()
            await bot.register("late_bot", type="bot")
            services = server.app.services
            assert services is not None
            await services.deps.store.mint(alice.account, 5_000, "USD", paykit.now_ms(), "test")
            conv = await paykit.group(alice, bob)
            paid = await alice.request(
                paykit.pay_frame(alice, paykit.intent(alice, bob.account, 250, conv)), F.Posted
            )
            await alice.request(F.Rename(id=alice.next_id(), conv=conv, title="secret deal"), F.Ok)
            early = {m.seq for m in await history(bob, conv)}
            assert paid.seq in early  # bob was there: he reads the receipt

            for late in (carol, bot):
                await alice.request(
                    F.Invite(id=alice.next_id(), conv=conv, account=late.account), F.Ok
                )
                info = (await late.request(F.GetConv(id=late.next_id(), conv=conv), F.Conv)).info
                seen = await history(late, conv)
                # Before: every message from seq 1, the receipt (amount, payer) and the
                # "renamed" message in clear. Now: from its own "joined" message on.
                assert seen[0].seq == info.joined and seen[0].kind == "system"
                assert all(m.seq >= info.joined for m in seen)
                assert not [m for m in seen if m.kind == "payment.receipt"]
                # (the live "joined" may also be among the deliveries read: a set)
                assert set(await synced(late, conv)) == {m.seq for m in seen}
                # a range wholly before the join: an empty page, not an error
                page = await late.request(
                    F.Fetch(id=late.next_id(), conv=conv, before=paid.seq + 1), F.Messages
                )
                assert (page.messages, page.more) == ([], False)

            # What follows a join is read as before: a receipt after carol's join reaches her.
            later = await alice.request(
                paykit.pay_frame(alice, paykit.intent(alice, carol.account, 100, conv)), F.Posted
            )
            seen = await history(carol, conv)
            assert [m.seq for m in seen if m.kind == "payment.receipt"] == [later.seq]
        finally:
            await clients.aclose()
