"""Answers to invitations kept for an inviter who was away (SPEC.md 18.3, ``list_answers``,
``dismiss_answer``): readable by the inviter only, while it may still act on them; never a
permission (the signed ``invite`` that completes an accept is checked as any invite); a thousand
answers keep one row; two admins racing to complete one accept let the invitee in once; a
removal racing the inviter's login leaves the invitee out. Real server, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatclient.errors import RequestError
from chatproto import frames as F
from chatproto.e2e.membership import MembershipError
from chatproto.errors import ErrorCode
from conftest import run_server
from security.test_invitation_answers import settings, user
from testkit import Raw


def client(url: str, tmp_path: Path, who: str) -> Client:
    return Client(url, KeyStore.open(tmp_path / f"{who}.key"))


async def answers(r: Raw) -> list[tuple[int, int, str]]:
    got: F.Answers = await r.request(F.ListAnswers(id=r.next_id()), F.Answers)
    return [(a.conv, a.account, a.answer) for a in got.answers]


async def test_kept_answers_are_the_inviters_alone_and_one_per_invitee(
    db: str, tmp_path: Path
) -> None:
    async with run_server(settings(tmp_path, db)) as server:
        alice, bob, carol, eve = [await user(server.url, h) for h in ("ann", "bob", "cat", "eve")]
        made: F.Conv = await alice.request(
            F.CreateConv(id=alice.next_id(), kind="group", title="club"), F.Conv
        )
        conv = made.info.conv
        await bob.request(F.SetPrivacy(id=bob.next_id(), add_me="everyone"), F.Privacy)
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=bob.account), F.Ok)
        await alice.request(
            F.SetRole(id=alice.next_id(), conv=conv, account=bob.account, role="admin"), F.Ok
        )
        # A thousand invitations declined: one kept answer, never a growing list.
        for _ in range(1000):
            await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=carol.account))
            await carol.request(
                F.AnswerRequest(id=carol.next_id(), conv=conv, answer="delete"), F.Ok
            )
        assert await answers(alice) == [(conv, carol.account, "decline")]
        # Nobody else reads it: not another admin, not the invitee, not a stranger; and a
        # stranger's dismiss (or a forged answer) changes nothing.
        for r in (bob, carol, eve):
            assert await answers(r) == []
            await r.request(F.DismissAnswer(id=r.next_id(), conv=conv, account=carol.account), F.Ok)
            forged = await r.request(F.AnswerRequest(id=r.next_id(), conv=conv, answer="accept"))
            assert isinstance(forged, F.Error)
        assert await answers(alice) == [(conv, carol.account, "decline")]
        listed: F.Members = await bob.request(F.ListMembers(id=bob.next_id(), conv=conv), F.Members)
        assert [m.account for m in listed.members] == [alice.account, bob.account]
        # A kept decline is no invitation: the invitee cannot accept it later.
        late = await carol.request(F.AnswerRequest(id=carol.next_id(), conv=conv, answer="accept"))
        assert isinstance(late, F.Error) and late.code == ErrorCode.NOT_FOUND
        # Dismissed by the inviter: gone for every device; dismissing again is harmless.
        for _ in range(2):
            await alice.request(
                F.DismissAnswer(id=alice.next_id(), conv=conv, account=carol.account), F.Ok
            )
            assert await answers(alice) == []
        # A demoted inviter no longer reads what it invited: the answer is not a to-do of its.
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=eve.account), F.Ok)
        await eve.request(F.AnswerRequest(id=eve.next_id(), conv=conv, answer="delete"), F.Ok)
        assert await answers(alice) == [(conv, eve.account, "decline")]
        await bob.request(F.Invite(id=bob.next_id(), conv=conv, account=eve.account), F.Ok)
        assert await answers(alice) == []  # invited again (by bob): the decline is old news
        for r in (alice, bob, carol, eve):
            await r.close()


async def test_an_accept_is_completed_once_and_a_demotion_leaves_it_undone(
    db: str, tmp_path: Path
) -> None:
    """Two admins complete the same kept accepts at once: one ``invite`` lets each invitee in,
    the other is refused (``CONFLICT``, or its SDK finds the account a member already). An account that never agreed stays out whatever is sent. An
    inviter demoted while it was away is not told at login, and its ``invite`` of the account
    is refused: the kept accept gave it nothing."""
    rounds = 3
    async with run_server(settings(tmp_path, db)) as server:
        url = server.url
        invitees = []
        for n in range(rounds + 2):
            async with client(url, tmp_path, f"inv{n}") as c:
                await c.register(f"inv{n}", "Invitee")
                invitees.append(c.account)
        ids = {}
        for who in ("alice", "dave"):
            async with client(url, tmp_path, who) as c:
                await c.register(who, who.title())
                await c.contacts.set_privacy(add_me="everyone")
                ids[who] = c.account
        async with client(url, tmp_path, "bob") as bob:
            await bob.register("bob", "Bob")
            conv = (await bob.create("group", "signed club")).conv
            for who in ("alice", "dave"):
                await bob.invite(conv, ids[who])
                await bob.set_role(conv, ids[who], "admin")
        async with client(url, tmp_path, "alice") as alice:
            for a in invitees:
                await alice.invite(conv, a)
        for n in range(rounds + 1):  # the last one never answers
            async with client(url, tmp_path, f"inv{n}") as c:
                await c.contacts.accept(conv)
        never, demoted_for = invitees[rounds + 1], invitees[rounds]
        async with (
            client(url, tmp_path, "alice") as alice,
            client(url, tmp_path, "dave") as dave,
        ):
            listed = [(a.account, a.answer) async for a in alice.contacts.answers()]
            assert listed == [(a, "accept") for a in invitees[: rounds + 1]]
            assert [a async for a in dave.contacts.answers()] == []
            for a in invitees[:rounds]:
                results = await asyncio.gather(
                    alice.invite(conv, a), dave.invite(conv, a), return_exceptions=True
                )
                refused = [r for r in results if isinstance(r, BaseException)]
                assert len(refused) == 1, results
                # The loser's server said CONFLICT; its SDK signs again on the new head and
                # finds the account a member already (its own check), or says CONFLICT.
                lost = refused[0]
                assert isinstance(lost, MembershipError) or (
                    isinstance(lost, RequestError) and lost.code == ErrorCode.CONFLICT
                ), lost
            await alice.invite(conv, never)  # never agreed: still only an invitation
            seats = [m.account for m in (await alice.conversation(conv)).members]
            for a in invitees[:rounds]:
                assert seats.count(a) == 1
            assert never not in seats
            assert [a.account async for a in alice.contacts.answers()] == [demoted_for]
        async with client(url, tmp_path, "bob") as bob:
            await bob.set_role(conv, ids["alice"], "member")
        async with client(url, tmp_path, "alice") as alice:
            assert [a async for a in alice.contacts.answers()] == []
            # Refused by its own SDK (the verified log says it is no admin), or by the server.
            with pytest.raises((RequestError, MembershipError)) as refused:
                await alice.invite(conv, demoted_for)
            if isinstance(refused.value, RequestError):
                assert refused.value.code == ErrorCode.FORBIDDEN
            seats = [m.account for m in (await alice.conversation(conv)).members]
            assert demoted_for not in seats and never not in seats
        async with client(url, tmp_path, "dave") as dave:  # another admin still may
            await dave.invite(conv, demoted_for)
            seats = [m.account for m in (await dave.conversation(conv)).members]
            assert seats.count(demoted_for) == 1
