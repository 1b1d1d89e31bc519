"""Issue 14.1-14.5 (the user's side of consent), each attack against a real server with chatd's
default privacy settings (``contacts``), on SQLite and on PostgreSQL (the consent store is one
module over both; what differs is the database under it):

* forced membership: one account putting a victim into 1,600 groups used to make the victim's
  ``list_convs`` answer 319,640 bytes, which the SDK refused, so ``Client()`` could not start;
  strangers' direct conversations did the same. Now they are invitations and requests, paged;
* presence, receipts and typing of anyone you could open a direct conversation with;
* a blocked account reaching you anyway (messages, adds, presence, keys, to-device items);
* a stranger draining a victim's one-time prekeys, or filling its to-device queue so a friend's
  key share is refused.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from chatclient import Client, KeyStore, RequestReceived
from chatproto import frames as F
from chatproto import kinds
from chatproto import limits as L
from chatproto.errors import ErrorCode
from conftest import make_settings, run_server
from testkit import Raw

DEFAULTS = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
"""chatd's own defaults (tests/conftest.py opens them up for the other suites)."""
FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
"""The per-connection rate limit is not what these tests are about."""
_cmids = itertools.count(1)
E = TypeVar("E")
SIG = bytes(range(64))


def settings(tmp_path: Path, db: str, **consent: Any) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent={**DEFAULTS, **consent})


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url, max_queue=None)  # reads late: must not stop reading (keepalive)
    await r.register(handle)
    return r


async def direct(a: Raw, b: Raw | int) -> int:
    other = b if isinstance(b, int) else b.account
    conv: F.Conv = await a.request(
        F.CreateConv(id=a.next_id(), kind="direct", members=[other]), F.Conv
    )
    return conv.info.conv


async def send(c: Raw, conv: int, s: str) -> Any:
    body = kinds.encode_content(kinds.Text(text=s))[1]
    return await c.request(
        F.Send(id=c.next_id(), conv=conv, cmid=f"m{next(_cmids)}", kind="text", body=body)
    )


async def convs(c: Raw) -> list[int]:
    got: F.Convs = await c.request(F.ListConvs(id=c.next_id()), F.Convs)
    return [i.conv for i in got.convs]


async def requests(c: Raw, after: int = 0, limit: int = 50) -> F.Requests:
    got: F.Requests = await c.request(
        F.ListRequests(id=c.next_id(), after=after, limit=limit), F.Requests
    )
    return got


async def answer(c: Raw, conv: int, what: str) -> Any:
    return await c.request(F.AnswerRequest(id=c.next_id(), conv=conv, answer=what))  # type: ignore[arg-type]


async def presence(c: Raw, *accounts: int) -> dict[int, F.PresenceInfo]:
    got: F.PresenceList = await c.request(
        F.GetPresence(id=c.next_id(), accounts=list(accounts)), F.PresenceList
    )
    return {p.account: p for p in got.presence}


async def first_event(c: Client, kind: type[E]) -> E:
    async with asyncio.timeout(10):
        async for event in c.events():
            if isinstance(event, kind):
                return event
    raise AssertionError(f"the client stopped before a {kind.__name__}")


def pushed(c: Raw, kind: type[F.Frame]) -> list[Any]:
    """Frames of ``kind`` the server pushed to ``c`` before its last answer (answers and events
    share one ordered socket, so an event published before a request was answered is here)."""
    return [f for f in c.backlog if isinstance(f, kind)]


_identities: dict[int, bytes] = {}


async def upload(r: Raw, kids: range) -> int:
    """Upload one-time prekeys ``kids`` (the same identity every time); the pool's size."""
    count: F.KeyCount = await r.request(
        F.UploadKeys(
            id=r.next_id(),
            identity_key=_identities.setdefault(r.device, os.urandom(32)),
            identity_sig=SIG,
            signed_prekey=F.SignedPrekey(kid=1, key=os.urandom(32), sig=SIG),
            one_time=[F.OneTimePrekey(kid=k, key=os.urandom(32)) for k in kids],
        ),
        F.KeyCount,
    )
    return count.one_time


