"""The signed payment payloads: committed vectors, an independent encoder that follows SPEC.md
15.2 byte by byte, round trips, and tampering with any field."""

from __future__ import annotations

import json
import struct
import typing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto import codec, kinds, money, payments
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey, sha256, verify
from chatproto.errors import ChatProtoError, MoneyError, SignatureError
from hypothesis import given, settings
from hypothesis import strategies as st

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "protocol" / "vectors" / "payments.json").read_text(
        encoding="utf-8"
    )
)
PAYER = SigningKey(bytes(range(32)))
SERVER_KEY = SigningKey(bytes(range(0x90, 0xB0)))


def _from_json_form(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: _from_json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json_form(v) for v in value]
    return value


# --------------------------------------------------------------------------- by the spec's rules


def _mp(value: str | int | bytes) -> bytes:
    """One element as SPEC.md 15.2 says, written by hand (not by msgspec)."""
    if isinstance(value, bytes):
        n = len(value)
        head = bytes([0xC4, n]) if n < 256 else b"\xc5" + struct.pack(">H", n)
        return head + value
    if isinstance(value, str):
        raw = value.encode()
        n = len(raw)
        if n < 32:
            return bytes([0xA0 | n]) + raw
        if n < 256:
            return bytes([0xD9, n]) + raw
        return b"\xda" + struct.pack(">H", n) + raw
    assert 0 <= value < 2**64
    if value < 128:
        return bytes([value])
    for marker, fmt in ((0xCC, ">B"), (0xCD, ">H"), (0xCE, ">I"), (0xCF, ">Q")):
        if value < 2 ** (8 * struct.calcsize(fmt)):
            return bytes([marker]) + struct.pack(fmt, value)
    raise AssertionError


def _by_hand(context: bytes, fields: list[str | int | bytes]) -> bytes:
    assert len(fields) < 16
    return context + b"\x00" + bytes([0x90 | len(fields)]) + b"".join(_mp(f) for f in fields)


SERVER = "chat.example.org"
"""The server name intents are bound to here (the vectors' server)."""


def _transfer_fields(i: F.TransferIntent, server: str = SERVER) -> list[str | int | bytes]:
    return [
        server,
        i.transfer_id,
        i.payer,
        i.payee,
        i.amount,
        i.currency,
        i.conv,
        i.memo_hash,
        i.expires_at,
        i.request_id,
    ]


def _packet_fields(i: F.RedPacketIntent, server: str = SERVER) -> list[str | int | bytes]:
    return [
        server,
        i.packet_id,
        i.payer,
        i.conv,
        i.total,
        i.currency,
        i.shares,
        i.split,
        i.memo_hash,
        i.expires_at,
    ]


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("v", VECTORS["amounts"], ids=lambda v: f"{v['currency']}-{v['text']}")
def test_amount_vectors(v: dict[str, Any]) -> None:
    assert money.parse_amount(v["text"], v["currency"]) == v["minor"]
    assert money.format_amount(v["minor"], v["currency"]) == v["formatted"]


@pytest.mark.parametrize(
    "v", VECTORS["refused_amounts"], ids=lambda v: f"{v['currency']}-{v['text']}"
)
def test_refused_amount_vectors(v: dict[str, Any]) -> None:
    with pytest.raises(MoneyError) as err:
        money.parse_amount(v["text"], v["currency"])
    assert int(err.value.code) == v["code"]


@pytest.mark.parametrize("v", VECTORS["intents"], ids=lambda v: v["name"])
def test_intent_vectors(v: dict[str, Any]) -> None:
    cls = F.TransferIntent if v["type"] == "transfer" else F.RedPacketIntent
    intent = msgspec.convert(_from_json_form(v["intent"]), cls)
    assert v["server"] == SERVER
    payload = payments.intent_payload(v["server"], intent)
    assert payload.hex() == v["payload"]
    fields = (
        _transfer_fields(intent) if isinstance(intent, F.TransferIntent) else _packet_fields(intent)
    )
    context = payments.TRANSFER_CONTEXT if v["type"] == "transfer" else payments.RED_PACKET_CONTEXT
    assert _by_hand(context, fields) == payload
    assert sha256(payload).hex() == v["intent_hash"] == payments.intent_hash(SERVER, intent).hex()
    key = SigningKey(bytes.fromhex(v["seed"]))
    assert key.public_key.hex() == v["public_key"]
    assert key.sign(payload).hex() == v["signature"]  # Ed25519 is deterministic
    payments.verify_intent(key.public_key, bytes.fromhex(v["signature"]), SERVER, intent)
    with pytest.raises(SignatureError):  # bound to its server: another one never accepts it
        payments.verify_intent(
            key.public_key, bytes.fromhex(v["signature"]), "chat.example.net", intent
        )


@pytest.mark.parametrize("v", VECTORS["memo_hashes"], ids=lambda v: v["name"])
def test_memo_hash_vectors(v: dict[str, Any]) -> None:
    got = payments.memo_hash(v["transfer_id"], v["memo"], bytes.fromhex(v["nonce"]))
    assert got.hex() == v["memo_hash"]
    if v["memo"]:
        parts = [v["transfer_id"].encode(), bytes.fromhex(v["nonce"]), v["memo"].encode()]
        by_hand = b"chatd-memo-v1\x00" + b"".join(len(p).to_bytes(2, "big") + p for p in parts)
        assert sha256(by_hand).hex() == v["memo_hash"]


