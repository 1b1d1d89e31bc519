"""The codec: round trips of every frame type, the decoder under fuzz, and its error codes.

Strategies are built by hand from each frame's msgspec type info (``hypothesis.from_type`` ignores
msgspec ``Meta`` constraints and would build out-of-range frames), so every generated frame
respects the limits of limits.py and new frame types are covered without editing this file.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from chatproto import codec
from chatproto import frames as F
from chatproto import limits as L
from chatproto.errors import ErrorCode, ProtocolError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ALL_FRAMES: tuple[type[F.Frame], ...] = (*F.CLIENT_FRAMES, *F.SERVER_FRAMES)
MI = msgspec.inspect

_HANDLE = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"),
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.",
        min_size=L.MIN_HANDLE_CHARS - 1,
        max_size=L.MAX_HANDLE_CHARS - 1,
    ),
)


def _strategy(t: MI.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, MI.IntType):
        lo = t.ge if t.ge is not None else -(2**63)
        hi = t.le if t.le is not None else 2**64 - 1
        return st.one_of(st.integers(lo, hi), st.sampled_from(sorted({lo, hi, lo + 1})))
    if isinstance(t, MI.StrType):
        if t.pattern == L.HANDLE_PATTERN:
            return _HANDLE
        if t.pattern is not None and "A-Za-z0-9_-" in t.pattern:  # media blob ids
            return st.from_regex(t.pattern.replace("\\Z", "$"), fullmatch=True)
        assert t.pattern is None, t.pattern
        hi = t.max_length if t.max_length is not None else 64
        return st.text(min_size=t.min_length or 0, max_size=min(hi, 40)) | st.text(
            alphabet="é", min_size=hi, max_size=hi
        )
    if isinstance(t, MI.BytesType):
        lo = t.min_length or 0
        hi = t.max_length if t.max_length is not None else 1024
        return st.binary(min_size=lo, max_size=min(hi, max(lo, 300)))
    if isinstance(t, MI.BoolType):
        return st.booleans()
    if isinstance(t, MI.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, MI.NoneType):
        return st.none()
    if isinstance(t, MI.UnionType):
        return st.one_of(*(_strategy(u) for u in t.types))
    if isinstance(t, MI.ListType):
        hi = t.max_length if t.max_length is not None else 8
        lo = t.min_length or 0
        return st.lists(_strategy(t.item_type), min_size=lo, max_size=max(lo, min(hi, 4)))
    if isinstance(t, MI.StructType):
        return _struct_strategy(t.cls)
    raise AssertionError(f"no strategy for {t!r}: extend tests/unit/test_codec.py")


def _struct_strategy(cls: type[msgspec.Struct]) -> st.SearchStrategy[Any]:
    info = MI.type_info(cls)
    assert isinstance(info, MI.StructType)
    required = {f.name: _strategy(f.type) for f in info.fields if f.required}
    optional = {f.name: _strategy(f.type) for f in info.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional).map(lambda kw: cls(**kw))


FRAME_STRATEGIES = {cls: _struct_strategy(cls) for cls in ALL_FRAMES}
any_client_frame = st.one_of(*(FRAME_STRATEGIES[c] for c in F.CLIENT_FRAMES))
any_server_frame = st.one_of(*(FRAME_STRATEGIES[c] for c in F.SERVER_FRAMES))


def _decoder_for(cls: type[F.Frame]) -> Any:
    return codec.decode_client if cls in F.CLIENT_FRAMES else codec.decode_server


def _outcome(decode: Any, data: bytes) -> ErrorCode | None:
    """The error code decoding ``data`` raises, or None when it decodes. Anything else escapes."""
    try:
        decode(data)
    except ProtocolError as exc:
        return exc.code
    return None


def _code(data: bytes, *, client: bool = True, max_size: int = L.MAX_FRAME_BYTES) -> ErrorCode:
    decode = codec.decode_client if client else codec.decode_server
    with pytest.raises(ProtocolError) as err:
        decode(data, max_size)
    return err.value.code


def _mp(obj: Any) -> bytes:
    return msgspec.msgpack.encode(obj)


LOGIN = {"t": "login", "id": 5, "device": 7, "sig": bytes(64)}


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.__name__)
@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_frame_type_round_trips_through_the_codec(cls: type[F.Frame], data: Any) -> None:
    frame = data.draw(FRAME_STRATEGIES[cls])
    encoded = codec.encode(frame)
    decoded = _decoder_for(cls)(encoded)
    assert decoded == frame
    assert type(decoded) is cls
    assert codec.encode(decoded) == encoded


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.__name__)
@settings(max_examples=30)
@given(data=st.data())
def test_fields_equal_to_their_default_are_not_on_the_wire(cls: type[F.Frame], data: Any) -> None:
    frame = data.draw(FRAME_STRATEGIES[cls])
    raw = msgspec.msgpack.decode(codec.encode(frame))
    assert raw["t"] == cls.__struct_config__.tag
    for field in MI.type_info(cls).fields:
        value = getattr(frame, field.name)
        default = field.default
        if field.default_factory is not msgspec.NODEFAULT:
            default = field.default_factory()
        if not field.required and value == default:
            assert field.encode_name not in raw
        else:
            assert field.encode_name in raw


@given(frame=any_client_frame)
def test_client_frames_carry_a_request_id_that_request_id_of_recovers(frame: F.Frame) -> None:
    expected = getattr(frame, "id", 0)  # Typing has no id
    assert codec.request_id_of(codec.encode(frame)) == expected


# --------------------------------------------------------------------------- limits


def _boundary_cases() -> list[tuple[type[F.Frame], str, str, Any, bool]]:
    """(frame, field, case, value, accepted) for the bounds of every constrained field."""
    cases = []
    for cls in ALL_FRAMES:
        for field in MI.type_info(cls).fields:
            t = field.type
            if isinstance(t, MI.UnionType):
                t = next(u for u in t.types if not isinstance(u, MI.NoneType))
            name = field.encode_name  # e.g. RequestPayment.payer is "from" on the wire
            if isinstance(t, MI.IntType):
                cases += [
                    (cls, name, "at_min", t.ge, True),
                    (cls, name, "below_min", t.ge - 1, False),
                    (cls, name, "at_max", t.le, True),
                    (cls, name, "above_max", t.le + 1, False),
                ]
            elif isinstance(t, MI.StrType | MI.BytesType):
                unit = "a" if isinstance(t, MI.StrType) else b"\x01"
                if t.max_length is not None:
                    cases.append((cls, name, "at_max_len", unit * t.max_length, True))
                    cases.append((cls, name, "above_max_len", unit * (t.max_length + 1), False))
                if t.min_length:
                    cases.append((cls, name, "at_min_len", unit * t.min_length, True))
                    cases.append((cls, name, "below_min_len", unit * (t.min_length - 1), False))
            elif isinstance(t, MI.ListType) and t.max_length is not None:
                item: Any = 1
                if isinstance(t.item_type, MI.StructType):  # e.g. UploadKeys.one_time
                    item = {"kid": 1, "key": bytes(32)}
                    if t.item_type.cls is F.BotCommand:
                        item = {"name": "c"}
                cases.append((cls, name, "at_max_items", [item] * t.max_length, True))
                cases.append((cls, name, "above_max_items", [item] * (t.max_length + 1), False))
    return cases


BOUNDARIES = _boundary_cases()


@pytest.mark.parametrize(
    ("cls", "field", "case", "value", "accepted"),
    BOUNDARIES,
    ids=[f"{c.__name__}.{f}.{case}" for c, f, case, _, _ in BOUNDARIES],
)
def test_field_limits_accept_the_bound_and_reject_one_past_it_with_bad_field(
    cls: type[F.Frame], field: str, case: str, value: Any, accepted: bool
) -> None:
    base = msgspec.to_builtins(
        next(v for v in _valid_examples() if type(v) is cls), builtin_types=(bytes,)
    )
    raw = _mp({**base, field: value})
    decode = _decoder_for(cls)
    if accepted:
        attr = {f.encode_name: f.name for f in MI.type_info(cls).fields}[field]
        got = msgspec.to_builtins(getattr(decode(raw), attr), builtin_types=(bytes,))
        assert got == value
    else:
        with pytest.raises(ProtocolError) as err:
            decode(raw)
        assert err.value.code == ErrorCode.BAD_FIELD


def _valid_examples() -> list[F.Frame]:
    """One valid frame of every type with every field present (the vectors' fuller examples)."""
    info = F.ConvInfo(conv=1, kind="group", title="t", last_seq=1, role="owner")
    request = F.RequestInfo(
        conv=1, kind="group", sender=2, handle="bob", at=1, title="t", last_seq=1
    )
    msg = F.Message(seq=1, ts=1, sender=1, device=1, kind="text", body=b"")
    link = F.LinkInfo(
        link=1,
        conv=1,
        url="u",
        creator=1,
        created=1,
        name="n",
        expires=1,
        max_uses=1,
        uses=1,
        approval=True,
        revoked=1,
    )
    join = F.JoinRequestInfo(account=1, handle="abc", at=1, link=1)
    key, sig, nonce = bytes(32), bytes(64), bytes(32)
    command = F.BotCommand(name="c", params=[F.CommandParam(name="p", type="int")])
    manifest = F.Manifest(
        name="app",
        actions=[
            F.MiniAppAction(
                name="a",
                title="A",
                params=[F.ActionParam(name="p", type="int", choices=[1])],
                price=F.Price(amount=1, currency="USD"),
            )
        ],
    )
    spk = F.SignedPrekey(kid=1, key=key, sig=sig)
    otk = F.OneTimePrekey(kid=1, key=key)
    channel = F.ChannelInfo(
        channel=1,
        handle="news",
        title="t",
        about="a",
        owner=1,
        followers=1,
        last_seq=1,
        following=True,
        slow_mode=1,
    )
    comment = F.CommentInfo(
        comment=1,
        author=1,
        handle="bob",
        ts=1,
        reply_to=1,
        kind="text",
        content=b"c",
        deleted=True,
    )
    post = F.Post(
        channel=1,
        seq=1,
        ver=1,
        ts=1,
        author=1,
        device=1,
        kind="text",
        content=b"c",
        sig=sig,
        views=1,
    )
    intent = F.TransferIntent(
        transfer_id="t",
        payer=1,
        payee=2,
        amount=5,
        currency="USD",
        conv=1,
        memo_hash=key,
        expires_at=9,
        request_id="r",
    )
    return [
        F.Register(
            id=1,
            handle="abc",
            name="n",
            type="bot",
            device_key=key,
            device_name="d",
            sig=sig,
            approver=1,
            approval=sig,
        ),
        F.Login(id=1, device=1, sig=sig),
        F.LinkDevice(
            id=1,
            handle="abc",
            device_key=key,
            device_name="d",
            approver=1,
            approval=sig,
            sig=sig,
        ),
        F.Lookup(id=1, handle="abc"),
        F.CreateConv(id=1, kind="group", title="t", members=[2]),
        F.ListConvs(id=1, after=1),
        F.GetConv(id=1, conv=1),
        F.ListMembers(id=1, conv=1, after=1),
        F.Invite(id=1, conv=1, account=1),
        F.Remove(id=1, conv=1, account=1, ban=True),
        F.Unban(id=1, conv=1, account=1),
        F.DeleteMessage(id=1, conv=1, seq=1),
        F.SetRole(id=1, conv=1, account=1, role="admin"),
        F.Leave(id=1, conv=1),
        F.Rename(id=1, conv=1, title="t"),
        F.Send(id=1, conv=1, cmid="c", kind="text", body=b"x", to=[2], fc=key),
        F.Sync(id=1, conv=1, after=1),
        F.Fetch(id=1, conv=1, after=1, before=9, limit=5),
        F.Receipt(id=1, conv=1, type="read", seq=1),
        F.Typing(conv=1, on=False),
        F.GetPresence(id=1, accounts=[1]),
        F.Challenge(server="s", nonce=nonce, expires_in_ms=1),
        F.Welcome(re=1, account=1, device=1, handle="abc", server_time=1),
        F.Ok(re=1),
        F.Error(re=1, code=1, msg="m", retry_after=1),
        F.Account(re=1, account=1, handle="abc", name="n", type="user"),
        F.Conv(re=1, info=info),
        F.Convs(re=1, convs=[info], more=True),
        F.Members(
            re=1, conv=1, members=[F.Member(account=1, role="owner", handle="abc")], more=True
        ),
        F.Ack(re=1, conv=1, cmid="c", seq=1, ts=1),
        F.Deliver(conv=1, seq=1, ts=1, sender=1, device=1, cmid="c", kind="text", body=b"", to=[2]),
        F.Synced(re=1, conv=1, seq=1),
        F.Messages(re=1, conv=1, messages=[msg], more=True),
        F.ReceiptEvent(conv=1, account=1, device=1, type="read", seq=1),
        F.TypingEvent(conv=1, account=1, on=True),
        F.PresenceEvent(account=1, online=True, last_seen=1),
        F.PresenceList(re=1, presence=[F.PresenceInfo(account=1, online=True, last_seen=1)]),
        F.UploadKeys(
            id=1,
            identity_key=key,
            identity_sig=sig,
            signed_prekey=spk,
            pq_prekey=F.SignedPrekey(kid=2, key=bytes(L.MAX_PREKEY_BYTES), sig=sig),
            one_time=[otk],
        ),
        F.ClaimKeys(id=1, account=1),
        F.PutDeviceList(id=1, body=b"l", sig=sig, master_key=key, version=1),
        F.GetDeviceList(id=1, account=1),
        F.ToDevice(id=1, device=1, body=b"x"),
        F.FetchToDevice(id=1, after=1, limit=5),
        F.AckToDevice(id=1, up_to=1),
        F.KeyCount(re=1, one_time=1),
        F.Bundles(
            re=1,
            account=1,
            bundles=[
                F.Bundle(
                    device=1,
                    signing_key=key,
                    identity_key=key,
                    identity_sig=sig,
                    signed_prekey=spk,
                    pq_prekey=spk,
                    one_time=otk,
                )
            ],
        ),
        F.DeviceList(re=1, account=1, version=1, body=b"l", sig=sig, master_key=key),
        F.DeviceListChanged(account=1, version=1),
        F.Resync(),
        F.ToDeviceEvent(tid=1, sender=1, device=1, body=b"x"),
        F.ToDeviceBatch(
            re=1, events=[F.ToDeviceItem(tid=1, sender=1, device=1, body=b"x")], more=True
        ),
        F.UploadToken(id=1, conv=1, size=4096, blob="A" * 22),
        F.DownloadToken(id=1, blob="A" * 22),
        F.AttachBlob(id=1, conv=1, blob="A" * 22, seq=1),
        F.DetachBlob(id=1, conv=1, seq=1, blob="A" * 22),
        F.MediaToken(re=1, blob="A" * 22, token="t", path="/media/x", expires=1),
        F.GetPaymentKey(id=1),
        F.Pay(id=1, intent=intent, device=1, sig=sig),
        F.RequestPayment(
            id=1, request_id="r", conv=1, payer=2, amount=5, currency="USD", expires_at=9
        ),
        F.DeclineRequest(id=1, request_id="r"),
        F.CancelRequest(id=1, request_id="r"),
        F.SendRedPacket(
            id=1,
            intent=F.RedPacketIntent(
                packet_id="p",
                payer=1,
                conv=1,
                total=10,
                currency="CNY",
                shares=2,
                split="equal",
                memo_hash=key,
                expires_at=9,
            ),
            device=1,
            sig=sig,
        ),
        F.Claim(id=1, packet_id="p"),
        F.GetBalance(id=1, currency="USD"),
        F.WalletHistory(id=1, currency="USD", before=5, limit=10),
        F.PaymentKey(re=1, server="s", key=key),
        F.Posted(re=1, conv=1, seq=1, ts=1, body=b"r", replay=True),
        F.Balances(re=1, balances=[F.BalanceInfo(currency="USD", amount=1)]),
        F.WalletEntries(
            re=1,
            entries=[
                F.WalletEntry(
                    entry=1,
                    ref="t",
                    type="transfer",
                    currency="USD",
                    amount=-1,
                    balance=0,
                    counterparty=2,
                    conv=1,
                    posted_at=1,
                )
            ],
            more=False,
        ),
        F.SetBotProfile(id=1, commands=[command], manifest=manifest),
        F.GetBotProfile(id=1, account=1),
        F.SetBotAccess(id=1, conv=1, account=2, access="all"),
        F.BotProfile(re=1, account=1, commands=[command], manifest=manifest, updated_at=1),
        F.GetMemberLog(id=1, conv=1, after=1, limit=1),
        F.MemberLog(
            re=1, conv=1, entries=[F.LogEntry(epoch=1, seq=1, body=b"e", sig=sig)], more=False
        ),
        F.ListRequests(id=1, after=1, limit=1),
        F.AnswerRequest(id=1, conv=1, answer="accept"),
        F.ListAnswers(id=1, after=1, after_account=1, limit=1),
        F.DismissAnswer(id=1, conv=1, account=2),
        F.Block(id=1, account=1),
        F.Report(id=1, conv=1, seq=1, plaintext=b"p", fk=key, reason="r"),
        F.Reported(re=1, report=1, sender=1),
        F.GetPush(id=1),
        F.SetPush(id=1, endpoint="https://p.example/x", p256dh=b"\x04" * 65, auth=b"a" * 16),
        F.ClearPush(id=1),
        F.PushConfig(re=1, vapid_key=b"\x04" * 65, endpoint="https://p.example/x", show_conv=True),
        F.Unblock(id=1, account=1),
        F.ListContacts(id=1, which="blocked", after=1, limit=1),
        F.SetPrivacy(id=1, add_me="nobody", presence="everyone", last_seen="contacts"),
        F.GetPrivacy(id=1),
        F.Requests(re=1, requests=[request], more=False),
        F.Answers(
            re=1,
            answers=[F.AnswerInfo(conv=1, account=2, handle="bob", answer="decline")],
            more=False,
        ),
        F.Contacts(re=1, accounts=[1], more=False),
        F.Privacy(re=1, add_me="contacts", presence="contacts", last_seen="contacts"),
        F.RequestEvent(request=request),
        F.InvitationAnswered(conv=1, account=2, handle="bob", answer="accept", joined=True),
        F.CreateLink(id=1, conv=1, name="n", expires_in=1, max_uses=1, approval=True),
        F.ListLinks(id=1, conv=1, after=1, limit=1),
        F.RevokeLink(id=1, conv=1, link=1),
        F.PreviewLink(id=1, token="t"),
        F.JoinLink(id=1, token="t"),
        F.ListJoinRequests(id=1, conv=1, after=1, limit=1),
        F.AnswerJoin(
            id=1, conv=1, account=1, approve=True, entry=F.SignedEntry(body=b"e", sig=sig)
        ),
        F.Link(re=1, link=link),
        F.Links(re=1, links=[link], more=True),
        F.LinkPreview(re=1, kind="group", title="t", member_count=1, approval=True),
        F.JoinRequested(re=1, conv=1),
        F.CancelJoin(id=1, conv=1),
        F.JoinRequests(re=1, conv=1, requests=[join], more=True),
        F.JoinRequestEvent(conv=1, request=join),
        F.CreateChannel(id=1, handle="news", title="t", about="a"),
        F.FindChannel(id=1, handle="news"),
        F.SearchChannels(id=1, query="q", after="0 q 1", limit=1),
        F.Follow(id=1, channel=1),
        F.Unfollow(id=1, channel=1),
        F.SetChannelAdmin(id=1, channel=1, account=2, admin=False),
        F.Publish(id=1, channel=1, seq=1, ver=1, ts=1, kind="text", content=b"c", sig=sig),
        F.GetPosts(id=1, channel=1, before=1, limit=1),
        F.GetPostHistory(id=1, channel=1, seq=1),
        F.ChannelAnswer(re=1, info=channel),
        F.ChannelList(re=1, items=[channel], next="0 q 1"),
        F.Published(re=1, channel=1, seq=1, ver=1),
        F.Posts(re=1, channel=1, items=[post], next=1),
        F.PostEvent(post=post),
        F.Comment(id=1, channel=1, seq=1, reply_to=1, kind="text", content=b"c"),
        F.GetComments(id=1, channel=1, seq=1, after=1, limit=1),
        F.DeleteComment(id=1, channel=1, comment=1),
        F.ReactPost(id=1, channel=1, seq=1, emoji="e", remove=True),
        F.GetReactions(id=1, channel=1, seq=1),
        F.Commented(re=1, channel=1, seq=1, comment=comment),
        F.Comments(re=1, channel=1, seq=1, items=[comment], next=1, total=1),
        F.CommentEvent(channel=1, seq=1, comment=comment),
        F.ReactionsEvent(channel=1, seq=1, counts=[F.ReactionCount(emoji="e", count=1)]),
        F.Reactions(
            re=1, channel=1, seq=1, counts=[F.ReactionCount(emoji="e", count=1, mine=True)]
        ),
        *_creator_examples(sig),
        F.ViewPosts(id=1, channel=1, seqs=[1]),
        F.BanCommenter(id=1, channel=1, account=2, until=1, delete_comments=True),
        F.UnbanCommenter(id=1, channel=1, account=2),
        F.ListCommentBans(id=1, channel=1, after=1, limit=1),
        F.SetSlowMode(id=1, channel=1, seconds=1),
        F.CommentBans(
            re=1,
            channel=1,
            items=[F.CommentBan(account=2, handle="bob", until=1, by=1, ts=1)],
            next=1,
        ),
        F.WatchFeed(id=1, on=False),
        F.WatchChannel(id=1, channel=1, on=False),
        F.WatchPost(id=1, channel=1, seq=1, on=False),
        F.GetTimeline(id=1, before="1.0.1.1", limit=1),
        F.Timeline(re=1, items=[F.TimelineItem(at=1, post=post)], next="1.0.1.1"),
        *_moment_examples(),
    ]


def _creator_examples(sig: bytes) -> list[F.Frame]:
    """SPEC.md 15.12-15.14, every field present."""
    tip = F.TipIntent(
        tip_id="t", payer=1, payee=2, channel=1, post=1, amount=1, currency="USD", expires_at=1
    )
    mandate = F.MandateIntent(
        mandate_id="m",
        payer=1,
        payee=2,
        channel=1,
        amount=1,
        currency="USD",
        period=60,
        periods=2,
        expires_at=1,
    )
    receipt = F.CreatorReceipt(
        type="charge",
        ref="m",
        payer=1,
        payee=2,
        amount=1,
        currency="USD",
        channel=1,
        post=1,
        n=1,
        starts=1,
        ends=2,
        intent_hash=bytes(32),
        posted_at=1,
        sig=sig,
        intent_expires_at=1,
        period=60,
        periods=2,
        device=1,
        payer_sig=sig,
    )
    sub = F.SubscriptionInfo(
        mandate_id="m",
        subscriber=1,
        owner=2,
        channel=1,
        amount=1,
        currency="USD",
        period=60,
        periods=2,
        state="past_due",
        charged=1,
        paid_through=1,
        next_charge_at=1,
        created_at=1,
    )
    return [
        F.Tip(id=1, intent=tip, device=1, sig=sig),
        F.SetChannelPrice(id=1, channel=1, amount=1, currency="USD", period=60),
        F.GetChannelPrice(id=1, channel=1),
        F.Subscribe(id=1, intent=mandate, device=1, sig=sig),
        F.Unsubscribe(id=1, mandate_id="m"),
        F.GetSubscription(id=1, mandate_id="m"),
        F.ListSubscriptions(id=1, channel=1, after="m", limit=1),
        F.GetCreatorReceipts(id=1, ref="m", after=1, limit=1),
        F.GetPostTips(id=1, channel=1, seq=1),
        F.Tipped(re=1, receipt=receipt, replay=True),
        F.ChannelPrice(re=1, channel=1, owner=2, amount=1, currency="USD", period=60),
        F.Subscribed(re=1, subscription=sub, receipt=receipt, replay=True),
        F.SubscriptionAnswer(re=1, subscription=sub),
        F.Subscriptions(re=1, items=[sub], next="m"),
        F.CreatorReceipts(re=1, items=[receipt], next=1),
        F.PostTips(re=1, channel=1, seq=1, totals=[F.TipTotal(currency="USD", count=1, amount=1)]),
        F.TipEvent(receipt=receipt),
        F.SubscriptionEvent(subscription=sub, receipt=receipt),
    ]


def _moment_examples() -> list[F.Frame]:
    moment = F.MomentInfo(moment=1, author=1, ts=1, body=b"m")
    note = F.MomentComment(comment=1, moment=1, author=1, ts=1, kind="like", reply_to=1, body=b"c")
    return [
        F.PostMoment(id=1, audience=[2], all=False, body=b"m"),
        F.GetMoment(id=1, moment=1),
        F.GetMoments(id=1, author=1, before_ts=1, before=1, limit=1),
        F.GetMomentComments(id=1, moment=1, after=1, limit=1),
        F.CommentMoment(id=1, moment=1, reply_to=1, body=b"c"),
        F.LikeMoment(id=1, moment=1, body=b"l", remove=True),
        F.DeleteMoment(id=1, moment=1),
        F.DeleteMomentComment(id=1, moment=1, comment=1),
        F.MomentAnswer(re=1, info=moment, audience=[2]),
        F.Moments(re=1, items=[moment], next_ts=1, next=1),
        F.MomentComments(re=1, moment=1, items=[note], next=1),
        F.MomentCommented(re=1, comment=note),
        F.MomentEvent(info=moment, deleted=True),
        F.MomentCommentEvent(comment=note, deleted=True),
    ]


def test_the_valid_examples_cover_every_frame_type_and_decode() -> None:
    examples = _valid_examples()
    assert {type(e) for e in examples} == set(ALL_FRAMES)
    for frame in examples:
        assert _decoder_for(type(frame))(codec.encode(frame)) == frame


def test_limits_are_the_numbers_the_spec_quotes() -> None:
    assert L.MAX_FRAME_BYTES == 262_144
    assert L.MAX_BODY_BYTES == 65_536
    assert (L.MIN_HANDLE_CHARS, L.MAX_HANDLE_CHARS) == (3, 32)
    assert (L.MAX_NAME_CHARS, L.MAX_TITLE_CHARS, L.MAX_CMID_CHARS, L.MAX_KIND_CHARS) == (
        64,
        128,
        64,
        32,
    )
    assert (L.MAX_MEMBERS_PER_REQUEST, L.MAX_PAGE, L.MAX_PRESENCE_QUERY) == (256, 500, 256)
    assert L.MAX_ERROR_MESSAGE_CHARS == 256
    assert (L.MAX_U32, L.MAX_ID) == (2**32 - 1, 2**53 - 1)
    assert (L.ED25519_PUBLIC_KEY_BYTES, L.ED25519_SIGNATURE_BYTES, L.NONCE_BYTES) == (32, 64, 32)
    assert (L.X25519_PUBLIC_KEY_BYTES, L.MAX_PREKEY_BYTES) == (32, 1184)
    assert (L.MAX_ONE_TIME_PER_UPLOAD, L.MAX_ONE_TIME_PREKEYS) == (100, 500)
    assert (L.MAX_DEVICE_LIST_BYTES, L.MAX_TO_DEVICE_BYTES) == (65_536, 65_536)
    assert L.MAX_TO_DEVICE_QUEUE == 10_000


def test_string_limits_count_unicode_code_points_not_bytes() -> None:
    name = "é" * L.MAX_NAME_CHARS  # 128 UTF-8 bytes, 64 code points
    frame = F.Account(re=1, account=1, handle="abc", name=name, type="user")
    assert codec.decode_server(codec.encode(frame)) == frame
    assert (
        _code(
            codec.encode(F.Account(re=1, account=1, handle="abc", name=name + "é", type="user")),
            client=False,
        )
        == ErrorCode.BAD_FIELD
    )


@pytest.mark.parametrize(
    "handle",
    ["alice\n", "Alice", "al", "_alice", ".alice", "ali ce", "alicé", "a" * 33, "ali-ce"],
)
def test_handles_outside_the_pattern_are_bad_fields(handle: str) -> None:
    assert _code(_mp({"t": "lookup", "id": 1, "handle": handle})) == ErrorCode.BAD_FIELD


@pytest.mark.parametrize("handle", ["abc", "0ab", "a_b.c", "a..", "9" * 32, "bot_."])
def test_handles_inside_the_pattern_are_accepted(handle: str) -> None:
    assert codec.decode_client(_mp({"t": "lookup", "id": 1, "handle": handle})) == F.Lookup(
        id=1, handle=handle
    )


# --------------------------------------------------------------------------- error codes


def test_unknown_frame_type_is_rejected_with_unknown_frame() -> None:
    assert _code(_mp({"t": "shout", "id": 1})) == ErrorCode.UNKNOWN_FRAME
    assert _code(_mp({"t": "shout"}), client=False) == ErrorCode.UNKNOWN_FRAME


@pytest.mark.parametrize("cls", F.SERVER_FRAMES, ids=lambda c: c.__name__)
def test_a_server_frame_sent_by_a_client_is_an_unknown_frame(cls: type[F.Frame]) -> None:
    example = next(e for e in _valid_examples() if type(e) is cls)
    assert _code(codec.encode(example)) == ErrorCode.UNKNOWN_FRAME


@pytest.mark.parametrize("cls", F.CLIENT_FRAMES, ids=lambda c: c.__name__)
def test_a_client_frame_sent_by_the_server_is_an_unknown_frame(cls: type[F.Frame]) -> None:
    example = next(e for e in _valid_examples() if type(e) is cls)
    assert _code(codec.encode(example), client=False) == ErrorCode.UNKNOWN_FRAME


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.__name__)
def test_a_missing_required_field_is_bad_field(cls: type[F.Frame]) -> None:
    example = next(e for e in _valid_examples() if type(e) is cls)
    raw = msgspec.to_builtins(example, builtin_types=(bytes,))
    for field in MI.type_info(cls).fields:
        if field.required:
            partial = {k: v for k, v in raw.items() if k != field.encode_name}
            assert _code(_mp(partial), client=cls in F.CLIENT_FRAMES) == ErrorCode.BAD_FIELD


