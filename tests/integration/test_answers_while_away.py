"""An answer to an invitation reaches an inviter who was offline when it came (SPEC.md 18.3,
``list_answers``; 13 step 11): at its next login the SDK hands it over as ``InvitationAnswered``
(once), an accept in a signed group is completed then by the inviter's client, a decline is told
and dismissed, and an answer that no longer matters is not replayed. Real server, the SDK, and
``chat`` (tests/integration/test_chat_consent.py style)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from chatclient import Client, InvitationAnswered, KeyStore

from tests.conftest import make_settings, run_server
from tests.integration.test_chat_cli import Terminal, _register

FAST = {"frames_per_second": 100_000.0, "frame_burst": 100_000.0}
CONSENT = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}


def settings(tmp_path: Path) -> Any:
    return make_settings(tmp_path, limits=FAST, consent=CONSENT)


async def told(c: Client, quiet: float = 1.0) -> list[InvitationAnswered]:
    """The ``InvitationAnswered`` events ``c`` hands over until none came for ``quiet`` s."""
    got: list[InvitationAnswered] = []

    async def read() -> None:
        async for ev in c.events():
            if isinstance(ev, InvitationAnswered):
                got.append(ev)
                return

    while True:
        try:
            await asyncio.wait_for(read(), quiet)
        except TimeoutError:
            return got


async def members(c: Client, conv: int) -> list[int]:
    return sorted(m.account for m in (await c.conversation(conv)).members)


def client(url: str, tmp_path: Path, who: str) -> Client:
    return Client(url, KeyStore.open(tmp_path / f"{who}.key"))


async def register(url: str, tmp_path: Path, who: str) -> int:
    async with client(url, tmp_path, who) as c:
        await c.register(who, who.title())
        return c.account


async def test_an_accept_while_the_inviter_was_away_is_completed_at_its_next_login(
    tmp_path: Path,
) -> None:
    async with run_server(settings(tmp_path)) as server:
        url = server.url
        carol = await register(url, tmp_path, "carol")
        async with client(url, tmp_path, "alice") as alice:
            await alice.register("alice", "Alice")
            conv = (await alice.create("group", "signed club")).conv
            await alice.invite(conv, carol)  # a stranger: an invitation, not a seat
            assert await members(alice, conv) == [alice.account]
        # alice is away (no device connected) when carol says yes.
        async with client(url, tmp_path, "carol") as c:
            [inv] = [r async for r in c.contacts.requests()]
            await c.contacts.accept(inv.conv)
        async with client(url, tmp_path, "alice") as alice:
            [answered] = await told(alice)
            assert (answered.conv, answered.account, answered.handle) == (conv, carol, "carol")
            assert (answered.answer, answered.joined) == ("accept", False)
            await alice.invite(conv, answered.account)  # what chat and the web client do
            assert await members(alice, conv) == sorted([alice.account, carol])
            assert [a async for a in alice.contacts.answers()] == []  # resolved
        async with client(url, tmp_path, "alice") as alice:  # and never told again
            assert await told(alice) == []
            assert await members(alice, conv) == sorted([alice.account, carol])
        async with client(url, tmp_path, "carol") as c:
            assert conv in {i.conv for i in await c.conversations()}


async def test_a_decline_while_away_is_told_once_at_the_next_login(tmp_path: Path) -> None:
    async with run_server(settings(tmp_path)) as server:
        url = server.url
        bob = await register(url, tmp_path, "bob")
        async with client(url, tmp_path, "alice") as alice:
            await alice.register("alice", "Alice")
            conv = (await alice.create("group", "club")).conv
            await alice.invite(conv, bob)
        async with client(url, tmp_path, "bob") as b:
            await b.contacts.delete(conv)
        async with client(url, tmp_path, "alice") as alice:
            [answered] = await told(alice)
            assert (answered.conv, answered.account, answered.answer) == (conv, bob, "decline")
        async with client(url, tmp_path, "alice") as alice:  # dismissed: another login, nothing
            assert await told(alice) == []
            # Invited again and declined again while connected: told live, once, not later.
            await alice.invite(conv, bob)
            async with client(url, tmp_path, "bob") as b:
                await b.contacts.delete(conv)
            [live] = await told(alice)
            assert (live.account, live.answer) == (bob, "decline")
        async with client(url, tmp_path, "alice") as alice:
            assert await told(alice) == []


async def test_answers_that_no_longer_matter_are_not_replayed(tmp_path: Path) -> None:
    """Answered while the inviter was away, then: let in by another admin; declined, then
    invited again by another admin; or the inviter is no longer an admin there. None is told
    at the inviter's next login, and nobody else is told of alice's answers."""
    async with run_server(settings(tmp_path)) as server:
        url = server.url
        carol, erin, fred = [await register(url, tmp_path, w) for w in ("carol", "erin", "fred")]
        async with client(url, tmp_path, "dave") as dave:
            await dave.register("dave", "Dave")
            await dave.contacts.set_privacy(add_me="everyone")
        async with client(url, tmp_path, "bob") as bob:
            await bob.register("bob", "Bob")
            bobs = (await bob.create("group", "bob's")).conv
        async with client(url, tmp_path, "alice") as alice:
            await alice.register("alice", "Alice")
            await alice.contacts.set_privacy(add_me="everyone")
            conv = (await alice.create("group", "club")).conv
            dave_id = await alice.lookup("dave")
            await alice.invite(conv, dave_id)  # add_me everyone: a member at once
            await alice.set_role(conv, dave_id, "admin")
            await alice.invite(conv, carol)
            await alice.invite(conv, fred)
        async with client(url, tmp_path, "bob") as bob:
            alice_id = await bob.lookup("alice")
            await bob.invite(bobs, alice_id)
            await bob.set_role(bobs, alice_id, "admin")
        async with client(url, tmp_path, "alice") as alice:
            await alice.invite(bobs, erin)
        for who in ("carol", "erin"):
            async with client(url, tmp_path, who) as c:
                [r] = [r async for r in c.contacts.requests()]
                await c.contacts.accept(r.conv)
        async with client(url, tmp_path, "fred") as c:
            await c.contacts.delete(conv)
        async with client(url, tmp_path, "dave") as dave:
            assert [a async for a in dave.contacts.answers()] == []  # not dave's invitations
            await dave.invite(conv, carol)  # dave lets carol in (the server allows any admin)
            await dave.invite(conv, fred)  # and invites fred again: pending again
        async with client(url, tmp_path, "bob") as bob:
            assert [a async for a in bob.contacts.answers()] == []
            await bob.set_role(bobs, alice_id, "member")  # alice may no longer invite there
        async with client(url, tmp_path, "alice") as alice:
            assert await told(alice) == []
            assert [a async for a in alice.contacts.answers()] == []
            assert carol in await members(alice, conv)


async def test_chat_completes_an_accept_that_came_while_it_was_closed(tmp_path: Path) -> None:
    async with run_server(settings(tmp_path)) as server:
        url = server.url
        await _register(url, tmp_path / "alice.key", "alice", "Alice")
        await _register(url, tmp_path / "bob.key", "bob", "Bob")
        await _register(url, tmp_path / "carol.key", "carol", "Carol")
        alice = Terminal(url, tmp_path / "alice.key").start()
        await alice.wait_for("connected as @alice")
        alice.send('/group "Book club" @bob @carol')
        await alice.wait_for(r"\[Book club\] @carol is invited: added once @carol accepts")
        assert await alice.close() == alice.expected_status
        bob = Terminal(url, tmp_path / "bob.key").start()
        carol = Terminal(url, tmp_path / "carol.key").start()
        await bob.wait_for(r'^@alice invites you to the group "Book club"')
        await carol.wait_for(r'^@alice invites you to the group "Book club"')
        bob.send("/accept @alice")
        carol.send("/decline @alice")
        await bob.wait_for(r'accepted @alice\'s invitation to the group "Book club"')
        await carol.wait_for(r"declined")
        alice = Terminal(url, tmp_path / "alice.key").start()
        await alice.wait_for(r"\[Book club\] @bob accepted your invitation: adding them")
        await alice.wait_for(r"\[Book club\] @carol declined your invitation")
        await bob.wait_for(r"\[Book club\] \d\d:\d\d \* alice added bob")
        alice.send("/open 1", "welcome")
        await bob.wait_for(r"\[Book club\] \d\d:\d\d alice: welcome")
        assert await alice.close() == alice.expected_status
        alice = Terminal(url, tmp_path / "alice.key").start()  # told once: not again
        await alice.wait_for("connected as @alice")
        alice.send("/requests")
        await alice.wait_for("no requests or invitations waiting")
        assert "accepted your invitation" not in alice.text
        assert "declined your invitation" not in alice.text
        for t in (alice, bob, carol):
            assert await t.close() == t.expected_status
