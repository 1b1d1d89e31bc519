"""The inviter is told when an invitation is answered (SPEC.md 18.3), and told nothing more than
consent allows: an accept or a decline reaches the inviter's connections only; a block is never
told (the blocked inviter sees what a pending invitation shows: nothing); nobody else hears of it.
Real server, SQLite and PostgreSQL, the consent defaults; raw clients and the SDK (a signed
group, where the inviter's client lets the invitee in)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chatclient import Client, InvitationAnswered, Message
from chatproto import frames as F
from conftest import make_settings, run_server
from testkit import Raw

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}


def settings(tmp_path: Path, db: str) -> Any:
    return make_settings(tmp_path, store={"db": db}, limits=FAST, consent=CONSENT)


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def told(r: Raw) -> list[F.InvitationAnswered]:
    """The ``invitation_answered`` events ``r`` has received so far: a round trip first, so
    that anything pushed before it has arrived (one node: pushed before the answer's ``ok``)."""
    await r.request(F.GetPrivacy(id=r.next_id()), F.Privacy)
    got = [f for f in r.backlog if isinstance(f, F.InvitationAnswered)]
    r.backlog = [f for f in r.backlog if not isinstance(f, F.InvitationAnswered)]
    return got


async def test_accept_and_decline_are_told_to_the_inviter_a_block_is_not(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol, dave, eve = [
            await user(server.url, h) for h in ("ann", "bob", "cat", "dan", "eve")
        ]
        made: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", title="club"), F.Conv
        )
        conv = made.info.conv
        for r in (bob, carol, dave):  # strangers: each gets an invitation
            await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=r.account), F.Ok)
        assert await told(alice) == []  # nothing is told before an answer

        await bob.request(F.AnswerRequest(id=bob.next_id(), conv=conv, answer="accept"), F.Ok)
        [accepted] = await told(alice)
        assert (accepted.conv, accepted.account, accepted.handle) == (conv, bob.account, "bob")
        assert accepted.answer == "accept" and accepted.joined  # no signed log: joined at once

        await carol.request(F.AnswerRequest(id=carol.next_id(), conv=conv, answer="delete"), F.Ok)
        [declined] = await told(alice)
        assert (declined.account, declined.answer, declined.joined) == (
            carol.account,
            "decline",
            False,
        )

        # A block is never told: the inviter sees what an unanswered invitation shows.
        await dave.request(F.AnswerRequest(id=dave.next_id(), conv=conv, answer="block"), F.Ok)
        assert await told(alice) == []
        # Nobody but the inviter hears of any answer: not the new member, not a stranger.
        for r in (bob, carol, dave, eve):
            assert await told(r) == []
        # And nobody can answer for someone else, or twice.
        again = await bob.request(F.AnswerRequest(id=bob.next_id(), conv=conv, answer="delete"))
        assert isinstance(again, F.Error)
        forged = await eve.request(F.AnswerRequest(id=eve.next_id(), conv=conv, answer="accept"))
        assert isinstance(forged, F.Error)
        assert await told(alice) == []
        for r in (alice, bob, carol, dave, eve):
            await r.close()


async def _next(c: Client, kind: type[Any], timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, kind):
                return ev
    raise AssertionError("the event stream ended")


async def test_a_signed_groups_inviter_lets_the_invitee_in_once_told(
    db: str, tmp_path: Path
) -> None:
    """With a signed membership log the accept only marks the invitation: the inviter's client,
    told, sends the signed ``invite`` (before this event it had to be done again by hand)."""
    async with (
        run_server(settings(tmp_path, db)) as server,
        Client(server.url) as alice,
        Client(server.url) as bob,
    ):
        await alice.register("ann", "Ann")
        await bob.register("bob", "Bob")
        conv = (await alice.create("group", "signed club")).conv
        await alice.invite(conv, bob.account)  # a stranger: an invitation
        assert [m.account for m in (await alice.conversation(conv)).members] == [alice.account]
        await bob.contacts.accept(conv)
        answered = await _next(alice, InvitationAnswered)
        assert (answered.account, answered.answer, answered.joined) == (
            bob.account,
            "accept",
            False,
        )
        await alice.invite(conv, answered.account)
        await alice.send_text(conv, "welcome, bob")
        async with asyncio.timeout(15):
            async for ev in bob.events():
                if isinstance(ev, Message) and ev.conv == conv and ev.text == "welcome, bob":
                    break
