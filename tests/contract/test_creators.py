"""Creators' money on every store backend (SPEC.md 15.12-15.14): a tip moves money with its
signed receipt in one transaction and is applied once; a mandate's first period is charged with
it; the renewal sweep charges each period once (two stores sweeping at once included), goes past
due then lapsed on a short wallet without ever charging part of a price, stops at a cancel, and
completes after the last period; access follows the paid period; the ledger audit holds."""

from __future__ import annotations

import asyncio

import pytest
from chatproto import creators, posts
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey

from chatd.core import creators as rules
from chatd.core import ledger
from chatd.errors import Conflict, Forbidden, NotFound
from chatd.store import Store
from chatd.store.base import NewMandate, NewTip

from .conftest import MakeAccount, StoreBackend, Stores

NOW = 1_700_000_000_000
DAY = 86_400_000
SERVER = "creators.test"
KEY = SigningKey(bytes(range(7, 39)))
RENEWAL = rules.Renewal(grace_ms=3 * DAY, retry_ms=DAY // 4)


def sign(r: F.CreatorReceipt) -> F.CreatorReceipt:
    return creators.sign_receipt(KEY, SERVER, r)


def tip(
    tid: str,
    payer: int,
    owner: int,
    channel: int,
    post: int,
    amount: int,
    *,
    now: int = NOW,
    expires_at: int = NOW + DAY,
) -> NewTip:
    i = F.TipIntent(
        tip_id=tid,
        payer=payer,
        payee=owner,
        channel=channel,
        post=post,
        amount=amount,
        currency="USD",
        expires_at=expires_at,
    )
    return NewTip(i, creators.intent_hash(SERVER, i), 1, bytes(64), now, None)


def mandate(
    mid: str,
    payer: int,
    owner: int,
    channel: int,
    amount: int,
    periods: int,
    now: int = NOW,
    *,
    expires_at: int | None = None,
) -> NewMandate:
    i = F.MandateIntent(
        mandate_id=mid,
        payer=payer,
        payee=owner,
        channel=channel,
        amount=amount,
        currency="USD",
        period=86_400,
        periods=periods,
        expires_at=now + DAY if expires_at is None else expires_at,
    )
    return NewMandate(i, creators.intent_hash(SERVER, i), 1, bytes(64), now, None)


async def _channel(store: Store, owner: int, handle: str = "news") -> int:
    row = await store.create_channel(owner, handle, "News", "", NOW)
    post = F.Post(
        channel=row.id,
        seq=1,
        ts=NOW,
        author=owner,
        device=1,
        kind="text",
        content=b"\x81\xa4text\xa2hi",
        sig=bytes(64),
    )
    await store.put_post(post, NOW)
    await store.set_channel_price(row.id, owner, rules.Price(500, "USD", 86_400), NOW)
    return row.id


async def _people(store: Store, make_account: MakeAccount) -> tuple[int, int, int]:
    owner, _ = await make_account("owner")
    fan, _ = await make_account("fan")
    channel = await _channel(store, owner.id)
    return owner.id, fan.id, channel


async def _balance(store: Store, account: int) -> int:
    return dict(await store.balances(account)).get("USD", 0)


async def _ok(store: Store) -> None:
    audit = await store.ledger_audit()
    assert audit.ok, audit


async def test_a_tip_moves_money_with_its_receipt_once(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 1_000, "USD", NOW, "t")
    r, replay = await store.post_tip(tip("tip1", fan, owner, channel, 1, 300), sign)
    assert not replay and (r.type, r.payer, r.payee, r.post, r.amount) == (
        "tip",
        fan,
        owner,
        1,
        300,
    )
    creators.verify_receipt(SERVER, KEY.public_key, r)
    again, replay = await store.post_tip(tip("tip1", fan, owner, channel, 1, 300), sign)
    assert replay and again == r
    with pytest.raises(Conflict):  # the same id, other content: nothing moves
        await store.post_tip(tip("tip1", fan, owner, channel, 1, 301), sign)
    with pytest.raises(ledger.InsufficientFunds):
        await store.post_tip(tip("tip2", fan, owner, channel, 1, 701), sign)
    with pytest.raises(NotFound):
        await store.post_tip(tip("tip3", fan, owner, channel, 2, 1), sign)
    with pytest.raises(ledger.NotMember):  # paid to someone other than the owner
        await store.post_tip(tip("tip4", fan, fan + 1000, channel, 1, 1), sign)
    assert (await _balance(store, fan), await _balance(store, owner)) == (700, 300)
    assert await store.post_tips(channel, 1) == [F.TipTotal(currency="USD", count=1, amount=300)]
    assert await store.creator_receipts("tip1", owner, 0, 10) == [r]
    assert await store.creator_receipts("tip1", fan + 1000, 0, 10) == []  # not a party
    entries = await store.wallet_entries(fan, "USD", None, 10)
    assert (entries[0].type, entries[0].amount, entries[0].conv) == ("tip", -300, 0)
    # a deleted post takes no tip
    tomb = F.Post(
        channel=channel,
        seq=1,
        ver=1,
        ts=NOW,
        author=owner,
        device=1,
        kind=posts.TOMBSTONE,
        sig=bytes(64),
    )
    await store.put_post(tomb, NOW)
    with pytest.raises(NotFound):
        await store.post_tip(tip("tip5", fan, owner, channel, 1, 1), sign)
    await _ok(store)


async def test_a_mandate_charges_each_period_once_then_completes(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 10_000, "USD", NOW, "t")
    done = await store.subscribe(mandate("m1", fan, owner, channel, 500, 3), sign)
    assert (done.subscription.state, done.subscription.charged, done.receipt.n) == ("active", 1, 1)
    assert done.subscription.paid_through == NOW + DAY
    again = await store.subscribe(mandate("m1", fan, owner, channel, 500, 3), sign)
    assert again.replay and again.receipt == done.receipt
    with pytest.raises(Conflict):  # one live mandate per subscriber and channel
        await store.subscribe(mandate("m2", fan, owner, channel, 500, 3), sign)
    assert await store.has_access(channel, fan, NOW + DAY - 1)
    assert not await store.has_access(channel, fan, NOW + DAY)
    assert await store.has_access(channel, owner, NOW + 10 * DAY)  # the owner always
    assert await store.charge_due(NOW + DAY - 1, sign, RENEWAL, 10) == []  # not due yet
    for period in (2, 3):
        at = NOW + (period - 1) * DAY
        changed = await store.charge_due(at, sign, RENEWAL, 10)
        assert [(c.subscription.charged, c.receipt.n if c.receipt else 0) for c in changed] == [
            (period, period)
        ]
        assert await store.charge_due(at, sign, RENEWAL, 10) == []  # the same period: never again
    last = await store.charge_due(NOW + 3 * DAY, sign, RENEWAL, 10)
    assert [(c.subscription.state, c.receipt) for c in last] == [("completed", None)]
    assert (await _balance(store, fan), await _balance(store, owner)) == (8_500, 1_500)
    receipts = await store.creator_receipts("m1", fan, 0, 10)
    assert [(r.n, r.starts, r.ends) for r in receipts] == [
        (n, NOW + (n - 1) * DAY, NOW + n * DAY) for n in (1, 2, 3)
    ]
    for r in receipts:
        creators.verify_receipt(SERVER, KEY.public_key, r)
    await _ok(store)


async def test_a_short_wallet_is_past_due_then_lapsed_and_never_charged_in_part(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 700, "USD", NOW, "t")
    await store.subscribe(mandate("m1", fan, owner, channel, 500, 12), sign)
    due = NOW + DAY
    (c,) = await store.charge_due(due, sign, RENEWAL, 10)
    assert (c.subscription.state, c.receipt) == ("past_due", None)
    assert c.subscription.next_charge_at == due + DAY // 4
    assert await _balance(store, fan) == 200  # nothing of the 500 moved
    assert not await store.has_access(channel, fan, due)
    (c,) = await store.charge_due(due + 3 * DAY, sign, RENEWAL, 10)
    assert c.subscription.state == "lapsed" and c.subscription.next_charge_at == 0
    assert await store.charge_due(due + 30 * DAY, sign, RENEWAL, 10) == []
    assert await _balance(store, fan) == 200
    # lapsed: a new mandate may be signed (the price it is charged is the channel's)
    await store.mint(fan, 300, "USD", NOW, "t")
    back = await store.subscribe(mandate("m2", fan, owner, channel, 500, 1, due + 4 * DAY), sign)
    assert back.subscription.state == "active"
    await _ok(store)


async def test_a_past_due_mandate_recovers_when_the_wallet_is_topped_up(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 500, "USD", NOW, "t")
    await store.subscribe(mandate("m1", fan, owner, channel, 500, 12), sign)
    (c,) = await store.charge_due(NOW + DAY, sign, RENEWAL, 10)
    assert c.subscription.state == "past_due"
    await store.mint(fan, 500, "USD", NOW, "t")
    retry = NOW + DAY + DAY // 4
    (c,) = await store.charge_due(retry, sign, RENEWAL, 10)
    assert c.receipt is not None and (c.receipt.n, c.receipt.starts) == (2, retry)
    assert c.subscription.state == "active" and c.subscription.paid_through == retry + DAY
    await _ok(store)


async def test_a_cancel_stops_the_charges_and_keeps_the_paid_period(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 10_000, "USD", NOW, "t")
    await store.subscribe(mandate("m1", fan, owner, channel, 500, 12), sign)
    with pytest.raises(NotFound):  # only the subscriber cancels (the owner cannot either)
        await store.unsubscribe("m1", owner, NOW)
    info, changed = await store.unsubscribe("m1", fan, NOW + 1)
    assert changed and info.state == "cancelled" and info.next_charge_at == 0
    info, changed = await store.unsubscribe("m1", fan, NOW + 2)
    assert not changed and info.state == "cancelled"
    assert await store.charge_due(NOW + 5 * DAY, sign, RENEWAL, 10) == []
    assert await store.has_access(channel, fan, NOW + DAY - 1)
    assert not await store.has_access(channel, fan, NOW + DAY)
    assert await _balance(store, fan) == 9_500
    assert await store.subscription("m1", owner) == info
    assert await store.subscription("m1", fan + 1000) is None
    with pytest.raises(Forbidden):
        await store.subscriptions(fan, channel, "", 10)  # a channel's list: its owner's only
    assert [s.mandate_id for s in await store.subscriptions(owner, channel, "", 10)] == ["m1"]
    await _ok(store)


async def test_a_price_change_leaves_signed_mandates_alone(
    store: Store, make_account: MakeAccount
) -> None:
    owner, fan, channel = await _people(store, make_account)
    await store.mint(fan, 10_000, "USD", NOW, "t")
    await store.subscribe(mandate("m1", fan, owner, channel, 500, 3), sign)
    await store.set_channel_price(channel, owner, rules.Price(900, "USD", 86_400), NOW)
    with pytest.raises(Forbidden):
        await store.set_channel_price(channel, fan, None, NOW)
    (c,) = await store.charge_due(NOW + DAY, sign, RENEWAL, 10)
    assert c.receipt is not None and c.receipt.amount == 500
    other, _ = await make_account("other")
    await store.mint(other.id, 10_000, "USD", NOW, "t")
    with pytest.raises(rules.PriceChanged):
        await store.subscribe(mandate("m2", other.id, owner, channel, 500, 3), sign)
    assert await store.channel_price(channel) == (owner, rules.Price(900, "USD", 86_400))
    await _ok(store)


async def test_two_stores_sweeping_at_once_charge_each_period_once(
    backend: StoreBackend, stores: Stores, make_account: MakeAccount
) -> None:
    if backend.one_writer_per_location:
        pytest.skip("one writer per SQLite file: two nodes share PostgreSQL")
    a = await stores.open()
    b = await stores.open()
    owner, _ = await a.create_account("owner", "O", "user", bytes(range(32)), "d", NOW)
    channel = await _channel(a, owner.id)
    fans = []
    for i in range(20):
        fan, _ = await a.create_account(f"fan{i}", "F", "user", bytes([i + 1] * 32), "d", NOW)
        await a.mint(fan.id, 10_000, "USD", NOW, "t")
        await a.subscribe(mandate(f"m{i}", fan.id, owner.id, channel, 500, 5), sign)
        fans.append(fan.id)
    for period in range(2, 6):
        at = NOW + (period - 1) * DAY
        got = await asyncio.gather(
            *(s.charge_due(at, sign, RENEWAL, 7) for s in (a, b, a, b, a, b, a, b))
        )
        charged = [c.receipt.ref for batch in got for c in batch if c.receipt is not None]
        assert sorted(charged) == sorted(f"m{i}" for i in range(20))  # each once, by someone
    for fan in fans:
        assert await _balance(a, fan) == 10_000 - 5 * 500
    audit = await b.ledger_audit()
    assert audit.ok, audit
