"""Payments against the real server: money moves once per signed intent, every member gets a
receipt it can verify, and every refusal has its stable code and moves nothing."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatproto import frames as F
from chatproto import payments
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer, make_settings, run_server
from paykit import (
    Clients,
    audit,
    balances,
    group,
    intent,
    mint,
    now_ms,
    packet_frame,
    pay_frame,
    receipt,
    stored_receipts,
)
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
LIMITS = {"max_transfer": "USD:100,JPY:10000", "max_per_day": "USD:150"}


@pytest.fixture
async def pay_server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, limits=FAST, payments=LIMITS)
    async with run_server(settings) as s:
        yield s


@pytest.fixture
async def clients(pay_server: RunningServer) -> AsyncIterator[Clients]:
    c = Clients(pay_server.url)
    try:
        yield c
    finally:
        await c.aclose()


def db_of(server: RunningServer) -> Path:
    return Path(server.app.settings.store.db)


async def payment_key(r: Raw) -> F.PaymentKey:
    key: F.PaymentKey = await r.request(F.GetPaymentKey(id=r.next_id()), F.PaymentKey)
    return key


async def test_a_payment_moves_money_once_and_every_member_verifies_its_receipt(
    pay_server: RunningServer, clients: Clients
) -> None:
    db = db_of(pay_server)
    alice, bob, carol = [await clients.registered(h) for h in ("alice", "bob", "carol")]
    conv = await group(alice, bob, carol)
    await mint(db, alice.account, 10_000)
    key = await payment_key(carol)
    assert key.server == pay_server.app.settings.server.name
    i = intent(alice, bob.account, 1250, conv)
    posted = await alice.request(pay_frame(alice, i), F.Posted)
    assert not posted.replay
    r = receipt(posted)
    payments.verify_receipt(key.server, key.key, r, conv=conv, payer_key=alice.key.public_key)
    assert (r.type, r.ref, r.payer, r.payee, r.amount) == (
        "transfer",
        i.transfer_id,
        alice.account,
        bob.account,
        1250,
    )
    for member in (alice, bob, carol):  # delivered to every member, the payer's connection too
        d = await member.expect(F.Deliver, conv=conv, seq=posted.seq)
        assert (d.conv, d.seq, d.body, d.sender) == (conv, posted.seq, posted.body, 0)
    assert balances(db, alice.account) == {"USD": 8750}
    assert balances(db, bob.account) == {"USD": 1250}
    got = await bob.request(F.GetBalance(id=bob.next_id()), F.Balances)
    assert got.balances == [F.BalanceInfo(currency="USD", amount=1250)]
    page = await alice.request(F.WalletHistory(id=alice.next_id()), F.WalletEntries)
    assert [(e.type, e.amount, e.balance, e.counterparty) for e in page.entries] == [
        ("transfer", -1250, 8750, bob.account),
        ("mint", 10_000, 10_000, 0),
    ]
    assert not page.more
    again = await alice.request(pay_frame(alice, i), F.Posted)  # a retry
    assert again.replay and (again.seq, again.body) == (posted.seq, posted.body)
    assert balances(db, bob.account) == {"USD": 1250}
    assert audit(db).ok


async def test_every_refusal_has_its_code_moves_nothing_and_keeps_the_connection(
    pay_server: RunningServer, clients: Clients
) -> None:
    db = db_of(pay_server)
    alice, bob, dave = [await clients.registered(h) for h in ("alice", "bob", "dave")]
    conv = await group(alice, bob)
    await mint(db, alice.account, 30_000)
    await mint(db, alice.account, 500, "JPY")
    used = intent(alice, bob.account, 100, conv)
    await alice.request(pay_frame(alice, used), F.Posted)

    def pay(amount: int, **kw: Any) -> F.Pay:
        key, device = kw.pop("key", None), kw.pop("device", None)
        payee = kw.pop("payee", bob.account)
        return pay_frame(alice, intent(alice, payee, amount, conv, **kw), key=key, device=device)

    cases: list[tuple[str, Raw, F.Pay, ErrorCode]] = [
        ("bad signature", alice, pay(100, key=SigningKey.generate()), ErrorCode.BAD_SIGNATURE),
        (
            "signed by a device of another account",
            alice,
            pay(100, key=bob.key, device=bob.device),
            ErrorCode.WRONG_DEVICE,
        ),
        ("unknown device", alice, pay(100, device=10**9), ErrorCode.WRONG_DEVICE),
        ("payee not a member", alice, pay(100, payee=dave.account), ErrorCode.NOT_MEMBER),
        ("expired intent", alice, pay(100, ttl_ms=-1), ErrorCode.EXPIRED),
        ("insufficient funds", alice, pay(501, currency="JPY"), ErrorCode.INSUFFICIENT_FUNDS),
        ("over the per-transfer limit", alice, pay(10_001), ErrorCode.OVER_LIMIT),
        ("unknown currency", alice, pay(100, currency="XYZ"), ErrorCode.UNKNOWN_CURRENCY),
        (
            "a currency this server does not take",
            alice,
            pay(100, currency="EUR"),
            ErrorCode.UNKNOWN_CURRENCY,
        ),
        ("amount zero", alice, pay(0), ErrorCode.INVALID_AMOUNT),
        ("amount negative", alice, pay(-500), ErrorCode.INVALID_AMOUNT),
        ("id reused with other content", alice, pay(101, tid=used.transfer_id), ErrorCode.CONFLICT),
        ("payer is not the caller", bob, pay(100), ErrorCode.FORBIDDEN),
        (
            "payer not a member",
            dave,
            pay_frame(dave, intent(dave, bob.account, 100, conv)),
            ErrorCode.NOT_FOUND,
        ),
        ("paying yourself", alice, pay(100, payee=alice.account), ErrorCode.INVALID),
        ("an id with a colon", alice, pay(100, tid="claim:x:1"), ErrorCode.INVALID),
    ]
    for name, sender, frame, code in cases:
        reply = await sender.request(frame)
        assert isinstance(reply, F.Error), name
        assert reply.code == code, (name, reply)
    assert balances(db, alice.account) == {"USD": 29_900, "JPY": 500}  # nothing moved
    # The daily limit (150.00 USD): 100.00 more passes after the 1.00 of `used`, 49.01 not.
    await alice.request(pay(10_000), F.Posted)
    reply = await alice.request(pay(4_901))
    assert isinstance(reply, F.Error) and reply.code == ErrorCode.OVER_LIMIT
    assert balances(db, alice.account) == {"USD": 19_900, "JPY": 500}
    assert balances(db, bob.account) == {"USD": 10_100}
    assert [r.amount for _, r in await stored_receipts(alice, conv)] == [100, 10_000]
    assert audit(db).ok
    assert (await alice.request(F.ListConvs(id=alice.next_id()), F.Convs)).convs  # still open


async def test_one_hundred_concurrent_identical_retries_make_one_transfer(
    pay_server: RunningServer, clients: Clients
) -> None:
    db = db_of(pay_server)
    alice, bob = [await clients.registered(h) for h in ("alice", "bob")]
    conv = await group(alice, bob)
    await mint(db, alice.account, 1_000)
    links = [alice] + [await clients.connect() for _ in range(9)]
    for link in links[1:]:
        await link.login(alice.device, alice.key)
    i = intent(alice, bob.account, 700, conv)  # two of these would overdraw: only one fits
    sig = payments.sign_intent(alice.key, alice.challenge.server, i)

    async def retry(link: Raw) -> list[F.Posted]:
        frames = [
            F.Pay(id=link.next_id(), intent=i, device=alice.device, sig=sig) for _ in range(10)
        ]
        for f in frames:
            await link.send_frame(f)
        return [await link.expect(F.Posted, re=f.id) for f in frames]

    answers = [p for batch in await asyncio.gather(*(retry(link) for link in links)) for p in batch]
    assert len(answers) == 100
    assert sum(not p.replay for p in answers) == 1
    assert {(p.seq, p.body) for p in answers} == {(answers[0].seq, answers[0].body)}
    assert balances(db, bob.account) == {"USD": 700}
    assert [r.ref for _, r in await stored_receipts(bob, conv)] == [i.transfer_id]
    assert audit(db).ok


async def test_thirty_members_racing_for_a_ten_share_red_packet_get_ten_claims_summing_to_it(
    pay_server: RunningServer, clients: Clients
) -> None:
    db = db_of(pay_server)
    people = [await clients.registered(f"member{i:02d}") for i in range(30)]
    owner = people[0]
    conv = await group(owner, *people[1:])
    await mint(db, owner.account, 8_888)
    made = await owner.request(packet_frame(owner, conv, 8_888, 10, pid="lucky"), F.Posted)
    r = receipt(made)
    assert (r.type, r.amount, r.shares, r.payee) == ("red_packet", 8_888, 10, 0)
    frames = [(p, F.Claim(id=p.next_id(), packet_id="lucky")) for p in people]
    for p, f in frames:
        await p.send_frame(f)
    answers = await asyncio.gather(*(p._reply(f.id) for p, f in frames))
    won = [receipt(a) for a in answers if isinstance(a, F.Posted)]
    closed = [a for a in answers if isinstance(a, F.Error) and a.code == ErrorCode.CLOSED]
    assert (len(won), len(closed)) == (10, 20)
    assert sum(w.amount for w in won) == 8_888
    assert all(w.amount >= 1 for w in won)
    assert sorted(w.shares for w in won) == list(range(1, 11))
    assert len({w.payee for w in won}) == 10
    again = await people[0].request(F.Claim(id=people[0].next_id(), packet_id="lucky"))
    if people[0].account in {w.payee for w in won}:
        assert isinstance(again, F.Posted) and again.replay
    else:
        assert isinstance(again, F.Error) and again.code == ErrorCode.CLOSED
    stored = [r for _, r in await stored_receipts(owner, conv)]
    assert [r.type for r in stored] == ["red_packet"] + ["claim"] * 10
    assert sum(balances(db, p.account).get("USD", 0) for p in people) == 8_888
    assert audit(db).ok


async def test_two_thousand_random_transfers_from_fifty_connections_keep_every_invariant(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, limits=FAST, payments={"max_per_day": ""})
    async with run_server(settings) as server:
        clients = Clients(server.url)
        try:
            await _two_thousand_transfers(db_of(server), clients)
        finally:
            await clients.aclose()


async def _two_thousand_transfers(db: Path, clients: Clients) -> None:
    rng = random.Random(2024)
    people = [await clients.registered(f"user{i:02d}") for i in range(50)]
    groups = [people[g * 10 : (g + 1) * 10] for g in range(5)]
    convs = [await group(g[0], *g[1:]) for g in groups]
    for p in people:
        await mint(db, p.account, 20_000)
    # Each connection sends its transfers pipelined; some are sent twice (a retry) and some
    # overdraw (amounts up to 12.00 on 200.00 balances).
    plans: dict[int, list[F.Pay]] = defaultdict(list)
    for _ in range(2_000):
        g = rng.randrange(5)
        payer, payee = rng.sample(groups[g], 2)
        frame = pay_frame(payer, intent(payer, payee.account, rng.randint(1, 1_200), convs[g]))
        plans[payer.account].append(frame)
        if rng.random() < 0.1:  # a duplicate retry, now or a little later
            plans[payer.account].insert(
                rng.randint(len(plans[payer.account]) - 1, len(plans[payer.account])),
                F.Pay(id=payer.next_id(), intent=frame.intent, device=frame.device, sig=frame.sig),
            )
    by_account = {p.account: p for p in people}

    async def run(account: int) -> list[tuple[F.Pay, F.ServerFrame]]:
        link = by_account[account]
        for f in plans[account]:
            await link.send_frame(f)
        return [(f, await link._reply(f.id, timeout=60)) for f in plans[account]]

    results = [x for batch in await asyncio.gather(*(run(a) for a in plans)) for x in batch]
    acked: dict[str, F.Posted] = {}
    codes: Counter[int] = Counter()
    for f, reply in results:
        if isinstance(reply, F.Posted):
            first = acked.setdefault(f.intent.transfer_id, reply)
            assert (first.seq, first.body) == (reply.seq, reply.body)
        else:
            assert isinstance(reply, F.Error), reply
            codes[reply.code] += 1
    assert set(codes) <= {ErrorCode.INSUFFICIENT_FUNDS}, codes
    assert codes[ErrorCode.INSUFFICIENT_FUNDS] > 0  # some overdrafts were attempted
    assert len(acked) > 1_000
    assert sum(not r.replay for _, r in results if isinstance(r, F.Posted)) == len(acked)
    # Every acked transfer has exactly one receipt in its conversation, and nothing else does.
    for g, conv in enumerate(convs):
        stored = await stored_receipts(groups[g][0], conv)
        refs = Counter(r.ref for _, r in stored)
        expected = {tid for tid, p in acked.items() if p.conv == conv}
        assert set(refs) == expected and set(refs.values()) == {1}
    # Balances are what the acked transfers say, none is negative, the ledger balances.
    model = {p.account: 20_000 for p in people}
    intents = {f.intent.transfer_id: f.intent for f, _ in results}
    for tid in acked:
        model[intents[tid].payer] -= intents[tid].amount
        model[intents[tid].payee] += intents[tid].amount
    for p in people:
        assert balances(db, p.account) == {"USD": model[p.account]}
    report = audit(db)
    assert report.ok, report
    assert report.sums == {"USD": 0}
    assert report.transfers == len(acked) + 50


async def test_requests_are_paid_declined_cancelled_and_settled_once(
    pay_server: RunningServer, clients: Clients
) -> None:
    db = db_of(pay_server)
    alice, bob = [await clients.registered(h) for h in ("alice", "bob")]
    conv = await group(alice, bob)
    await mint(db, bob.account, 5_000)
    expires = now_ms() + 60_000

    async def ask(rid: str, amount: int = 1_500) -> F.Posted:
        frame = F.RequestPayment(
            id=alice.next_id(),
            request_id=rid,
            conv=conv,
            payer=bob.account,
            amount=amount,
            currency="USD",
            expires_at=expires,
        )
        return await alice.request(frame, F.Posted)

    r1 = receipt(await ask("r1"))
    assert (r1.type, r1.payer, r1.payee, r1.actor) == (
        "request",
        bob.account,
        alice.account,
        alice.account,
    )
    paid = await bob.request(
        pay_frame(bob, intent(bob, alice.account, 1_500, conv, request_id="r1")), F.Posted
    )
    assert receipt(paid).request_id == "r1"
    twice = await bob.request(
        pay_frame(bob, intent(bob, alice.account, 1_500, conv, request_id="r1"))
    )
    assert isinstance(twice, F.Error) and twice.code == ErrorCode.CLOSED
    await ask("r2")
    declined = await bob.request(F.DeclineRequest(id=bob.next_id(), request_id="r2"), F.Posted)
    assert receipt(declined).type == "declined"
    late = await bob.request(
        pay_frame(bob, intent(bob, alice.account, 1_500, conv, request_id="r2"))
    )
    assert isinstance(late, F.Error) and late.code == ErrorCode.CLOSED
    await ask("r3")
    refused = await bob.request(F.CancelRequest(id=bob.next_id(), request_id="r3"))
    assert isinstance(refused, F.Error) and refused.code == ErrorCode.FORBIDDEN
    cancelled = await alice.request(F.CancelRequest(id=alice.next_id(), request_id="r3"), F.Posted)
    assert receipt(cancelled).type == "cancelled"
    assert balances(db, alice.account) == {"USD": 1_500}
    assert [r.type for _, r in await stored_receipts(bob, conv)] == [
        "request",
        "transfer",
        "request",
        "declined",
        "request",
        "cancelled",
    ]


async def test_an_expired_red_packet_is_refunded_by_the_sweeper(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, payments={"red_packet_ttl": 0.5, "sweep_interval": 0.1})
    async with run_server(settings) as server:
        c = Clients(server.url)
        try:
            await _refund_after_expiry(db_of(server), c)
        finally:
            await c.aclose()


async def _refund_after_expiry(db: Path, c: Clients) -> None:
    alice, bob = [await c.registered(h) for h in ("alice", "bob")]
    conv = await group(alice, bob)
    await mint(db, alice.account, 1_000)
    await alice.request(packet_frame(alice, conv, 900, 3, pid="p1"), F.Posted)
    await bob.request(F.Claim(id=bob.next_id(), packet_id="p1"), F.Posted)
    # seq 1 created, 2 red_packet, 3 claim, 4 refund
    refund = await alice.expect(F.Deliver, timeout=10, conv=conv, seq=4)
    r = receipt(F.Posted(re=1, conv=conv, seq=refund.seq, ts=refund.ts, body=refund.body))
    assert (r.type, r.ref, r.payee, r.shares) == ("refund", "p1", alice.account, 2)
    late = await alice.request(F.Claim(id=alice.next_id(), packet_id="p1"))
    assert isinstance(late, F.Error) and late.code == ErrorCode.EXPIRED
    assert balances(db, alice.account)["USD"] + balances(db, bob.account)["USD"] == 1_000
    assert balances(db, alice.account)["USD"] == 100 + r.amount
    assert audit(db).ok
