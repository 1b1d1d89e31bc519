"""Creators paid through the ledger (issue 19.5, SPEC.md 15.12-15.14) against a real server with
several SDK clients: a tip on a post verified by the tipper and by the creator, a subscription
charged at once and renewed by the sweep as the server's clock moves, cancelled, gone past due
and lapsed on a short wallet, and paid posts whose content only subscribers and the owner get."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatclient import Client, KeyStore, NotFound, RequestError
from chatclient.events import ChannelPost, LockedPost, SubscriptionChanged, TipReceived
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from creatorkit import MovableClock
from paykit import audit, balances, mint

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
DAY = 86_400


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def server(tmp_path: Path, clock: MovableClock) -> AsyncIterator[RunningServer]:
    settings = make_settings(
        tmp_path,
        limits=FAST,
        payments={"sweep_interval": 600.0, "subscription_grace": 2 * DAY},
    )
    async with run_server(settings, clock) as s:
        yield s


class People:
    def __init__(self, server: RunningServer, tmp_path: Path) -> None:
        self.server = server
        self.tmp_path = tmp_path
        self.open: list[Client] = []

    async def __call__(self, handle: str) -> Client:
        c = Client(self.server.url, KeyStore.open(self.tmp_path / f"{handle}.key"))
        await c.__aenter__()
        self.open.append(c)
        await c.register(handle, handle.title())
        return c


@pytest.fixture
async def people(server: RunningServer, tmp_path: Path) -> AsyncIterator[People]:
    p = People(server, tmp_path)
    try:
        yield p
    finally:
        for c in p.open:
            await c.aclose()


def _db(server: RunningServer) -> Path:
    return Path(server.app.settings.store.db)


async def _next(c: Client, kind: type[Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, kind):
                return ev
    raise AssertionError("events ended")


async def _sweep(server: RunningServer) -> int:
    services = server.app.services
    assert services is not None
    return await services.creators.sweep()


async def test_a_tip_moves_money_once_and_tipper_and_creator_verify_its_receipt(
    server: RunningServer, people: People
) -> None:
    alice, bob = await people("alice"), await people("bob")
    db = _db(server)
    news = await alice.channels.create("alicenews", "Alice News")
    seq = await alice.channels.publish_text(news.channel, "the first post")
    await mint(db, bob.keystore.account, 1_000)
    receipt = await bob.creators.tip(news.channel, seq, "2.50", "USD")
    assert (receipt.type, receipt.channel, receipt.post, receipt.amount) == (
        "tip",
        news.channel,
        seq,
        250,
    )
    assert receipt.payee == alice.keystore.account
    pushed = await _next(alice, TipReceived)  # verified by the creator's client before shown
    assert pushed.receipt == receipt
    (fetched,) = await alice.creators.receipts(receipt.ref)  # the creator fetches and checks it
    assert fetched == receipt
    assert await alice.creators.verify(fetched)  # the tipper's own signature checked too
    assert balances(db, bob.keystore.account) == {"USD": 750}
    assert balances(db, alice.keystore.account) == {"USD": 250}
    totals = await bob.creators.post_tips(news.channel, seq)
    assert [(t.currency, t.count, t.amount) for t in totals] == [("USD", 1, 250)]
    with pytest.raises(RequestError) as refused:
        await bob.creators.tip(news.channel, seq, "8.00", "USD")
    assert refused.value.code == ErrorCode.INSUFFICIENT_FUNDS
    await alice.channels.delete(news.channel, seq)
    with pytest.raises(NotFound):
        await bob.creators.tip(news.channel, seq, "1.00", "USD")
    assert balances(db, bob.keystore.account) == {"USD": 750}
    report = audit(db)
    assert report.ok, report


async def test_a_subscription_is_charged_at_once_renewed_by_the_sweep_and_cancelled(
    server: RunningServer, people: People, clock: MovableClock
) -> None:
    alice, bob = await people("alice"), await people("bob")
    db = _db(server)
    news = await alice.channels.create("alicenews", "Alice News")
    await alice.creators.set_price(news.channel, "4.99", "USD", days=1)
    with pytest.raises(NotFound):  # SPEC.md 15.13: an unknown channel has no price
        await bob.creators.price(news.channel + 1000)
    with pytest.raises(NotFound):
        await alice.creators.set_price(news.channel + 1000, "4.99", "USD", days=1)
    await mint(db, bob.keystore.account, 2_000)
    sub, first = await bob.creators.subscribe(news.channel, periods=12, amount="4.99")
    assert (sub.state, sub.charged, first.n, first.amount) == ("active", 1, 1, 499)
    told = await _next(alice, SubscriptionChanged)  # the owner sees the first charge
    assert told.subscription.mandate_id == sub.mandate_id and told.receipt == first
    # a price change does not touch the signed mandate
    await alice.creators.set_price(news.channel, "9.99", "USD", days=1)
    clock.advance(DAY)
    assert await _sweep(server) == 1
    renewed = await _next(bob, SubscriptionChanged)
    while renewed.receipt is None or renewed.receipt.n != 2:
        renewed = await _next(bob, SubscriptionChanged)
    assert (renewed.receipt.amount, renewed.subscription.charged) == (499, 2)
    assert await _sweep(server) == 0  # the same period is never charged twice
    cancelled = await bob.creators.unsubscribe(sub.mandate_id)
    assert cancelled.state == "cancelled" and cancelled.paid_through == renewed.receipt.ends
    assert (await bob.creators.unsubscribe(sub.mandate_id)).state == "cancelled"  # again: same
    clock.advance(5 * DAY)
    assert await _sweep(server) == 0
    assert balances(db, bob.keystore.account) == {"USD": 2_000 - 2 * 499}
    mine, _ = await bob.creators.subscriptions()
    assert [(s.mandate_id, s.state, s.charged) for s in mine] == [(sub.mandate_id, "cancelled", 2)]
    theirs, _ = await alice.creators.subscriptions(news.channel)
    assert [s.subscriber for s in theirs] == [bob.keystore.account]
    receipts = await alice.creators.receipts(sub.mandate_id)
    assert [r.n for r in receipts] == [1, 2]
    with pytest.raises(RequestError) as stale:  # the price is now 9.99: told before signing
        await bob.creators.subscribe(news.channel, periods=1, amount="4.99")
    assert stale.value.code == ErrorCode.PRICE_CHANGED
    report = audit(db)
    assert report.ok, report


async def test_every_subscription_walks_every_page(
    server: RunningServer, people: People, clock: MovableClock
) -> None:
    """``chat``'s /unsubscribe and /subscriptions read the account's mandates through
    ``every_subscription``: one past the first page is found, not only the first page's."""
    alice, bob = await people("alice"), await people("bob")
    await mint(_db(server), bob.keystore.account, 2_000)
    made = []
    for name in ("one", "two", "three"):
        ch = await alice.channels.create(f"alice{name}", f"Alice {name}")
        await alice.creators.set_price(ch.channel, "1.00", "USD", days=1)
        made.append((await bob.creators.subscribe(ch.channel, periods=2, amount="1.00"))[0])
    first, after = await bob.creators.subscriptions(limit=1)
    assert len(first) == 1 and after  # pages of one: three pages
    walked = [s.mandate_id async for s in bob.creators.every_subscription(limit=1)]
    assert sorted(walked) == sorted(s.mandate_id for s in made)


