"""Write the chatd end-to-end encryption test vectors (protocol/E2E.md) into this folder.

    PYTHONPATH=protocol python protocol/vectors/e2e/generate.py

Deterministic: every key comes from ``_key(label)`` = SHA-256(label) (or SHA-512 for ML-KEM
seeds), Ed25519 and every KDF are deterministic, and the one random input the library cannot fix
(ML-KEM encapsulation randomness) is pinned in ``mlkem_pinned.json`` (made once, by a real
encapsulation, if missing). tests/unit/e2e/test_e2e_vectors.py checks the committed files equal
what this writes. The keys are public test values: never use them for anything else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgspec
from chatproto.e2e import (
    attachment,
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

HERE = Path(__file__).resolve().parent
PINNED = HERE / "mlkem_pinned.json"


def _key(label: str) -> bytes:
    return hashlib.sha256(b"chatd-e2e-test-vector:" + label.encode()).digest()


def _seed64(label: str) -> bytes:
    return hashlib.sha512(b"chatd-e2e-test-vector:" + label.encode()).digest()


def pinned_mlkem() -> dict[str, str]:
    """The fixed ML-KEM-768 encapsulation against Bob's PQ prekey (seed ``_seed64("bob-pq")``)."""
    if PINNED.exists():
        data: dict[str, str] = json.loads(PINNED.read_text(encoding="utf-8"))
        return data
    seed = _seed64("bob-pq")
    ct, ss = P.mlkem768_encapsulate(P.mlkem768_public(seed))
    data = {
        "note": "made once by a random ML-KEM-768 encapsulation to the public key of seed; "
        "generate.py reuses it (the library takes no encapsulation randomness)",
        "seed": seed.hex(),
        "ciphertext": ct.hex(),
        "shared_secret": ss.hex(),
    }
    PINNED.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data


# --------------------------------------------------------------------------- devices


def device(name: str, *, pq: bool) -> x3dh.PreKeyState:
    return x3dh.new_device(
        _key(f"{name}-signing"),
        with_pq=pq,
        identity_private=_key(f"{name}-identity"),
        signed_prekey_private=_key(f"{name}-spk"),
        pq_seed=_seed64(f"{name}-pq") if pq else None,
        one_time_privates=(_key(f"{name}-otk-0"), _key(f"{name}-otk-1")),
    )


def _struct_json(value: msgspec.Struct) -> Any:
    return _hexify(msgspec.to_builtins(value, builtin_types=(bytes,)))