def _python_types(t: MI.Type) -> set[type]:
    """The Python types of the msgpack values a field accepts at all (ignoring bounds)."""
    if isinstance(t, MI.UnionType):
        return set().union(*(_python_types(u) for u in t.types))
    if isinstance(t, MI.LiteralType):
        return {type(v) for v in t.values}
    return {
        MI.IntType: {int},
        MI.StrType: {str},
        MI.BytesType: {bytes},
        MI.BoolType: {bool},
        MI.NoneType: {type(None)},
        MI.ListType: {list},
        MI.StructType: {dict},
    }[type(t)]


_CANDIDATES = (7, "x", b"x", True, 1.5, [1], {"a": 1}, None, msgspec.msgpack.Ext(1, b"x"))


@pytest.mark.parametrize("cls", ALL_FRAMES, ids=lambda c: c.__name__)
def test_a_wrongly_typed_field_is_bad_field(cls: type[F.Frame]) -> None:
    example = next(e for e in _valid_examples() if type(e) is cls)
    raw = msgspec.to_builtins(example, builtin_types=(bytes,))
    client = cls in F.CLIENT_FRAMES
    for field in MI.type_info(cls).fields:
        allowed = _python_types(field.type)
        wrong = [v for v in _CANDIDATES if type(v) not in allowed]
        assert len(wrong) >= 6
        for value in wrong:
            assert _code(_mp({**raw, field.encode_name: value}), client=client) == (
                ErrorCode.BAD_FIELD
            ), (field.name, value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", 0), ("id", 2**32), ("id", -1), ("device", 0), ("device", 2**53), ("id", 2**64 - 1)],
)
def test_an_out_of_range_field_is_bad_field(field: str, value: int) -> None:
    assert _code(_mp({**LOGIN, field: value})) == ErrorCode.BAD_FIELD