async def test_a_subscription_the_wallet_cannot_pay_is_refused_and_leaves_nothing(
    server: RunningServer, people: People
) -> None:
    """SPEC.md 15.13: the first period is charged in the subscribe's own transaction; a wallet
    short of it is INSUFFICIENT_FUNDS and nothing is stored (no mandate, no receipt, no money
    moved), so the same subscriber signs again once it has the money."""
    alice, carol = await people("alice"), await people("carol")
    db = _db(server)
    news = await alice.channels.create("alicenews", "Alice News")
    await alice.creators.set_price(news.channel, "4.99", "USD", days=1)
    await mint(db, carol.keystore.account, 100)
    with pytest.raises(RequestError) as short:
        await carol.creators.subscribe(news.channel, periods=3, amount="4.99")
    assert short.value.code == ErrorCode.INSUFFICIENT_FUNDS
    assert (await carol.creators.subscriptions())[0] == []
    assert (await alice.creators.subscriptions(news.channel))[0] == []
    assert balances(db, carol.keystore.account) == {"USD": 100}
    await mint(db, carol.keystore.account, 500)
    sub, first = await carol.creators.subscribe(news.channel, periods=3, amount="4.99")
    assert (sub.state, first.n) == ("active", 1)
    assert balances(db, carol.keystore.account) == {"USD": 101}
    report = audit(db)
    assert report.ok, report


