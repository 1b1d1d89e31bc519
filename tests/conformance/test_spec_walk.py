"""protocol/SPEC.md sections 6-13, walked in order by a client that knows only the SPEC: raw
frames over a WebSocket (``tests.testkit.Raw``), no SDK. Each test is one section; each check
quotes the rule it holds the server to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pytest
from chatproto import auth, kinds
from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.conftest import RunningServer, make_settings, run_server
from tests.testkit import Raw

T = TypeVar("T", bound=F.Frame)
QUIET = 0.3
"""Seconds of silence that stand for "nothing is sent" (a negative check)."""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    settings = make_settings(tmp_path, limits={"auth_timeout": 1.0})
    async with run_server(settings) as s:
        yield s


async def user(url: str, handle: str) -> Raw:
    raw = await Raw.open(url)
    await raw.register(handle)
    return raw


async def next_frame(raw: Raw, timeout: float = 5.0) -> F.ServerFrame:
    """The next frame, in arrival order, presence notices aside (they interleave anywhere)."""
    while True:
        f = await raw.recv(timeout)
        if not isinstance(f, F.PresenceEvent):
            return f


async def nothing_arrives(raw: Raw) -> None:
    try:
        f = await next_frame(raw, QUIET)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected {f!r}")


async def error_of(raw: Raw, frame: Any) -> F.Error:
    reply = await raw.request(frame)
    assert isinstance(reply, F.Error), reply
    return reply


def text(s: str) -> tuple[str, bytes]:
    return kinds.encode_content(kinds.Text(text=s))


async def send(raw: Raw, conv: int, cmid: str, s: str = "hi") -> F.Ack | F.Error:
    kind, body = text(s)
    reply = await raw.request(F.Send(id=raw.next_id(), conv=conv, cmid=cmid, kind=kind, body=body))
    assert isinstance(reply, F.Ack | F.Error)
    return reply


async def direct(a: Raw, b: Raw) -> int:
    reply = await a.request(
        F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv
    )
    conv: int = reply.info.conv
    for member in (a, b):
        await member.expect(F.Deliver, conv=conv, seq=1)
    return conv


# ------------------------------------------------------------------ 1-5: transport, frames, errors


async def test_1_a_foreign_origin_is_refused_with_http_403(server: RunningServer) -> None:
    """1: an Origin not in the allow-list: HTTP 403, no connection (so no close code)."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            server.url,
            subprotocols=[Subprotocol("chatd.v1")],
            origin=Origin("https://evil.example"),
        )
    assert refused.value.response.status_code == 403
    raw = await Raw.open(server.url)  # no Origin: a non-browser client is accepted
    await raw.close()


async def test_3_errors_echo_the_id_when_one_can_be_read(server: RunningServer) -> None:
    """3 and 5: a frame that does not decode gets an error that echoes its id if the message
    is one msgpack map with an integer id in range, else re 0; the connection stays open."""
    raw = await Raw.open(server.url)
    await raw.ws.send(msgspec.msgpack.encode({"t": "frobnicate", "id": 7}))
    err = await raw.recv()
    assert isinstance(err, F.Error) and (err.re, err.code) == (7, ErrorCode.UNKNOWN_FRAME)
    await raw.ws.send(msgspec.msgpack.encode({"t": "lookup", "id": 8, "handle": 5}))
    err = await raw.recv()
    assert isinstance(err, F.Error) and (err.re, err.code) == (8, ErrorCode.BAD_FIELD)
    for garbage in (
        b"\xc1",  # not msgpack
        msgspec.msgpack.encode({"t": "lookup", "id": 9, "handle": "bob"}) + b"\x00",  # trailing
        msgspec.msgpack.encode({"t": "lookup", "id": 2**32, "handle": "bob"}),  # id out of range
        msgspec.msgpack.encode({"t": "lookup", "id": "9", "handle": "bob"}),  # id not an int
    ):
        await raw.ws.send(garbage)
        err = await raw.recv()
        assert isinstance(err, F.Error) and err.re == 0, err
    await raw.ws.send("a text message")
    err = await raw.recv()
    assert isinstance(err, F.Error) and (err.re, err.code) == (0, ErrorCode.MALFORMED)
    await raw.register("still_open")  # codes 1-4 leave the connection open


