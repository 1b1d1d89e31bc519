"""Write the chatd.v1 test vectors (frames.json, decode_only.json, invalid.json, auth.json,
kinds.json, payments.json, franking.json, posts.json, creators.json) next to this script.

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
from chatproto import (  # noqa: E402
    auth,
    codec,
    creators,
    franking,
    kinds,
    money,
    payments,
    posts,
)
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
MEMO_HASH = bytes(range(0x50, 0x70))
NONCE_16 = bytes(range(0x70, 0x80))
SEED_SERVER = bytes(range(0x90, 0xB0))
KEY_SERVER = SigningKey(SEED_SERVER).public_key
EXPIRES = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TRANSFER = F.TransferIntent(
    transfer_id="tr_01HZX3",
    payer=1,
    payee=2,
    amount=1250,
    currency="USD",
    conv=42,
    memo_hash=MEMO_HASH,
    expires_at=EXPIRES,
)
BOT_COMMANDS = [
    F.BotCommand(name="start", description="Say hello"),
    F.BotCommand(
        name="roll",
        description="Roll dice",
        params=[
            F.CommandParam(name="sides", type="int", required=False),
            F.CommandParam(name="names", type="str", required=False),
        ],
    ),
]
MANIFEST = F.Manifest(
    name="shop",
    title="Corner shop",
    icon="🛒",
    actions=[
        F.MiniAppAction(name="menu", title="Show the menu"),
        F.MiniAppAction(
            name="order",
            title="Order",
            params=[
                F.ActionParam(name="item", type="str", choices=["tea", "cake"]),
                F.ActionParam(name="count", type="int", choices=[1, 2, 3]),
                F.ActionParam(name="gift", type="bool", required=False),
                F.ActionParam(name="tip", type="amount", required=False),
            ],
            price=F.Price(amount=450, currency="EUR"),
        ),
    ],
)
RED_PACKET = F.RedPacketIntent(
    packet_id="rp_7",
    payer=1,
    conv=43,
    total=1000,
    currency="CNY",
    shares=5,
    split="random",
    memo_hash=payments.NO_MEMO,
    expires_at=EXPIRES,
)


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


def _signed_post(ver: int, ts: int, kind: str, content: bytes) -> F.Post:
    """Post 1 of channel 7 by device 5 of account 1 (key ``SEED_A``), signed for ``SERVER``."""
    unsigned = F.Post(
        channel=7,
        seq=1,
        ver=ver,
        ts=ts,
        author=1,
        device=5,
        kind=kind,
        content=content,
        sig=bytes(64),
    )
    sig = posts.sign_post(SigningKey(SEED_A), SERVER, unsigned)
    return msgspec.structs.replace(unsigned, sig=sig)


def _text_body(text: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=text))[1]


def _system_body(**fields: Any) -> bytes:
    return kinds.encode_content(kinds.SystemEvent(**fields))[1]


POST = _signed_post(0, 1_767_225_600_123, "text", _text_body("good morning"))
EDIT = _signed_post(1, 1_767_225_660_000, "text", _text_body("good morning, world"))
TOMBSTONE = _signed_post(2, 1_767_225_720_000, posts.TOMBSTONE, b"")


def _paid_post() -> F.Post:
    """Post 2 of channel 7, for subscribers only: signed over the v2 payload (SPEC.md 15.14)."""
    unsigned = msgspec.structs.replace(
        POST, seq=2, content=_text_body("members only"), paid=True, sig=bytes(64)
    )
    return msgspec.structs.replace(
        unsigned, sig=posts.sign_post(SigningKey(SEED_A), SERVER, unsigned)
    )


PAID_POST = _paid_post()
LOCKED_POST = posts.locked(PAID_POST)
TIP = F.TipIntent(
    tip_id="tip_01J0K4",
    payer=2,
    payee=1,
    channel=7,
    post=1,
    amount=300,
    currency="USD",
    expires_at=EXPIRES,
)
MANDATE = F.MandateIntent(
    mandate_id="m_01J0K5",
    payer=2,
    payee=1,
    channel=7,
    amount=499,
    currency="USD",
    period=2_592_000,
    periods=12,
    expires_at=EXPIRES,
)


def _creator_receipts() -> list[tuple[str, F.CreatorReceipt]]:
    server = SigningKey(SEED_SERVER)
    payer = SigningKey(SEED_B)
    posted = EXPIRES - 60_000
    tip = F.CreatorReceipt(
        type="tip",
        ref=TIP.tip_id,
        payer=2,
        payee=1,
        amount=300,
        currency="USD",
        channel=7,
        post=1,
        intent_hash=creators.intent_hash(SERVER, TIP),
        posted_at=posted,
        sig=bytes(64),
        intent_expires_at=EXPIRES,
        device=6,
        payer_sig=creators.sign_intent(payer, SERVER, TIP),
    )
    charge = F.CreatorReceipt(
        type="charge",
        ref=MANDATE.mandate_id,
        payer=2,
        payee=1,
        amount=499,
        currency="USD",
        channel=7,
        n=2,
        starts=posted,
        ends=posted + 2_592_000_000,
        intent_hash=creators.intent_hash(SERVER, MANDATE),
        posted_at=posted,
        sig=bytes(64),
        intent_expires_at=EXPIRES,
        period=2_592_000,
        periods=12,
        device=6,
        payer_sig=creators.sign_intent(payer, SERVER, MANDATE),
    )
    return [
        ("tip", creators.sign_receipt(server, SERVER, tip)),
        ("charge", creators.sign_receipt(server, SERVER, charge)),
    ]


TIP_RECEIPT, CHARGE_RECEIPT = (r for _, r in _creator_receipts())
SUBSCRIPTION = F.SubscriptionInfo(
    mandate_id=MANDATE.mandate_id,
    subscriber=2,
    owner=1,
    channel=7,
    amount=499,
    currency="USD",
    period=2_592_000,
    periods=12,
    state="active",
    charged=2,
    paid_through=CHARGE_RECEIPT.ends,
    next_charge_at=CHARGE_RECEIPT.ends,
    created_at=EXPIRES - 2_592_060_000,
)
COMMENT = F.CommentInfo(
    comment=30,
    author=2,
    handle="bob",
    ts=1_767_225_690_000,
    kind="text",
    content=_text_body("nice"),
)
CHANNEL = F.ChannelInfo(
    channel=7,
    handle="daily_news",
    title="Daily News",
    about="Every day",
    owner=1,
    followers=120,
    last_seq=40,
    following=True,
)


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
        (
            "register_bot_by_its_owner",
            F.Register(
                id=83,
                handle="shop_bot",
                name="Shop",
                type="bot",
                device_key=KEY_B,
                device_name="server",
                sig=SIG,
                approver=7,
                approval=SIG_2,
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
        ("list_convs_after", F.ListConvs(id=80, after=42)),
        ("list_members", F.ListMembers(id=81, conv=42, after=3)),
        ("list_members_defaults_omitted", F.ListMembers(id=82, conv=42)),
        ("invite", F.Invite(id=10, conv=42, account=3)),
        ("remove", F.Remove(id=11, conv=42, account=3)),
        ("remove_and_ban", F.Remove(id=93, conv=42, account=3, ban=True)),
        ("unban", F.Unban(id=94, conv=42, account=3)),
        ("delete_message", F.DeleteMessage(id=110, conv=42, seq=1001)),
        (
            "create_link",
            F.CreateLink(
                id=95, conv=42, name="flyer", expires_in=86_400_000, max_uses=100, approval=True
            ),
        ),
        ("create_link_defaults_omitted", F.CreateLink(id=96, conv=42)),
        ("list_links", F.ListLinks(id=97, conv=42, after=5, limit=20)),
        ("revoke_link", F.RevokeLink(id=98, conv=42, link=5)),
        ("preview_link", F.PreviewLink(id=99, token="chatd://join/" + "Ab-_" * 8)),
        ("join_link", F.JoinLink(id=100, token="Ab-_" * 8)),
        ("list_links_defaults_omitted", F.ListLinks(id=103, conv=42)),
        ("cancel_join", F.CancelJoin(id=107, conv=42)),
        ("list_join_requests", F.ListJoinRequests(id=101, conv=42, after=3, limit=20)),
        ("list_join_requests_defaults_omitted", F.ListJoinRequests(id=104, conv=42)),
        (
            "answer_join_approve_signed",
            F.AnswerJoin(
                id=105,
                conv=42,
                account=3,
                approve=True,
                entry=F.SignedEntry(body=b"\x81", sig=SIG),
            ),
        ),
        ("answer_join_decline", F.AnswerJoin(id=102, conv=42, account=3, approve=False)),
        ("set_role_admin", F.SetRole(id=12, conv=42, account=3, role="admin")),
        ("set_role_member", F.SetRole(id=13, conv=42, account=3, role="member")),
        ("leave", F.Leave(id=14, conv=42)),
        (
            "invite_signed",
            F.Invite(id=60, conv=42, account=3, entry=F.SignedEntry(body=b"\x81", sig=SIG)),
        ),
        ("get_member_log", F.GetMemberLog(id=61, conv=42, after=2, limit=50)),
        ("get_member_log_defaults_omitted", F.GetMemberLog(id=62, conv=42)),
        (
            "create_conv_signed",
            F.CreateConv(
                id=63, kind="group", members=[2], entry=F.SignedEntry(body=b"\x81", sig=SIG)
            ),
        ),
        (
            "remove_signed",
            F.Remove(id=64, conv=42, account=3, entry=F.SignedEntry(body=b"\x81", sig=SIG)),
        ),
        (
            "set_role_signed",
            F.SetRole(
                id=65, conv=42, account=3, role="admin", entry=F.SignedEntry(body=b"\x81", sig=SIG)
            ),
        ),
        ("leave_signed", F.Leave(id=66, conv=42, entry=F.SignedEntry(body=b"\x81", sig=SIG))),
        (
            "set_bot_access_signed",
            F.SetBotAccess(
                id=67, conv=43, account=9, access="all", entry=F.SignedEntry(body=b"\x81", sig=SIG)
            ),
        ),
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
        ("get_payment_key", F.GetPaymentKey(id=39)),
        ("pay", F.Pay(id=40, intent=TRANSFER, device=7, sig=SIG)),
        (
            "pay_a_request_max_values",
            F.Pay(
                id=41,
                intent=F.TransferIntent(
                    transfer_id="t" * L.MAX_PAY_ID_CHARS,
                    payer=L.MAX_ID,
                    payee=1,
                    amount=L.MAX_ID,
                    currency="KWD",
                    conv=L.MAX_ID,
                    memo_hash=payments.NO_MEMO,
                    expires_at=L.MAX_ID,
                    request_id="rq_1",
                ),
                device=L.MAX_ID,
                sig=SIG_2,
            ),
        ),
        (
            "request_payment_from_anyone_omitted",
            F.RequestPayment(
                id=42, request_id="rq_1", conv=43, amount=5000, currency="JPY", expires_at=EXPIRES
            ),
        ),
        (
            "request_payment_from_one_member",
            F.RequestPayment(
                id=43,
                request_id="rq_2",
                conv=42,
                payer=1,
                amount=99,
                currency="GBP",
                expires_at=EXPIRES,
            ),
        ),
        ("decline_request", F.DeclineRequest(id=44, request_id="rq_2")),
        ("cancel_request", F.CancelRequest(id=45, request_id="rq_1")),
        ("red_packet", F.SendRedPacket(id=46, intent=RED_PACKET, device=7, sig=SIG)),
        ("claim", F.Claim(id=47, packet_id="rp_7")),
        ("balance_every_currency_omitted", F.GetBalance(id=48)),
        ("balance_one_currency", F.GetBalance(id=49, currency="EUR")),
        ("wallet_history_defaults_omitted", F.WalletHistory(id=50)),
        (
            "wallet_history_all_fields",
            F.WalletHistory(id=51, currency="USD", before=1200, limit=20),
        ),
        (
            "send_addressed",
            F.Send(id=52, conv=42, cmid="c-0002", kind="e2e", body=b"\x01ciphertext", to=[9, 12]),
        ),
        (
            "set_bot_profile",
            F.SetBotProfile(id=53, commands=BOT_COMMANDS, manifest=MANIFEST),
        ),
        ("set_bot_profile_commands_only_empty", F.SetBotProfile(id=54, commands=[])),
        ("get_bot_profile", F.GetBotProfile(id=55, account=9)),
        ("set_bot_access_all", F.SetBotAccess(id=56, conv=43, account=9, access="all")),
        (
            "set_bot_access_addressed",
            F.SetBotAccess(id=57, conv=43, account=9, access="addressed"),
        ),
        ("upload_token", F.UploadToken(id=58, conv=43, size=67_584)),
        ("upload_token_resume", F.UploadToken(id=63, conv=43, size=67_584, blob=BLOB)),
        ("download_token", F.DownloadToken(id=59, blob=BLOB)),
        ("attach_blob_to_message", F.AttachBlob(id=60, conv=43, blob=BLOB, seq=7)),
        ("attach_blob_before_forward", F.AttachBlob(id=61, conv=44, blob=BLOB)),
        ("detach_blob", F.DetachBlob(id=62, conv=43, seq=7, blob=BLOB)),
        ("list_requests", F.ListRequests(id=64)),
        ("list_requests_page", F.ListRequests(id=65, after=42, limit=20)),
        ("answer_request_accept", F.AnswerRequest(id=66, conv=42, answer="accept")),
        ("answer_request_block", F.AnswerRequest(id=67, conv=42, answer="block")),
        ("list_answers", F.ListAnswers(id=68)),
        ("list_answers_page", F.ListAnswers(id=69, after=43, after_account=3, limit=20)),
        ("dismiss_answer", F.DismissAnswer(id=70, conv=43, account=4)),
        (
            "send_franked",
            F.Send(
                id=90,
                conv=42,
                cmid="c-0003",
                kind="e2e",
                body=b"\x01ciphertext",
                fc=franking.commit(bytes(range(0x01, 0x21)), b"hello"),
            ),
        ),
        (
            "report",
            F.Report(
                id=91,
                conv=42,
                seq=1001,
                plaintext=b"hello",
                fk=bytes(range(0x01, 0x21)),
                reason="spam",
            ),
        ),
        (
            "report_no_reason",
            F.Report(id=92, conv=42, seq=1001, plaintext=b"", fk=bytes(range(0x21, 0x41))),
        ),
        ("get_push", F.GetPush(id=95)),
        (
            "set_push",
            F.SetPush(
                id=96,
                endpoint="https://fcm.googleapis.com/fcm/send/abc123",
                p256dh=b"\x04" + bytes(range(1, 65)),
                auth=bytes(range(0x10, 0x20)),
                show_conv=True,
            ),
        ),
        (
            "set_push_defaults_omitted",
            F.SetPush(
                id=98,
                endpoint="https://web.push.apple.com/QGuQyavXutnMH",
                p256dh=b"\x04" + bytes(range(2, 66)),
                auth=bytes(range(0x20, 0x30)),
            ),
        ),
        ("clear_push", F.ClearPush(id=97)),
        ("block", F.Block(id=68, account=9)),
        ("unblock", F.Unblock(id=69, account=9)),
        ("list_contacts", F.ListContacts(id=70)),
        ("list_blocked_page", F.ListContacts(id=71, which="blocked", after=9, limit=10)),
        ("get_privacy", F.GetPrivacy(id=72)),
        ("set_privacy_add_me", F.SetPrivacy(id=73, add_me="nobody")),
        (
            "set_privacy_presence",
            F.SetPrivacy(id=74, presence="everyone", last_seen="contacts"),
        ),
        ("set_privacy_find_me", F.SetPrivacy(id=74, find_me="contacts")),
        (
            "create_channel",
            F.CreateChannel(id=100, handle="daily_news", title="Daily News", about="Every day"),
        ),
        ("create_channel_no_about", F.CreateChannel(id=101, handle="blog", title="Blog")),
        ("find_channel", F.FindChannel(id=102, handle="daily_news")),
        ("search_channels", F.SearchChannels(id=103, query="news")),
        (
            "search_channels_page",
            F.SearchChannels(id=104, query="news daily", after="0 daily 7", limit=5),
        ),
        ("follow", F.Follow(id=105, channel=7)),
        ("unfollow", F.Unfollow(id=106, channel=7)),
        ("set_channel_admin", F.SetChannelAdmin(id=107, channel=7, account=3)),
        ("unset_channel_admin", F.SetChannelAdmin(id=108, channel=7, account=3, admin=False)),
        (
            "publish",
            F.Publish(
                id=109,
                channel=7,
                seq=1,
                ts=POST.ts,
                kind="text",
                content=POST.content,
                sig=POST.sig,
            ),
        ),
        (
            "publish_tombstone",
            F.Publish(
                id=110, channel=7, seq=1, ver=2, ts=TOMBSTONE.ts, kind="deleted", sig=TOMBSTONE.sig
            ),
        ),
        ("get_posts", F.GetPosts(id=111, channel=7)),
        ("get_posts_page", F.GetPosts(id=112, channel=7, before=40, limit=10)),
        ("get_post_history", F.GetPostHistory(id=113, channel=7, seq=1)),
        (
            "comment",
            F.Comment(id=114, channel=7, seq=1, kind="text", content=_text_body("nice")),
        ),
        (
            "comment_reply",
            F.Comment(id=115, channel=7, seq=1, reply_to=30, kind="text", content=_text_body("+1")),
        ),
        ("get_comments", F.GetComments(id=116, channel=7, seq=1)),
        ("get_comments_page", F.GetComments(id=117, channel=7, seq=1, after=30, limit=10)),
        ("delete_comment", F.DeleteComment(id=118, channel=7, comment=30)),
        ("react_post", F.ReactPost(id=119, channel=7, seq=1, emoji="👍")),
        ("unreact_post", F.ReactPost(id=120, channel=7, seq=1, emoji="👍", remove=True)),
        ("get_reactions", F.GetReactions(id=121, channel=7, seq=1)),
        (
            "publish_paid",
            F.Publish(
                id=122,
                channel=7,
                seq=2,
                ts=PAID_POST.ts,
                kind="text",
                content=PAID_POST.content,
                sig=PAID_POST.sig,
                paid=True,
            ),
        ),
        ("tip", F.Tip(id=130, intent=TIP, device=6, sig=TIP_RECEIPT.payer_sig)),
        (
            "set_channel_price",
            F.SetChannelPrice(id=131, channel=7, amount=499, currency="USD", period=2_592_000),
        ),
        ("clear_channel_price", F.SetChannelPrice(id=132, channel=7)),
        ("get_channel_price", F.GetChannelPrice(id=133, channel=7)),
        ("subscribe", F.Subscribe(id=134, intent=MANDATE, device=6, sig=CHARGE_RECEIPT.payer_sig)),
        ("unsubscribe", F.Unsubscribe(id=135, mandate_id=MANDATE.mandate_id)),
        ("get_subscription", F.GetSubscription(id=136, mandate_id=MANDATE.mandate_id)),
        ("list_subscriptions", F.ListSubscriptions(id=137)),
        (
            "list_subscriptions_page",
            F.ListSubscriptions(id=138, channel=7, after=MANDATE.mandate_id, limit=10),
        ),
        ("get_creator_receipts", F.GetCreatorReceipts(id=139, ref=MANDATE.mandate_id)),
        (
            "get_creator_receipts_page",
            F.GetCreatorReceipts(id=140, ref=MANDATE.mandate_id, after=2, limit=10),
        ),
        ("get_post_tips", F.GetPostTips(id=141, channel=7, seq=1)),
        ("view_posts", F.ViewPosts(id=122, channel=7, seqs=[40, 39, 38])),
        ("ban_commenter", F.BanCommenter(id=123, channel=7, account=2)),
        (
            "ban_commenter_all_fields",
            F.BanCommenter(
                id=124, channel=7, account=2, until=1_767_312_000_000, delete_comments=True
            ),
        ),
        ("unban_commenter", F.UnbanCommenter(id=125, channel=7, account=2)),
        ("list_comment_bans", F.ListCommentBans(id=126, channel=7)),
        ("list_comment_bans_page", F.ListCommentBans(id=127, channel=7, after=2, limit=10)),
        ("set_slow_mode", F.SetSlowMode(id=128, channel=7, seconds=30)),
        ("watch_feed", F.WatchFeed(id=122)),
        ("unwatch_feed", F.WatchFeed(id=123, on=False)),
        ("watch_channel", F.WatchChannel(id=124, channel=7)),
        ("unwatch_channel", F.WatchChannel(id=125, channel=7, on=False)),
        ("watch_post", F.WatchPost(id=126, channel=7, seq=1)),
        ("unwatch_post", F.WatchPost(id=127, channel=7, seq=1, on=False)),
        ("get_timeline", F.GetTimeline(id=128)),
        ("get_timeline_page", F.GetTimeline(id=129, before="1767225600150.1.3", limit=10)),
        ("post_moment", F.PostMoment(id=142, all=True, body=b"\x01sealed moment")),
        (
            "post_moment_audience",
            F.PostMoment(id=143, audience=[2, 3], body=b"\x01sealed moment", cmid="m-7f3a"),
        ),
        ("get_moment", F.GetMoment(id=144, moment=3)),
        ("get_moments", F.GetMoments(id=145)),
        (
            "get_moments_page",
            F.GetMoments(id=146, author=2, before_ts=1_767_225_600_150, before=3, limit=10),
        ),
        ("get_moment_comments", F.GetMomentComments(id=147, moment=3)),
        ("get_moment_comments_page", F.GetMomentComments(id=148, moment=3, after=5, limit=10)),
        ("comment_moment", F.CommentMoment(id=149, moment=3, body=b"\x01sealed comment")),
        (
            "comment_moment_reply",
            F.CommentMoment(id=150, moment=3, reply_to=5, body=b"\x01sealed reply", cmid="c-1b2e"),
        ),
        ("like_moment", F.LikeMoment(id=151, moment=3, body=b"\x01sealed like", cmid="l-9d04")),
        ("unlike_moment", F.LikeMoment(id=152, moment=3, remove=True)),
        ("delete_moment", F.DeleteMoment(id=153, moment=3)),
        ("delete_moment_comment", F.DeleteMomentComment(id=154, moment=3, comment=5)),
    ]


BLOB = "b5Yc3Vn4PZ0q-Ux_Gm7kRw"
MOMENT = F.MomentInfo(moment=3, author=1, device=7, ts=1_767_225_600_150, body=b"\x01sealed moment")
"""A Moment as its author sees it (no handle: its own)."""
MOMENT_OF_BOB = F.MomentInfo(
    moment=4, author=2, handle="bob", device=4, ts=1_767_225_600_300, body=b"\x01sealed moment"
)
MOMENT_COMMENT = F.MomentComment(
    comment=5,
    moment=3,
    author=2,
    handle="bob",
    device=4,
    ts=1_767_225_600_400,
    reply_to=4,
    body=b"\x01sealed comment",
)
MOMENT_LIKE = F.MomentComment(
    comment=6, moment=3, author=3, ts=1_767_225_600_500, kind="like", body=b"\x01sealed like"
)


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
        (
            "error_retry_after",
            F.Error(
                re=18,
                code=ErrorCode.RATE_LIMITED,
                msg="slow mode: one comment every 30 s; retry in 12.5 s",
                retry_after=12_500,
            ),
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
            "convs_more",
            F.Convs(
                re=80,
                convs=[F.ConvInfo(conv=43, kind="group", title="Team", last_seq=9, role="owner")],
                more=True,
            ),
        ),
        (
            "members_page",
            F.Members(
                re=81,
                conv=42,
                members=[
                    F.Member(account=4, role="admin", handle="dave"),
                    F.Member(account=9, role="member", handle="helper_bot", access="addressed"),
                ],
                more=True,
            ),
        ),
        ("members_last_page", F.Members(re=82, conv=42, members=[], more=False)),
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
        ("payment_key", F.PaymentKey(re=39, server=SERVER, key=KEY_SERVER)),
        (
            "posted",
            F.Posted(re=40, conv=42, seq=17, ts=1_700_000_000_000, body=_receipt_body("transfer")),
        ),
        (
            "posted_replay",
            F.Posted(
                re=40,
                conv=42,
                seq=17,
                ts=1_700_000_000_000,
                body=_receipt_body("transfer"),
                replay=True,
            ),
        ),
        (
            "balances",
            F.Balances(
                re=48,
                balances=[
                    F.BalanceInfo(currency="EUR", amount=0),
                    F.BalanceInfo(currency="USD", amount=125_000),
                ],
            ),
        ),
        ("balances_none", F.Balances(re=49, balances=[])),
        (
            "wallet_entries",
            F.WalletEntries(
                re=51,
                entries=[
                    F.WalletEntry(
                        entry=1201,
                        ref="tr_01HZX3",
                        type="transfer",
                        currency="USD",
                        amount=-1250,
                        balance=123_750,
                        counterparty=2,
                        conv=42,
                        posted_at=1_700_000_000_000,
                    ),
                    F.WalletEntry(
                        entry=1100,
                        ref="mint:1",
                        type="mint",
                        currency="USD",
                        amount=125_000,
                        balance=125_000,
                        counterparty=0,
                        conv=0,
                        posted_at=1_699_000_000_000,
                    ),
                ],
                more=True,
            ),
        ),
        ("wallet_entries_empty", F.WalletEntries(re=50, entries=[], more=False)),
        (
            "deliver_addressed",
            F.Deliver(
                conv=43,
                seq=21,
                ts=1_718_000_000_200,
                sender=1,
                device=7,
                cmid="c-0002",
                kind="e2e",
                body=b"\x01ciphertext",
                to=[9, 12],
            ),
        ),
        (
            "deliver_franked",
            F.Deliver(
                conv=42,
                seq=1002,
                ts=1_718_000_000_400,
                sender=1,
                device=7,
                cmid="c-0003",
                kind="e2e",
                body=b"\x01ciphertext",
                fc=franking.commit(bytes(range(0x01, 0x21)), b"hello"),
            ),
        ),
        (
            "deliver_withheld_placeholder",
            F.Deliver(
                conv=43, seq=22, ts=1_718_000_000_300, sender=0, device=0, kind="withheld", body=b""
            ),
        ),
        (
            "messages_for_a_bot",
            F.Messages(
                re=58,
                conv=43,
                messages=[
                    F.Message(
                        seq=20,
                        ts=1_718_000_000_100,
                        sender=0,
                        device=0,
                        kind="system",
                        body=_system_body(event="joined", actor=1, account=9, access="addressed"),
                    ),
                    F.Message(
                        seq=21,
                        ts=1_718_000_000_200,
                        sender=1,
                        device=7,
                        cmid="c-0002",
                        kind="e2e",
                        body=b"\x01ciphertext",
                        to=[9, 12],
                    ),
                    F.Message(
                        seq=22,
                        ts=1_718_000_000_300,
                        sender=0,
                        device=0,
                        kind="withheld",
                        body=b"",
                    ),
                ],
                more=False,
            ),
        ),
        (
            "conv_group_with_a_bot",
            F.Conv(
                re=59,
                info=F.ConvInfo(
                    conv=43,
                    kind="group",
                    title="Team",
                    last_seq=22,
                    role="member",
                    member_count=2,
                    members=[
                        F.Member(account=1, role="owner", handle="alice"),
                        F.Member(account=9, role="member", handle="shop_bot", access="addressed"),
                    ],
                    joined=20,
                    access="addressed",
                ),
            ),
        ),
        (
            "bot_profile",
            F.BotProfile(
                re=55,
                account=9,
                commands=BOT_COMMANDS,
                manifest=MANIFEST,
                updated_at=1_718_000_000_000,
            ),
        ),
        ("bot_profile_never_set", F.BotProfile(re=55, account=10, commands=[])),
        (
            "member_log",
            F.MemberLog(
                re=61,
                conv=42,
                entries=[F.LogEntry(epoch=3, seq=17, body=b"\x81", sig=SIG)],
                more=False,
            ),
        ),
        (
            "media_token",
            F.MediaToken(
                re=58,
                blob=BLOB,
                token="q7Xz0Jr1bG5sVwT2kPaY3mNcE8dH4fLu",
                path=f"/media/upload/{BLOB}",
                expires=1_718_000_300_000,
            ),
        ),
        (
            "requests",
            F.Requests(
                re=64,
                requests=[
                    F.RequestInfo(
                        conv=42,
                        kind="direct",
                        sender=2,
                        handle="bob",
                        at=1_718_000_000_000,
                        last_seq=3,
                    ),
                    F.RequestInfo(
                        conv=43,
                        kind="group",
                        sender=3,
                        handle="carol",
                        at=1_718_000_000_500,
                        title="Book club",
                    ),
                ],
                more=True,
            ),
        ),
        ("requests_empty", F.Requests(re=65, requests=[], more=False)),
        ("contacts", F.Contacts(re=70, accounts=[2, 3], more=False)),
        ("privacy", F.Privacy(re=72, add_me="contacts", presence="contacts", last_seen="nobody")),
        (
            "privacy_find_me",
            F.Privacy(
                re=74, add_me="contacts", presence="contacts", last_seen="nobody", find_me="nobody"
            ),
        ),
        ("reported", F.Reported(re=91, report=3, sender=7)),
        ("channel", F.ChannelAnswer(re=100, info=CHANNEL)),
        (
            "channel_minimal",
            F.ChannelAnswer(
                re=101, info=F.ChannelInfo(channel=8, handle="blog", title="Blog", owner=1)
            ),
        ),
        ("channels", F.ChannelList(re=104, items=[CHANNEL], next="0 daily 7")),
        ("channels_last", F.ChannelList(re=103, items=[])),
        ("published", F.Published(re=109, channel=7, seq=1)),
        ("published_version", F.Published(re=110, channel=7, seq=1, ver=2)),
        ("posts", F.Posts(re=112, channel=7, items=[POST], next=1)),
        ("posts_history", F.Posts(re=113, channel=7, items=[POST, TOMBSTONE])),
        ("post_event", F.PostEvent(post=POST)),
        ("posts_paid", F.Posts(re=111, channel=7, items=[PAID_POST, POST])),
        ("post_event_locked", F.PostEvent(post=LOCKED_POST)),
        ("tipped", F.Tipped(re=130, receipt=TIP_RECEIPT)),
        ("tipped_replay", F.Tipped(re=130, receipt=TIP_RECEIPT, replay=True)),
        (
            "channel_price",
            F.ChannelPrice(
                re=133, channel=7, owner=1, amount=499, currency="USD", period=2_592_000
            ),
        ),
        ("channel_price_none", F.ChannelPrice(re=132, channel=7, owner=1)),
        (
            "subscribed",
            F.Subscribed(
                re=134,
                subscription=msgspec.structs.replace(
                    SUBSCRIPTION,
                    charged=1,
                    paid_through=SUBSCRIPTION.created_at + 2_592_000_000,
                    next_charge_at=SUBSCRIPTION.created_at + 2_592_000_000,
                ),
                receipt=CHARGE_RECEIPT,
            ),
        ),
        (
            "subscribed_replay",
            F.Subscribed(re=134, subscription=SUBSCRIPTION, receipt=CHARGE_RECEIPT, replay=True),
        ),
        (
            "subscription",
            F.SubscriptionAnswer(
                re=135,
                subscription=msgspec.structs.replace(
                    SUBSCRIPTION, state="cancelled", next_charge_at=0
                ),
            ),
        ),
        ("subscriptions", F.Subscriptions(re=137, items=[SUBSCRIPTION])),
        (
            "subscriptions_page",
            F.Subscriptions(re=138, items=[SUBSCRIPTION], next=MANDATE.mandate_id),
        ),
        ("creator_receipts", F.CreatorReceipts(re=139, items=[CHARGE_RECEIPT])),
        ("creator_receipts_page", F.CreatorReceipts(re=140, items=[CHARGE_RECEIPT], next=2)),
        (
            "post_tips",
            F.PostTips(
                re=141,
                channel=7,
                seq=1,
                totals=[F.TipTotal(currency="USD", count=3, amount=900)],
            ),
        ),
        ("tip_event", F.TipEvent(receipt=TIP_RECEIPT)),
        (
            "subscription_event",
            F.SubscriptionEvent(subscription=SUBSCRIPTION, receipt=CHARGE_RECEIPT),
        ),
        (
            "subscription_event_lapsed",
            F.SubscriptionEvent(
                subscription=msgspec.structs.replace(SUBSCRIPTION, state="lapsed", next_charge_at=0)
            ),
        ),
        ("commented", F.Commented(re=114, channel=7, seq=1, comment=COMMENT)),
        (
            "comments",
            F.Comments(
                re=117,
                channel=7,
                seq=1,
                items=[
                    COMMENT,
                    F.CommentInfo(
                        comment=31,
                        author=3,
                        handle="carol",
                        ts=1_767_225_700_000,
                        reply_to=30,
                        kind="text",
                        deleted=True,
                    ),
                ],
                next=31,
                total=1,
            ),
        ),
        ("comments_empty", F.Comments(re=116, channel=7, seq=1, items=[])),
        ("comment_event", F.CommentEvent(channel=7, seq=1, comment=COMMENT)),
        (
            "timeline",
            F.Timeline(
                re=128,
                items=[
                    F.TimelineItem(at=1767225600200, post=POST),
                    F.TimelineItem(
                        at=1767225600150,
                        moment=F.MomentInfo(
                            moment=3, author=2, device=4, ts=1767225600150, body=b"\x01sealed"
                        ),
                    ),
                ],
                next="1767225600150.1.3",
            ),
        ),
        ("timeline_end", F.Timeline(re=129, items=[])),
        ("moment", F.MomentAnswer(re=142, info=MOMENT, audience=[2, 3])),
        ("moment_no_audience", F.MomentAnswer(re=144, info=MOMENT_OF_BOB)),
        ("moments", F.Moments(re=145, items=[MOMENT_OF_BOB, MOMENT], next_ts=MOMENT.ts, next=3)),
        ("moments_end", F.Moments(re=146, items=[])),
        (
            "moment_comments",
            F.MomentComments(re=147, moment=3, items=[MOMENT_COMMENT, MOMENT_LIKE], next=6),
        ),
        ("moment_comments_end", F.MomentComments(re=148, moment=3, items=[])),
        ("moment_commented", F.MomentCommented(re=149, comment=MOMENT_COMMENT)),
        ("moment_event", F.MomentEvent(info=MOMENT_OF_BOB)),
        (
            "moment_event_deleted",
            F.MomentEvent(info=msgspec.structs.replace(MOMENT_OF_BOB, body=b""), deleted=True),
        ),
        ("moment_comment_event", F.MomentCommentEvent(comment=MOMENT_LIKE)),
        (
            "moment_comment_event_deleted",
            F.MomentCommentEvent(
                comment=msgspec.structs.replace(MOMENT_COMMENT, body=b""), deleted=True
            ),
        ),
        (
            "reactions_event",
            F.ReactionsEvent(channel=7, seq=1, counts=[F.ReactionCount(emoji="👍", count=12)]),
        ),
        (
            "reactions",
            F.Reactions(
                re=119,
                channel=7,
                seq=1,
                counts=[
                    F.ReactionCount(emoji="👍", count=12, mine=True),
                    F.ReactionCount(emoji="🎉", count=3),
                ],
            ),
        ),
        (
            "posts_with_views",
            F.Posts(re=111, channel=7, items=[msgspec.structs.replace(POST, views=1_532)], next=0),
        ),
        (
            "channel_slow_mode",
            F.ChannelAnswer(re=128, info=msgspec.structs.replace(CHANNEL, slow_mode=30)),
        ),
        (
            "comment_bans",
            F.CommentBans(
                re=127,
                channel=7,
                items=[
                    F.CommentBan(account=3, handle="carol", by=1, ts=1_767_225_700_000),
                    F.CommentBan(
                        account=4,
                        handle="dave",
                        until=1_767_312_000_000,
                        by=1,
                        ts=1_767_225_800_000,
                    ),
                ],
                next=4,
            ),
        ),
        ("comment_bans_empty", F.CommentBans(re=126, channel=7, items=[])),
        (
            "push_config",
            F.PushConfig(
                re=96,
                vapid_key=b"\x04" + bytes(range(0x41, 0x81)),
                endpoint="https://fcm.googleapis.com/fcm/send/abc123",
                show_conv=True,
            ),
        ),
        ("push_config_off", F.PushConfig(re=95, vapid_key=b"")),
        (
            "link",
            F.Link(
                re=95,
                link=F.LinkInfo(
                    link=5,
                    conv=42,
                    url="chatd://join/" + "Ab-_" * 8,
                    creator=1,
                    created=1_718_000_000_000,
                    name="flyer",
                    expires=1_718_086_400_000,
                    max_uses=100,
                    uses=3,
                    approval=True,
                ),
            ),
        ),
        ("links_empty", F.Links(re=97, links=[], more=False)),
        (
            "link_preview",
            F.LinkPreview(re=99, kind="channel", title="News", member_count=1200, approval=True),
        ),
        (
            "link_preview_defaults_omitted",
            F.LinkPreview(re=106, kind="group", title="", member_count=2),
        ),
        ("join_requested", F.JoinRequested(re=100, conv=42)),
        (
            "join_requests",
            F.JoinRequests(
                re=101,
                conv=42,
                requests=[F.JoinRequestInfo(account=3, handle="carol", at=1, link=5)],
                more=False,
            ),
        ),
        (
            "join_request_event",
            F.JoinRequestEvent(
                conv=42, request=F.JoinRequestInfo(account=3, handle="carol", at=1, link=5)
            ),
        ),
        (
            "request_event",
            F.RequestEvent(
                request=F.RequestInfo(
                    conv=43,
                    kind="group",
                    sender=3,
                    handle="carol",
                    at=1_718_000_000_500,
                    title="Book club",
                )
            ),
        ),
        (
            "invitation_answered_accept_signed",
            F.InvitationAnswered(conv=43, account=3, handle="carol", answer="accept", joined=False),
        ),
        (
            "answers",
            F.Answers(
                re=68,
                answers=[
                    F.AnswerInfo(conv=43, account=3, handle="carol", answer="accept"),
                    F.AnswerInfo(conv=43, account=4, handle="dave", answer="decline"),
                ],
                more=False,
            ),
        ),
        ("answers_empty", F.Answers(re=69, answers=[], more=False)),
    ]


def _receipt_body(name: str) -> bytes:
    return kinds.encode_content(dict(receipt_examples())[name])[1]


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
    send = {"t": "send", "id": 1, "conv": 1, "cmid": "c", "kind": "e2e", "body": b""}
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
        (
            "send_to_17_accounts",
            "client",
            _mp({**send, "to": list(range(1, L.MAX_TO + 2))}),
            b,
        ),
        ("send_to_account_zero", "client", _mp({**send, "to": [0]}), b),
        ("send_to_not_an_array", "client", _mp({**send, "to": 9}), b),
        (
            "set_bot_access_unknown_access",
            "client",
            _mp({"t": "set_bot_access", "id": 1, "conv": 1, "account": 2, "access": "some"}),
            b,
        ),
        (
            "set_bot_profile_without_commands",
            "client",
            _mp({"t": "set_bot_profile", "id": 1}),
            b,
        ),
        (
            "set_bot_profile_action_param_type_unknown",
            "client",
            _mp(
                {
                    "t": "set_bot_profile",
                    "id": 1,
                    "commands": [],
                    "manifest": {
                        "name": "shop",
                        "actions": [
                            {
                                "name": "order",
                                "title": "Order",
                                "params": [{"name": "when", "type": "date"}],
                            }
                        ],
                    },
                }
            ),
            b,
        ),
        (
            "set_bot_profile_101_commands",
            "client",
            _mp(
                {
                    "t": "set_bot_profile",
                    "id": 1,
                    "commands": [{"name": f"c{i}"} for i in range(L.MAX_BOT_COMMANDS + 1)],
                }
            ),
            b,
        ),
        (
            "set_bot_profile_command_name_33_chars",
            "client",
            _mp({"t": "set_bot_profile", "id": 1, "commands": [{"name": "c" * 33}]}),
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
    bots = [
        ("ascii", SERVER, "shop_bot", signer_a, signer_b.public_key),
        ("utf8_server_name", "chat.例え.jp:8443", "weather_bot", signer_b, signer_a.public_key),
    ]
    bot_out = []
    for name, server, handle, owner, bot_key in bots:
        payload = auth.bot_approval_payload(server, handle, bot_key)
        bot_out.append(
            {
                "name": name,
                "inputs": {"server": server, "handle": handle, "device_key": bot_key.hex()},
                "payload": payload.hex(),
                "seed": owner.seed.hex(),
                "public_key": owner.public_key.hex(),
                "signature": owner.sign(payload).hex(),
            }
        )
    return {
        "algorithm": "Ed25519 (RFC 8032, pure, no context, no prehash)",
        "login_payload": login_out,
        "device_approval_payload": approval_out,
        "bot_approval_payload": bot_out,
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
            "payment_transfer_with_memo_nonce",
            kinds.PaymentTransfer(
                transfer_id="tr_01HZX3",
                amount=1250,
                currency="USD",
                memo="lunch 🍜",
                nonce=NONCE_16,
            ),
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
        (
            "miniapp_result_card",
            kinds.MiniappResult(
                invocation_id="inv_3",
                title="Your order",
                text="1 tea, 4.50 EUR",
                image="https://example.org/tea.png",
                buttons=[
                    kinds.Button(title="Add cake", action="order", params={"item": "cake"}),
                    kinds.Button(title="Track", action="track", app="taxi", bot=11),
                ],
                order=kinds.PaymentRequest(request_id="ord-17", amount=450, currency="EUR"),
            ),
        ),
        (
            "miniapp_result_error",
            kinds.MiniappResult(invocation_id="inv_4", error="option must be 1 to 3"),
        ),
        ("share_minimal", kinds.Share(title="An article")),
        (
            "share_miniapp_card",
            kinds.Share(
                title="Corner shop",
                text="Tea and cake, delivered",
                bot=9,
                app="shop",
                action="menu",
                params={"table": 4},
            ),
        ),
        (
            "forward_minimal",
            kinds.Forward(sender=2, kind="text", body=_text_body("hi")),
        ),
        (
            "forward",
            kinds.Forward(
                sender=2, ts=1_718_000_000_123, kind="text", body=_text_body("hi"), conv=42, seq=3
            ),
        ),
        (
            "attachment_minimal",
            kinds.Attachment(
                blob="AAAAAAAAAAAAAAAAAAAAAA", key=bytes(range(32)), digest=bytes(32), size=0
            ),
        ),
        (
            "attachment_voice_note",
            kinds.Attachment(
                blob="b5Yc3Vn4PZ0q-Ux_Gm7kRw",
                key=bytes(range(32)),
                digest=bytes(range(32, 64)),
                size=48_213,
                media_type="audio/ogg",
                name="voice.ogg",
                thumbnail=b"\xff\xd8\xff",
                width=640,
                height=480,
                duration_ms=4_250,
                waveform=bytes([0, 12, 40, 90, 40, 12]),
                caption="listen",
            ),
        ),
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
        (
            "system_joined_bot",
            kinds.SystemEvent(event="joined", actor=1, account=9, access="addressed"),
        ),
        (
            "system_bot_access",
            kinds.SystemEvent(event="bot_access", actor=1, account=9, access="all"),
        ),
        (
            "system_deleted",
            kinds.SystemEvent(event="deleted", actor=2, account=3, target=1001),
        ),
        ("deleted_tombstone", kinds.Deleted(by=2, at=1_718_000_000_500)),
        *((f"payment_receipt_{name}", r) for name, r in receipt_examples()),
    ]


def kind_vectors() -> list[dict[str, Any]]:
    out = []
    for name, content in kind_contents():
        kind, body = kinds.encode_content(content)
        out.append(
            {"name": name, "kind": kind, "hex": body.hex(), "content": to_json_form(content)}
        )
    return out


# --------------------------------------------------------------------------- payments


def receipt_examples() -> list[tuple[str, kinds.PaymentReceipt]]:
    """One signed receipt of each type (server key: SEED_SERVER, server name: SERVER)."""
    key = SigningKey(SEED_SERVER)
    payer = SigningKey(SEED_A)
    transfer_hash = payments.intent_hash(SERVER, TRANSFER)
    packet_hash = payments.intent_hash(SERVER, RED_PACKET)
    posted = 1_700_000_000_000
    unsigned = [
        kinds.PaymentReceipt(
            type="transfer",
            ref=TRANSFER.transfer_id,
            payer=1,
            payee=2,
            amount=1250,
            currency="USD",
            conv=42,
            intent_hash=transfer_hash,
            posted_at=posted,
            actor=1,
            sig=b"",
            memo_hash=TRANSFER.memo_hash,
            intent_expires_at=TRANSFER.expires_at,
            device=7,
            payer_sig=payments.sign_intent(payer, SERVER, TRANSFER),
        ),
        kinds.PaymentReceipt(
            type="red_packet",
            ref=RED_PACKET.packet_id,
            payer=1,
            payee=payments.ESCROW,
            amount=1000,
            currency="CNY",
            conv=43,
            intent_hash=packet_hash,
            posted_at=posted,
            expires_at=posted + 86_400_000,
            shares=5,
            actor=1,
            sig=b"",
            memo_hash=RED_PACKET.memo_hash,
            intent_expires_at=RED_PACKET.expires_at,
            split="random",
            device=7,
            payer_sig=payments.sign_intent(payer, SERVER, RED_PACKET),
        ),
        kinds.PaymentReceipt(
            type="claim",
            ref="rp_7",
            payer=payments.ESCROW,
            payee=3,
            amount=337,
            currency="CNY",
            conv=43,
            posted_at=posted + 5_000,
            shares=1,
            actor=3,
            sig=b"",
        ),
        kinds.PaymentReceipt(
            type="refund",
            ref="rp_7",
            payer=payments.ESCROW,
            payee=1,
            amount=663,
            currency="CNY",
            conv=43,
            posted_at=posted + 86_400_000,
            shares=4,
            sig=b"",
        ),
        kinds.PaymentReceipt(
            type="request",
            ref="rq_1",
            payee=2,
            amount=5000,
            currency="JPY",
            conv=43,
            payer=0,
            posted_at=posted,
            expires_at=EXPIRES,
            actor=2,
            sig=b"",
        ),
        kinds.PaymentReceipt(
            type="declined",
            ref="rq_2",
            payer=1,
            payee=2,
            amount=99,
            currency="GBP",
            conv=42,
            posted_at=posted,
            expires_at=EXPIRES,
            actor=1,
            sig=b"",
        ),
        kinds.PaymentReceipt(
            type="cancelled",
            ref="rq_1",
            payer=0,
            payee=2,
            amount=5000,
            currency="JPY",
            conv=43,
            posted_at=posted,
            expires_at=EXPIRES,
            actor=2,
            sig=b"",
        ),
        kinds.PaymentReceipt(
            type="expired",
            ref="rq_3",
            payer=1,
            payee=2,
            amount=1,
            currency="BHD",
            conv=42,
            posted_at=EXPIRES,
            expires_at=EXPIRES,
            sig=b"",
        ),
    ]
    return [(r.type, payments.sign_receipt(key, SERVER, r)) for r in unsigned]


def payment_vectors() -> dict[str, Any]:
    payer = SigningKey(SEED_A)
    amounts = [
        ("USD", "12.50", 1250),
        ("USD", "12.5", 1250),
        ("USD", "0.01", 1),
        ("USD", "90071992547409.91", L.MAX_ID),
        ("JPY", "1000", 1000),
        ("KRW", "50000", 50000),
        ("EUR", "7", 700),
        ("BHD", "1.005", 1005),
        ("KWD", "0.001", 1),
        ("CLF", "2.5", 25000),
    ]
    refused = [
        ("USD", "12.505", ErrorCode.INVALID_AMOUNT),
        ("JPY", "12.0", ErrorCode.INVALID_AMOUNT),
        ("USD", "0", ErrorCode.INVALID_AMOUNT),
        ("USD", "0.00", ErrorCode.INVALID_AMOUNT),
        ("USD", "-1.00", ErrorCode.INVALID_AMOUNT),
        ("USD", "+1.00", ErrorCode.INVALID_AMOUNT),
        ("USD", "1e3", ErrorCode.INVALID_AMOUNT),
        ("USD", "1,000.00", ErrorCode.INVALID_AMOUNT),
        ("USD", " 1.00", ErrorCode.INVALID_AMOUNT),
        ("USD", "01.00", ErrorCode.INVALID_AMOUNT),
        ("USD", "12.", ErrorCode.INVALID_AMOUNT),
        ("USD", ".5", ErrorCode.INVALID_AMOUNT),
        ("USD", "١٢", ErrorCode.INVALID_AMOUNT),
        ("USD", "90071992547409.92", ErrorCode.INVALID_AMOUNT),
        ("usd", "1.00", ErrorCode.UNKNOWN_CURRENCY),
        ("XYZ", "1.00", ErrorCode.UNKNOWN_CURRENCY),
    ]
    transfers = [
        ("transfer", TRANSFER),
        (
            "transfer_paying_a_request",
            msgspec.structs.replace(
                TRANSFER, transfer_id="tr_2", memo_hash=payments.NO_MEMO, request_id="rq_2"
            ),
        ),
        (
            "transfer_large_values",
            F.TransferIntent(
                transfer_id="t" * L.MAX_PAY_ID_CHARS,
                payer=L.MAX_ID,
                payee=300,
                amount=L.MAX_ID,
                currency="JPY",
                conv=70_000,
                memo_hash=MEMO_HASH,
                expires_at=EXPIRES,
            ),
        ),
        ("red_packet_random", RED_PACKET),
        ("red_packet_equal", msgspec.structs.replace(RED_PACKET, split="equal", shares=1)),
    ]
    intents = []
    for name, intent in transfers:
        payload = payments.intent_payload(SERVER, intent)
        intents.append(
            {
                "name": name,
                "type": "transfer" if isinstance(intent, F.TransferIntent) else "red_packet",
                "intent": to_json_form(intent),
                "payload": payload.hex(),
                "server": SERVER,
                "intent_hash": payments.intent_hash(SERVER, intent).hex(),
                "seed": payer.seed.hex(),
                "public_key": payer.public_key.hex(),
                "signature": payer.sign(payload).hex(),
            }
        )
    memos = [
        ("no_memo", "tr_1", "", b""),
        ("ascii", "tr_01HZX3", "lunch", NONCE_16),
        ("utf8", "tr_01HZX3", "lunch 🍜", NONCE_16),
    ]
    receipts = []
    for name, r in receipt_examples():
        receipts.append(
            {
                "name": name,
                "server": SERVER,
                "receipt": to_json_form(r),
                "payload": payments.receipt_payload(SERVER, r).hex(),
                "body": kinds.encode_content(r)[1].hex(),
            }
        )
    return {
        "algorithm": "Ed25519 (RFC 8032, pure), SHA-256; payloads per SPEC.md section 15.2",
        "amounts": [
            {"currency": c, "text": t, "minor": m, "formatted": money.format_amount(m, c)}
            for c, t, m in amounts
        ],
        "refused_amounts": [
            {"currency": c, "text": t, "code": int(code)} for c, t, code in refused
        ],
        "intents": intents,
        "memo_hashes": [
            {
                "name": name,
                "transfer_id": tid,
                "memo": memo,
                "nonce": nonce.hex(),
                "memo_hash": payments.memo_hash(tid, memo, nonce).hex(),
            }
            for name, tid, memo, nonce in memos
        ],
        "server_seed": SEED_SERVER.hex(),
        "server_key": KEY_SERVER.hex(),
        "receipts": receipts,
    }


# --------------------------------------------------------------------------- output


def franking_vectors() -> dict[str, Any]:
    """E2E.md section 17: commitments, server tags, and reports that must be refused."""
    secret = bytes(range(0x60, 0x80))
    key = bytes(range(0x01, 0x21))
    other_key = bytes(range(0x21, 0x41))
    plaintext = franking.encode_plaintext(
        "text", kinds.encode_content(kinds.Text(text="meet me at 5"))[1]
    )
    at = {"sender": 7, "conv": 42, "seq": 1001, "ts": 1_767_225_600_123}
    commitment = franking.commit(key, plaintext)
    tag = franking.tag(secret, commitment, **at)
    accepted = [
        {
            "name": "text",
            "plaintext": plaintext.hex(),
            "key": key.hex(),
            "commitment": commitment.hex(),
            **at,
            "tag": tag.hex(),
        },
        {
            "name": "empty_plaintext",
            "plaintext": "",
            "key": other_key.hex(),
            "commitment": franking.commit(other_key, b"").hex(),
            **at,
            "tag": franking.tag(secret, franking.commit(other_key, b""), **at).hex(),
        },
    ]
    refused: list[dict[str, Any]] = []
    for name, change in (
        ("altered_plaintext", {"plaintext": (plaintext[:-1] + b"6").hex()}),
        ("swapped_key", {"key": other_key.hex()}),
        ("other_sender", {"sender": 8}),
        ("other_conv", {"conv": 43}),
        ("other_seq", {"seq": 1000}),
        ("other_ts", {"ts": at["ts"] + 1}),
        ("short_key", {"key": key[:31].hex()}),
    ):
        refused.append(
            {"name": name, "plaintext": plaintext.hex(), "key": key.hex(), **at, "tag": tag.hex()}
            | change
        )
    return {"secret": secret.hex(), "accepted": accepted, "refused": refused}


def post_vectors() -> dict[str, Any]:
    """SPEC.md 20.4: the signed payload of a post, an edit and a tombstone, and posts a reader
    must refuse (each the valid post with one field changed after signing)."""
    key = SigningKey(SEED_A)

    def entry(name: str, p: F.Post) -> dict[str, Any]:
        return {
            "name": name,
            "server": SERVER,
            "post": to_json_form(msgspec.to_builtins(p, builtin_types=(bytes,))),
            "payload": posts.payload_of(SERVER, p).hex(),
            "sig": p.sig.hex(),
        }

    refused: list[dict[str, Any]] = []
    for name, change in (
        ("altered_content", {"content": _text_body("good mourning")}),
        ("other_seq", {"seq": 2}),
        ("other_channel", {"channel": 8}),
        ("other_version", {"ver": 1}),
        ("other_time", {"ts": POST.ts + 1}),
        ("other_author", {"author": 2}),
        ("other_device", {"device": 6}),
        ("other_kind", {"kind": "note"}),
        ("bad_sig", {"sig": bytes(64)}),
    ):
        bad = msgspec.structs.replace(POST, **change)
        refused.append(
            {
                "name": name,
                "server": SERVER,
                "post": to_json_form(msgspec.to_builtins(bad, builtin_types=(bytes,))),
            }
        )
    refused.append(
        {
            "name": "other_server",
            "server": "chat.example.net",
            "post": to_json_form(msgspec.to_builtins(POST, builtin_types=(bytes,))),
        }
    )
    return {
        "device_key": key.public_key.hex(),
        "accepted": [entry("post", POST), entry("edit", EDIT), entry("tombstone", TOMBSTONE)],
        "refused": refused,
    }


def creator_vectors() -> dict[str, Any]:
    """SPEC.md 15.12-15.14: the signed payloads of a tip and a mandate, the server's receipt
    payloads, and a paid post's v2 payload (with the v1 payload it must not verify as)."""
    payer = SigningKey(SEED_B)
    intents = []
    for name, intent in (("tip", TIP), ("mandate", MANDATE)):
        payload = creators.intent_payload(SERVER, intent)
        intents.append(
            {
                "name": name,
                "intent": to_json_form(intent),
                "payload": payload.hex(),
                "server": SERVER,
                "intent_hash": creators.intent_hash(SERVER, intent).hex(),
                "seed": payer.seed.hex(),
                "public_key": payer.public_key.hex(),
                "signature": payer.sign(payload).hex(),
            }
        )
    receipts = [
        {
            "name": name,
            "server": SERVER,
            "receipt": to_json_form(r),
            "payload": creators.creator_receipt_payload(SERVER, r).hex(),
        }
        for name, r in _creator_receipts()
    ]
    return {
        "algorithm": "Ed25519 (RFC 8032, pure), SHA-256; payloads per SPEC.md 15.2, 15.12-15.14",
        "intents": intents,
        "server_seed": SEED_SERVER.hex(),
        "server_key": KEY_SERVER.hex(),
        "receipts": receipts,
        "paid_post": {
            "server": SERVER,
            "device_key": SigningKey(SEED_A).public_key.hex(),
            "post": to_json_form(PAID_POST),
            "payload": posts.payload_of(SERVER, PAID_POST).hex(),
            "v1_payload": posts.post_payload(
                SERVER,
                channel=PAID_POST.channel,
                seq=PAID_POST.seq,
                ver=PAID_POST.ver,
                ts=PAID_POST.ts,
                author=PAID_POST.author,
                device=PAID_POST.device,
                kind=PAID_POST.kind,
                content=PAID_POST.content,
            ).hex(),
            "placeholder": to_json_form(LOCKED_POST),
        },
    }