def _hexify(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: _hexify(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_hexify(v) for v in value]
    return value


def x3dh_vectors() -> dict[str, Any]:
    pin = pinned_mlkem()
    ct, ss = bytes.fromhex(pin["ciphertext"]), bytes.fromhex(pin["shared_secret"])
    alice = device("alice", pq=False)
    cases = []
    for name, pq, otk in (
        ("x3dh_without_one_time_prekey", False, False),
        ("x3dh_with_one_time_prekey", False, True),
        ("pqxdh_with_one_time_prekey", True, True),
        ("pqxdh_without_one_time_prekey", True, False),
    ):
        bob = device("bob", pq=pq)
        upload = x3dh.upload_material(bob)
        bundle = x3dh.bundle_from_upload(upload, 0 if otk else None)
        agreement = x3dh.initiate(
            alice.identity,
            bundle,
            ephemeral_private=_key("alice-ephemeral"),
            pq_encapsulate=(lambda _pk: (ct, ss)) if pq else None,
        )
        cases.append(
            {
                "name": name,
                "inputs": {
                    "alice_signing_seed": _key("alice-signing").hex(),
                    "alice_identity_private": _key("alice-identity").hex(),
                    "alice_ephemeral_private": _key("alice-ephemeral").hex(),
                    "bob_signing_seed": _key("bob-signing").hex(),
                    "bob_identity_private": _key("bob-identity").hex(),
                    "bob_signed_prekey_private": _key("bob-spk").hex(),
                    "bob_signed_prekey_kid": 1,
                    "bob_pq_seed": _seed64("bob-pq").hex() if pq else None,
                    "bob_pq_kid": 2 if pq else None,
                    "bob_one_time_private": _key("bob-otk-0").hex() if otk else None,
                    "bob_one_time_kid": 3 if otk else None,
                    "pq_ciphertext": ct.hex() if pq else None,
                },
                "bundle": _struct_json(bundle),
                "kem_shared_secret": ss.hex() if pq else None,
                "shared_secret": agreement.shared_secret.hex(),
                "associated_data": agreement.associated_data.hex(),
                "header": x3dh.encode_header(agreement.header).hex(),
                "kind": agreement.header.kind,
            }
        )
    return {"algorithm": "E2E.md section 4", "cases": cases}


# --------------------------------------------------------------------------- ratchet


def ratchet_vectors() -> dict[str, Any]:
    """Alice and Bob after an X3DH (fixed secret); a script of sends and receives with
    out-of-order delivery, a skipped key from an earlier chain, and a replay."""
    sk, ad = _key("ratchet-shared-secret"), _key("ratchet-ad-a") + _key("ratchet-ad-b")
    ad = ad * 2  # 128 bytes, like the X3DH AD
    bob_priv = _key("ratchet-bob-spk")
    bob_pub = P.x25519_public(bob_priv)
    states = {
        "alice": ratchet.init_initiator(sk, bob_pub, ad, dh_private=_key("ratchet-alice-dh-0")),
        "bob": ratchet.init_responder(sk, bob_priv, bob_pub, ad),
    }
    messages: dict[str, bytes] = {}
    steps: list[dict[str, Any]] = []
    counter = {"alice": 0, "bob": 0}

    def send(who: str, name: str) -> None:
        pt = f"{name}: message from {who}".encode()
        msg, states[who] = ratchet.encrypt(states[who], pt)
        messages[name] = msg
        steps.append(
            {
                "op": "encrypt",
                "party": who,
                "name": name,
                "plaintext": pt.hex(),
                "message": msg.hex(),
            }
        )

    def recv(who: str, name: str) -> None:
        counter[who] += 1
        dh = _key(f"ratchet-{who}-dh-{counter[who]}")
        step: dict[str, Any] = {
            "op": "decrypt",
            "party": who,
            "name": name,
            "message": messages[name].hex(),
            "dh_private": dh.hex(),
        }
        try:
            pt, states[who] = ratchet.decrypt(states[who], messages[name], dh_private=dh)
            step["plaintext"] = pt.hex()
        except Exception as exc:
            step["error"] = type(exc).__name__
        steps.append(step)

    send("alice", "a0")
    send("alice", "a1")
    send("alice", "a2")
    recv("bob", "a2")  # a0, a1 skipped
    recv("bob", "a0")  # from the skipped keys
    send("bob", "b0")
    send("bob", "b1")
    recv("alice", "b1")  # b0 skipped
    send("alice", "a3")  # new chain
    recv("bob", "a3")  # a1 still skipped, now from the previous chain
    recv("bob", "a1")
    recv("alice", "b0")
    recv("bob", "a1")  # replay: its key is gone
    send("bob", "b2")
    recv("alice", "b2")
    recv("alice", "b2")  # replay on the current chain
    return {
        "shared_secret": sk.hex(),
        "associated_data": ad.hex(),
        "alice_ratchet_private_0": _key("ratchet-alice-dh-0").hex(),
        "bob_signed_prekey_private": bob_priv.hex(),
        "bob_signed_prekey_public": bob_pub.hex(),
        "steps": steps,
    }


# --------------------------------------------------------------------------- sender keys


def sender_key_vectors() -> dict[str, Any]:
    conv, account, dev = 42, 7, 9
    state = sender_keys.new_sender_key(
        conv,
        key_id=0x1234ABCD,
        chain_key=_key("sender-chain"),
        signing_seed=_key("sender-signing"),
    )
    dist = sender_keys.distribution(state)
    messages: list[dict[str, Any]] = []
    for i in range(4):
        pt = payload.encode_payload("text", f"\x81\xa4text\xa5msg {i}".encode("latin-1"))
        msg, state = sender_keys.encrypt(state, pt, sender_account=account, sender_device=dev)
        messages.append({"iteration": i, "plaintext": pt.hex(), "message": msg.hex()})
    receiver = sender_keys.receiver_from_distribution(
        dist, sender_account=account, sender_device=dev
    )
    receive = []
    for i in (0, 2, 1, 3, 1):  # 2 skips 1; the last 1 is a replay
        step: dict[str, Any] = {"iteration": i}
        try:
            pt, receiver = sender_keys.decrypt(receiver, bytes.fromhex(messages[i]["message"]))
            step["plaintext"] = pt.hex()
        except Exception as exc:
            step["error"] = type(exc).__name__
        receive.append(step)
    return {
        "conv": conv,
        "sender_account": account,
        "sender_device": dev,
        "key_id": state.key_id,
        "chain_key": _key("sender-chain").hex(),
        "signing_seed": _key("sender-signing").hex(),
        "signing_key": state.signing_key.hex(),
        "distribution": payload.encode_to_device(dist).hex(),
        "messages": messages,
        "receive_order": receive,
    }


# --------------------------------------------------------------------------- safety numbers


LIBSIGNAL = {
    "source": "signalapp/libsignal rust/protocol/src/fingerprint.rs, test fingerprint_test_v1 "
    "(commit 03a739a95caeea91dbdef44b67b24735f401953c; same values as the Java "
    "NumericFingerprintGeneratorTest.testVectorsVersion1)",
    "iterations": 5200,
    "alice_identity": "0506863bc66d02b40d27b8d49ca7c09e9239236f9d7d25d6fcca5ce13c7064d868",
    "alice_stable_id": "+14152222222",
    "bob_identity": "05f781b6fb32fed9ba1cf2de978d4d5da28dc34046ae814402b5c0dbd96fda907b",
    "bob_stable_id": "+14153333333",
    "displayable": "300354477692869396892869876765458257569162576843440918079131",
    "alice_scannable_v1": "080112220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df1a220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d",
    "bob_scannable_v1": "080112220a20d62cbf73a11592015b6b9f1682ac306fea3aaf3885b84d12bca631e9d4fb3a4d1a220a201e301a0353dce3dbe7684cb8336e85136cdc0ee96219494ada305d62a7bd61df",
}


def safety_vectors() -> dict[str, Any]:
    a_master = P.SigningKey(_key("alice-master")).public_key
    b_master = P.SigningKey(_key("bob-master")).public_key
    return {
        "libsignal": LIBSIGNAL,
        "chatd_accounts": {
            "alice_account": 1001,
            "alice_master_key": a_master.hex(),
            "bob_account": 1002,
            "bob_master_key": b_master.hex(),
            "safety_number": safety.account_safety_number(1001, a_master, 1002, b_master),
        },
    }


# --------------------------------------------------------------------------- device list


def device_list_vectors() -> dict[str, Any]:
    master = P.SigningKey(_key("alice-master"))
    entries = []
    for i in (3, 1):  # deliberately unsorted: the encoding sorts
        d = x3dh.new_identity(_key(f"alice-device-{i}"), _key(f"alice-device-{i}-identity"))
        entries.append(  # device 3 publishes an ML-KEM prekey: ``pq`` (E2E.md 3)
            devicelist.DeviceEntry(
                device=i, signing_key=d.signing_key, identity_key=d.identity_key, pq=i == 3
            )
        )
    dl = devicelist.DeviceList(
        account=1001, version=2, master_key=master.public_key, devices=tuple(entries)
    )
    body, sig = devicelist.sign_device_list(dl, master.seed)
    return {
        "master_seed": master.seed.hex(),
        "master_key": master.public_key.hex(),
        "list": _struct_json(
            msgspec.structs.replace(dl, devices=tuple(sorted(entries, key=lambda e: e.device)))
        ),
        "body": body.hex(),
        "signed_payload": devicelist.signed_payload(body).hex(),
        "sig": sig.hex(),
    }


# --------------------------------------------------------------------------- master key transfer


def master_key_transfer_vectors() -> dict[str, Any]:
    """The to-device plaintext that hands account 1001's master key (the one of
    ``device_list.json``) to another of its devices."""
    master = P.SigningKey(_key("alice-master"))
    transfer = payload.MasterKeyTransfer(account=1001, seed=master.seed)
    return {
        "account": transfer.account,
        "seed": master.seed.hex(),
        "master_key": master.public_key.hex(),
        "msgpack": msgspec.msgpack.encode(transfer).hex(),
        "padded": payload.encode_to_device(transfer).hex(),
    }


# --------------------------------------------------------------------------- membership log


def membership_vectors() -> dict[str, Any]:
    """A group's signed membership log (E2E.md 15): alice (1001, device 11) creates it with bob
    (1002, device 21) and a bot (1009), adds carol (1003), makes bob admin, bob removes carol,
    alice lets the bot read everything, alice leaves (bob inherits ownership). Then entries a
    client must refuse, each against the state before it."""
    keys = {
        (1001, 11): P.SigningKey(_key("ml-alice-11")),
        (1002, 21): P.SigningKey(_key("ml-bob-21")),
        (1003, 31): P.SigningKey(_key("ml-carol-31")),
    }
    group = _key("ml-group")[:16]
    ML = membership
    steps: list[tuple[int, int, int, dict[str, Any]]] = [
        (1002, 21, 0, {}),  # placeholder, replaced by the genesis below
        (1001, 11, 5, {"op": "add", "account": 1003}),
        (1001, 11, 6, {"op": "role", "account": 1002, "role": "admin"}),
        (1002, 21, 9, {"op": "remove", "account": 1003}),
        (1001, 11, 12, {"op": "access", "account": 1009, "access": "all"}),
        (1001, 11, 15, {"op": "leave"}),
    ]
    roster = [
        ML.Seat(account=1001, role="owner"),
        ML.Seat(account=1002, role="member"),
        ML.Seat(account=1009, role="member", access="addressed"),
    ]
    out: list[dict[str, Any]] = []
    state = None
    for i, (actor, device, seq, fields) in enumerate(steps):
        if i == 0:
            actor, device, seq = 1001, 11, 1
            entry = ML.genesis("group", actor, device, roster, group=group, ts=1_700_000_000_000)
        else:
            assert state is not None
            op = fields.pop("op")
            entry = ML.next_entry(state, actor, device, op, ts=1_700_000_000_000 + i, **fields)
        body, sig = ML.sign_entry(entry, keys[(actor, device)].seed)
        state = ML.apply(state, entry, body, sig, seq)
        out.append(
            {
                "seq": seq,
                "signer": f"{actor}:{device}",
                "entry": _struct_json(entry),
                "body": body.hex(),
                "signed_payload": ML.signed_payload(body).hex(),
                "sig": sig.hex(),
                "hash": ML.entry_hash(body, sig).hex(),
                "members_after": [[m.account, m.role, m.access] for m in state.members],
            }
        )
    assert state is not None
    refused = []
    base = ML.apply(
        None,
        ML.decode_entry(bytes.fromhex(out[0]["body"])),
        bytes.fromhex(out[0]["body"]),
        bytes.fromhex(out[0]["sig"]),
        1,
    )
    cases = [
        ("ghost_add_by_plain_member", 1002, 21, {"op": "add", "account": 6666}),
        ("remove_owner", 1002, 21, {"op": "remove", "account": 1001}),
        ("role_by_non_owner", 1002, 21, {"op": "role", "account": 1009, "role": "admin"}),
    ]
    for name, actor, device, fields in cases:
        op = fields.pop("op")
        entry = ML.Entry(
            group=group,
            epoch=2,
            prev=base.head,
            actor=actor,
            device=device,
            op=op,
            **fields,
        )
        body, sig = ML.sign_entry(entry, keys[(actor, device)].seed)
        refused.append(
            {
                "name": name,
                "after": 1,
                "signer": f"{actor}:{device}",
                "body": body.hex(),
                "sig": sig.hex(),
            }
        )
    # An entry that skips one (epoch 3 on top of epoch 1), and a second create.
    skip = ML.Entry(
        group=group, epoch=3, prev=base.head, actor=1001, device=11, op="add", account=1003
    )
    body, sig = ML.sign_entry(skip, keys[(1001, 11)].seed)
    refused.append(
        {
            "name": "epoch_skipped",
            "after": 1,
            "signer": "1001:11",
            "body": body.hex(),
            "sig": sig.hex(),
        }
    )
    direct = ML.genesis(
        "direct",
        1001,
        11,
        [ML.Seat(account=1001, role="member"), ML.Seat(account=1002, role="member")],
        group=_key("ml-direct")[:16],
    )
    dbody, dsig = ML.sign_entry(direct, keys[(1001, 11)].seed)
    dstate = ML.apply(None, direct, dbody, dsig, 1)
    third = ML.Entry(
        group=direct.group, epoch=2, prev=dstate.head, actor=1001, device=11, op="add", account=1003
    )
    tbody, tsig = ML.sign_entry(third, keys[(1001, 11)].seed)
    return {
        "signing_keys": {
            f"{a}:{d}": {"seed": k.seed.hex(), "public": k.public_key.hex()}
            for (a, d), k in keys.items()
        },
        "group": group.hex(),
        "log": out,
        "refused_after_genesis": refused,
        "direct": {
            "genesis": {"body": dbody.hex(), "sig": dsig.hex(), "hash": dstate.head.hex()},
            "refused_third_member": {"body": tbody.hex(), "sig": tsig.hex(), "signer": "1001:11"},
        },
    }


def device_change_vectors() -> dict[str, Any]:
    """The to-device contents by which a device of account 1001 asks the device holding the
    master key to list an approved device key, or to remove a listed device (E2E.md 3.2)."""
    approve = payload.DeviceChange(
        account=1001, op="approve", device_key=P.SigningKey(_key("alice-device-5")).public_key
    )
    remove = payload.DeviceChange(
        account=1001,
        op="remove",
        device=3,
        device_key=x3dh.new_identity(_key("alice-device-3")).signing_key,
    )
    return {
        name: {
            "change": _struct_json(change),
            "msgpack": msgspec.msgpack.encode(change).hex(),
            "padded": payload.encode_to_device(change).hex(),
        }
        for name, change in (("approve", approve), ("remove", remove))
    }


# --------------------------------------------------------------------------- transcript


def transcript_vectors() -> dict[str, Any]:
    """A payload carrying what its sender had seen (E2E.md 16), and a receiver's reading of a
    conversation in which the server dropped one message of device 11 and withheld one of
    device 21 from this receiver (device 31), with what each step finds."""
    t = transcript.Transcript(
        n=3,
        prev=transcript.message_hash(b"message 2 of device 11"),
        seen=(transcript.Seen(1002, 21, 4), transcript.Seen(1003, 31, 1)),
        epoch=2,
        head=_key("ml-head")[:16],
    )
    padded = payload.encode_payload(
        "text", b"\x81\xa4text\xa2hi", ts=1_700_000_000_000, transcript=t
    )
    bodies = {f"11:{n}": f"message {n} of device 11".encode() for n in (1, 2, 3)}
    bodies |= {f"21:{n}": f"message {n} of device 21".encode() for n in (1, 2)}
    steps = [  # (seq, account, device, n, seen)
        (5, 1001, 11, 1, ()),
        (6, 1002, 21, 1, ((1001, 11, 1),)),
        (8, 1001, 11, 3, ((1002, 21, 2),)),  # 11's message 2 dropped; 21's message 2 withheld
    ]
    view = transcript.View()
    out = []
    for seq, account, device, n, seen in steps:
        body = bodies[f"{device}:{n}"]
        prev = bodies.get(f"{device}:{n - 1}")
        tt = transcript.Transcript(
            n=n,
            prev=transcript.message_hash(prev) if prev else b"",
            seen=tuple(transcript.Seen(*x) for x in seen),
        )
        view, found = transcript.observe(
            view, me=31, account=account, device=device, seq=seq, body=body, t=tt
        )
        out.append(
            {
                "seq": seq,
                "account": account,
                "device": device,
                "body": body.hex(),
                "transcript": _struct_json(tt),
                "found": [_struct_json(f) for f in found],
            }
        )
    return {
        "payload": {
            "transcript": _struct_json(t),
            "padded": padded.hex(),
            "prev_of": b"message 2 of device 11".hex(),
        },
        "receiver_device": 31,
        "steps": out,
    }


# --------------------------------------------------------------------------- padding


def padding_vectors() -> dict[str, Any]:
    valid = []
    for n in (0, 1, 62, 63, 64, 200, 1000):
        data = bytes((i * 7 + 1) % 256 for i in range(n))
        padded = payload.pad(data)
        valid.append({"data": data.hex(), "padded_length": len(padded), "padded": padded.hex()})
    invalid = {
        "no_marker": bytes(64),
        "marker_not_last_nonzero": b"abc\x80\x01" + bytes(59),
        "not_a_bucket_size": b"abc\x80" + bytes(61),
        "longer_than_needed": b"abc\x80" + bytes(124),
        "empty": b"",
    }
    payloads: list[dict[str, Any]] = [
        {
            "name": "text_with_ts_and_reply_to",
            "kind": "text",
            "body": bytes.fromhex("81a474657874a26869"),
            "ts": 1_700_000_000_000,
            "reply_to": 17,
        },
        {
            "name": "reaction_minimal",
            "kind": "reaction",
            "body": bytes.fromhex("82a674617267657405a5656d6f6a69a12b"),
        },
    ]
    out_payloads = []
    for p in payloads:
        enc = payload.encode_payload(
            p["kind"], p["body"], ts=p.get("ts"), reply_to=p.get("reply_to")
        )
        out_payloads.append(
            {
                **{k: (v.hex() if isinstance(v, bytes) else v) for k, v in p.items()},
                "padded": enc.hex(),
            }
        )
    return {
        "buckets": list(payload.BUCKETS),
        "valid": valid,
        "invalid": {k: v.hex() for k, v in invalid.items()},
        "payloads": out_payloads,
    }


def attachment_vectors() -> dict[str, Any]:
    """Section 14: for each size, the whole blob when short, else its SHA-256 (the digest) and
    the first and last ciphertext chunk; plaintext byte i is (i * 31 + 7) mod 256."""
    key = _key("attachment")
    cases = []
    for size in (0, 1, 100, 65535, 65536, 65537, 200_000):
        data = bytes((i * 31 + 7) % 256 for i in range(size))
        blob, digest = attachment.encrypt(key, data)
        n = attachment.chunk_count(size)
        first = blob[slice(*attachment.chunk_span(size, 0))]
        last = blob[slice(*attachment.chunk_span(size, n - 1))]
        case: dict[str, Any] = {
            "size": size,
            "chunks": n,
            "ciphertext_size": attachment.ciphertext_size(size),
            "padded_size": len(blob),
            "digest": digest.hex(),
        }
        if size <= 100:
            case["ciphertext"] = blob[: attachment.ciphertext_size(size)].hex()
        else:
            case["first_chunk_sha256"] = hashlib.sha256(first).hexdigest()
            case["last_chunk"] = last.hex() if len(last) <= 256 else None
            case["last_chunk_sha256"] = hashlib.sha256(last).hexdigest()
        cases.append(case)
    return {
        "key": key.hex(),
        "file_key": attachment.file_key(key).hex(),
        "chunk_bytes": attachment.CHUNK_BYTES,
        "nonces": {
            "0_not_final": attachment.nonce(0, False).hex(),
            "1_final": attachment.nonce(1, True).hex(),
        },
        "padme": {str(n): attachment.padme(n) for n in (0, 1, 2, 9, 17, 100, 1000, 65552, 10**6)},
        "cases": cases,
    }


# --------------------------------------------------------------------------- output


def build() -> dict[str, str]:
    """File name -> exact file text."""
    data: dict[str, Any] = {
        "x3dh.json": x3dh_vectors(),
        "ratchet.json": ratchet_vectors(),
        "sender_keys.json": sender_key_vectors(),
        "safety_number.json": safety_vectors(),
        "device_list.json": device_list_vectors(),
        "padding.json": padding_vectors(),
        "master_key_transfer.json": master_key_transfer_vectors(),
        "device_change.json": device_change_vectors(),
        "attachment.json": attachment_vectors(),
        "membership.json": membership_vectors(),
        "transcript.json": transcript_vectors(),
    }
    return {name: json.dumps(v, indent=2) + "\n" for name, v in data.items()}


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