# ------------------------------------------------------------------ 14.2: the lock-out


async def test_1600_forced_groups_arrive_as_invitations_and_the_victim_starts_in_under_a_second(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        keys = KeyStore.open(tmp_path / "victim.key")
        async with Client(server.url, keys, encrypt=False) as victim:
            await victim.register("victim", "Victim")
            victim_id = victim.account
        attacker = await user(server.url, "mallory")
        title = "x" * L.MAX_TITLE_CHARS
        for i in range(1600):
            await attacker.send_frame(
                F.CreateConv(id=attacker.next_id(), kind="group", title=title, members=[victim_id])
            )
            if i % 200 == 199:  # pace on the answers, 200 requests in flight at most
                await attacker.expect(F.Conv, timeout=60, re=attacker._ids)
        await attacker.request(F.GetPrivacy(id=attacker.next_id()), F.Privacy)

        started = time.monotonic()
        async with Client(server.url, KeyStore.open(tmp_path / "victim.key"), encrypt=False) as v:
            took = time.monotonic() - started
            assert await v.conversations() == []  # not a member of any of them
            seen = [r async for r in v.contacts.requests()]  # a page of 500 at a time
        assert took < 1.0, f"the client took {took:.2f}s to start"
        assert len(seen) == 1600
        assert {(r.kind, r.sender, r.title) for r in seen} == {("group", attacker.account, title)}
        await attacker.close()


async def test_an_invitation_joins_only_when_accepted(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        made: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", title="club", members=[bob.account]),
            F.Conv,
        )
        conv = made.info.conv
        assert made.info.member_count == 1
        event = await bob.expect(F.RequestEvent)
        assert (event.request.conv, event.request.kind) == (conv, "group")
        assert (await bob.request(F.GetConv(id=bob.next_id(), conv=conv), F.Error)).code == (
            ErrorCode.NOT_FOUND
        )
        await send(alice, conv, "before")
        await answer(bob, conv, "accept")
        joined = await bob.expect(F.Deliver, conv=conv)
        assert joined.kind == "system"  # bob's joined message: the first thing he gets
        assert conv in await convs(bob)
        await send(alice, conv, "after")
        after = await bob.expect(F.Deliver, conv=conv)
        assert (after.kind, after.seq) == ("text", joined.seq + 1)
        assert (await requests(bob)).requests == []
        # An invite by a stranger who is not an admin of the conversation does nothing.
        carol = await user(server.url, "carol")
        refused = await carol.request(F.Invite(id=carol.next_id(), conv=conv, account=bob.account))
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.NOT_FOUND
        await alice.close(), await bob.close(), await carol.close()


async def test_the_sdk_sees_a_request_arrive_live_and_accepts_it(db: str, tmp_path: Path) -> None:
    async with (
        run_server(settings(tmp_path, db)) as server,
        Client(server.url, encrypt=False) as bob,
    ):
        await bob.register("bob", "Bob")
        alice = await user(server.url, "alice")
        alice_conv = await direct(alice, bob.account)
        event = await first_event(bob, RequestReceived)
        assert (event.request.conv, event.request.sender) == (alice_conv, alice.account)
        assert alice_conv not in [c.conv for c in await bob.conversations()]
        await bob.contacts.accept(alice_conv)
        assert alice_conv in [c.conv for c in await bob.conversations()]
        assert await bob.contacts.contacts() == [alice.account]
        p = await bob.contacts.set_privacy(last_seen="nobody")
        assert (p.add_me, p.presence, p.last_seen) == ("contacts", "contacts", "nobody")
        await alice.close()


# ------------------------------------------------------------------ 14.1: message requests


async def test_a_strangers_direct_conversation_is_a_request_that_shows_nothing_of_the_recipient(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        conv = await direct(alice, bob)
        ack = await send(alice, conv, "hi, it's alice")
        assert isinstance(ack, F.Ack)
        # Bob can read it, apart from his conversations.
        assert (await bob.expect(F.Deliver, conv=conv, seq=ack.seq)).sender == alice.account
        assert conv not in await convs(bob)
        listed = (await requests(bob)).requests
        assert [(r.conv, r.kind, r.sender, r.handle) for r in listed] == [
            (conv, "direct", alice.account, "alice")
        ]
        # Nothing of bob reaches alice: no receipt, no typing, no presence.
        await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=ack.seq), F.Ok)
        await bob.send_frame(F.Typing(conv=conv, on=True))
        await bob.close()
        again = await Raw.open(server.url)
        await again.login(bob.device, bob.key)  # online again: alice is not told
        assert await presence(alice, bob.account) == {}
        assert pushed(alice, F.ReceiptEvent) == []
        assert pushed(alice, F.TypingEvent) == []
        assert pushed(alice, F.PresenceEvent) == []
        await alice.close(), await again.close()


