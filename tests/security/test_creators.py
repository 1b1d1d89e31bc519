"""Creators' money under attack (issue 19.5, SPEC.md 15.12-15.14), on SQLite and PostgreSQL: a
stranger tipping with someone else's key, account or device, or replaying their signed frames,
a thousand times, moves nothing; nobody but its subscriber touches or reads a mandate; a paid
post read a thousand times without a subscription never gives its content; a renewal racing a
cancel charges at most the one period; a resend of a tip after a lost answer is the same tip."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatproto import creators
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer
from creatorkit import (
    MovableClock,
    channel,
    mandate,
    money_server,
    publish,
    set_price,
    subscribe_frame,
    tip_frame,
    tip_intent,
    top_up,
    usd,
)
from paykit import codes, pipelined

DAY = 86_400


async def audit_ok(server: RunningServer) -> None:
    services = server.app.services
    assert services is not None
    report = await services.deps.store.ledger_audit()
    assert report.ok, report


async def test_a_stranger_tipping_with_someone_elses_key_or_frames_moves_nothing(
    tmp_path: Path, db: str
) -> None:
    async with money_server(tmp_path, db) as (server, clients):
        alice, bob, mallory = [await clients.registered(h) for h in ("alice", "bob", "mallory")]
        ch = await channel(alice, "alicenews")
        await publish(alice, ch, 1)
        await top_up(db, bob.account, 10_000)
        await top_up(db, mallory.account, 10_000)
        genuine = tip_frame(bob, tip_intent(bob, alice.account, ch, 1, 100))
        forged: list[F.Frame] = []
        for i in range(250):
            # bob's account, mallory's key: the signature does not verify under bob's device
            theirs = tip_intent(bob, alice.account, ch, 1, 100 + i)
            signed = creators.sign_intent(mallory.key, mallory.challenge.server, theirs)
            forged.append(
                F.Tip(id=mallory.next_id(), intent=theirs, device=mallory.device, sig=signed)
            )
            # mallory's own intent, signed by a key no device of hers has
            own = tip_intent(mallory, alice.account, ch, 1, 100 + i)
            stray = creators.sign_intent(SigningKey.generate(), mallory.challenge.server, own)
            forged.append(F.Tip(id=mallory.next_id(), intent=own, device=mallory.device, sig=stray))
            # mallory's intent claiming bob's device
            forged.append(tip_frame(mallory, own, device=bob.device))
            # bob's genuine signed frame, replayed from mallory's connection
            forged.append(
                F.Tip(
                    id=mallory.next_id(), intent=genuine.intent, device=bob.device, sig=genuine.sig
                )
            )
        answers = await pipelined(mallory, forged)
        assert codes(answers) == {
            int(ErrorCode.FORBIDDEN),
            int(ErrorCode.BAD_SIGNATURE),
            int(ErrorCode.WRONG_DEVICE),
        }
        assert (await usd(bob), await usd(mallory), await usd(alice)) == (10_000, 10_000, 0)
        # the genuine frame, sent twice at once by bob (a resend after a lost answer): one tip
        twice = [
            F.Tip(id=bob.next_id(), intent=genuine.intent, device=bob.device, sig=genuine.sig)
            for _ in range(2)
        ]
        first, second = await pipelined(bob, twice)
        assert isinstance(first, F.Tipped) and isinstance(second, F.Tipped)
        assert first.receipt == second.receipt and [first.replay, second.replay] == [False, True]
        assert (await usd(bob), await usd(alice)) == (9_900, 100)
        await audit_ok(server)


async def test_nobody_but_the_subscriber_signs_cancels_or_reads_a_mandate(
    tmp_path: Path, db: str
) -> None:
    async with money_server(tmp_path, db) as (server, clients):
        alice, bob, mallory = [await clients.registered(h) for h in ("alice", "bob", "mallory")]
        ch = await channel(alice, "alicenews")
        await set_price(alice, ch, 500, DAY)
        await top_up(db, bob.account, 10_000)
        m = mandate(bob, alice.account, ch, 500, DAY, 12)
        signed = subscribe_frame(bob, m)
        stolen = [
            F.Subscribe(id=mallory.next_id(), intent=m, device=bob.device, sig=signed.sig)
            for _ in range(50)
        ]
        stolen += [subscribe_frame(mallory, m, key=mallory.key) for _ in range(50)]
        assert codes(await pipelined(mallory, stolen)) == {int(ErrorCode.FORBIDDEN)}
        assert await usd(bob) == 10_000
        ok = await bob.request(signed, F.Subscribed)
        probes: list[F.Frame] = []
        for _ in range(100):
            probes += [
                F.Unsubscribe(id=mallory.next_id(), mandate_id=m.mandate_id),
                F.GetSubscription(id=mallory.next_id(), mandate_id=m.mandate_id),
                F.GetCreatorReceipts(id=mallory.next_id(), ref=m.mandate_id),
                F.ListSubscriptions(id=mallory.next_id(), channel=ch),
            ]
        assert codes(await pipelined(mallory, probes)) == {
            int(ErrorCode.NOT_FOUND),
            int(ErrorCode.FORBIDDEN),
        }
        got = await bob.request(
            F.GetSubscription(id=bob.next_id(), mandate_id=m.mandate_id), F.SubscriptionAnswer
        )
        assert got.subscription == ok.subscription and got.subscription.state == "active"
        await audit_ok(server)


async def test_a_paid_post_read_a_thousand_times_without_a_subscription_gives_no_content(
    tmp_path: Path, db: str
) -> None:
    async with money_server(tmp_path, db) as (_, clients):
        alice, mallory = [await clients.registered(h) for h in ("alice", "mallory")]
        ch = await channel(alice, "alicenews")
        secret = await publish(alice, ch, 1, "the secret", paid=True)
        await publish(alice, ch, 2, "free")
        reads: list[F.Frame] = []
        for i in range(500):
            reads.append(F.GetPosts(id=mallory.next_id(), channel=ch, before=(0, 2, 3)[i % 3]))
            reads.append(F.GetPostHistory(id=mallory.next_id(), channel=ch, seq=1))
        for answer in await pipelined(mallory, reads):
            assert isinstance(answer, F.Posts)
            for p in answer.items:
                if p.seq == 1:
                    assert p.locked and p.paid and not p.content and p.sig == secret.sig
                    assert p.author == alice.account
        owner_view = await alice.request(F.GetPosts(id=alice.next_id(), channel=ch), F.Posts)
        assert [p.content for p in owner_view.items if p.seq == 1] == [secret.content]


async def test_a_renewal_racing_a_cancel_charges_at_most_the_one_period(
    tmp_path: Path, db: str
) -> None:
    clock = MovableClock()
    async with money_server(tmp_path, db, clock) as (server, clients):
        services = server.app.services
        assert services is not None
        alice = await clients.registered("alice")
        ch = await channel(alice, "alicenews")
        await set_price(alice, ch, 100, DAY)
        fans, mandates = [], []
        for i in range(20):
            fan = await clients.registered(f"fan{i}")
            await top_up(db, fan.account, 1_000)
            m = mandate(fan, alice.account, ch, 100, DAY, 5)
            await fan.request(subscribe_frame(fan, m), F.Subscribed)
            fans.append(fan)
            mandates.append(m)
        clock.advance(DAY)
        cancels = [
            fan.request(
                F.Unsubscribe(id=fan.next_id(), mandate_id=m.mandate_id), F.SubscriptionAnswer
            )
            for fan, m in zip(fans, mandates, strict=True)
        ]
        await asyncio.gather(services.creators.sweep(), *cancels)
        clock.advance(DAY)
        assert await services.creators.sweep() == 0  # every mandate is cancelled now
        for fan, m in zip(fans, mandates, strict=True):
            got = await fan.request(
                F.GetSubscription(id=fan.next_id(), mandate_id=m.mandate_id),
                F.SubscriptionAnswer,
            )
            assert got.subscription.state == "cancelled"
            assert got.subscription.charged in (1, 2)
            assert await usd(fan) == 1_000 - 100 * got.subscription.charged
        await audit_ok(server)
