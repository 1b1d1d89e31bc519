"""``chat`` on a server with chatd's real consent defaults (SPEC.md 18): the README's two
terminals, message requests and invitations answered, blocks, privacy, and ``/newbot``. Every
other chat test runs with open consent (tests/conftest.py OPEN_CONSENT); these do not."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatclient.bots import Bot, Router
from chatclient.tui import Answer, Block, ContactList, NewBot, Privacy, Requests, parse_command

from chatd.settings import ConsentSettings
from tests.conftest import make_settings, run_server
from tests.integration.test_chat_cli import Terminal, _register

DEFAULTS = {k: getattr(ConsentSettings(), k) for k in ("add_me", "presence", "last_seen")}
"""chatd's own defaults, as ``chatd serve`` runs without a config (contacts, contacts, contacts)."""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/requests", Requests()),
        ("/accept @Alice", Answer("accept", handle="alice")),
        ("/accept 2", Answer("accept", index=2)),
        ("/decline @alice", Answer("delete", handle="alice")),
        ("/decline 1", Answer("delete", index=1)),
        ("/block @alice", Block("alice")),
        ("/unblock alice", Block("alice", blocked=False)),
        ("/contacts", ContactList()),
        ("/privacy", Privacy()),
        ("/privacy last_seen nobody", Privacy("last_seen", "nobody")),
        ("/privacy find_me nobody", Privacy("find_me", "nobody")),
        ('/newbot echo_bot "Echo"', NewBot("echo_bot", "Echo")),
        ('/newbot @echo_bot "Echo" bots/e.key', NewBot("echo_bot", "Echo", "bots/e.key")),
    ],
)
def test_parse_consent_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/accept", "usage: /accept @handle | N"),
        ("/accept 0", "usage: /accept @handle | N"),
        ("/block", "usage: /block @handle"),
        ("/privacy add_me friends", "usage: /privacy"),
        ("/privacy typing nobody", "usage: /privacy"),
        ("/newbot echo_bot", "usage: /newbot HANDLE"),
    ],
)
def test_parse_consent_errors(line: str, message: str) -> None:
    from chatclient.tui import ParseError

    with pytest.raises(ParseError, match=re.escape(message)):
        parse_command(line)


def test_decline_still_takes_a_payment_request() -> None:
    from chatclient.tui import Decline

    assert parse_command("/decline rq_abc") == Decline("rq_abc")


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with run_server(make_settings(tmp_path, consent=DEFAULTS)) as server:
        yield server.url


async def _two(url: str, tmp_path: Path) -> tuple[Terminal, Terminal]:
    await _register(url, tmp_path / "alice.key", "alice", "Alice")
    await _register(url, tmp_path / "bob.key", "bob", "Bob")
    alice = Terminal(url, tmp_path / "alice.key").start()
    bob = Terminal(url, tmp_path / "bob.key").start()
    await alice.wait_for("connected as @alice")
    await bob.wait_for("connected as @bob")
    return alice, bob


async def test_readme_two_terminals_on_the_default_config(url: str, tmp_path: Path) -> None:
    """README "Chat in two terminals", line by line, on chatd's defaults."""
    alice, bob = await _two(url, tmp_path)
    alice.send("/dm @bob")
    await alice.wait_for(r"now in \[@bob\]")
    await alice.wait_for(r"your messages reach @bob as a message request, pending until @bob")
    alice.send("hello bob")
    await bob.wait_for(
        r"^@alice wants to message you: /accept @alice, /decline @alice or /block @alice$"
    )
    await bob.wait_for(r"\[@alice\] \d\d:\d\d alice: hello bob")
    bob.send("/accept @alice")
    await bob.wait_for(r"accepted @alice's message request")
    await bob.wait_for(r"now in \[@alice\]")
    bob.send("hi alice")
    await alice.wait_for(r"\[@bob\] \d\d:\d\d bob: hi alice")
    alice.send("how are you?")
    await bob.wait_for(r"\[@alice\] \d\d:\d\d alice: how are you\?")
    bob.send("/requests", "/contacts")
    await bob.wait_for("no requests or invitations waiting")
    await bob.wait_for("^contacts: @alice$")
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status
    assert "error" not in alice.text + bob.text
    assert bob.text.count("alice: hello bob") == 1  # shown as it came, not again on /accept