# ------------------------------------------------------------------ 6: authentication


async def test_6_authentication(server: RunningServer) -> None:
    raw = await Raw.open(server.url)
    c = raw.challenge
    # 6.1.1: the first frame; a 32-byte nonce; the server's name (the default: chatd.local).
    assert c.server == "chatd.local" and len(c.nonce) == 32 and c.expires_in_ms == 1000
    # Before authentication anything else is AUTH_REQUIRED, and the connection stays open.
    err = await error_of(raw, F.ListConvs(id=raw.next_id()))
    assert err.code == ErrorCode.AUTH_REQUIRED
    # A signature made for another server's name fails (the payload binds it).
    wrong = raw.key.sign(auth.login_payload("other.example", c.nonce, raw.key.public_key))
    register = F.Register(
        id=raw.next_id(),
        handle="alice",
        name="Alice",
        device_key=raw.key.public_key,
        device_name="raw",
        sig=wrong,
    )
    assert (await error_of(raw, register)).code == ErrorCode.AUTH_FAILED
    # 6.1.4: the same connection and challenge may try again.
    welcome = await raw.register("alice")
    assert (welcome.handle, welcome.account, welcome.device) == ("alice", 1, 1)
    err = await error_of(raw, F.Login(id=raw.next_id(), device=1, sig=raw.login_sig()))
    assert err.code == ErrorCode.ALREADY_AUTHENTICATED
    # A login captured on one connection does not work on another (another nonce).
    other = await Raw.open(server.url)
    replay = F.Login(id=other.next_id(), device=1, sig=raw.login_sig())
    assert (await error_of(other, replay)).code == ErrorCode.AUTH_FAILED
    await other.login(1, raw.key)  # its own signature does
    # 3 failed attempts: the error, then close 1008.
    third = await Raw.open(server.url)
    stranger = SigningKey.generate()
    for _ in range(3):
        bad = F.Login(id=third.next_id(), device=1, sig=third.login_sig(stranger))
        assert (await error_of(third, bad)).code == ErrorCode.AUTH_FAILED
    assert await third.until_closed() == 1008
    # The deadline: not authenticated within expires_in_ms -> 1008.
    idle = await Raw.open(server.url)
    assert await idle.until_closed(5) == 1008
    # HANDLE_TAKEN.
    fourth = await Raw.open(server.url)
    taken = F.Register(
        id=fourth.next_id(),
        handle="alice",
        name="Another Alice",
        device_key=fourth.key.public_key,
        device_name="raw",
        sig=fourth.login_sig(),
    )
    assert (await error_of(fourth, taken)).code == ErrorCode.HANDLE_TAKEN


# ------------------------------------------------------------------ 7: messages