def test_null_for_a_field_that_is_not_optional_is_bad_field() -> None:
    assert _code(_mp({"t": "create_conv", "id": 1, "kind": "group", "title": None})) == (
        ErrorCode.BAD_FIELD
    )


def test_null_for_an_optional_field_means_absent() -> None:
    frame = codec.decode_client(_mp({"t": "fetch", "id": 1, "conv": 2, "before": None}))
    assert frame == F.Fetch(id=1, conv=2)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x00",
        b"\x90",
        _mp([LOGIN]),
        _mp("login"),
        _mp(None),
        _mp({}),
        _mp({"id": 1, "device": 7}),
        _mp({"t": 1, "id": 1}),
        _mp({"t": None}),
        _mp({"t": b"login", "id": 1}),
        _mp(LOGIN)[:-1],
        _mp(LOGIN) + b"\x00",
        _mp(LOGIN) + _mp(LOGIN),
        b"\x83\xa1t\xa6lookup\xa2id\x01\xa6handle\xa3ab\xff",
        b"\xdd\xff\xff\xff\xff",
        b"\xdf\xff\xff\xff\xff",
        b"\xdb\xff\xff\xff\xff",
    ],
)
def test_a_non_map_or_garbage_is_malformed(data: bytes) -> None:
    assert _code(data) == ErrorCode.MALFORMED
    assert _code(data, client=False) == ErrorCode.MALFORMED


