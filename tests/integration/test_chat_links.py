"""``chat`` with invite links (SPEC.md 19): Alice makes a link to her group in one terminal, Bob
pastes it in another, previews it, asks to join (the group is end-to-end encrypted, so Alice's
device approves and signs his ``add``), and they talk; links are listed with their uses and
revoked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chatclient.tui import (
    Admit,
    JoinByLink,
    JoinRequestList,
    LinkList,
    MakeLink,
    ParseError,
    Unlink,
    parse_command,
)

from tests.conftest import make_settings, run_server
from tests.integration.test_chat_cli import Terminal, _register

TOKEN = "Ab-_" * 8


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/link", MakeLink()),
        ("/link approval uses=10 expires=7d Book fair", MakeLink("Book fair", 604800.0, 10, True)),
        ("/link expires=30m", MakeLink(expires_in=1800.0)),
        ("/links", LinkList()),
        ("/revoke 3", Unlink(3)),
        (f"/join chatd://join/{TOKEN}", JoinByLink(f"chatd://join/{TOKEN}")),
        (f"/preview {TOKEN}", JoinByLink(TOKEN, preview_only=True)),
        ("/joinrequests", JoinRequestList()),
        ("/approve @bob", Admit("bob")),
        ("/deny @bob", Admit("bob", approve=False)),
    ],
)
def test_parse_link_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/link expires=soon", "usage: /link"),
        ("/link uses=0", "usage: /link"),
        ("/revoke", "usage: /revoke N"),
        ("/join", "usage: /join chatd://join/"),
        ("/join https://example.com/x", "usage: /join chatd://join/"),
        ("/deny 3", "usage: /deny @handle"),
    ],
)
def test_parse_link_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=re.escape(message)):
        parse_command(line)


async def test_two_terminals_join_through_a_link(tmp_path: Path) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        url = server.url
        await _register(url, tmp_path / "alice.key", "alice", "Alice")
        await _register(url, tmp_path / "bob.key", "bob", "Bob")
        alice = Terminal(url, tmp_path / "alice.key").start()
        bob = Terminal(url, tmp_path / "bob.key").start()
        try:
            await alice.wait_for("connected as @alice")
            await bob.wait_for("connected as @bob")
            alice.send('/group "Book club"')
            await alice.wait_for(r"now in \[Book club\]")
            alice.send("/link uses=5 expires=1d flyer")
            link = await alice.wait_for(r"invite link (\d+) to \[Book club\]: (chatd://join/\S+)")
            number, shared = link[1], link[2]
            bob.send(f"/join {shared}")
            await bob.wait_for(
                r"the link leads to the group \"Book club\", 1 members, joining needs an admin's"
            )
            await bob.wait_for("asked to join: you are in once an admin approves")
            await alice.wait_for(r"\[Book club\] @bob asks to join through link \d+: /approve @bob")
            alice.send("/joinrequests")
            await alice.wait_for(r"@bob \(through link \d+\)")
            alice.send("/approve @bob")
            await alice.wait_for(r"@bob joined \[Book club\]")
            alice.send("welcome bob")
            await bob.wait_for(r"\[Book club\] \d\d:\d\d alice: welcome bob")
            alice.send("/links")
            await alice.wait_for(rf"{number}\. {re.escape(shared)}  1/5 uses, active \(flyer\)")
            alice.send(f"/revoke {number}")
            await alice.wait_for(rf"invite link {number} of \[Book club\] revoked")
            alice.send("/links")
            await alice.wait_for(r"1/5 uses, revoked \(flyer\)")
            bob.expected_status = 1  # the link is revoked: a script with a failed command exits 1
            bob.send(f"/preview {shared}")
            await bob.wait_for("this invite link is invalid or has expired")
        finally:
            assert await alice.close() == alice.expected_status
            assert await bob.close() == bob.expected_status
