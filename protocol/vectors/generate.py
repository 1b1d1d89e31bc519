"""Write the chatd.v1 test vectors (frames.json, decode_only.json, invalid.json, auth.json,
kinds.json) next to this script.

Run once after a protocol change and commit the output::

    PYTHONPATH=protocol python protocol/vectors/generate.py

The output is deterministic (fixed keys, fixed nonces; Ed25519 is deterministic), so running it
again must not change any file; tests/unit/test_vectors.py checks the committed files equal what
``build()`` returns. README.md in this directory describes the format.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:  # run as a script from a checkout: find protocol/chatproto
    sys.path.insert(0, str(HERE.parent))

import msgspec  # noqa: E402
from chatproto import auth, codec, kinds  # noqa: E402
from chatproto import frames as F  # noqa: E402
from chatproto import limits as L  # noqa: E402
from chatproto.e2e.primitives import SigningKey  # noqa: E402
from chatproto.errors import ErrorCode  # noqa: E402

# Fixed inputs. Seeds are arbitrary but fixed; never use them for anything real.
SEED_A = bytes(range(0x00, 0x20))
SEED_B = bytes(range(0x20, 0x40))
NONCE = bytes(range(0xA0, 0xC0))
NONCE_2 = bytes.fromhex("ff" * 16 + "00" * 16)
KEY_A = SigningKey(SEED_A).public_key
KEY_B = SigningKey(SEED_B).public_key
SERVER = "chat.example.org"
SIG = bytes(range(0x40, 0x80))  # placeholder signature bytes inside frame vectors
SIG_2 = bytes(range(0x80, 0xC0))
# Placeholder public keys of the key directory (the server never checks them).
X25519_1 = bytes(range(0xC0, 0xE0))
X25519_2 = bytes(range(0xE0, 0x100))
X25519_3 = bytes(range(0x10, 0x30))
MLKEM_768 = bytes(i % 251 for i in range(L.MAX_PREKEY_BYTES))
MASTER = bytes(range(0x30, 0x50))


# --------------------------------------------------------------------------- JSON form


def to_json_form(value: Any) -> Any:
    """The JSON form of a frame / content / builtin: bytes become {"$bytes": "<hex>"}."""
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value, builtin_types=(bytes,))
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, dict):
        return {k: to_json_form(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_form(v) for v in value]
    return value


def from_json_form(value: Any) -> Any:
    """Inverse of ``to_json_form`` for plain data (bytes back from {"$bytes": ...})."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json_form(v) for v in value]
    return value


# --------------------------------------------------------------------------- frames


def _text_body(text: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=text))[1]


def _system_body(**fields: Any) -> bytes:
    return kinds.encode_content(kinds.SystemEvent(**fields))[1]