def test_a_frame_over_the_size_limit_is_frame_too_large_before_parsing() -> None:
    padding = "x" * L.MAX_FRAME_BYTES
    data = _mp({**LOGIN, "pad": padding})
    assert len(data) > L.MAX_FRAME_BYTES
    assert _code(data) == ErrorCode.FRAME_TOO_LARGE
    assert _code(b"\xc1" * (L.MAX_FRAME_BYTES + 1), client=False) == ErrorCode.FRAME_TOO_LARGE


def test_a_frame_of_exactly_the_size_limit_is_decoded() -> None:
    base = _mp({**LOGIN, "pad": ""})
    pad = "x" * (L.MAX_FRAME_BYTES - len(base) - 4)  # str16 grows the header by 2, str32 by 4
    data = _mp({**LOGIN, "pad": pad})
    assert len(data) == L.MAX_FRAME_BYTES
    assert codec.decode_client(data) == F.Login(id=5, device=7, sig=bytes(64))


def test_the_size_limit_is_configurable_per_call() -> None:
    data = codec.encode(F.ListConvs(id=1))
    assert codec.decode_client(data, max_size=len(data)) == F.ListConvs(id=1)
    assert _code(data, max_size=len(data) - 1) == ErrorCode.FRAME_TOO_LARGE


