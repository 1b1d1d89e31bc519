"""Padded payloads, safety numbers and signed device lists."""

from __future__ import annotations

import msgspec
import pytest
from chatproto import kinds
from chatproto.e2e import devicelist, payload, safety, sender_keys, x3dh
from chatproto.e2e import primitives as P
from chatproto.errors import ProtocolError, UntrustedKeyError
from hypothesis import given, settings
from hypothesis import strategies as st
from unit.e2e.e2e_helpers import flips

SEQ = st.integers(min_value=1, max_value=2**53 - 1)
TEXT = st.text(max_size=300)

CONTENTS = st.one_of(
    st.builds(kinds.Text, text=TEXT),
    st.builds(
        kinds.Reaction, target=SEQ, emoji=st.text(min_size=1, max_size=16), remove=st.booleans()
    ),
    st.builds(kinds.Edit, target=SEQ, text=TEXT),
    st.builds(kinds.Delete, target=SEQ),
    st.builds(kinds.ReadReceipt, up_to=SEQ),
    st.builds(
        kinds.PaymentTransfer,
        transfer_id=st.text(max_size=20),
        amount=SEQ,
        currency=st.sampled_from(["EUR", "USD"]),
        memo=st.text(max_size=20),
    ),
    st.builds(kinds.Share, title=st.text(max_size=50), text=TEXT),
)


@settings(max_examples=60, deadline=None)
@given(
    content=CONTENTS,
    ts=st.none() | st.integers(min_value=0, max_value=2**53 - 1),
    reply_to=st.none() | SEQ,
)
def test_payloads_round_trip_for_every_kind(
    content: kinds.Content, ts: int | None, reply_to: int | None
) -> None:
    kind, body = kinds.encode_content(content)
    padded = payload.encode_payload(kind, body, ts=ts, reply_to=reply_to)
    assert len(padded) in payload.BUCKETS
    got = payload.decode_payload(padded)
    assert (got.kind, got.body, got.ts, got.reply_to) == (kind, body, ts, reply_to)
    assert payload.payload_content(got) == content


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=5000))
def test_padding_round_trips_to_the_smallest_bucket(data: bytes) -> None:
    padded = payload.pad(data)
    assert payload.unpad(padded) == data
    assert len(padded) == min(b for b in payload.BUCKETS if b > len(data))


def test_padding_limits() -> None:
    biggest = bytes(payload.MAX_PADDED - 1)
    assert len(payload.pad(biggest)) == payload.MAX_PADDED
    with pytest.raises(ProtocolError):
        payload.pad(bytes(payload.MAX_PADDED))
    assert payload.MAX_PADDED + 89 == 64 * 1024


@pytest.mark.parametrize("kind", ["system", "e2e", "", "nope"])
def test_payloads_of_kinds_a_client_may_not_send_are_refused(kind: str) -> None:
    raw = payload.pad(msgspec.msgpack.encode({"kind": kind, "body": b""}))
    with pytest.raises(ProtocolError):
        payload.decode_payload(raw)
    if kind:
        with pytest.raises(ProtocolError):
            payload.encode_payload(kind, b"")


@pytest.mark.parametrize(
    "value",
    [
        {"kind": "text"},
        {"kind": "text", "body": "str"},
        {"kind": "text", "body": b"", "ts": -1},
        {"kind": "text", "body": b"", "reply_to": 0},
        {"kind": 1, "body": b""},
        ["text", b""],
    ],
)
def test_malformed_payloads_are_refused(value: object) -> None:
    with pytest.raises(ProtocolError):
        payload.decode_payload(payload.pad(msgspec.msgpack.encode(value)))


def test_trailing_bytes_after_the_map_are_refused() -> None:
    raw = msgspec.msgpack.encode({"kind": "text", "body": b""}) + b"\x00"
    with pytest.raises(ProtocolError):
        payload.decode_payload(payload.pad(raw))


# --------------------------------------------------------------------------- to-device contents


@settings(max_examples=40, deadline=None)
@given(account=SEQ, seed=st.binary(min_size=32, max_size=32))
def test_master_key_transfers_round_trip(account: int, seed: bytes) -> None:
    transfer = payload.MasterKeyTransfer(account=account, seed=seed)
    padded = payload.encode_to_device(transfer)
    assert len(padded) in (64, 128)  # 64 only for account ids below 128
    assert payload.decode_to_device(padded) == transfer
    assert msgspec.msgpack.decode(payload.unpad(padded)) == {
        "t": "master_key",
        "account": account,
        "seed": seed,
    }


def test_sender_key_distributions_still_decode_as_such() -> None:
    dist = sender_keys.distribution(sender_keys.new_sender_key(9))
    padded = payload.encode_to_device(dist)
    assert msgspec.msgpack.decode(payload.unpad(padded))["t"] == "sender_key"
    got = payload.decode_to_device(padded)
    assert isinstance(got, sender_keys.SenderKeyDistribution) and got == dist