async def test_a_receipt_sent_the_moment_a_request_arrives_does_not_reach_the_requester(
    db: str, tmp_path: Path
) -> None:
    """A client answers the conversation's first message with a ``delivered`` receipt at once
    (the web client did): the request must exist before that message is handed to anyone. It
    was recorded just after, and the requester got the receipt 20 times in 20."""
    async with run_server(settings(tmp_path, db)) as server:
        for i in range(10):
            alice, bob = await user(server.url, f"alice{i}"), await user(server.url, f"bob{i}")
            creating = asyncio.create_task(direct(alice, bob))
            first = await bob.expect(F.Deliver, seq=1)
            await bob.request(
                F.Receipt(id=bob.next_id(), conv=first.conv, type="delivered", seq=1), F.Ok
            )
            conv = await creating
            assert conv == first.conv
            await convs(alice)  # anything pushed to alice before this answer is in her backlog
            assert pushed(alice, F.ReceiptEvent) == [], i
            await alice.close(), await bob.close()


async def test_accepting_a_request_shows_each_to_the_other(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        conv = await direct(alice, bob)
        ack = await send(alice, conv, "hello")
        await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=ack.seq), F.Ok)
        await bob.send_frame(F.Typing(conv=conv, on=True))
        assert await presence(alice, bob.account) == {}  # bob is online, alice may not know
        assert pushed(alice, F.ReceiptEvent) == [] and pushed(alice, F.TypingEvent) == []

        assert isinstance(await answer(bob, conv, "accept"), F.Ok)
        assert conv in await convs(bob) and (await requests(bob)).requests == []
        await bob.request(F.Receipt(id=bob.next_id(), conv=conv, type="read", seq=ack.seq), F.Ok)
        assert (await alice.expect(F.ReceiptEvent, conv=conv)).account == bob.account
        await bob.send_frame(F.Typing(conv=conv, on=True))
        assert (await alice.expect(F.TypingEvent, conv=conv)).account == bob.account
        assert (await presence(alice, bob.account))[bob.account].online
        contacts: F.Contacts = await bob.request(F.ListContacts(id=bob.next_id()), F.Contacts)
        assert contacts.accounts == [alice.account]
        await alice.close(), await bob.close()


