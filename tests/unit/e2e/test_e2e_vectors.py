"""protocol/vectors/e2e/ against the implementation, both ways."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatproto.e2e import (
    devicelist,
    membership,
    payload,
    ratchet,
    safety,
    sender_keys,
    transcript,
    x3dh,
)
from chatproto.e2e import primitives as P
from chatproto.errors import ChatProtoError, ProtocolError

VECTORS = Path(__file__).resolve().parents[3] / "protocol" / "vectors" / "e2e"


def _load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def _h(value: str) -> bytes:
    return bytes.fromhex(value)


X3DH = _load("x3dh.json")
RATCHET = _load("ratchet.json")
SENDER = _load("sender_keys.json")
SAFETY = _load("safety_number.json")
DEVICE_LIST = _load("device_list.json")
PADDING = _load("padding.json")
MASTER = _load("master_key_transfer.json")
CHANGE = _load("device_change.json")
PINNED = _load("mlkem_pinned.json")


def test_committed_vectors_are_what_the_generator_writes_today() -> None:
    spec = importlib.util.spec_from_file_location("_chatd_e2e_gen", VECTORS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, text in gen.build().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, name


# --------------------------------------------------------------------------- X3DH / PQXDH


def test_the_pinned_mlkem_ciphertext_is_a_real_encapsulation() -> None:
    """Decapsulation gives the pinned secret, and it is not FIPS 203's implicit-rejection value
    J(z || c) = SHAKE256(z || c, 32): the ciphertext was accepted as valid."""
    seed, ct = _h(PINNED["seed"]), _h(PINNED["ciphertext"])
    secret = P.mlkem768_decapsulate(seed, ct)
    assert secret == _h(PINNED["shared_secret"])
    assert secret != hashlib.shake_256(seed[32:] + ct).digest(32)


def _bob(inputs: dict[str, Any]) -> x3dh.PreKeyState:
    otk = inputs["bob_one_time_private"]
    return x3dh.new_device(
        _h(inputs["bob_signing_seed"]),
        with_pq=inputs["bob_pq_seed"] is not None,
        identity_private=_h(inputs["bob_identity_private"]),
        signed_prekey_private=_h(inputs["bob_signed_prekey_private"]),
        pq_seed=_h(inputs["bob_pq_seed"]) if inputs["bob_pq_seed"] else None,
        one_time_privates=(_h(otk),) if otk else (),
    )


@pytest.mark.parametrize("case", X3DH["cases"], ids=lambda c: c["name"])
def test_x3dh_initiator_reproduces_the_vector(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    alice = x3dh.new_identity(
        _h(inputs["alice_signing_seed"]), _h(inputs["alice_identity_private"])
    )
    bundle = msgspec.convert(_unhex(case["bundle"]), x3dh.PreKeyBundle)
    ct = inputs["pq_ciphertext"]
    agreement = x3dh.initiate(
        alice,
        bundle,
        ephemeral_private=_h(inputs["alice_ephemeral_private"]),
        pq_encapsulate=(lambda _pk: (_h(ct), _h(case["kem_shared_secret"]))) if ct else None,
    )
    assert agreement.shared_secret.hex() == case["shared_secret"]
    assert agreement.associated_data.hex() == case["associated_data"]
    assert x3dh.encode_header(agreement.header).hex() == case["header"]
    assert agreement.header.kind == case["kind"]


@pytest.mark.parametrize("case", X3DH["cases"], ids=lambda c: c["name"])
def test_x3dh_responder_reproduces_the_vector(case: dict[str, Any]) -> None:
    inputs = case["inputs"]
    bob = _bob(inputs)
    upload = x3dh.upload_material(bob)
    bundle = x3dh.bundle_from_upload(upload, 0 if inputs["bob_one_time_private"] else None)
    assert _hexed(bundle) == case["bundle"]
    header, rest = x3dh.decode_header(_h(case["header"]))
    assert rest == b""
    response = x3dh.respond(bob, header)
    assert response.shared_secret.hex() == case["shared_secret"]
    assert response.associated_data.hex() == case["associated_data"]
    assert len(response.prekeys.one_time) == 0


def _unhex(value: Any) -> Any:
    """Every string of a vector's JSON key material is hex."""
    if isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(value, dict):
        return {k: _unhex(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unhex(v) for v in value]
    return value


def _hexed(value: msgspec.Struct) -> Any:
    def conv(v: Any) -> Any:
        if isinstance(v, bytes):
            return v.hex()
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v

    return conv(msgspec.to_builtins(value, builtin_types=(bytes,)))


# --------------------------------------------------------------------------- Double Ratchet


def test_the_ratchet_script_replays_exactly() -> None:
    sk, ad = _h(RATCHET["shared_secret"]), _h(RATCHET["associated_data"])
    states = {
        "alice": ratchet.init_initiator(
            sk,
            _h(RATCHET["bob_signed_prekey_public"]),
            ad,
            dh_private=_h(RATCHET["alice_ratchet_private_0"]),
        ),
        "bob": ratchet.init_responder(
            sk,
            _h(RATCHET["bob_signed_prekey_private"]),
            _h(RATCHET["bob_signed_prekey_public"]),
            ad,
        ),
    }
    errors = 0
    for step in RATCHET["steps"]:
        who = step["party"]
        if step["op"] == "encrypt":
            msg, states[who] = ratchet.encrypt(states[who], _h(step["plaintext"]))
            assert msg.hex() == step["message"], step["name"]
        elif "error" in step:
            errors += 1
            before = states[who]
            with pytest.raises(ChatProtoError) as info:
                ratchet.decrypt(before, _h(step["message"]), dh_private=_h(step["dh_private"]))
            assert type(info.value).__name__ == step["error"]
            assert states[who] == before
        else:
            pt, states[who] = ratchet.decrypt(
                states[who], _h(step["message"]), dh_private=_h(step["dh_private"])
            )
            assert pt.hex() == step["plaintext"], step["name"]
    assert errors == 2


# --------------------------------------------------------------------------- sender keys


def test_sender_key_messages_reproduce_and_decrypt_in_the_vector_order() -> None:
    v = SENDER
    state = sender_keys.new_sender_key(
        v["conv"],
        key_id=v["key_id"],
        chain_key=_h(v["chain_key"]),
        signing_seed=_h(v["signing_seed"]),
    )
    assert state.signing_key.hex() == v["signing_key"]
    dist = sender_keys.distribution(state)
    assert payload.encode_to_device(dist).hex() == v["distribution"]
    assert payload.decode_to_device(_h(v["distribution"])) == dist
    for m in v["messages"]:
        msg, state = sender_keys.encrypt(
            state,
            _h(m["plaintext"]),
            sender_account=v["sender_account"],
            sender_device=v["sender_device"],
        )
        assert msg.hex() == m["message"]
    receiver = sender_keys.receiver_from_distribution(
        dist, sender_account=v["sender_account"], sender_device=v["sender_device"]
    )
    for step in v["receive_order"]:
        msg = _h(v["messages"][step["iteration"]]["message"])
        if "error" in step:
            with pytest.raises(ChatProtoError) as info:
                sender_keys.decrypt(receiver, msg)
            assert type(info.value).__name__ == step["error"] == "ReplayError"
        else:
            pt, receiver = sender_keys.decrypt(receiver, msg)
            assert pt.hex() == step["plaintext"]


# --------------------------------------------------------------------------- master key transfer


def test_master_key_transfer_vector() -> None:
    v = MASTER
    seed = _h(v["seed"])
    assert P.SigningKey(seed).public_key.hex() == v["master_key"] == DEVICE_LIST["master_key"]
    transfer = payload.MasterKeyTransfer(account=v["account"], seed=seed)
    assert msgspec.msgpack.encode(transfer).hex() == v["msgpack"]
    assert payload.encode_to_device(transfer).hex() == v["padded"]
    assert payload.decode_to_device(_h(v["padded"])) == transfer
    assert msgspec.msgpack.decode(_h(v["msgpack"]))["t"] == "master_key"


@pytest.mark.parametrize("name", ["approve", "remove"])
def test_device_change_vectors(name: str) -> None:
    v = CHANGE[name]
    fields = v["change"]
    change = payload.DeviceChange(
        account=fields["account"],
        op=fields["op"],
        device_key=bytes.fromhex(fields["device_key"]),
        device=fields["device"],
    )
    assert fields["t"] == "device_change"
    assert msgspec.msgpack.encode(change).hex() == v["msgpack"]
    assert payload.encode_to_device(change).hex() == v["padded"]
    assert payload.decode_to_device(bytes.fromhex(v["padded"])) == change


def test_a_device_list_entry_writes_pq_only_when_true() -> None:
    listed = msgspec.convert(_unhex(DEVICE_LIST["list"]), devicelist.DeviceList)
    assert [d.pq for d in listed.devices] == [False, True]
    body = bytes.fromhex(DEVICE_LIST["body"])
    assert body.count(b"\xa2pq") == 1  # written once, for device 3
    explicit = msgspec.msgpack.encode(
        {
            **msgspec.msgpack.decode(body),
            "devices": [
                {**d, "pq": d.get("pq", False)} for d in msgspec.msgpack.decode(body)["devices"]
            ],
        }
    )
    with pytest.raises(ChatProtoError, match=r"canonical|signature"):
        devicelist.verify_device_list(explicit, bytes.fromhex(DEVICE_LIST["sig"]), None)


# --------------------------------------------------------------------------- safety numbers


def test_libsignal_safety_number_vector() -> None:
    v = SAFETY["libsignal"]
    a, b = _h(v["alice_identity"]), _h(v["bob_identity"])
    a_id, b_id = v["alice_stable_id"].encode(), v["bob_stable_id"].encode()
    assert safety.safety_number(a, a_id, b, b_id) == v["displayable"]
    assert safety.safety_number(b, b_id, a, a_id) == v["displayable"]
    alice_qr = safety.scannable(a, a_id, b, b_id, version=1)
    bob_qr = safety.scannable(b, b_id, a, a_id, version=1)
    assert alice_qr.hex() == v["alice_scannable_v1"]
    assert bob_qr.hex() == v["bob_scannable_v1"]
    assert safety.compare_scanned(alice_qr, bob_qr)
    assert safety.compare_scanned(bob_qr, alice_qr)
    assert not safety.compare_scanned(alice_qr, alice_qr)
    assert not safety.compare_scanned(alice_qr, safety.scannable(b, b_id, a, a_id, version=2))


def test_chatd_account_safety_number_vector() -> None:
    v = SAFETY["chatd_accounts"]
    got = safety.account_safety_number(
        v["alice_account"], _h(v["alice_master_key"]), v["bob_account"], _h(v["bob_master_key"])
    )
    assert got == v["safety_number"]
    assert len(got) == 60
    assert got.isdigit()


# --------------------------------------------------------------------------- device list


def test_device_list_vector_both_ways() -> None:
    v = DEVICE_LIST
    dl = msgspec.convert(_unhex(v["list"]), devicelist.DeviceList)
    body, sig = devicelist.sign_device_list(dl, _h(v["master_seed"]))
    assert body.hex() == v["body"]
    assert sig.hex() == v["sig"]
    assert devicelist.signed_payload(body).hex() == v["signed_payload"]
    got = devicelist.verify_device_list(_h(v["body"]), _h(v["sig"]), _h(v["master_key"]), 1)
    assert got == dl


# --------------------------------------------------------------------------- padding


@pytest.mark.parametrize("case", PADDING["valid"], ids=lambda c: str(len(c["data"]) // 2))
def test_padding_vectors(case: dict[str, Any]) -> None:
    assert payload.pad(_h(case["data"])).hex() == case["padded"]
    assert len(_h(case["padded"])) == case["padded_length"]
    assert payload.unpad(_h(case["padded"])).hex() == case["data"]


@pytest.mark.parametrize("name", sorted(PADDING["invalid"]))
def test_invalid_padding_vectors_are_refused(name: str) -> None:
    with pytest.raises(ProtocolError):
        payload.unpad(_h(PADDING["invalid"][name]))


@pytest.mark.parametrize("case", PADDING["payloads"], ids=lambda c: c["name"])
def test_payload_vectors(case: dict[str, Any]) -> None:
    enc = payload.encode_payload(
        case["kind"], _h(case["body"]), ts=case.get("ts"), reply_to=case.get("reply_to")
    )
    assert enc.hex() == case["padded"]
    p = payload.decode_payload(enc)
    assert (p.kind, p.body, p.ts, p.reply_to) == (
        case["kind"],
        _h(case["body"]),
        case.get("ts"),
        case.get("reply_to"),
    )
    assert tuple(PADDING["buckets"]) == payload.BUCKETS


# --------------------------------------------------------------------------- membership log

MEMBERSHIP = _load("membership.json")


def _signer(name: str) -> bytes:
    return _h(MEMBERSHIP["signing_keys"][name]["public"])


def _hex(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hex(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hex(v) for v in value]
    return value


def _replay(upto: int | None = None) -> membership.ChainState:
    state = None
    for step in MEMBERSHIP["log"][:upto]:
        body, sig = _h(step["body"]), _h(step["sig"])
        membership.verify_signature(body, sig, _signer(step["signer"]))
        state = membership.apply(state, membership.decode_entry(body), body, sig, step["seq"])
    assert state is not None
    return state


def test_membership_log_vector_replays_entry_by_entry() -> None:
    state = None
    for step in MEMBERSHIP["log"]:
        body, sig = _h(step["body"]), _h(step["sig"])
        entry = membership.decode_entry(body)
        assert membership.encode_entry(entry) == body
        assert _hex(msgspec.to_builtins(entry, builtin_types=(bytes,))) == step["entry"]
        assert membership.signed_payload(body) == _h(step["signed_payload"])
        assert membership.entry_hash(body, sig) == _h(step["hash"])
        membership.verify_signature(body, sig, _signer(step["signer"]))
        state = membership.apply(state, membership.decode_entry(body), body, sig, step["seq"])
        assert [[m.account, m.role, m.access] for m in state.members] == step["members_after"]
    assert state is not None and state.accounts == (1002, 1009)


@pytest.mark.parametrize("case", MEMBERSHIP["refused_after_genesis"], ids=lambda c: c["name"])
def test_membership_log_vector_refused_entries(case: dict[str, Any]) -> None:
    state = _replay(case["after"])
    body, sig = _h(case["body"]), _h(case["sig"])
    membership.verify_signature(body, sig, _signer(case["signer"]))  # signed: refused by rule
    with pytest.raises(membership.MembershipError):
        membership.apply(state, membership.decode_entry(body), body, sig, 99)


def test_membership_direct_vector_refuses_a_third_member() -> None:
    g = MEMBERSHIP["direct"]["genesis"]
    body, sig = _h(g["body"]), _h(g["sig"])
    state = membership.apply(None, membership.decode_entry(body), body, sig, 1)
    assert state.head == _h(g["hash"]) and state.kind == "direct"
    third = MEMBERSHIP["direct"]["refused_third_member"]
    tbody, tsig = _h(third["body"]), _h(third["sig"])
    membership.verify_signature(tbody, tsig, _signer(third["signer"]))
    with pytest.raises(membership.MembershipError, match="fixed"):
        membership.apply(state, membership.decode_entry(tbody), tbody, tsig, 2)


def test_membership_entry_signature_and_links_are_checked() -> None:
    first = MEMBERSHIP["log"][0]
    body, sig = _h(first["body"]), _h(first["sig"])
    with pytest.raises(membership.MembershipError):
        membership.verify_signature(body, sig, _signer("1002:21"))  # another device's key
    state = _replay(2)
    second = MEMBERSHIP["log"][1]
    b2, s2 = _h(second["body"]), _h(second["sig"])
    with pytest.raises(membership.MembershipError):  # replayed: it no longer follows the head
        membership.apply(state, membership.decode_entry(b2), b2, s2, 10)


# --------------------------------------------------------------------------- transcript

TRANSCRIPT = _load("transcript.json")


def test_transcript_vector_payload_decodes_with_what_the_sender_had_seen() -> None:
    v = TRANSCRIPT["payload"]
    inner = payload.decode_payload(_h(v["padded"]))
    assert inner.tr is not None
    assert _hex(msgspec.to_builtins(inner.tr, builtin_types=(bytes,))) == v["transcript"]
    assert inner.tr.prev == transcript.message_hash(_h(v["prev_of"]))


def test_transcript_vector_receiver_finds_the_dropped_and_the_withheld_message() -> None:
    view = transcript.View()
    for step in TRANSCRIPT["steps"]:
        t = transcript.Transcript(
            n=step["transcript"]["n"],
            prev=_h(step["transcript"].get("prev", "")),
            seen=tuple(transcript.Seen(*x) for x in step["transcript"].get("seen", [])),
        )
        view, found = transcript.observe(
            view,
            me=TRANSCRIPT["receiver_device"],
            account=step["account"],
            device=step["device"],
            seq=step["seq"],
            body=_h(step["body"]),
            t=t,
        )
        assert [_hex(msgspec.to_builtins(f, builtin_types=(bytes,))) for f in found] == step[
            "found"
        ]
    assert [f["problem"] for f in TRANSCRIPT["steps"][-1]["found"]] == ["missing", "unseen"]