async def test_7_messages_send_ack_idempotency_sync_fetch(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    conv = await direct(alice, bob)
    # 7.2: ack only to the sender's connection, deliver to the others; seqs gapless from 1.
    ack = await send(alice, conv, "c1", "one")
    assert isinstance(ack, F.Ack) and (ack.conv, ack.cmid, ack.seq) == (conv, "c1", 2)
    d = await bob.expect(F.Deliver, conv=conv, seq=2)
    assert (d.sender, d.device, d.cmid, d.kind) == (alice.account, alice.device, "c1", "text")
    assert d.ts == ack.ts
    # 7.3: the same cmid with the same content: the first ack again, nothing stored again.
    again = await send(alice, conv, "c1", "one")
    assert again == F.Ack(re=again.re, conv=conv, cmid="c1", seq=2, ts=ack.ts)
    conflict = await send(alice, conv, "c1", "another body")
    assert isinstance(conflict, F.Error) and conflict.code == ErrorCode.CONFLICT
    await nothing_arrives(bob)
    # The same cmid from another device is another message.
    assert isinstance(ack2 := await send(bob, conv, "c1", "two"), F.Ack) and ack2.seq == 3
    await alice.expect(F.Deliver, conv=conv, seq=3)
    # 7.4: sync from a cursor: delivers in order, then synced with the highest seq sent.
    await alice.send_frame(F.Sync(id=100, conv=conv, after=1))
    got = [await next_frame(alice) for _ in range(3)]
    assert [type(f).__name__ for f in got] == ["Deliver", "Deliver", "Synced"]
    assert [f.seq for f in got] == [2, 3, 3]
    # Nothing newer than the cursor: the conversation's highest seq ...
    synced = await alice.request(F.Sync(id=alice.next_id(), conv=conv, after=3), F.Synced)
    assert synced.seq == 3
    # ... also when the client's cursor is past the end, so that it can tell.
    synced = await alice.request(F.Sync(id=alice.next_id(), conv=conv, after=40), F.Synced)
    assert synced.seq == 3
    ack4 = await send(bob, conv, "c2", "live after that sync")
    assert isinstance(ack4, F.Ack)
    assert (await alice.expect(F.Deliver, conv=conv)).seq == ack4.seq == 4  # not held back
    # 7.5: fetch pages forward and backward; an empty range is INVALID.
    page = await alice.request(F.Fetch(id=alice.next_id(), conv=conv, after=0, limit=2), F.Messages)
    assert [m.seq for m in page.messages] == [1, 2] and page.more
    page = await alice.request(
        F.Fetch(id=alice.next_id(), conv=conv, after=0, before=4, limit=2), F.Messages
    )
    assert [m.seq for m in page.messages] == [2, 3] and page.more
    page = await alice.request(
        F.Fetch(id=alice.next_id(), conv=conv, after=4, limit=10), F.Messages
    )
    assert page.messages == [] and not page.more
    err = await error_of(alice, F.Fetch(id=alice.next_id(), conv=conv, after=3, before=4))
    assert err.code == ErrorCode.INVALID
    # 7.6: system messages: sender 0, device 0, no cmid; seq 1 is `created`.
    first = (
        await alice.request(F.Fetch(id=alice.next_id(), conv=conv, limit=1), F.Messages)
    ).messages[0]
    assert (first.seq, first.kind, first.sender, first.device, first.cmid) == (
        1,
        "system",
        0,
        0,
        None,
    )
    assert kinds.decode_content("system", first.body) == kinds.SystemEvent(
        event="created", actor=alice.account
    )


# ------------------------------------------------------------------ 8: conversations


async def test_8_conversations_roles_visibility_and_the_order_of_answers(
    server: RunningServer,
) -> None:
    alice, bob, carol = [await user(server.url, h) for h in ("alice", "bob", "carol")]
    # 7.6/8.1: the creator's connection gets the `created` deliver before its `conv` answer.
    await alice.send_frame(F.CreateConv(id=50, kind="group", title="Team", members=[bob.account]))
    first, second = await next_frame(alice), await next_frame(alice)
    assert isinstance(first, F.Deliver) and first.seq == 1 and first.kind == "system"
    assert isinstance(second, F.Conv) and second.re == 50
    group = second.info
    assert (group.kind, group.title, group.role, group.last_seq) == ("group", "Team", "owner", 1)
    assert {m.account for m in group.members} == {alice.account, bob.account}
    # An inviter gets the `joined` deliver, then `ok`.
    await alice.send_frame(F.Invite(id=51, conv=group.conv, account=carol.account))
    joined, ok = await next_frame(alice), await next_frame(alice)
    assert isinstance(joined, F.Deliver) and joined.seq == 2
    assert ok == F.Ok(re=51)
    assert (await carol.expect(F.Deliver, conv=group.conv, seq=2)).kind == "system"
    # 8.2: roles.
    err = await error_of(bob, F.Invite(id=bob.next_id(), conv=group.conv, account=carol.account))
    assert err.code == ErrorCode.FORBIDDEN
    err = await error_of(
        alice, F.Invite(id=alice.next_id(), conv=group.conv, account=carol.account)
    )
    assert err.code == ErrorCode.CONFLICT  # already a member
    # 8.1: a channel member may not send; a direct conversation cannot be managed.
    channel = (
        await alice.request(
            F.CreateConv(id=alice.next_id(), kind="channel", title="News", members=[bob.account]),
            F.Conv,
        )
    ).info.conv
    result = await send(bob, channel, "b1")
    assert isinstance(result, F.Error) and result.code == ErrorCode.FORBIDDEN
    dm = await direct(alice, carol)
    err = await error_of(alice, F.Invite(id=alice.next_id(), conv=dm, account=bob.account))
    assert err.code == ErrorCode.INVALID
    # 8.3: a conversation the caller is not in is NOT_FOUND, as is one that does not exist.
    for conv in (dm, 9999):
        for frame in (
            F.GetConv(id=bob.next_id(), conv=conv),
            F.Sync(id=bob.next_id(), conv=conv),
            F.Fetch(id=bob.next_id(), conv=conv),
            F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=1),
        ):
            assert (await error_of(bob, frame)).code == ErrorCode.NOT_FOUND
        result = await send(bob, conv, f"x{conv}")
        assert isinstance(result, F.Error) and result.code == ErrorCode.NOT_FOUND
    # 8.4: list_convs without members, get_conv with them.
    listed = await bob.request(F.ListConvs(id=bob.next_id()), F.Convs)
    assert sorted(i.conv for i in listed.convs) == sorted([group.conv, channel])
    assert all(i.members == [] for i in listed.convs)