def client_frames() -> list[tuple[str, F.Frame]]:
    return [
        (
            "register_user_type_omitted",
            F.Register(
                id=1,
                handle="alice",
                name="Alice",
                device_key=KEY_A,
                device_name="laptop",
                sig=SIG,
            ),
        ),
        (
            "register_bot",
            F.Register(
                id=2,
                handle="weather_bot.v2",
                name="Weather ☀",
                type="bot",
                device_key=KEY_B,
                device_name="worker-1",
                sig=SIG_2,
            ),
        ),
        ("login", F.Login(id=1, device=7, sig=SIG)),
        ("login_max_ids", F.Login(id=L.MAX_U32, device=L.MAX_ID, sig=SIG)),
        (
            "link_device",
            F.LinkDevice(
                id=3,
                handle="alice",
                device_key=KEY_B,
                device_name="phone",
                approver=7,
                approval=SIG_2,
                sig=SIG,
            ),
        ),
        ("lookup", F.Lookup(id=4, handle="bob")),
        ("create_conv_direct", F.CreateConv(id=5, kind="direct", members=[2])),
        (
            "create_conv_group_all_fields",
            F.CreateConv(id=6, kind="group", title="Team", members=[2, 3, 300]),
        ),
        ("create_conv_channel_defaults_omitted", F.CreateConv(id=7, kind="channel")),
        ("list_convs", F.ListConvs(id=8)),
        ("get_conv", F.GetConv(id=9, conv=42)),
        ("invite", F.Invite(id=10, conv=42, account=3)),
        ("remove", F.Remove(id=11, conv=42, account=3)),
        ("set_role_admin", F.SetRole(id=12, conv=42, account=3, role="admin")),
        ("set_role_member", F.SetRole(id=13, conv=42, account=3, role="member")),
        ("leave", F.Leave(id=14, conv=42)),
        ("rename", F.Rename(id=15, conv=42, title="Team (EU)")),
        ("rename_empty_title", F.Rename(id=16, conv=42, title="")),
        (
            "send_text",
            F.Send(id=17, conv=42, cmid="c-0001", kind="text", body=_text_body("hi")),
        ),
        (
            "send_experimental_kind_empty_body",
            F.Send(id=18, conv=42, cmid="01J0Z8Y6", kind="x-poll", body=b""),
        ),
        ("sync_from_start_after_omitted", F.Sync(id=19, conv=42)),
        ("sync_after", F.Sync(id=20, conv=42, after=1234)),
        ("fetch_defaults_omitted", F.Fetch(id=21, conv=42)),
        ("fetch_after_limit", F.Fetch(id=22, conv=42, after=100, limit=50)),
        ("fetch_before", F.Fetch(id=23, conv=42, before=500)),
        ("fetch_all_fields", F.Fetch(id=24, conv=42, after=10, before=20, limit=500)),
        ("receipt_delivered", F.Receipt(id=25, conv=42, type="delivered", seq=17)),
        ("receipt_read", F.Receipt(id=26, conv=42, type="read", seq=0)),
        ("typing_on_omitted", F.Typing(conv=42)),
        ("typing_off", F.Typing(conv=42, on=False)),
        ("get_presence", F.GetPresence(id=27, accounts=[2, 3])),
        ("get_presence_empty", F.GetPresence(id=28, accounts=[])),
        (
            "upload_keys_all_fields",
            F.UploadKeys(
                id=29,
                identity_key=X25519_1,
                identity_sig=SIG,
                signed_prekey=F.SignedPrekey(kid=1, key=X25519_2, sig=SIG_2),
                pq_prekey=F.SignedPrekey(kid=2, key=MLKEM_768, sig=SIG),
                one_time=[
                    F.OneTimePrekey(kid=100, key=X25519_3),
                    F.OneTimePrekey(kid=L.MAX_U32, key=X25519_2),
                ],
            ),
        ),
        (
            "upload_keys_identity_only",
            F.UploadKeys(id=30, identity_key=X25519_1, identity_sig=SIG),
        ),
        ("claim_keys", F.ClaimKeys(id=31, account=2)),
        (
            "put_device_list",
            F.PutDeviceList(id=32, body=b"\x92\x07\x08", sig=SIG, master_key=MASTER, version=3),
        ),
        ("get_device_list", F.GetDeviceList(id=33, account=2)),
        ("to_device", F.ToDevice(id=34, device=8, body=b"\x01opaque")),
        ("to_device_empty_body", F.ToDevice(id=35, device=L.MAX_ID, body=b"")),
        ("fetch_to_device_defaults_omitted", F.FetchToDevice(id=36)),
        ("fetch_to_device_all_fields", F.FetchToDevice(id=37, after=41, limit=L.MAX_PAGE)),
        ("ack_to_device", F.AckToDevice(id=38, up_to=41)),
    ]