_BIN = (
    'a msgpack bin value (a field of a frame or of a content map) is written {"$bytes": '
    '"<lowercase hex>"}, every other value as the plain JSON value'
)
FORMATS = {
    "frames.json": f"canonical frames: `hex` is the whole WebSocket message, `decoded` its JSON form, where {_BIN}",
    "decode_only.json": f"valid non-canonical encodings: `hex` decodes to `decoded`, where {_BIN}",
    "invalid.json": "messages a receiver refuses: `hex` is the whole WebSocket message, `code` the error code (SPEC.md section 5)",
    "auth.json": "signed payloads of SPEC.md section 6.2: every byte string (inputs, payload, keys, signature) is a lowercase hex string",
    "kinds.json": f"message bodies of SPEC.md section 9: `hex` is the body of `kind`, `content` its JSON form, where {_BIN}",
    "payments.json": f"SPEC.md section 15: in intents and receipts {_BIN}; payloads, hashes, seeds, keys and signatures are lowercase hex strings",
    "posts.json": f"SPEC.md section 20.4: `device_key` is the publishing device's Ed25519 key; in `accepted` the signed `payload` (lowercase hex) of each post for `server` and its `sig`; in `refused` posts a reader must refuse under that key; in posts {_BIN}",
    "creators.json": f"SPEC.md sections 15.12-15.14: tip and mandate intents (the payer's key `seed`/`public_key`), the server's receipts (key `server_seed`/`server_key`) and a paid post, where in intents, receipts and posts {_BIN}; payloads, hashes, seeds, keys and signatures are lowercase hex strings",
    "franking.json": "E2E.md section 17: `secret` is the server's franking secret; in `accepted` the commitment and tag of each plaintext, key, sender, conv, seq and ts; in `refused` reports (plaintext, key, sender, conv, seq, ts, tag) the server must refuse; byte strings are lowercase hex",
}
"""Each file's ``format`` header: how to read it, bytes above all (README.md has the rest)."""


def _with_header(name: str, value: Any) -> dict[str, Any]:
    """``{"format": ..., ...}``: an object's keys after the header; a list under ``vectors``."""
    header = {"format": f"chatd.v1 test vectors, {name}: {FORMATS[name]}."}
    return {**header, **value} if isinstance(value, dict) else {**header, "vectors": value}


def build() -> dict[str, str]:
    """File name -> exact file text."""
    data: dict[str, Any] = {
        "frames.json": frame_vectors(),
        "decode_only.json": decode_only_vectors(),
        "invalid.json": invalid_vectors(),
        "auth.json": auth_vectors(),
        "kinds.json": kind_vectors(),
        "payments.json": payment_vectors(),
        "franking.json": franking_vectors(),
        "posts.json": post_vectors(),
        "creators.json": creator_vectors(),
    }
    return {
        name: json.dumps(_with_header(name, value), indent=2, ensure_ascii=False) + "\n"
        for name, value in data.items()
    }


def main() -> None:
    for name, text in build().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote {HERE / name}")


if __name__ == "__main__":
    main()