def test_a_send_body_over_64_kib_is_bad_field() -> None:
    send = {"t": "send", "id": 1, "conv": 1, "cmid": "c", "kind": "text"}
    assert codec.decode_client(_mp({**send, "body": bytes(L.MAX_BODY_BYTES)})).body == bytes(
        L.MAX_BODY_BYTES
    )
    assert _code(_mp({**send, "body": bytes(L.MAX_BODY_BYTES + 1)})) == ErrorCode.BAD_FIELD


@pytest.mark.parametrize("depth", [100, 10_000, 200_000])
def test_deep_nesting_does_not_crash_the_decoder(depth: int) -> None:
    nested_in_unknown_field = (
        b"\x85\xa1t\xa5login\xa2id\x01\xa6device\x07\xa3sig\xc4\x40"
        + bytes(64)
        + b"\xa1z"
        + b"\x91" * depth
        + b"\x01"
    )
    for data in (
        nested_in_unknown_field,
        b"\x91" * depth + b"\x01",
        b"\x81\xa1a" * depth + b"\x01",
    ):
        for decode in (codec.decode_client, codec.decode_server):
            _outcome(decode, data)
        assert codec.request_id_of(data) in (0, 1)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    data = _mp({**LOGIN, "future": {"nested": [1, 2, {"x": b"y"}]}, "zz": None})
    assert codec.decode_client(data) == F.Login(id=5, device=7, sig=bytes(64))