async def test_requests_listed_and_declined_by_number(url: str, tmp_path: Path) -> None:
    alice, bob = await _two(url, tmp_path)
    alice.send("/dm @bob", "knock knock")
    await bob.wait_for("@alice wants to message you")
    bob.send("/dm @alice")
    await bob.wait_for(r"@alice's message request is waiting: /accept @alice before you reply")
    bob.send("/requests")
    await bob.wait_for(r"^   1\. @alice wants to message you$")
    bob.send("/decline 1")
    await bob.wait_for(r"declined @alice's message request \(they are not told\)")
    bob.expected_status = 1  # nothing left to accept: a script with a failed command exits 1
    bob.send("/requests", "/accept @alice")
    await bob.wait_for("no requests or invitations waiting")
    await bob.wait_for(r"no request from @alice is waiting \(/requests lists them\)")
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status


async def test_blocked_stranger_cannot_message(url: str, tmp_path: Path) -> None:
    alice, bob = await _two(url, tmp_path)
    alice.send("/dm @bob", "first")
    await bob.wait_for("@alice wants to message you")
    bob.send("/block @alice")
    await bob.wait_for(r"@alice blocked: no messages, invitations or presence from them")
    alice.send("second")
    # Stored (and delivered to nobody), or refused when alice's client needs bob's keys again:
    # either way alice's client is done with it, and bob would have it by now.
    await alice.wait_for(r"\[@bob\] \d\d:\d\d alice: second|not sent to \[@bob\]")
    alice.expected_status = 1  # blocked: NOT_FOUND: a script with a failed command exits 1
    alice.send("/dm @bob")
    await alice.wait_for("error: NOT_FOUND")  # as for an account that does not exist
    bob.send("/requests", "/contacts")
    await bob.wait_for("^blocked: @alice$")
    assert "second" not in bob.text
    assert "no requests or invitations waiting" in bob.text
    bob.send("/unblock @alice")
    await bob.wait_for("@alice unblocked")
    alice.send("/dm @bob")
    await alice.wait_for(r"now in \[@bob\]", start=alice.text.rfind("NOT_FOUND"))
    alice.send("again")
    await bob.wait_for(r"@alice wants to message you", start=bob.text.rfind("unblocked"))
    await bob.wait_for(r"alice: again")
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status


async def test_group_invitation_accepted(url: str, tmp_path: Path) -> None:
    alice, bob = await _two(url, tmp_path)
    alice.send('/group "Book club" @bob')
    await alice.wait_for(r"now in \[Book club\]")
    await alice.wait_for(r"\[Book club\] @bob is invited: added once @bob accepts")
    await bob.wait_for(
        r'^@alice invites you to the group "Book club": /accept @alice, /decline @alice'
    )
    bob.send("/accept @alice")
    await bob.wait_for(r'accepted @alice\'s invitation to the group "Book club"')
    # Alice is told, and her chat sends the signed invite itself (SPEC.md 18.3): no second
    # /invite by hand.
    await alice.wait_for(r"\[Book club\] @bob accepted your invitation: adding them")
    await bob.wait_for(r"\[Book club\] \d\d:\d\d \* alice added bob")
    await alice.wait_for(r"\[Book club\] \d\d:\d\d \* alice added bob")
    alice.send("welcome")
    await bob.wait_for(r"\[Book club\] \d\d:\d\d alice: welcome")
    bob.send("/open 1", "thanks")
    await alice.wait_for(r"\[Book club\] \d\d:\d\d bob: thanks")
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status


async def test_privacy_changes_what_a_stranger_sees(url: str, tmp_path: Path) -> None:
    alice, bob = await _two(url, tmp_path)
    bob.send("/privacy")
    await bob.wait_for(r"presence   contacts  who may see you online")
    alice.send("/dm @bob", "/who")
    await alice.wait_for(r"^  bob  member  presence hidden$")
    bob.send("/privacy presence everyone")
    await bob.wait_for(r"presence   everyone  who may see you online")
    mark = len(alice.text)
    alice.send("/who")
    await alice.wait_for(r"^  bob  member  online$", start=mark)
    bob.send("/privacy add_me everyone")
    await bob.wait_for(r"add_me     everyone  who may add you to conversations")
    alice.send('/group "Open door" @bob')
    await bob.wait_for(r"\[Open door\] \d\d:\d\d \* alice created the group")
    assert "is invited" not in alice.text
    bob.send("/privacy find_me nobody")
    await bob.wait_for(r"find_me    nobody    who may find you by your handle")
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status