async def test_a_short_wallet_goes_past_due_then_lapsed_and_loses_the_paid_posts(
    server: RunningServer, people: People, clock: MovableClock
) -> None:
    alice, bob = await people("alice"), await people("bob")
    db = _db(server)
    news = await alice.channels.create("alicenews", "Alice News")
    await alice.creators.set_price(news.channel, "3.00", "USD", days=1)
    paid = await alice.channels.publish_text(news.channel, "for members", paid=True)
    await mint(db, bob.keystore.account, 400)
    sub, _ = await bob.creators.subscribe(news.channel, periods=6)
    page = await bob.channels.posts(news.channel)
    assert [(p.seq, p.text, p.paid) for p in page.posts] == [(paid, "for members", True)]
    clock.advance(DAY)
    await _sweep(server)
    ev = await _next(bob, SubscriptionChanged)
    while ev.subscription.state != "past_due":
        ev = await _next(bob, SubscriptionChanged)
    assert ev.receipt is None and ev.subscription.charged == 1
    assert balances(db, bob.keystore.account) == {"USD": 100}  # never a part of the 3.00
    page = await bob.channels.posts(news.channel)
    assert [p.seq for p in page.locked] == [paid] and not page.posts
    clock.advance(2 * DAY)
    await _sweep(server)
    got = await bob.creators.subscription(sub.mandate_id)
    assert got.state == "lapsed" and got.next_charge_at == 0
    owner_view = await alice.creators.subscription(sub.mandate_id)
    assert owner_view.state == "lapsed"
    report = audit(db)
    assert report.ok, report


async def test_paid_posts_are_readable_by_subscribers_and_the_owner_only(
    server: RunningServer, people: People
) -> None:
    alice, bob, carol = await people("alice"), await people("bob"), await people("carol")
    db = _db(server)
    news = await alice.channels.create("alicenews", "Alice News")
    await alice.creators.set_price(news.channel, "1.00", "USD", days=30)
    free = await alice.channels.publish_text(news.channel, "for everyone")
    await mint(db, bob.keystore.account, 1_000)
    await bob.creators.subscribe(news.channel, periods=1)
    await bob.channels.follow(news.channel)
    await carol.channels.follow(news.channel)
    for reader in (bob, carol):  # live posts go to connections that watch the feed (20.7)
        await reader.timeline.watch_feed()
    paid = await alice.channels.publish_text(news.channel, "members only", paid=True)
    live = await _next(bob, ChannelPost)  # the subscriber reads the pushed post's content
    while live.seq != paid:
        live = await _next(bob, ChannelPost)
    assert (live.text, live.paid) == ("members only", True)
    locked = await _next(carol, LockedPost)  # the follower gets the placeholder only
    assert (locked.seq, locked.author) == (paid, alice.keystore.account)
    for reader, sees in ((alice, True), (bob, True), (carol, False)):
        page = await reader.channels.posts(news.channel)
        assert [p.seq for p in page.posts] == ([paid, free] if sees else [free])
        assert [p.seq for p in page.locked] == ([] if sees else [paid])
        assert not page.rejected
        history = await reader.channels.history(news.channel, paid)
        assert [p.text for p in history.posts] == (["members only"] if sees else [])
    for reader, sees in ((bob, True), (carol, False)):  # the timeline gives the same
        page = await reader.timeline.page()
        newest = page.entries[0]
        assert (newest.post is not None) == sees and (newest.locked is None) == sees
        assert not page.rejected