def test_keys_may_come_in_any_order() -> None:
    data = _mp({"sig": bytes(64), "device": 7, "id": 5, "t": "login"})
    assert codec.decode_client(data) == F.Login(id=5, device=7, sig=bytes(64))


def test_decode_raises_protocol_error_with_a_message() -> None:
    with pytest.raises(ProtocolError, match="unknown frame type 'shout'"):
        codec.decode_client(_mp({"t": "shout"}))


# --------------------------------------------------------------------------- request_id_of


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (_mp({"t": "shout", "id": 9}), 9),
        (_mp({"t": "login", "id": 12}), 12),  # missing fields: still answerable
        (_mp({**LOGIN, "device": "x"}), 5),
        (_mp({"id": L.MAX_U32}), L.MAX_U32),
        (_mp({"id": L.MAX_U32 + 1}), 0),
        (_mp({"id": 0}), 0),
        (_mp({"id": -3}), 0),
        (_mp({"id": True}), 0),
        (_mp({"id": "9"}), 0),
        (_mp({"id": 9.0}), 0),
        (_mp([{"id": 9}]), 0),
        (b"", 0),
        (b"\xc1", 0),
        (_mp({"id": 9})[:-1], 0),
    ],
)
def test_request_id_of_recovers_the_id_of_an_undecodable_frame(data: bytes, expected: int) -> None:
    assert codec.request_id_of(data) == expected