@pytest.mark.parametrize("v", VECTORS["receipts"], ids=lambda v: v["name"])
def test_receipt_vectors(v: dict[str, Any]) -> None:
    r = msgspec.convert(_from_json_form(v["receipt"]), kinds.PaymentReceipt)
    payload = payments.receipt_payload(v["server"], r)
    assert payload.hex() == v["payload"]
    fields: list[str | int | bytes] = [
        v["server"],
        r.type,
        r.ref,
        r.payer,
        r.payee,
        r.amount,
        r.currency,
        r.conv,
        r.request_id,
        r.intent_hash,
        r.posted_at,
        r.expires_at,
        r.shares,
        r.actor,
    ]
    assert _by_hand(payments.RECEIPT_CONTEXT, fields) == payload
    assert kinds.encode_content(r) == ("payment.receipt", bytes.fromhex(v["body"]))
    server_key = bytes.fromhex(VECTORS["server_key"])
    assert SigningKey(bytes.fromhex(VECTORS["server_seed"])).public_key == server_key
    verify(server_key, r.sig, payload)
    payer_key = PAYER.public_key if r.type in payments.SIGNED_BY_PAYER else None
    payments.verify_receipt(v["server"], server_key, r, conv=r.conv, payer_key=payer_key)


def test_every_receipt_type_has_a_vector() -> None:
    assert {v["name"] for v in VECTORS["receipts"]} == set(typing.get_args(kinds.ReceiptType))


# --------------------------------------------------------------------------- properties

_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-ABC", min_size=1, max_size=64)
_ints = st.integers(1, 2**53 - 1)
transfers = st.builds(
    F.TransferIntent,
    transfer_id=_ids,
    payer=_ints,
    payee=_ints,
    amount=st.integers(-(2**53) + 1, 2**53 - 1),
    currency=st.sampled_from(sorted(money.CURRENCIES)),
    conv=_ints,
    memo_hash=st.binary(min_size=32, max_size=32),
    expires_at=st.integers(0, 2**53 - 1),
    request_id=st.just("") | _ids,
)
packets = st.builds(
    F.RedPacketIntent,
    packet_id=_ids,
    payer=_ints,
    conv=_ints,
    total=_ints,
    currency=st.sampled_from(sorted(money.CURRENCIES)),
    shares=st.integers(1, 2**32 - 1),
    split=st.sampled_from(["random", "equal"]),
    memo_hash=st.binary(min_size=32, max_size=32),
    expires_at=st.integers(0, 2**53 - 1),
)


@settings(max_examples=300)
@given(intent=transfers)
def test_a_transfer_payload_is_its_context_and_the_fields_in_order(
    intent: F.TransferIntent,
) -> None:
    payload = payments.transfer_payload(SERVER, intent)
    head = b"chatd-transfer-v2\x00"
    assert payload.startswith(head)
    assert msgspec.msgpack.decode(payload[len(head) :]) == _transfer_fields(intent)
    if intent.amount >= 0:
        assert payload == _by_hand(head[:-1], _transfer_fields(intent))


@settings(max_examples=300)
@given(intent=packets)
def test_a_red_packet_payload_is_its_context_and_the_fields_in_order(
    intent: F.RedPacketIntent,
) -> None:
    payload = payments.red_packet_payload(SERVER, intent)
    assert payload == _by_hand(payments.RED_PACKET_CONTEXT, _packet_fields(intent))


@settings(max_examples=200)
@given(intent=transfers, device=_ints)
def test_an_intent_survives_the_pay_frame_byte_for_byte(
    intent: F.TransferIntent, device: int
) -> None:
    sig = payments.sign_intent(PAYER, SERVER, intent)
    frame = codec.decode_client(codec.encode(F.Pay(id=1, intent=intent, device=device, sig=sig)))
    assert isinstance(frame, F.Pay)
    assert payments.transfer_payload(SERVER, frame.intent) == payments.transfer_payload(
        SERVER, intent
    )
    payments.verify_intent(PAYER.public_key, frame.sig, SERVER, frame.intent)


@settings(max_examples=200)
@given(a=transfers, b=transfers)
def test_different_intents_never_share_a_payload(a: F.TransferIntent, b: F.TransferIntent) -> None:
    if a != b:
        assert payments.transfer_payload(SERVER, a) != payments.transfer_payload(SERVER, b)


@settings(max_examples=200)
@given(intent=transfers, data=st.data())
def test_changing_any_field_breaks_the_payers_signature(
    intent: F.TransferIntent, data: st.DataObject
) -> None:
    sig = payments.sign_intent(PAYER, SERVER, intent)
    field = data.draw(st.sampled_from(list(intent.__struct_fields__)))
    other = data.draw(transfers)
    changed = msgspec.structs.replace(intent, **{field: getattr(other, field)})
    if changed == intent:
        return
    with pytest.raises(SignatureError):
        payments.verify_intent(PAYER.public_key, sig, SERVER, changed)