async def test_a_deleted_request_stops_the_strangers_messages_and_a_new_one_starts_fresh(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        conv = await direct(alice, bob)
        await answer(bob, conv, "delete")
        assert (await requests(bob)).requests == []
        ack = await send(alice, conv, "are you there?")  # alice is not told
        assert isinstance(ack, F.Ack)
        again = await direct(alice, bob)
        assert again != conv
        assert [r.conv for r in (await requests(bob)).requests] == [again]
        late = await send(alice, again, "second try")
        await bob.expect(F.Deliver, conv=again, seq=late.seq)
        # Everything pushed to bob before it is in his backlog: the deleted one sent nothing.
        assert [f.seq for f in pushed(bob, F.Deliver) if f.conv == conv] == [1]  # its "created"
        await alice.close(), await bob.close()


async def test_300_strangers_direct_conversations_leave_list_convs_empty_and_requests_paged(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        victim = await user(server.url, "victim")
        for i in range(300):
            s = await user(server.url, f"spam{i}")
            await direct(s, victim)
            await s.close()
        assert await convs(victim) == []
        first = await requests(victim, limit=200)
        rest = await requests(victim, after=first.requests[-1].conv, limit=200)
        assert (len(first.requests), first.more, len(rest.requests), rest.more) == (
            200,
            True,
            100,
            False,
        )
        await victim.close()


# ------------------------------------------------------------------ 14.3: block


async def test_a_blocked_account_cannot_message_add_watch_or_reach_the_blocker(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db, presence="everyone")) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        await upload(bob, range(5))
        conv = await direct(bob, alice)  # bob messaged first: alice is his contact
        assert isinstance(await send(alice, conv, "hi bob"), F.Ack)
        assert bob.account in await presence(alice, bob.account)

        await bob.request(F.Block(id=bob.next_id(), account=alice.account), F.Ok)
        refused = await send(alice, conv, "let me in")
        assert isinstance(refused, F.Error) and refused.code == ErrorCode.NOT_FOUND
        again = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="direct", members=[bob.account]), F.Error
        )
        assert again.code == ErrorCode.NOT_FOUND
        grp: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", members=[bob.account]), F.Conv
        )
        assert grp.info.member_count == 1
        await alice.request(F.Invite(id=alice.next_id(), conv=grp.info.conv, account=bob.account))
        assert (await requests(bob)).requests == []
        assert await presence(alice, bob.account) == {}
        claim = await alice.request(F.ClaimKeys(id=alice.next_id(), account=bob.account))
        assert isinstance(claim, F.Error) and claim.code == ErrorCode.NOT_FOUND
        item = await alice.request(F.ToDevice(id=alice.next_id(), device=bob.device, body=b"k"))
        assert isinstance(item, F.Error) and item.code == ErrorCode.NOT_FOUND
        blocked: F.Contacts = await bob.request(
            F.ListContacts(id=bob.next_id(), which="blocked"), F.Contacts
        )
        assert blocked.accounts == [alice.account]

        await bob.request(F.Unblock(id=bob.next_id(), account=alice.account), F.Ok)
        back = await send(alice, conv, "thanks")
        assert isinstance(back, F.Ack)
        assert (await bob.expect(F.Deliver, conv=conv, seq=back.seq)).sender == alice.account
        await alice.close(), await bob.close()


async def test_blocking_from_a_request_drops_it_and_blocks_the_sender(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        conv = await direct(alice, bob)
        await answer(bob, conv, "block")
        assert (await requests(bob)).requests == []
        refused = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="direct", members=[bob.account]), F.Error
        )
        assert refused.code == ErrorCode.NOT_FOUND
        await alice.close(), await bob.close()


# ------------------------------------------------------------------ 14.3/14.5: keys and queues


