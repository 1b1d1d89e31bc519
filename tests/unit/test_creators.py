"""Creators' signed payloads (SPEC.md 15.12-15.14) against their committed vectors, receipt
verification as the payer's and the payee's clients run it, and the subscription rules
(``chatd.core.creators``) as plain functions of time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import creators, payments, posts
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey, verify
from chatproto.errors import ChatProtoError, SignatureError
from hypothesis import given
from hypothesis import strategies as st

from chatd.core import creators as rules
from chatd.core import ledger
from chatd.errors import Invalid

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol/vectors/creators.json").read_text()
)
DAY = 86_400_000


def _bin(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: _bin(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_bin(v) for v in value]
    return value


@pytest.mark.parametrize("vector", VECTORS["intents"], ids=lambda v: v["name"])
def test_intent_payloads_hashes_and_signatures_are_the_vectors(vector: dict[str, Any]) -> None:
    kind = F.TipIntent if vector["name"] == "tip" else F.MandateIntent
    intent = msgspec.convert(_bin(vector["intent"]), kind)
    payload = creators.intent_payload(vector["server"], intent)
    assert payload.hex() == vector["payload"]
    assert creators.intent_hash(vector["server"], intent).hex() == vector["intent_hash"]
    key = SigningKey(bytes.fromhex(vector["seed"]))
    assert key.sign(payload).hex() == vector["signature"]
    # A new context string: never a valid transfer intent's bytes.
    assert not payload.startswith(payments.TRANSFER_CONTEXT)


@pytest.mark.parametrize("vector", VECTORS["receipts"], ids=lambda v: v["name"])
def test_receipt_vectors_verify_and_every_changed_field_is_refused(vector: dict[str, Any]) -> None:
    r = msgspec.convert(_bin(vector["receipt"]), F.CreatorReceipt)
    server_key = bytes.fromhex(VECTORS["server_key"])
    payer_key = bytes.fromhex(VECTORS["intents"][0]["public_key"])
    assert creators.creator_receipt_payload(vector["server"], r).hex() == vector["payload"]
    creators.verify_receipt(vector["server"], server_key, r, payer_key=payer_key)
    for change in (
        {"amount": r.amount + 1},
        {"payee": 9},
        {"post": r.post + 1},
        {"channel": 8},
        {"n": r.n + 1},
        {"ends": r.ends + 1},
        {"periods": r.periods + 1},
        {"intent_expires_at": 1},
    ):
        with pytest.raises(SignatureError):
            creators.verify_receipt(
                vector["server"],
                server_key,
                msgspec.structs.replace(r, **change),
                payer_key=payer_key,
            )
    with pytest.raises(SignatureError):
        creators.verify_receipt("chat.example.net", server_key, r)


def test_a_receipt_the_server_signs_for_terms_the_payer_never_signed_is_refused() -> None:
    """The server holds its receipt key but not the payer's device key: a receipt whose intent
    hash is honest about forged terms still fails the payer's signature."""
    vector = VECTORS["receipts"][0]
    r = msgspec.convert(_bin(vector["receipt"]), F.CreatorReceipt)
    server = SigningKey(bytes.fromhex(VECTORS["server_seed"]))
    payer_key = bytes.fromhex(VECTORS["intents"][0]["public_key"])
    forged = msgspec.structs.replace(r, amount=r.amount * 10)
    forged = msgspec.structs.replace(
        forged, intent_hash=creators.intent_hash(vector["server"], creators.receipt_intent(forged))
    )
    forged = creators.sign_receipt(server, vector["server"], forged)
    creators.verify_receipt(vector["server"], server.public_key, forged)  # server's part holds
    with pytest.raises(SignatureError):
        creators.verify_receipt(vector["server"], server.public_key, forged, payer_key=payer_key)


def test_a_paid_post_is_signed_over_v2_and_its_placeholder_cannot_verify() -> None:
    v = VECTORS["paid_post"]
    post = msgspec.convert(_bin(v["post"]), F.Post)
    key = bytes.fromhex(v["device_key"])
    assert posts.payload_of(v["server"], post).hex() == v["payload"]
    posts.verify_post(key, v["server"], post)
    with pytest.raises(SignatureError):  # the server cannot turn it into a free post
        verify(key, post.sig, bytes.fromhex(v["v1_payload"]))
    with pytest.raises(SignatureError):
        posts.verify_post(key, v["server"], msgspec.structs.replace(post, paid=False))
    placeholder = msgspec.convert(_bin(v["placeholder"]), F.Post)
    assert placeholder.locked and not placeholder.content and placeholder.sig == post.sig
    with pytest.raises(ChatProtoError):
        posts.verify_post(key, v["server"], placeholder)