# --------------------------------------------------------------------------- fuzz


@settings(max_examples=500)
@given(data=st.binary(max_size=512))
def test_random_bytes_never_raise_anything_but_protocol_error(data: bytes) -> None:
    for decode in (codec.decode_client, codec.decode_server):
        assert _outcome(decode, data) in (
            ErrorCode.MALFORMED,
            ErrorCode.UNKNOWN_FRAME,
            ErrorCode.BAD_FIELD,
            None,
        )
    assert isinstance(codec.request_id_of(data), int)


def _decode_any(data: bytes) -> None:
    for decode in (codec.decode_client, codec.decode_server):
        _outcome(decode, data)
    rid = codec.request_id_of(data)
    assert 0 <= rid <= L.MAX_U32


@settings(max_examples=300)
@given(frame=st.one_of(any_client_frame, any_server_frame), data=st.data())
def test_bit_flips_of_valid_frames_never_raise_anything_but_protocol_error(
    frame: F.Frame, data: Any
) -> None:
    encoded = bytearray(codec.encode(frame))
    flips = data.draw(st.lists(st.integers(0, len(encoded) * 8 - 1), min_size=1, max_size=8))
    for bit in flips:
        encoded[bit // 8] ^= 1 << (bit % 8)
    _decode_any(bytes(encoded))


@settings(max_examples=300)
@given(frame=st.one_of(any_client_frame, any_server_frame), data=st.data())
def test_truncated_valid_frames_are_malformed(frame: F.Frame, data: Any) -> None:
    encoded = codec.encode(frame)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    assert _code(encoded[:cut], client=type(frame) in F.CLIENT_FRAMES) == ErrorCode.MALFORMED


@settings(max_examples=300)
@given(frame=st.one_of(any_client_frame, any_server_frame), data=st.data())
def test_spliced_bytes_in_valid_frames_never_raise_anything_but_protocol_error(
    frame: F.Frame, data: Any
) -> None:
    encoded = codec.encode(frame)
    at = data.draw(st.integers(0, len(encoded)))
    junk = data.draw(st.binary(min_size=1, max_size=16))
    drop = data.draw(st.integers(0, 8))
    _decode_any(encoded[:at] + junk + encoded[at + drop :])


_ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(frame=st.one_of(any_client_frame, any_server_frame), data=st.data())
def test_field_type_swaps_never_raise_anything_but_protocol_error(
    frame: F.Frame, data: Any
) -> None:
    raw = msgspec.to_builtins(frame, builtin_types=(bytes,))
    key = data.draw(st.sampled_from(sorted(raw)))
    raw[key] = data.draw(_ANY_VALUE)
    encoded = _mp(raw)
    code = _outcome(_decoder_for(type(frame)), encoded)
    if key == "t":
        assert code in (ErrorCode.MALFORMED, ErrorCode.UNKNOWN_FRAME, ErrorCode.BAD_FIELD, None)
    else:
        assert code in (ErrorCode.BAD_FIELD, None)
    if code is None:  # a swap that happens to be valid is a valid frame
        assert _decoder_for(type(frame))(encoded) is not None