def server_frames() -> list[tuple[str, F.Frame]]:
    member_a = F.Member(account=1, role="member", handle="alice")
    member_b = F.Member(account=2, role="member", handle="bob")
    return [
        ("challenge", F.Challenge(server=SERVER, nonce=NONCE, expires_in_ms=10_000)),
        (
            "welcome",
            F.Welcome(re=1, account=1, device=7, handle="alice", server_time=1_718_000_000_000),
        ),
        ("ok", F.Ok(re=10)),
        ("error_code_only", F.Error(code=ErrorCode.MALFORMED)),
        ("error_with_re", F.Error(re=4, code=ErrorCode.NOT_FOUND)),
        (
            "error_all_fields",
            F.Error(re=17, code=ErrorCode.RATE_LIMITED, msg="slow down"),
        ),
        ("account_user", F.Account(re=4, account=2, handle="bob", name="Bob", type="user")),
        (
            "account_bot",
            F.Account(re=4, account=9, handle="weather_bot.v2", name="Weather", type="bot"),
        ),
        (
            "conv_direct_with_members",
            F.Conv(
                re=5,
                info=F.ConvInfo(
                    conv=42,
                    kind="direct",
                    title="",
                    last_seq=2,
                    role="member",
                    member_count=2,
                    members=[member_a, member_b],
                ),
            ),
        ),
        (
            "conv_group_all_fields",
            F.Conv(
                re=9,
                info=F.ConvInfo(
                    conv=43,
                    kind="group",
                    title="Team",
                    last_seq=120,
                    role="owner",
                    read=100,
                    delivered=118,
                    member_count=3,
                    members=[
                        F.Member(account=1, role="owner", handle="alice"),
                        F.Member(account=2, role="admin", handle="bob"),
                        F.Member(account=3, role="member", handle="carol"),
                    ],
                ),
            ),
        ),
        ("convs_empty", F.Convs(re=8, convs=[])),
        (
            "convs_listing_defaults_omitted",
            F.Convs(
                re=8,
                convs=[
                    F.ConvInfo(conv=42, kind="direct", title="", last_seq=2, role="member"),
                    F.ConvInfo(
                        conv=44,
                        kind="channel",
                        title="News",
                        last_seq=9000,
                        role="member",
                        read=8999,
                        delivered=9000,
                        member_count=100_000,
                    ),
                ],
            ),
        ),
        ("ack", F.Ack(re=17, conv=42, cmid="c-0001", seq=3, ts=1_718_000_000_123)),
        (
            "deliver_text",
            F.Deliver(
                conv=42,
                seq=3,
                ts=1_718_000_000_123,
                sender=1,
                device=7,
                cmid="c-0001",
                kind="text",
                body=_text_body("hi"),
            ),
        ),
        (
            "deliver_system_cmid_omitted",
            F.Deliver(
                conv=42,
                seq=1,
                ts=1_718_000_000_000,
                sender=0,
                device=0,
                kind="system",
                body=_system_body(event="created", actor=1),
            ),
        ),
        ("synced", F.Synced(re=19, conv=42, seq=3)),
        (
            "messages_more",
            F.Messages(
                re=22,
                conv=42,
                messages=[
                    F.Message(
                        seq=1,
                        ts=1_718_000_000_000,
                        sender=0,
                        device=0,
                        kind="system",
                        body=_system_body(event="created", actor=1),
                    ),
                    F.Message(
                        seq=2,
                        ts=1_718_000_000_001,
                        sender=0,
                        device=0,
                        kind="system",
                        body=_system_body(event="joined", actor=1, account=2),
                    ),
                    F.Message(
                        seq=3,
                        ts=1_718_000_000_123,
                        sender=1,
                        device=7,
                        cmid="c-0001",
                        kind="text",
                        body=_text_body("hi"),
                    ),
                ],
                more=True,
            ),
        ),
        ("messages_empty", F.Messages(re=23, conv=42, messages=[], more=False)),
        (
            "receipt_event",
            F.ReceiptEvent(conv=42, account=2, device=8, type="read", seq=3),
        ),
        ("typing_event_on", F.TypingEvent(conv=42, account=2, on=True)),
        ("typing_event_off", F.TypingEvent(conv=42, account=2, on=False)),
        ("presence_online", F.PresenceEvent(account=2, online=True, last_seen=1_718_000_000_500)),
        ("presence_never_seen", F.PresenceEvent(account=3, online=False, last_seen=0)),
        (
            "presence_list",
            F.PresenceList(
                re=27,
                presence=[
                    F.PresenceInfo(account=2, online=True, last_seen=1_718_000_000_500),
                    F.PresenceInfo(account=3, online=False, last_seen=1_717_000_000_000),
                ],
            ),
        ),
        ("presence_list_empty", F.PresenceList(re=28, presence=[])),
        ("key_count", F.KeyCount(re=29, one_time=102)),
        ("key_count_zero", F.KeyCount(re=30, one_time=0)),
        (
            "bundles",
            F.Bundles(
                re=31,
                account=2,
                bundles=[
                    F.Bundle(
                        device=8,
                        signing_key=KEY_B,
                        identity_key=X25519_1,
                        identity_sig=SIG,
                        signed_prekey=F.SignedPrekey(kid=1, key=X25519_2, sig=SIG_2),
                        pq_prekey=F.SignedPrekey(kid=2, key=MLKEM_768, sig=SIG),
                        one_time=F.OneTimePrekey(kid=100, key=X25519_3),
                    ),
                    F.Bundle(
                        device=9,
                        signing_key=KEY_A,
                        identity_key=X25519_2,
                        identity_sig=SIG_2,
                    ),
                ],
            ),
        ),
        ("bundles_empty", F.Bundles(re=31, account=3, bundles=[])),
        (
            "device_list",
            F.DeviceList(
                re=33,
                account=2,
                version=3,
                body=b"\x92\x07\x08",
                sig=SIG,
                master_key=MASTER,
            ),
        ),
        (
            "device_list_none_stored",
            F.DeviceList(re=33, account=3, version=0, body=b"", sig=b"", master_key=b""),
        ),
        ("device_list_changed", F.DeviceListChanged(account=2, version=3)),
        ("resync", F.Resync()),
        (
            "to_device_event",
            F.ToDeviceEvent(tid=41, sender=1, device=7, body=b"\x01opaque"),
        ),
        (
            "to_device_batch_more",
            F.ToDeviceBatch(
                re=37,
                events=[
                    F.ToDeviceItem(tid=41, sender=1, device=7, body=b"\x01opaque"),
                    F.ToDeviceItem(tid=42, sender=3, device=12, body=b""),
                ],
                more=True,
            ),
        ),
        ("to_device_batch_empty", F.ToDeviceBatch(re=36, events=[], more=False)),
    ]