async def test_newbot_makes_a_bot_that_runs_with_its_key_file(url: str, tmp_path: Path) -> None:
    await _register(url, tmp_path / "alice.key", "alice", "Alice")
    alice = Terminal(url, tmp_path / "alice.key").start()
    await alice.wait_for("connected as @alice")
    key = tmp_path / "helper_bot.key"
    alice.send(f'/newbot helper_bot "Helper" {key}')
    await alice.wait_for(r"bot @helper_bot created \(account \d+\), owned by you; key: ")
    await alice.wait_for(rf"--keystore {re.escape(str(key))}")
    alice.expected_status = 1  # the key file exists: a script with a failed command exits 1
    alice.send(f'/newbot helper_bot "Helper" {key}')
    await alice.wait_for(rf"{re.escape(str(key))} exists: /newbot helper_bot")
    router = Router()

    @router.message()
    async def echo(msg: object, ctx: object) -> str:
        return f"echo: {getattr(msg, 'text', '')}"

    async with Bot(url, key, router) as bot:
        assert bot.me.handle == "helper_bot"
        alice.send("/dm @helper_bot", "ping")
        await alice.wait_for(r"\[@helper_bot\] \d\d:\d\d helper_bot \(↩ #\d+\): echo: ping")
    assert "message request" not in alice.text  # a bot is never asked: it is placed
    async with Client(url, KeyStore.open(tmp_path / "other.key")) as other:
        await other.register("other", "Other")
        assert (await other.account_info("helper_bot")).type == "bot"
    taken = tmp_path / "taken.key"
    alice.send(f'/newbot other "Taken" {taken}')
    await alice.wait_for("error: HANDLE_TAKEN")
    assert not taken.exists()  # nothing left to clean up: the same command can be run again
    assert await alice.close() == alice.expected_status


async def test_a_request_sent_while_away_is_shown_at_start(url: str, tmp_path: Path) -> None:
    await _register(url, tmp_path / "bob.key", "bob", "Bob")
    await _register(url, tmp_path / "alice.key", "alice", "Alice")
    alice = Terminal(url, tmp_path / "alice.key").start()
    alice.send("/dm @bob", "hello while you were out")
    await alice.wait_for(r"\[@bob\] \d\d:\d\d alice: hello while you were out")
    bob = Terminal(url, tmp_path / "bob.key").start()
    await bob.wait_for(
        r"^@alice wants to message you: /accept @alice, /decline @alice or /block @alice$"
    )
    bob.send("/accept @alice")
    await bob.wait_for(r"now in \[@alice\]")
    await bob.wait_for(r"\[@alice\] \d\d:\d\d alice: hello while you were out")
    bob.send("back now")
    await alice.wait_for(r"\[@bob\] \d\d:\d\d bob: back now")
    assert bob.text.count("wants to message you") == 1
    assert bob.text.count("alice: hello while you were out") == 1
    assert await alice.close() == alice.expected_status
    assert await bob.close() == bob.expected_status


async def test_many_waiting_requests_are_one_line_at_start(url: str, tmp_path: Path) -> None:
    await _register(url, tmp_path / "bob.key", "bob", "Bob")
    for n in range(4):
        async with Client(url, KeyStore.open(tmp_path / f"s{n}.key")) as stranger:
            await stranger.register(f"stranger{n}", "S")
            await stranger.send_text(await stranger.direct(await stranger.lookup("bob")), "hi")
    bob = Terminal(url, tmp_path / "bob.key").start()
    await bob.wait_for(r"^4 requests and invitations wait: /requests$")
    bob.send("/requests")
    await bob.wait_for(r"^   4\. @stranger3 wants to message you$")
    assert "stranger0 wants to message you: /accept" not in bob.text
    bob.send("/accept 2")
    await bob.wait_for(r"accepted @stranger1's message request")
    await bob.wait_for(r"\[@stranger1\] \d\d:\d\d stranger1: hi")
    assert await bob.close() == bob.expected_status
