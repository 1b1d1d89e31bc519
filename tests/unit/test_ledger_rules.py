"""The pure rules of money (chatd.core.ledger): intent checks, limits, request and red packet
states, and splitting a red packet. No store, no socket; time and randomness passed in."""

from __future__ import annotations

import random
import re
from collections import Counter
from typing import Any

import msgspec
import pytest
from chatproto import frames as F
from chatproto import payments
from chatproto.errors import ErrorCode
from hypothesis import given, settings
from hypothesis import strategies as st

from chatd.core import ledger
from chatd.errors import ChatdError, Forbidden, Invalid, NotFound

NOW = 1_700_000_000_000
LIMITS = ledger.Limits(
    per_transfer={"USD": 10_000, "JPY": 100_000},
    per_day={"USD": 20_000},
    max_shares=10,
)
INTENT = F.TransferIntent(
    transfer_id="t1",
    payer=1,
    payee=2,
    amount=500,
    currency="USD",
    conv=9,
    memo_hash=payments.NO_MEMO,
    expires_at=NOW + 60_000,
)


def _code(fn: Any, *args: Any) -> ErrorCode | None:
    try:
        fn(*args)
    except ChatdError as exc:
        return exc.code
    return None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({}, None),
        ({"amount": 0}, ErrorCode.INVALID_AMOUNT),
        ({"amount": -1}, ErrorCode.INVALID_AMOUNT),
        ({"amount": 10_000}, None),
        ({"amount": 10_001}, ErrorCode.OVER_LIMIT),
        ({"currency": "EUR"}, ErrorCode.UNKNOWN_CURRENCY),  # ISO, but not accepted here
        ({"currency": "ABC"}, ErrorCode.UNKNOWN_CURRENCY),
        ({"currency": "usd"}, ErrorCode.UNKNOWN_CURRENCY),
        ({"payee": 1}, ErrorCode.INVALID),
        ({"transfer_id": "a b"}, ErrorCode.INVALID),
        ({"request_id": "r:1"}, ErrorCode.INVALID),
        ({"expires_at": NOW + ledger.DAY_MS + 1}, ErrorCode.INVALID),
        ({"expires_at": NOW - 1}, None),  # expiry is the store's call (after idempotency)
    ],
)
def test_check_transfer(change: dict[str, Any], code: ErrorCode | None) -> None:
    intent = msgspec.structs.replace(INTENT, **change)
    assert _code(ledger.check_transfer, intent, NOW, LIMITS) == code


def test_red_packet_checks() -> None:
    base = F.RedPacketIntent(
        packet_id="p",
        payer=1,
        conv=9,
        total=100,
        currency="USD",
        shares=10,
        split="random",
        memo_hash=payments.NO_MEMO,
        expires_at=NOW + 1,
    )
    assert _code(ledger.check_red_packet, base, NOW, LIMITS) is None
    for change, code in (
        ({"shares": 11}, ErrorCode.INVALID),
        ({"total": 9}, ErrorCode.INVALID_AMOUNT),
        ({"total": 0}, ErrorCode.INVALID_AMOUNT),
        ({"total": 10_001}, ErrorCode.OVER_LIMIT),
        ({"currency": "XXX"}, ErrorCode.UNKNOWN_CURRENCY),
    ):
        packet = msgspec.structs.replace(base, **change)
        assert _code(ledger.check_red_packet, packet, NOW, LIMITS) == code, change


def test_the_daily_limit_counts_from_utc_midnight() -> None:
    assert ledger.day_start(NOW) % ledger.DAY_MS == 0
    assert NOW - ledger.DAY_MS < ledger.day_start(NOW) <= NOW
    ledger.check_daily(15_000, 5_000, "USD", 20_000)
    ledger.check_daily(10**9, 5_000, "USD", None)
    with pytest.raises(ledger.OverLimit):
        ledger.check_daily(15_001, 5_000, "USD", 20_000)


def test_limits_parse_major_units_per_currency() -> None:
    assert ledger.parse_limits(("USD:12.50", " JPY : 1000 ", "BHD:1.005")) == {
        "USD": 1250,
        "JPY": 1000,
        "BHD": 1005,
    }
    for bad in ("USD", "USD:1.001", "JPY:1.5", "XYZ:1", "USD:0", "USD:1,000"):
        with pytest.raises(ValueError, match=re.escape(bad)):
            ledger.parse_limits((bad,))


def _request(**kw: Any) -> ledger.RequestState:
    base: dict[str, Any] = {
        "request_id": "r",
        "conv": 9,
        "payee": 2,
        "payer": 1,
        "amount": 500,
        "currency": "USD",
        "expires_at": NOW + 10,
        "state": "open",
    }
    base.update(kw)
    return ledger.RequestState(**base)