# ------------------------------------------------------------------ 9: kinds


async def test_9_kinds_plain_registered_experimental_and_server_only(
    server: RunningServer,
) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    conv = await direct(alice, bob)
    kind, body = text("plain, outside e2e")
    for i, (k, expected) in enumerate(
        [(kind, F.Ack), ("x-test", F.Ack), ("e2e", F.Ack), ("system", F.Error), ("nope", F.Error)]
    ):
        reply = await alice.request(
            F.Send(id=alice.next_id(), conv=conv, cmid=f"k{i}", kind=k, body=body)
        )
        assert isinstance(reply, expected), (k, reply)
        if isinstance(reply, F.Error):
            assert reply.code == ErrorCode.INVALID
    d = await bob.expect(F.Deliver, conv=conv, seq=2)
    assert d.kind == "text"
    assert kinds.decode_content(d.kind, d.body) == kinds.Text(text="plain, outside e2e")


# ------------------------------------------------------------------ 10: receipts, typing, presence


async def test_10_receipts_typing_presence(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    conv = await direct(alice, bob)
    await send(alice, conv, "m1")
    await bob.expect(F.Deliver, conv=conv, seq=2)
    # 10.1: a receipt moves the cursor; the peer gets receipt_event, the mover does not.
    await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=2), F.Ok)
    ev = await alice.expect(F.ReceiptEvent, conv=conv)
    assert (ev.account, ev.device, ev.type, ev.seq) == (bob.account, bob.device, "read", 2)
    # Lower or equal: ok, nothing pushed.
    await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=1), F.Ok)
    await nothing_arrives(alice)
    # Past the end: taken as the last seq, for the cursor and the event alike.
    await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="delivered", seq=99), F.Ok)
    ev = await alice.expect(F.ReceiptEvent, conv=conv)
    assert (ev.type, ev.seq) == ("delivered", 2)
    info = (await bob.request(F.GetConv(id=bob.next_id(), conv=conv), F.Conv)).info
    assert (info.read, info.delivered) == (2, 2)
    # 10.2: typing is pushed to the other members and never answered ...
    await alice.send_frame(F.Typing(conv=conv, on=True))
    assert await bob.expect(F.TypingEvent) == F.TypingEvent(
        conv=conv, account=alice.account, on=True
    )
    # ... not even for a conversation that does not exist or that the caller is not in.
    carol = await user(server.url, "carol")
    for missing in (conv, 9999):
        await carol.send_frame(F.Typing(conv=missing, on=True))
    await carol.send_frame(F.ListConvs(id=77))
    assert isinstance(answer := await next_frame(carol), F.Convs) and answer.re == 77
    await nothing_arrives(alice)
    # 10.3: presence of accounts that share a conversation; others are left out.
    listing = await alice.request(
        F.GetPresence(id=alice.next_id(), accounts=[bob.account, carol.account]), F.PresenceList
    )
    assert [(p.account, p.online) for p in listing.presence] == [(bob.account, True)]
    await bob.close()
    gone = await alice.expect(F.PresenceEvent, account=bob.account, online=False)
    assert gone.last_seen > 0