def test_a_transfer_signature_never_verifies_as_a_red_packet_or_a_receipt() -> None:
    t = msgspec.convert(_from_json_form(VECTORS["intents"][0]["intent"]), F.TransferIntent)
    sig = payments.sign_intent(PAYER, SERVER, t)
    assert (
        payments.transfer_payload(SERVER, t)[:18]
        != payments.red_packet_payload(
            SERVER,
            msgspec.convert(_from_json_form(VECTORS["intents"][3]["intent"]), F.RedPacketIntent),
        )[:18]
    )
    with pytest.raises(SignatureError):
        verify(
            PAYER.public_key,
            sig,
            b"chatd-red-packet-v2\x00" + payments.transfer_payload(SERVER, t)[18:],
        )


def _receipt(**kw: Any) -> kinds.PaymentReceipt:
    base: dict[str, Any] = {
        "type": "claim",
        "ref": "rp_1",
        "payer": 0,
        "payee": 3,
        "amount": 7,
        "currency": "USD",
        "conv": 9,
        "posted_at": 1000,
        "shares": 1,
        "actor": 3,
        "sig": b"",
    }
    base.update(kw)
    return payments.sign_receipt(SERVER_KEY, "chat.example", kinds.PaymentReceipt(**base))


SIGNED_FIELDS = [
    ("type", "refund"),
    ("ref", "rp_2"),
    ("payer", 1),
    ("payee", 4),
    ("amount", 8),
    ("currency", "EUR"),
    ("conv", 10),
    ("request_id", "rq"),
    ("intent_hash", bytes(32)),
    ("posted_at", 1001),
    ("expires_at", 5),
    ("shares", 2),
    ("actor", 0),
]


@pytest.mark.parametrize(("field", "value"), SIGNED_FIELDS)
def test_a_receipt_with_any_signed_field_changed_fails_verification(field: str, value: Any) -> None:
    r = _receipt()
    payments.verify_receipt("chat.example", SERVER_KEY.public_key, r)
    with pytest.raises(SignatureError):
        payments.verify_receipt(
            "chat.example", SERVER_KEY.public_key, msgspec.structs.replace(r, **{field: value})
        )


def test_a_receipt_from_another_server_name_or_key_fails() -> None:
    r = _receipt()
    with pytest.raises(SignatureError):
        payments.verify_receipt("chat.evil", SERVER_KEY.public_key, r)
    with pytest.raises(SignatureError):
        payments.verify_receipt("chat.example", PAYER.public_key, r)
    with pytest.raises(SignatureError):
        payments.verify_receipt("chat.example", SERVER_KEY.public_key, r, conv=10)


def test_a_transfer_receipt_must_carry_the_intent_it_hashes() -> None:
    intent = msgspec.convert(_from_json_form(VECTORS["intents"][0]["intent"]), F.TransferIntent)
    r = _receipt(
        type="transfer",
        ref=intent.transfer_id,
        payer=intent.payer,
        payee=intent.payee,
        amount=intent.amount,
        currency=intent.currency,
        conv=intent.conv,
        intent_hash=payments.intent_hash("chat.example", intent),
        memo_hash=intent.memo_hash,
        intent_expires_at=intent.expires_at,
        payer_sig=payments.sign_intent(PAYER, "chat.example", intent),
        shares=0,
    )
    payments.verify_receipt("chat.example", SERVER_KEY.public_key, r, payer_key=PAYER.public_key)
    # The memo hash is not signed by the server directly, but through the intent hash.
    forged = msgspec.structs.replace(r, memo_hash=bytes(32))
    with pytest.raises(SignatureError):
        payments.verify_receipt("chat.example", SERVER_KEY.public_key, forged)
    with pytest.raises(SignatureError):
        payments.verify_receipt(
            "chat.example", SERVER_KEY.public_key, r, payer_key=SERVER_KEY.public_key
        )


@settings(max_examples=100)
@given(
    memo=st.text(min_size=1, max_size=256),
    other=st.text(min_size=1, max_size=256),
    nonce=st.binary(min_size=16, max_size=16),
)
def test_memo_hashes_bind_the_memo_the_transfer_and_the_nonce(
    memo: str, other: str, nonce: bytes
) -> None:
    h = payments.memo_hash("tr_1", memo, nonce)
    assert h != payments.NO_MEMO
    assert h != payments.memo_hash("tr_2", memo, nonce)
    assert h != payments.memo_hash("tr_1", memo, bytes(16) if nonce != bytes(16) else b"\x01" * 16)
    if other != memo:
        assert h != payments.memo_hash("tr_1", other, nonce)


def test_client_ids_are_short_and_plain() -> None:
    assert payments.is_client_id("tr_01HZX3-a.b")
    assert payments.is_client_id("x" * 64)
    for bad in ("", "x" * 65, "claim:rp:1", "a b", "é", "a\n"):
        assert not payments.is_client_id(bad)


def test_errors_are_chatproto_errors() -> None:
    assert issubclass(MoneyError, ChatProtoError)
