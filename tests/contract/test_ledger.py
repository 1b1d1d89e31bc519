"""The ledger contract, on every store backend: postings move money and append their signed
receipt in one transaction, refusals change nothing, ids are applied once, red packets and
requests settle once, and the database itself refuses overdrafts and edits of history."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from chatproto import frames as F
from chatproto import kinds, payments
from chatproto.e2e.primitives import SigningKey

from chatd.core import ledger
from chatd.errors import Conflict, Forbidden, Invalid, NotFound
from chatd.store import Store
from chatd.store.base import NewRedPacket, NewRequest, NewTransfer, Posting

from .conftest import MakeAccount, StoreBackend, Stores

NOW = 1_700_000_000_000
HOUR = 3_600_000
SERVER = "ledger.test"
KEY = SigningKey(bytes(range(100, 132)))


def sign(r: kinds.PaymentReceipt) -> bytes:
    return kinds.encode_content(payments.sign_receipt(KEY, SERVER, r))[1]


def transfer(
    tid: str,
    payer: int,
    payee: int,
    amount: int,
    conv: int,
    *,
    currency: str = "USD",
    now: int = NOW,
    expires_at: int = NOW + HOUR,
    request_id: str = "",
    day_limit: int | None = None,
) -> NewTransfer:
    fingerprint = payments.intent_hash(
        SERVER,
        F.TransferIntent(
            transfer_id=tid,
            payer=payer,
            payee=payee,
            amount=amount,
            currency=currency,
            conv=conv,
            memo_hash=payments.NO_MEMO,
            expires_at=expires_at,
            request_id=request_id,
        ),
    )
    return NewTransfer(
        transfer_id=tid,
        payer=payer,
        payee=payee,
        amount=amount,
        currency=currency,
        conv=conv,
        request_id=request_id,
        intent_hash=fingerprint,
        memo_hash=payments.NO_MEMO,
        intent_expires_at=expires_at,
        device=1,
        payer_sig=bytes(64),
        now=now,
        day_limit=day_limit,
    )


def packet(
    pid: str,
    sender: int,
    conv: int,
    shares: tuple[int, ...],
    *,
    currency: str = "USD",
    now: int = NOW,
    expires_at: int = NOW + HOUR,
) -> NewRedPacket:
    return NewRedPacket(
        packet_id=pid,
        sender=sender,
        conv=conv,
        currency=currency,
        shares=shares,
        split="random",
        intent_hash=payments.intent_hash(
            SERVER,
            F.RedPacketIntent(
                packet_id=pid,
                payer=sender,
                conv=conv,
                total=sum(shares),
                currency=currency,
                shares=len(shares),
                split="random",
                memo_hash=payments.NO_MEMO,
                expires_at=now + HOUR,
            ),
        ),
        memo_hash=payments.NO_MEMO,
        intent_expires_at=now + HOUR,
        device=1,
        payer_sig=bytes(64),
        expires_at=expires_at,
        now=now,
        day_limit=None,
    )


def receipt_of(p: Posting) -> kinds.PaymentReceipt:
    m = p.message
    assert (m.kind, m.sender, m.device, m.cmid) == ("payment.receipt", 0, 0, None)
    r = kinds.decode_content(m.kind, m.body)
    assert isinstance(r, kinds.PaymentReceipt)
    payments.verify_receipt(SERVER, KEY.public_key, r, conv=m.conv)
    return r


async def balance(store: Store, account: int, currency: str = "USD") -> int:
    return dict(await store.balances(account)).get(currency, 0)


async def assert_ledger_ok(store: Store) -> None:
    audit = await store.ledger_audit()
    assert audit.ok, audit


async def setup(store: Store, make_account: MakeAccount) -> tuple[int, int, int, int, int]:
    """alice, bob, carol in a group (alice owns it), dave outside; alice holds 100.00 USD."""
    a, _ = await make_account("alice")
    b, _ = await make_account("bob")
    c, _ = await make_account("carol")
    d, _ = await make_account("dave")
    conv = (await store.create_conversation("group", "g", a.id, [b.id, c.id], NOW)).conv.id
    await store.mint(a.id, 10_000, "USD", NOW, "test")
    return a.id, b.id, c.id, d.id, conv


async def raw_execute(backend: StoreBackend, sql: str) -> None:
    """Run ``sql`` on a connection of its own, bypassing the store (as an operator could)."""
    if backend.name == "sqlite":
        db = sqlite3.connect(backend.path, isolation_level=None)  # type: ignore[attr-defined]
        try:
            db.execute(sql)
        finally:
            db.close()
    else:
        conn = await asyncpg.connect(backend.dsn)  # type: ignore[attr-defined]
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


# --------------------------------------------------------------------------- transfers


async def test_a_transfer_moves_money_and_appends_its_signed_receipt(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, _, _, conv = await setup(store, make_account)
    posted = await store.post_transfer(transfer("t1", a, b, 1250, conv), sign)
    assert not posted.replay
    assert posted.message.seq == 2  # after the "created" system message
    r = receipt_of(posted)
    assert (r.type, r.ref, r.payer, r.payee, r.amount, r.currency) == (
        "transfer",
        "t1",
        a,
        b,
        1250,
        "USD",
    )
    assert (await balance(store, a), await balance(store, b)) == (8750, 1250)
    stored = await store.messages(conv, 0, None, 10)
    assert [m.seq for m in stored] == [1, 2] and stored[1] == posted.message
    entries = await store.wallet_entries(a, "", None, 10)
    assert [(e.type, e.amount, e.balance, e.counterparty) for e in entries] == [
        ("transfer", -1250, 8750, b),
        ("mint", 10_000, 10_000, ledger.ISSUANCE),
    ]
    assert entries[0].conv == conv and entries[0].ref == "t1"
    await assert_ledger_ok(store)


async def test_a_retry_replays_the_first_posting_and_other_content_is_a_conflict(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, _, conv = await setup(store, make_account)
    first = await store.post_transfer(transfer("t1", a, b, 100, conv), sign)
    again = await store.post_transfer(transfer("t1", a, b, 100, conv, now=NOW + 5), sign)
    assert again.replay and again.message == first.message
    with pytest.raises(Conflict):
        await store.post_transfer(transfer("t1", a, c, 100, conv), sign)
    with pytest.raises(Conflict):  # the same id as a red packet
        await store.create_red_packet(packet("t1", a, conv, (1, 1)), sign)
    assert (await balance(store, a), await balance(store, b), await balance(store, c)) == (
        9900,
        100,
        0,
    )
    assert [m.seq for m in await store.messages(conv, 0, None, 10)] == [1, 2]
    await assert_ledger_ok(store)


async def test_a_retry_after_the_intent_expired_still_gets_the_first_answer(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, _, _, conv = await setup(store, make_account)
    first = await store.post_transfer(transfer("t1", a, b, 100, conv), sign)
    later = transfer("t1", a, b, 100, conv, now=NOW + 2 * HOUR)
    assert (await store.post_transfer(later, sign)).message == first.message
    with pytest.raises(ledger.Expired):
        await store.post_transfer(transfer("t2", a, b, 100, conv, now=NOW + 2 * HOUR), sign)


async def test_refusals_change_nothing(
    backend: StoreBackend, store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d, conv = await setup(store, make_account)
    channel = (await store.create_conversation("channel", "ch", c, [a], NOW)).conv.id
    cases: list[tuple[NewTransfer, type[Exception]]] = [
        (transfer("over", a, b, 10_001, conv), ledger.InsufficientFunds),
        (transfer("empty", b, a, 1, conv), ledger.InsufficientFunds),
        (transfer("outsider", d, a, 1, conv), NotFound),
        (transfer("to-outsider", a, d, 1, conv), ledger.NotMember),
        (transfer("no-conv", a, b, 1, 999_999), NotFound),
        (transfer("late", a, b, 1, conv, expires_at=NOW), ledger.Expired),
        (transfer("daily", a, b, 600, conv, day_limit=500), ledger.OverLimit),
        (transfer("channel", a, c, 1, channel), Forbidden),
    ]
    for t, error in cases:
        with pytest.raises(error):
            await store.post_transfer(t, sign)
    assert await balance(store, a) == 10_000
    assert await store.messages(conv, 1, None, 10) == []  # no receipt, no seq used
    ok = await store.post_transfer(transfer("ok", a, b, 1, conv), sign)
    assert ok.message.seq == 2
    for t, _ in cases:  # a refused id was not recorded: it can still be used
        assert t.transfer_id != "ok"
    await store.mint(b, 1, "USD", NOW, "")
    assert (await store.post_transfer(transfer("empty", b, a, 1, conv), sign)).message.seq == 3
    await assert_ledger_ok(store)


async def test_a_refused_posting_does_not_disturb_the_rest_of_its_batch(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, _, conv = await setup(store, make_account)
    futures = [
        store.post_transfer(transfer(f"t{i}", a, b if i % 2 else c, 3_000, conv), sign)
        for i in range(5)
    ]  # queued together: one batch; only three fit in 100.00
    results = await asyncio.gather(*futures, return_exceptions=True)
    ok = [r for r in results if isinstance(r, Posting)]
    refused = [r for r in results if isinstance(r, ledger.InsufficientFunds)]
    assert (len(ok), len(refused)) == (3, 2)
    assert sorted(p.message.seq for p in ok) == [2, 3, 4]  # gapless despite the refusals
    assert await balance(store, a) == 1_000
    await assert_ledger_ok(store)


async def test_the_daily_limit_counts_transfers_and_red_packets_of_the_utc_day(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, _, _, conv = await setup(store, make_account)
    day = ledger.day_start(NOW)
    await store.post_transfer(transfer("t1", a, b, 300, conv, day_limit=500), sign)
    await store.create_red_packet(packet("p1", a, conv, (100, 100)), sign)
    with pytest.raises(ledger.OverLimit):
        await store.post_transfer(transfer("t2", a, b, 1, conv, day_limit=500), sign)
    # A refused posting used none of the day's allowance: 500 is still allowed under 1,000.
    with pytest.raises(ledger.OverLimit):
        await store.post_transfer(transfer("t2b", a, b, 501, conv, day_limit=1000), sign)
    await store.post_transfer(transfer("t2c", a, b, 500, conv, day_limit=1000), sign)
    tomorrow = day + ledger.DAY_MS + 1
    t3 = transfer("t3", a, b, 500, conv, now=tomorrow, expires_at=tomorrow + 1, day_limit=500)
    await store.post_transfer(t3, sign)


async def test_the_database_refuses_an_overdraft_and_any_edit_of_history(
    backend: StoreBackend, store: Store, make_account: MakeAccount
) -> None:
    a, b, _, _, conv = await setup(store, make_account)
    await store.post_transfer(transfer("t1", a, b, 100, conv), sign)
    await store.create_red_packet(packet("p1", a, conv, (1, 1)), sign)
    errors = (sqlite3.DatabaseError, asyncpg.PostgresError)
    for sql in (
        f"UPDATE wallets SET balance = -1 WHERE account = {b}",
        f"INSERT INTO wallets (account, currency, balance) VALUES ({a}, 'EUR', -5)",
        "UPDATE wallets SET balance = -1 WHERE account = -2",  # escrow is not issuance
        "UPDATE entries SET amount = 1",
        "DELETE FROM entries",
        "UPDATE transfers SET amount = 1",
        "DELETE FROM transfers",
    ):
        with pytest.raises(errors):
            await raw_execute(backend, sql)
    assert (await balance(store, a), await balance(store, b)) == (9898, 100)
    await assert_ledger_ok(store)


async def test_issuance_may_go_negative_and_everything_sums_to_zero(
    store: Store, make_account: MakeAccount
) -> None:
    _, b, _, _, _ = await setup(store, make_account)
    await store.mint(b, 5, "JPY", NOW, "")
    audit = await store.ledger_audit()
    assert audit.ok and audit.sums == {"USD": 0, "JPY": 0}
    assert dict(await store.balances(ledger.ISSUANCE)) == {"JPY": -5, "USD": -10_000}
    with pytest.raises(NotFound):
        await store.mint(999_999, 1, "USD", NOW, "")


# --------------------------------------------------------------------------- red packets


async def test_a_red_packet_goes_to_escrow_and_each_member_claims_one_share(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d, conv = await setup(store, make_account)
    made = await store.create_red_packet(packet("p1", a, conv, (50, 30, 20)), sign)
    r = receipt_of(made)
    assert (r.type, r.amount, r.shares, r.payee, r.expires_at) == (
        "red_packet",
        100,
        3,
        0,
        NOW + HOUR,
    )
    assert await balance(store, a) == 9_900
    assert await balance(store, ledger.ESCROW) == 100
    await assert_ledger_ok(store)
    got = {}
    for who in (b, c, a):
        posted = await store.claim_red_packet("p1", who, NOW + 1, sign)
        got[who] = receipt_of(posted)
    assert [got[w].amount for w in (b, c, a)] == [50, 30, 20]
    assert [got[w].shares for w in (b, c, a)] == [1, 2, 3]
    again = await store.claim_red_packet("p1", b, NOW + 2, sign)
    assert again.replay and receipt_of(again).amount == 50
    with pytest.raises(NotFound):
        await store.claim_red_packet("p1", d, NOW + 2, sign)  # not a member
    with pytest.raises(NotFound):
        await store.claim_red_packet("nope", b, NOW + 2, sign)
    await store.create_red_packet(packet("p2", a, conv, (1,)), sign)
    await store.claim_red_packet("p2", b, NOW + 3, sign)
    with pytest.raises(ledger.Closed):
        await store.claim_red_packet("p2", c, NOW + 3, sign)
    assert await balance(store, ledger.ESCROW) == 0
    assert (await balance(store, b), await balance(store, c)) == (51, 30)
    await assert_ledger_ok(store)


async def test_an_expired_red_packet_is_refunded_once(
    stores: Stores, store: Store, make_account: MakeAccount
) -> None:
    a, b, c, _, conv = await setup(store, make_account)
    await store.create_red_packet(packet("p1", a, conv, (40, 35, 25)), sign)
    await store.claim_red_packet("p1", b, NOW + 1, sign)
    assert await store.sweep_payments(NOW + HOUR - 1, sign, 100) == []
    with pytest.raises(ledger.Expired):
        await store.claim_red_packet("p1", c, NOW + HOUR, sign)
    refunds = await store.sweep_payments(NOW + HOUR, sign, 100)
    assert len(refunds) == 1
    r = receipt_of(refunds[0])
    assert (r.type, r.ref, r.payee, r.amount, r.shares) == ("refund", "p1", a, 60, 2)
    assert await store.sweep_payments(NOW + 2 * HOUR, sign, 100) == []
    await stores.close(store)  # a restart does not refund it again
    reopened = await stores.open()
    assert await reopened.sweep_payments(NOW + 3 * HOUR, sign, 100) == []
    with pytest.raises(ledger.Expired):
        await reopened.claim_red_packet("p1", c, NOW + 3 * HOUR, sign)
    assert (await balance(reopened, a), await balance(reopened, ledger.ESCROW)) == (9_960, 0)
    await assert_ledger_ok(reopened)


# --------------------------------------------------------------------------- requests


def request(rid: str, payee: int, payer: int, amount: int, conv: int) -> NewRequest:
    return NewRequest(rid, conv, payee, payer, amount, "USD", NOW + HOUR, NOW)


async def test_a_request_is_paid_once_by_a_transfer_that_names_it(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d, conv = await setup(store, make_account)
    opened = await store.open_request(request("r1", b, a, 700, conv), sign)
    assert receipt_of(opened).type == "request"
    assert (await store.open_request(request("r1", b, a, 700, conv), sign)).replay
    with pytest.raises(Conflict):
        await store.open_request(request("r1", b, a, 701, conv), sign)
    with pytest.raises(ledger.NotMember):
        await store.open_request(request("r2", b, d, 1, conv), sign)
    with pytest.raises(Invalid):  # not the amount asked
        await store.post_transfer(transfer("t0", a, b, 699, conv, request_id="r1"), sign)
    with pytest.raises(Invalid):  # not the payee who asked
        await store.post_transfer(transfer("t0", a, c, 700, conv, request_id="r1"), sign)
    paid = await store.post_transfer(transfer("t1", a, b, 700, conv, request_id="r1"), sign)
    assert receipt_of(paid).request_id == "r1"
    with pytest.raises(ledger.Closed):
        await store.post_transfer(transfer("t2", a, b, 700, conv, request_id="r1"), sign)
    with pytest.raises(ledger.Closed):
        await store.close_request("r1", a, "declined", NOW, sign)
    assert await balance(store, b) == 700
    await assert_ledger_ok(store)


async def test_requests_are_declined_by_the_payer_cancelled_by_the_payee_and_expire(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, c, d, conv = await setup(store, make_account)
    for rid, payer in (("r1", a), ("r2", a), ("r3", 0), ("r4", a)):
        await store.open_request(request(rid, b, payer, 100, conv), sign)
    with pytest.raises(Forbidden):
        await store.close_request("r1", c, "declined", NOW, sign)
    with pytest.raises(Forbidden):
        await store.close_request("r1", a, "cancelled", NOW, sign)
    with pytest.raises(Forbidden):  # open to anyone: nobody declines it for everyone
        await store.close_request("r3", a, "declined", NOW, sign)
    with pytest.raises(NotFound):
        await store.close_request("r1", d, "declined", NOW, sign)
    declined = await store.close_request("r1", a, "declined", NOW, sign)
    assert receipt_of(declined).type == "declined"
    assert (await store.close_request("r1", a, "declined", NOW + 1, sign)).replay
    assert receipt_of(await store.close_request("r2", b, "cancelled", NOW, sign)).actor == b
    with pytest.raises(ledger.Closed):
        await store.post_transfer(transfer("t1", a, b, 100, conv, request_id="r2"), sign)
    # r3 (anyone) is paid by carol after a top-up; r4 expires.
    await store.mint(c, 100, "USD", NOW, "")
    await store.post_transfer(transfer("t2", c, b, 100, conv, request_id="r3"), sign)
    with pytest.raises(ledger.Expired):
        await store.post_transfer(
            transfer("t3", a, b, 100, conv, request_id="r4", now=NOW + HOUR), sign
        )
    swept = await store.sweep_payments(NOW + HOUR, sign, 100)
    assert [receipt_of(p).type for p in swept] == ["expired"]
    assert await store.sweep_payments(NOW + HOUR, sign, 100) == []
    with pytest.raises(ledger.Closed):
        await store.close_request("r4", a, "declined", NOW + HOUR, sign)
    await assert_ledger_ok(store)


async def test_the_payment_key_is_made_once_and_kept(stores: Stores, store: Store) -> None:
    first = await store.payment_key(b"\x01" * 32)
    assert first == b"\x01" * 32
    assert await store.payment_key(b"\x02" * 32) == first
    await stores.close(store)
    assert await (await stores.open()).payment_key(b"\x03" * 32) == first


async def test_receipts_take_seqs_in_the_conversation_between_messages(
    store: Store, make_account: MakeAccount
) -> None:
    from chatd.store.base import NewMessage

    a, b, _, _, conv = await setup(store, make_account)
    dev = (await make_account("erin"))[1]
    await store.invite(conv, a, dev.account, NOW)
    futures: list[Any] = []
    for i in range(20):
        if i % 2:
            futures.append(store.post_transfer(transfer(f"t{i}", a, b, 1, conv), sign))
        else:
            futures.append(
                store.append(NewMessage(conv, dev.account, dev.id, f"m{i}", "text", b"x", NOW))
            )
    done = await asyncio.gather(*futures)
    seqs = sorted(d.message.seq for d in done)
    assert seqs == list(range(3, 23))
    assert [m.seq for m in await store.messages(conv, 0, None, 100)] == list(range(1, 23))


async def test_a_transfer_id_is_applied_once_even_when_retried_through_many_futures(
    store: Store, make_account: MakeAccount
) -> None:
    a, b, _, _, conv = await setup(store, make_account)
    t = transfer("same", a, b, 10, conv)
    results = await asyncio.gather(*(store.post_transfer(replace(t), sign) for _ in range(50)))
    assert sum(not r.replay for r in results) == 1
    assert len({r.message.seq for r in results}) == 1
    assert await balance(store, b) == 10
    await assert_ledger_ok(store)