def frame_vectors() -> list[dict[str, Any]]:
    out = []
    for direction, items in (("client", client_frames()), ("server", server_frames())):
        for name, frame in items:
            out.append(
                {
                    "name": name,
                    "direction": direction,
                    "hex": codec.encode(frame).hex(),
                    "decoded": to_json_form(frame),
                }
            )
    return out


# --------------------------------------------------------------------------- decode-only

# Encodings a receiver must accept that our encoder never writes. Raw msgpack, by hand.
_SIG_BIN8 = b"\xc4\x40" + SIG


def decode_only_vectors() -> list[dict[str, Any]]:
    cases: list[tuple[str, str, bytes, F.Frame]] = [
        (
            "default_value_present_on_the_wire",
            "client",
            b"\x84\xa1t\xa4sync\xa2id\x01\xa4conv\x2a\xa5after\x00",
            F.Sync(id=1, conv=42),
        ),
        (
            "keys_in_another_order_t_last",
            "client",
            b"\x83\xa2id\x01\xa4conv\x2a\xa1t\xa4sync",
            F.Sync(id=1, conv=42),
        ),
        (
            "ints_in_wider_encodings",
            "client",
            b"\x83\xa1t\xa4sync\xa2id\xce\x00\x00\x00\x01\xa4conv\xcf" + (42).to_bytes(8, "big"),
            F.Sync(id=1, conv=42),
        ),
        (
            "strings_in_str8_and_bytes_in_bin32",
            "client",
            b"\x84\xd9\x01t\xd9\x05login\xa2id\x01\xa6device\x07\xa3sig\xc6\x00\x00\x00\x40" + SIG,
            F.Login(id=1, device=7, sig=SIG),
        ),
        (
            "unknown_fields_are_ignored",
            "client",
            b"\x85\xa1t\xa5login\xa2id\x01\xa6device\x07\xa3sig"
            + _SIG_BIN8
            + b"\xa6future\x82\xa1a\x93\x01\xa1x\xc0\xa1b\xc3",
            F.Login(id=1, device=7, sig=SIG),
        ),
        (
            "optional_field_explicit_nil",
            "client",
            b"\x84\xa1t\xa5fetch\xa2id\x01\xa4conv\x2a\xa6before\xc0",
            F.Fetch(id=1, conv=42),
        ),
        (
            "server_unknown_field_and_explicit_default",
            "server",
            b"\x84\xa1t\xa5error\xa2re\x00\xa4code\x14\xa5extra\xa3new",
            F.Error(code=ErrorCode.NOT_FOUND),
        ),
    ]
    return [
        {
            "name": name,
            "direction": direction,
            "hex": raw.hex(),
            "decoded": to_json_form(frame),
        }
        for name, direction, raw, frame in cases
    ]