def test_a_transfer_pays_exactly_its_open_request() -> None:
    ok = (9, 1, 2, 500, "USD", NOW)
    ledger.check_pays_request(_request(), *ok)
    ledger.check_pays_request(_request(payer=0), 9, 3, 2, 500, "USD", NOW)  # anyone
    for r, args, error in (
        (None, ok, NotFound),
        (_request(conv=8), ok, NotFound),
        (_request(state="paid"), ok, ledger.Closed),
        (_request(state="declined"), ok, ledger.Closed),
        (_request(expires_at=NOW), ok, ledger.Expired),
        (_request(), (9, 3, 2, 500, "USD", NOW), Invalid),
        (_request(), (9, 1, 3, 500, "USD", NOW), Invalid),
        (_request(), (9, 1, 2, 499, "USD", NOW), Invalid),
        (_request(), (9, 1, 2, 500, "JPY", NOW), Invalid),
    ):
        with pytest.raises(error):
            ledger.check_pays_request(r, *args)


def test_who_may_close_a_request() -> None:
    ledger.check_close_request(_request(), 1, "declined", NOW)
    ledger.check_close_request(_request(), 2, "cancelled", NOW)
    for r, actor, state, error in (
        (None, 1, "declined", NotFound),
        (_request(), 2, "declined", Forbidden),
        (_request(), 1, "cancelled", Forbidden),
        (_request(payer=0), 1, "declined", Forbidden),
        (_request(state="paid"), 1, "declined", ledger.Closed),
        (_request(expires_at=NOW), 2, "cancelled", ledger.Expired),
    ):
        with pytest.raises(error):
            ledger.check_close_request(r, actor, state, NOW)


def test_a_request_closes_with_the_receipt_of_its_new_state_and_only_so() -> None:
    for state in ("declined", "cancelled", "expired"):
        assert ledger.closing_type(state) == state
    for state in ("open", "paid", "request", ""):
        with pytest.raises(ValueError, match="does not close as"):
            ledger.closing_type(state)


def test_claims_take_the_shares_in_order_until_expiry() -> None:
    p = ledger.PacketState("p", 9, 1, "USD", (5, 3, 2), 1, NOW + 10, "open")
    assert ledger.next_share(p, NOW) == 3
    with pytest.raises(ledger.Expired):
        ledger.next_share(p, NOW + 10)
    with pytest.raises(ledger.Closed):
        ledger.next_share(ledger.PacketState("p", 9, 1, "USD", (5,), 1, NOW + 10, "emptied"), NOW)
    with pytest.raises(ledger.Expired):
        ledger.next_share(ledger.PacketState("p", 9, 1, "USD", (5,), 0, NOW + 10, "refunded"), NOW)


@settings(max_examples=500)
@given(total=st.integers(1, 10**15), n=st.integers(1, 200), seed=st.integers(0, 2**32))
def test_every_split_sums_exactly_to_the_total_with_at_least_one_unit_each(
    total: int, n: int, seed: int
) -> None:
    n = min(n, total)
    rng = random.Random(seed)
    for kind in ("random", "equal"):
        shares = ledger.split(total, n, kind, rng.randrange)
        assert len(shares) == n
        assert sum(shares) == total
        assert min(shares) >= 1
    equal = ledger.split_equal(total, n)
    assert max(equal) - min(equal) <= 1


def test_a_split_needs_one_unit_per_share() -> None:
    for bad in ((3, 4), (0, 1), (5, 0)):
        with pytest.raises(ledger.InvalidAmount):
            ledger.split_random(*bad, random.Random(1).randrange)
        with pytest.raises(ledger.InvalidAmount):
            ledger.split_equal(*bad)


def test_random_splits_are_uniform_over_all_splits() -> None:
    """5 split into 3 positive shares: 6 compositions, each drawn about 1/6 of the time."""
    rng = random.Random(42)
    seen = Counter(tuple(ledger.split_random(5, 3, rng.randrange)) for _ in range(12_000))
    assert set(seen) == {(1, 1, 3), (1, 3, 1), (3, 1, 1), (1, 2, 2), (2, 1, 2), (2, 2, 1)}
    assert all(1_700 < count < 2_300 for count in seen.values()), seen


def test_system_accounts_show_as_zero() -> None:
    assert ledger.wire_account(ledger.ISSUANCE) == ledger.wire_account(ledger.ESCROW) == 0
    assert ledger.wire_account(7) == 7