# --------------------------------------------------------------------------- the rules

LIMITS = ledger.Limits(per_transfer={"USD": 100_000}, per_day={})
RENEWAL = rules.Renewal(grace_ms=3 * DAY, retry_ms=3_600_000)


def _sub(**kw: Any) -> rules.Sub:
    base = {
        "mandate_id": "m",
        "state": "active",
        "charged": 1,
        "periods": 3,
        "period_ms": 30 * DAY,
        "paid_through": 30 * DAY,
        "next_charge_at": 30 * DAY,
    }
    return rules.Sub(**{**base, **kw})


def test_a_renewal_on_time_continues_the_paid_period_without_a_gap() -> None:
    s = _sub()
    c = rules.next_charge(s, 30 * DAY + 5_000)
    assert c == rules.Charge(2, 30 * DAY, 60 * DAY)
    assert rules.charged(s, c).paid_through == 60 * DAY


def test_a_late_renewal_starts_its_period_when_it_is_paid() -> None:
    late = _sub(state="past_due", due_since=30 * DAY, next_charge_at=31 * DAY)
    assert rules.next_charge(late, 31 * DAY) == rules.Charge(2, 31 * DAY, 61 * DAY)
    down = _sub()  # the server was down for more than a period
    assert rules.next_charge(down, 61 * DAY) == rules.Charge(2, 61 * DAY, 91 * DAY)


def test_a_short_wallet_is_past_due_retried_then_lapsed_after_the_grace() -> None:
    s = _sub()
    first = rules.refused(s, 30 * DAY, RENEWAL)
    assert (first.state, first.due_since, first.next_charge_at) == (
        "past_due",
        30 * DAY,
        30 * DAY + 3_600_000,
    )
    near = rules.refused(first, 33 * DAY - 1_000, RENEWAL)
    assert near.state == "past_due" and near.next_charge_at == 33 * DAY
    assert rules.refused(near, 33 * DAY, RENEWAL).state == "lapsed"


def test_used_up_periods_complete_and_only_live_mandates_cancel() -> None:
    assert rules.next_charge(_sub(charged=3), 90 * DAY) is None
    assert rules.cancel(_sub()).state == "cancelled"
    for state in ("lapsed", "completed", "cancelled"):
        with pytest.raises(ledger.Closed):
            rules.cancel(_sub(state=state, next_charge_at=0))


def test_a_mandate_pays_the_owner_exactly_the_current_price() -> None:
    i = F.MandateIntent(
        mandate_id="m",
        payer=2,
        payee=1,
        channel=7,
        amount=500,
        currency="USD",
        period=86_400,
        periods=3,
        expires_at=10,
    )
    rules.check_terms(i, 1, rules.Price(500, "USD", 86_400))
    with pytest.raises(rules.PriceChanged):
        rules.check_terms(i, 1, rules.Price(600, "USD", 86_400))
    with pytest.raises(rules.PriceChanged):
        rules.check_terms(i, 1, None)
    with pytest.raises(Invalid):
        rules.check_mandate(msgspec.structs.replace(i, period=10), 0, LIMITS)


@given(
    st.lists(st.sampled_from(["ok", "short", "cancel"]), max_size=40),
    st.integers(min_value=1, max_value=6),
)
def test_any_run_of_renewals_charges_each_period_once_and_never_past_the_mandate(
    events: list[str], periods: int
) -> None:
    s = _sub(periods=periods)
    now = s.next_charge_at
    seen = [1]
    for ev in events:
        if s.state not in rules.LIVE:
            break
        if ev == "cancel":
            s = rules.cancel(s)
            continue
        now = max(now, s.next_charge_at)
        c = rules.next_charge(s, now)
        if c is None:
            s = rules.completed(s)
        elif ev == "ok":
            assert c.n == seen[-1] + 1 and c.starts >= s.paid_through - s.period_ms
            seen.append(c.n)
            s = rules.charged(s, c)
        else:
            s = rules.refused(s, now, RENEWAL)
        assert (s.state in rules.LIVE) == (s.next_charge_at > 0)
    assert seen == list(range(1, len(seen) + 1)) and len(seen) <= periods
