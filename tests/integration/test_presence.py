"""Receipts, typing and presence as other members see them."""

from __future__ import annotations

import asyncio

from chatproto import frames as F
from chatproto.errors import ErrorCode
from conftest import RunningServer
from testkit import Raw


async def _group(url: str, n: int, kind: str = "group") -> tuple[list[Raw], int]:
    people = []
    for i in range(n):
        r = await Raw.open(url)
        await r.register(f"user{i}")
        people.append(r)
    owner = people[0]
    conv = (
        await owner.request(
            F.CreateConv(
                id=owner.next_id(), kind=kind, title="T", members=[p.account for p in people[1:]]
            ),  # type: ignore[arg-type]
            F.Conv,
        )
    ).info.conv
    return people, conv


async def test_read_receipt_moves_forward_only_and_is_shown_to_other_members(
    server: RunningServer,
) -> None:
    (a, b, c), conv = await _group(server.url, 3)
    for i in range(3):
        await a.request(
            F.Send(id=a.next_id(), conv=conv, cmid=f"m{i}", kind="text", body=b"x"), F.Ack
        )
    await b.request(F.Receipt(id=b.next_id(), conv=conv, type="read", seq=3), F.Ok)
    for other in (a, c):
        ev = await other.expect(F.ReceiptEvent, conv=conv)
        assert (ev.account, ev.device, ev.type, ev.seq) == (b.account, b.device, "read", 3)
    # Moving back changes nothing and announces nothing.
    await b.request(F.Receipt(id=b.next_id(), conv=conv, type="read", seq=2), F.Ok)
    info = (await b.request(F.GetConv(id=b.next_id(), conv=conv), F.Conv)).info
    assert info.read == 3
    try:
        await a.expect(F.ReceiptEvent, timeout=0.3)
        raise AssertionError("a backwards receipt was announced")
    except TimeoutError:
        pass
    # A cursor past the end is clamped to the last seq.
    await c.request(F.Receipt(id=c.next_id(), conv=conv, type="delivered", seq=10_000), F.Ok)
    info_c = (await c.request(F.GetConv(id=c.next_id(), conv=conv), F.Conv)).info
    assert info_c.delivered == info_c.last_seq == 4
    for r in (a, b, c):
        await r.close()


async def test_typing_reaches_other_members_and_is_never_stored(server: RunningServer) -> None:
    (a, b), conv = await _group(server.url, 2)
    await a.send_frame(F.Typing(conv=conv, on=True))
    ev = await b.expect(F.TypingEvent)
    assert (ev.conv, ev.account, ev.on) == (conv, a.account, True)
    page = await b.request(F.Fetch(id=b.next_id(), conv=conv), F.Messages)
    assert [m.kind for m in page.messages] == ["system"]  # only "created"
    for r in (a, b):
        await r.close()


async def test_typing_and_receipts_are_not_fanned_out_in_channels(server: RunningServer) -> None:
    (a, b), conv = await _group(server.url, 2, kind="channel")
    await a.request(F.Send(id=a.next_id(), conv=conv, cmid="p", kind="text", body=b"x"), F.Ack)
    await a.send_frame(F.Typing(conv=conv))
    await b.request(F.Receipt(id=b.next_id(), conv=conv, type="read", seq=2), F.Ok)
    for frame_type in (F.TypingEvent, F.ReceiptEvent):
        try:
            await b.expect(frame_type, timeout=0.2)
            raise AssertionError(f"{frame_type.__name__} fanned out in a channel")
        except TimeoutError:
            pass
    for r in (a, b):
        await r.close()


async def test_presence_online_offline_with_last_seen_to_contacts_only(
    server: RunningServer,
) -> None:
    a = await Raw.open(server.url)
    await a.register("alice")
    stranger = await Raw.open(server.url)
    await stranger.register("stranger")
    b = await Raw.open(server.url)
    await b.register("bob")
    await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv)
    # bob's second connection comes and goes: alice sees bob offline only when the last one closes.
    b2 = await Raw.open(server.url)
    await b2.login(b.device, b.key)
    await b.close()
    await asyncio.sleep(0.1)
    p = await a.request(
        F.GetPresence(id=a.next_id(), accounts=[b.account, stranger.account]), F.PresenceList
    )
    assert [(x.account, x.online) for x in p.presence] == [
        (b.account, True)
    ]  # stranger: not visible
    await b2.close()
    ev = await a.expect(F.PresenceEvent, account=b.account, online=False)
    assert ev.last_seen > 0
    p = await a.request(F.GetPresence(id=a.next_id(), accounts=[b.account]), F.PresenceList)
    assert p.presence[0].online is False
    assert p.presence[0].last_seen == ev.last_seen
    b3 = await Raw.open(server.url)
    await b3.login(b.device, b.key)
    assert (await a.expect(F.PresenceEvent, account=b.account)).online is True
    with_stranger = await stranger.request(
        F.GetPresence(id=stranger.next_id(), accounts=[a.account]), F.PresenceList
    )
    assert with_stranger.presence == []
    for r in (a, b3, stranger):
        await r.close()


async def test_receipt_for_a_conversation_you_are_not_in_is_not_found(
    server: RunningServer,
) -> None:
    (a, b), conv = await _group(server.url, 2)
    c = await Raw.open(server.url)
    await c.register("outsider")
    err = await c.request(F.Receipt(id=c.next_id(), conv=conv, type="read", seq=1), F.Error)
    assert err.code == ErrorCode.NOT_FOUND
    for r in (a, b, c):
        await r.close()