async def test_a_stranger_cannot_drain_one_time_prekeys_and_a_contact_still_gets_one(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        victim = await user(server.url, "victim")
        assert await upload(victim, range(100)) == 100
        mallory = await user(server.url, "mallory")
        with_one_time = 0
        for _ in range(100):
            got: F.Bundles = await mallory.request(
                F.ClaimKeys(id=mallory.next_id(), account=victim.account), F.Bundles
            )
            assert len(got.bundles) == 1 and got.bundles[0].signed_prekey is not None
            with_one_time += got.bundles[0].one_time is not None
        assert with_one_time == 10  # the strangers' budget per target per hour
        assert await upload(victim, range(0)) == 90
        friend = await user(server.url, "friend")
        await direct(victim, friend)  # the victim messaged first: a contact
        got = await friend.request(
            F.ClaimKeys(id=friend.next_id(), account=victim.account), F.Bundles
        )
        assert got.bundles[0].one_time is not None
        # And a claimer's own budget: 120 claims a minute.
        over = [
            await mallory.request(F.ClaimKeys(id=mallory.next_id(), account=friend.account))
            for _ in range(30)
        ]
        assert [type(x) for x in over[:20]] == [F.Bundles] * 20
        assert isinstance(over[-1], F.Error) and over[-1].code == ErrorCode.RATE_LIMITED
        await victim.close(), await mallory.close(), await friend.close()


async def test_a_stranger_cannot_fill_a_to_device_queue_so_a_friends_key_share_still_lands(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        victim, mallory = await user(server.url, "victim"), await user(server.url, "mallory")
        body = os.urandom(1024)
        answers = [
            await mallory.request(F.ToDevice(id=mallory.next_id(), device=victim.device, body=body))
            for _ in range(40)
        ]
        assert [type(a) for a in answers] == [F.Ok] * 32 + [F.Error] * 8
        assert answers[-1].code == ErrorCode.RATE_LIMITED
        friend = await user(server.url, "friend")
        await direct(victim, friend)
        share = await friend.request(
            F.ToDevice(id=friend.next_id(), device=victim.device, body=b"sender key"), F.Ok
        )
        assert isinstance(share, F.Ok)
        # Bytes count too: 16 legal 64 KiB items fill a stranger's 1 MiB.
        other = await user(server.url, "other")
        big = os.urandom(L.MAX_TO_DEVICE_BYTES)
        sizes = [
            await other.request(F.ToDevice(id=other.next_id(), device=victim.device, body=big))
            for _ in range(17)
        ]
        assert [type(a) for a in sizes] == [F.Ok] * 16 + [F.Error]
        await victim.close(), await mallory.close(), await friend.close(), await other.close()


async def test_many_throwaway_strangers_together_cannot_fill_a_device_queue(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        victim = await user(server.url, "victim")
        accepted = 0
        for i in range(8):  # 8 accounts x 30 items, each within its own quota of 32
            s = await user(server.url, f"throwaway{i}")
            for _ in range(30):
                got = await s.request(
                    F.ToDevice(id=s.next_id(), device=victim.device, body=os.urandom(512))
                )
                accepted += isinstance(got, F.Ok)
            await s.close()
        assert accepted == 200  # what all strangers may queue for one device per hour
        friend = await user(server.url, "friend")
        await direct(victim, friend)
        share = await friend.request(
            F.ToDevice(id=friend.next_id(), device=victim.device, body=b"sender key")
        )
        assert isinstance(share, F.Ok)
        await victim.close(), await friend.close()


# ------------------------------------------------------------------ 14.4: privacy settings


async def test_presence_and_last_seen_follow_the_targets_settings(db: str, tmp_path: Path) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
        carol = await user(server.url, "carol")
        await direct(bob, alice)  # alice is bob's contact
        grp: F.Conv = await bob.request(
            F.CreateConv(id=bob.next_id(), kind="group", members=[]), F.Conv
        )
        await carol.request(F.SetPrivacy(id=carol.next_id(), add_me="everyone"), F.Privacy)
        await bob.request(F.Invite(id=bob.next_id(), conv=grp.info.conv, account=carol.account))
        # Default (contacts): the contact sees bob, the group member does not.
        assert bob.account in await presence(alice, bob.account)
        assert await presence(carol, bob.account) == {}
        p: F.Privacy = await bob.request(
            F.SetPrivacy(id=bob.next_id(), presence="everyone", last_seen="nobody"), F.Privacy
        )
        assert (p.add_me, p.presence, p.last_seen) == ("contacts", "everyone", "nobody")
        await bob.close()  # bob goes offline: both are told, without when
        for watcher in (alice, carol):
            gone = await watcher.expect(F.PresenceEvent, account=bob.account, online=False)
            assert gone.last_seen == 0
            assert (await presence(watcher, bob.account))[bob.account].last_seen == 0
        bob2 = await Raw.open(server.url)
        await bob2.login(bob.device, bob.key)
        await bob2.request(F.SetPrivacy(id=bob2.next_id(), presence="nobody"), F.Privacy)
        assert await presence(alice, bob.account) == {}
        await alice.close(), await carol.close(), await bob2.close()