# --------------------------------------------------------------------------- invalid


def _mp(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


def invalid_vectors() -> list[dict[str, Any]]:
    login = {"t": "login", "id": 1, "device": 7, "sig": SIG}
    lookup = {"t": "lookup", "id": 1, "handle": "alice"}
    m, u, b = ErrorCode.MALFORMED, ErrorCode.UNKNOWN_FRAME, ErrorCode.BAD_FIELD
    cases: list[tuple[str, str, bytes, ErrorCode]] = [
        ("empty_message", "client", b"", m),
        ("not_msgpack", "client", b"\xc1", m),
        ("truncated_map", "client", codec.encode(F.ListConvs(id=1))[:-1], m),
        ("trailing_bytes_after_the_map", "client", codec.encode(F.ListConvs(id=1)) + b"\x00", m),
        ("array_not_map", "client", _mp(["login", 1]), m),
        ("integer_not_map", "client", _mp(5), m),
        ("map_without_t", "client", _mp({"id": 1}), m),
        ("t_not_a_string", "client", _mp({"t": 3, "id": 1}), m),
        (
            "invalid_utf8_in_string",
            "client",
            b"\x83\xa1t\xa6lookup\xa2id\x01\xa6handle\xa3ab\xff",
            m,
        ),
        ("unknown_frame_type", "client", _mp({"t": "shout", "id": 1}), u),
        ("server_frame_sent_by_a_client", "client", _mp({"t": "ok", "re": 1}), u),
        ("client_frame_sent_by_a_server", "server", _mp({"t": "login", **login}), u),
        ("missing_required_field", "client", _mp({"t": "login", "id": 1, "device": 7}), b),
        ("request_id_zero", "client", _mp({**login, "id": 0}), b),
        ("request_id_above_u32", "client", _mp({**login, "id": 2**32}), b),
        ("negative_id", "client", _mp({**login, "device": -1}), b),
        ("id_above_2_pow_53", "client", _mp({**login, "device": 2**53}), b),
        ("float_for_int", "client", _mp({**login, "device": 7.0}), b),
        ("bool_for_int", "client", _mp({**login, "device": True}), b),
        ("str_for_bytes", "client", _mp({**login, "sig": SIG.hex()}), b),
        ("signature_63_bytes", "client", _mp({**login, "sig": SIG[:63]}), b),
        ("bin_for_str", "client", _mp({**lookup, "handle": b"alice"}), b),
        ("nil_for_non_optional_field", "client", _mp({**lookup, "handle": None}), b),
        ("ext_type_value", "client", _mp({**login, "device": msgspec.msgpack.Ext(1, b"\x07")}), b),
        ("handle_uppercase", "client", _mp({**lookup, "handle": "Alice"}), b),
        ("handle_trailing_newline", "client", _mp({**lookup, "handle": "alice\n"}), b),
        ("handle_too_short", "client", _mp({**lookup, "handle": "al"}), b),
        ("handle_33_chars", "client", _mp({**lookup, "handle": "a" * 33}), b),
        ("handle_leading_underscore", "client", _mp({**lookup, "handle": "_alice"}), b),
        (
            "fetch_limit_above_max_page",
            "client",
            _mp({"t": "fetch", "id": 1, "conv": 1, "limit": L.MAX_PAGE + 1}),
            b,
        ),
        ("fetch_limit_zero", "client", _mp({"t": "fetch", "id": 1, "conv": 1, "limit": 0}), b),
        (
            "send_empty_cmid",
            "client",
            _mp({"t": "send", "id": 1, "conv": 1, "cmid": "", "kind": "text", "body": b""}),
            b,
        ),
        (
            "set_role_owner_is_not_settable",
            "client",
            _mp({"t": "set_role", "id": 1, "conv": 1, "account": 2, "role": "owner"}),
            b,
        ),
        ("create_conv_unknown_kind", "client", _mp({"t": "create_conv", "id": 1, "kind": "x"}), b),
        (
            "challenge_nonce_16_bytes",
            "server",
            _mp({"t": "challenge", "server": SERVER, "nonce": NONCE[:16], "expires_in_ms": 1}),
            b,
        ),
        ("error_negative_re", "server", _mp({"t": "error", "re": -1, "code": 1}), b),
        (
            "upload_keys_identity_key_31_bytes",
            "client",
            _mp({"t": "upload_keys", "id": 1, "identity_key": bytes(31), "identity_sig": SIG}),
            b,
        ),
        (
            "upload_keys_101_one_time_prekeys",
            "client",
            _mp(
                {
                    "t": "upload_keys",
                    "id": 1,
                    "identity_key": bytes(32),
                    "identity_sig": SIG,
                    "one_time": [
                        {"kid": i, "key": bytes(32)} for i in range(L.MAX_ONE_TIME_PER_UPLOAD + 1)
                    ],
                }
            ),
            b,
        ),
        (
            "upload_keys_prekey_over_1184_bytes",
            "client",
            _mp(
                {
                    "t": "upload_keys",
                    "id": 1,
                    "identity_key": bytes(32),
                    "identity_sig": SIG,
                    "pq_prekey": {"kid": 1, "key": bytes(L.MAX_PREKEY_BYTES + 1), "sig": SIG},
                }
            ),
            b,
        ),
        (
            "put_device_list_version_zero",
            "client",
            _mp(
                {
                    "t": "put_device_list",
                    "id": 1,
                    "body": b"",
                    "sig": SIG,
                    "master_key": bytes(32),
                    "version": 0,
                }
            ),
            b,
        ),
        (
            "to_device_body_over_64_kib",
            "client",
            _mp({"t": "to_device", "id": 1, "device": 2, "body": bytes(L.MAX_TO_DEVICE_BYTES + 1)}),
            b,
        ),
        (
            "to_device_event_tid_zero",
            "server",
            _mp({"t": "to_device_event", "tid": 0, "sender": 1, "device": 2, "body": b""}),
            b,
        ),
    ]
    return [
        {"name": name, "direction": direction, "hex": raw.hex(), "code": int(code)}
        for name, direction, raw, code in cases
    ]


# --------------------------------------------------------------------------- auth


def auth_vectors() -> dict[str, Any]:
    signer_a = SigningKey(SEED_A)
    signer_b = SigningKey(SEED_B)
    logins = [
        ("ascii_server", SERVER, NONCE, signer_a),
        ("other_nonce_same_key", SERVER, NONCE_2, signer_a),
        ("utf8_server_name", "chat.例え.jp:8443", NONCE, signer_b),
    ]
    login_out = []
    for name, server, nonce, signer in logins:
        payload = auth.login_payload(server, nonce, signer.public_key)
        login_out.append(
            {
                "name": name,
                "inputs": {
                    "server": server,
                    "nonce": nonce.hex(),
                    "device_key": signer.public_key.hex(),
                },
                "payload": payload.hex(),
                "seed": signer.seed.hex(),
                "public_key": signer.public_key.hex(),
                "signature": signer.sign(payload).hex(),
            }
        )
    approvals = [
        ("small_account", SERVER, 1, signer_a, signer_b.public_key),
        ("max_account_id", SERVER, L.MAX_ID, signer_a, signer_b.public_key),
        ("utf8_server_name", "chat.例え.jp:8443", 4242, signer_b, signer_a.public_key),
    ]
    approval_out = []
    for name, server, account, approver, new_key in approvals:
        payload = auth.device_approval_payload(server, account, new_key)
        approval_out.append(
            {
                "name": name,
                "inputs": {"server": server, "account": account, "device_key": new_key.hex()},
                "payload": payload.hex(),
                "seed": approver.seed.hex(),
                "public_key": approver.public_key.hex(),
                "signature": approver.sign(payload).hex(),
            }
        )
    return {
        "algorithm": "Ed25519 (RFC 8032, pure, no context, no prehash)",
        "login_payload": login_out,
        "device_approval_payload": approval_out,
    }


# --------------------------------------------------------------------------- kinds


def kind_contents() -> list[tuple[str, kinds.Content]]:
    return [
        ("text", kinds.Text(text="hello, world")),
        ("text_empty", kinds.Text(text="")),
        ("text_unicode", kinds.Text(text="héllo 👋 мир")),
        ("reaction", kinds.Reaction(target=3, emoji="👍")),
        ("reaction_remove", kinds.Reaction(target=3, emoji="👍", remove=True)),
        ("edit", kinds.Edit(target=3, text="hello, world!")),
        ("delete", kinds.Delete(target=3)),
        ("receipt", kinds.ReadReceipt(up_to=17)),
        (
            "payment_transfer_memo_omitted",
            kinds.PaymentTransfer(transfer_id="tr_1", amount=1250, currency="EUR"),
        ),
        (
            "payment_transfer_with_memo",
            kinds.PaymentTransfer(transfer_id="tr_2", amount=1, currency="USD", memo="coffee"),
        ),
        (
            "payment_request",
            kinds.PaymentRequest(request_id="rq_1", amount=5000, currency="JPY"),
        ),
        (
            "payment_request_with_memo",
            kinds.PaymentRequest(request_id="rq_2", amount=99, currency="GBP", memo="lunch"),
        ),
        (
            "miniapp_invoke_params_omitted",
            kinds.MiniappInvoke(invocation_id="inv_1", app="weather", action="today"),
        ),
        (
            "miniapp_invoke_with_params",
            kinds.MiniappInvoke(
                invocation_id="inv_2",
                app="poll",
                action="vote",
                params={"option": "b", "weight": 2, "anonymous": True},
            ),
        ),
        ("miniapp_result_minimal", kinds.MiniappResult(invocation_id="inv_1")),
        (
            "miniapp_result",
            kinds.MiniappResult(invocation_id="inv_1", title="Weather", text="Sunny, 24 °C"),
        ),
        ("share_minimal", kinds.Share(title="An article")),
        (
            "share",
            kinds.Share(
                title="An article",
                text="worth reading",
                link="https://example.org/a",
                image="https://example.org/a.png",
            ),
        ),
        ("system_created", kinds.SystemEvent(event="created", actor=1, title="Team")),
        ("system_joined", kinds.SystemEvent(event="joined", actor=1, account=2)),
        ("system_left", kinds.SystemEvent(event="left", actor=2)),
        ("system_removed", kinds.SystemEvent(event="removed", actor=1, account=3)),
        ("system_role", kinds.SystemEvent(event="role", actor=1, account=2, role="admin")),
        (
            "system_role_automatic_owner",
            kinds.SystemEvent(event="role", actor=0, account=2, role="owner"),
        ),
        ("system_renamed", kinds.SystemEvent(event="renamed", actor=1, title="Team (EU)")),
    ]


def kind_vectors() -> list[dict[str, Any]]:
    out = []
    for name, content in kind_contents():
        kind, body = kinds.encode_content(content)
        out.append(
            {"name": name, "kind": kind, "hex": body.hex(), "content": to_json_form(content)}
        )
    return out


# --------------------------------------------------------------------------- output


def build() -> dict[str, str]:
    """File name -> exact file text."""
    data: dict[str, Any] = {
        "frames.json": frame_vectors(),
        "decode_only.json": decode_only_vectors(),
        "invalid.json": invalid_vectors(),
        "auth.json": auth_vectors(),
        "kinds.json": kind_vectors(),
    }
    return {
        name: json.dumps(value, indent=2, ensure_ascii=False) + "\n" for name, value in data.items()
    }


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