# ------------------------------------------------------------------ 11-12: limits, close codes


async def test_11_12_rate_limit_and_size_limit(server: RunningServer) -> None:
    alice = await user(server.url, "alice")
    # 11.1: past the burst, frames are refused with RATE_LIMITED (their id), typing silently.
    for i in range(1, 151):
        await alice.send_frame(F.ListConvs(id=1000 + i))
        await alice.send_frame(F.Typing(conv=9999, on=True))
    answers = [await next_frame(alice) for _ in range(150)]
    limited = [f for f in answers if isinstance(f, F.Error)]
    assert limited and all(f.code == ErrorCode.RATE_LIMITED and f.re > 1000 for f in limited)
    assert sorted(f.re for f in answers) == [1000 + i for i in range(1, 151)]
    await nothing_arrives(alice)
    # 12: a message over 262 144 bytes closes the connection with 1009.
    await alice.ws.send(b"\x00" * 262_145)
    assert await alice.until_closed() == 1009


# ------------------------------------------------------------------ 13: the client algorithm


async def test_13_a_client_reconnects_catches_up_and_resends(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    conv = await direct(alice, bob)
    cursor = 1
    key, device = alice.key, alice.device
    await alice.close()
    for i in range(3):  # sent while alice is away
        await send(bob, conv, f"away{i}")
    # Connect, check the server's name, log in, list, sync from the cursor.
    alice = await Raw.open(server.url)
    assert alice.challenge.server == "chatd.local"
    await alice.login(device, key)
    convs = await alice.request(F.ListConvs(id=alice.next_id()), F.Convs)
    assert [(i.conv, i.last_seq) for i in convs.convs] == [(conv, 4)]
    await alice.send_frame(F.Sync(id=alice.next_id(), conv=conv, after=cursor))
    while not isinstance(f := await next_frame(alice), F.Synced):
        assert isinstance(f, F.Deliver) and f.seq == cursor + 1
        cursor = f.seq
    assert cursor == f.seq == 4
    # An unacked send is resent with its cmid after a reconnect: stored once.
    kind, body = text("maybe lost")
    await alice.send_frame(F.Send(id=alice.next_id(), conv=conv, cmid="u1", kind=kind, body=body))
    await alice.ws.close()  # before reading the ack
    alice = await Raw.open(server.url)
    await alice.login(device, key)
    ack = await send(alice, conv, "u1", "maybe lost")
    assert isinstance(ack, F.Ack) and ack.seq == 5
    seqs = [(await bob.expect(F.Deliver, conv=conv)).seq]
    await nothing_arrives(bob)
    assert seqs == [5]
    # 13.7: receipts after showing; an old seq is harmless.
    await alice.request(F.Receipt(id=alice.next_id(), conv=conv, type="read", seq=5), F.Ok)
    await alice.request(F.Receipt(id=alice.next_id(), conv=conv, type="read", seq=3), F.Ok)
    await asyncio.sleep(0)