@pytest.mark.parametrize(
    "value",
    [
        {"t": "master_key", "account": 1, "seed": bytes(31)},
        {"t": "master_key", "account": 0, "seed": bytes(32)},
        {"t": "master_key", "seed": bytes(32)},
        {"t": "master_key", "account": 1, "seed": "x" * 32},
        {"t": "nope", "account": 1, "seed": bytes(32)},
        {"account": 1, "seed": bytes(32)},
    ],
)
def test_malformed_to_device_contents_are_refused(value: object) -> None:
    with pytest.raises(ProtocolError):
        payload.decode_to_device(payload.pad(msgspec.msgpack.encode(value)))


# --------------------------------------------------------------------------- safety numbers


def test_safety_numbers_match_both_ways_and_differ_for_other_keys() -> None:
    a, b, m = (P.SigningKey.generate().public_key for _ in range(3))
    n = safety.account_safety_number(1, a, 2, b)
    assert n == safety.account_safety_number(2, b, 1, a)
    assert len(n) == 60
    assert n != safety.account_safety_number(1, a, 2, m)
    assert n != safety.account_safety_number(1, a, 3, b)
    qr_a = safety.scannable(a, b"1", b, b"2")
    assert safety.compare_scanned(qr_a, safety.scannable(b, b"2", a, b"1"))
    assert not safety.compare_scanned(qr_a, safety.scannable(m, b"2", a, b"1"))
    assert not safety.compare_scanned(qr_a, b"")


# --------------------------------------------------------------------------- device lists

MASTER = P.SigningKey.generate()


def _list(version: int = 1, master: P.SigningKey = MASTER) -> devicelist.DeviceList:
    devices = []
    for i in (5, 2, 9):
        ident = x3dh.new_identity(P.random_bytes(32))
        devices.append(
            devicelist.DeviceEntry(
                device=i, signing_key=ident.signing_key, identity_key=ident.identity_key
            )
        )
    return devicelist.DeviceList(
        account=77, version=version, master_key=master.public_key, devices=tuple(devices)
    )


def test_a_signed_device_list_verifies_sorted() -> None:
    body, sig = devicelist.sign_device_list(_list(3), MASTER.seed)
    got = devicelist.verify_device_list(body, sig, MASTER.public_key, 2, account=77)
    assert [d.device for d in got.devices] == [2, 5, 9]
    assert devicelist.verify_device_list(body, sig, None).version == 3


def test_device_list_refusals() -> None:
    body, sig = devicelist.sign_device_list(_list(3), MASTER.seed)
    other = P.SigningKey.generate()
    cases = [
        (body, sig[:-1] + bytes([sig[-1] ^ 1]), MASTER.public_key, 0, None),  # bad signature
        (body, sig, other.public_key, 0, None),  # another master key than the pinned one
        (body, sig, MASTER.public_key, 3, None),  # version not newer
        (body, sig, MASTER.public_key, 4, None),
        (body, sig, MASTER.public_key, 0, 78),  # another account
    ]
    for b, s, pin, last, account in cases:
        with pytest.raises(UntrustedKeyError):
            devicelist.verify_device_list(b, s, pin, last, account=account)
    for bad in flips(body, step=3):
        with pytest.raises(UntrustedKeyError):
            devicelist.verify_device_list(bad, sig, None)
    # re-signed by another key that puts itself in as master: fails against the pinned key
    forged_body, forged_sig = devicelist.sign_device_list(_list(4, other), other.seed)
    with pytest.raises(UntrustedKeyError):
        devicelist.verify_device_list(forged_body, forged_sig, MASTER.public_key, 3)


def test_a_non_canonical_device_list_is_refused_even_if_signed() -> None:
    dl = _list()
    unsorted = msgspec.msgpack.encode(dl)  # devices in the given (unsorted) order
    sig = MASTER.sign(devicelist.signed_payload(unsorted))
    with pytest.raises(UntrustedKeyError, match="canonical"):
        devicelist.verify_device_list(unsorted, sig, None)


def test_duplicate_devices_are_refused() -> None:
    dl = _list()
    dup = msgspec.structs.replace(dl, devices=(*dl.devices, dl.devices[0]))
    with pytest.raises(Exception, match="duplicate"):
        devicelist.sign_device_list(dup, MASTER.seed)
    raw = msgspec.msgpack.encode(
        msgspec.structs.replace(dl, devices=tuple(sorted(dup.devices, key=lambda d: d.device)))
    )
    with pytest.raises(UntrustedKeyError):
        devicelist.verify_device_list(raw, MASTER.sign(devicelist.signed_payload(raw)), None)
