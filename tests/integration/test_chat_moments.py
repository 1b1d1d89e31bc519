"""``chat`` and Moments (issue 19.3, SPEC.md 22): /moment, /moments, /mcomment, /mcomments,
/mlike, /munlike, /delmoment against a real server, stdin piped; a contact's terminal shows the
Moment and the comments it may see, decrypted, as they come."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from chatclient.tui import (
    CommentMoment,
    DeleteMoment,
    LikeMoment,
    ParseError,
    PostMoment,
    ShowMomentComments,
    ShowMoments,
    parse_command,
)
from conftest import make_settings, run_server
from integration.test_chat_cli import Terminal, _register


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/moment sunset at the beach", PostMoment("sunset at the beach")),
        ("/moment @bob @Carol it's mine", PostMoment("it's mine", ("bob", "carol"))),
        ("/moments", ShowMoments()),
        ("/moments @bob 5", ShowMoments("bob", 5)),
        ("/moments 3", ShowMoments(None, 3)),
        ('/mcomment 4 so "nice"', CommentMoment(4, 'so "nice"')),
        ("/mcomment 4 #9 indeed", CommentMoment(4, "indeed", 9)),
        ("/mcomments 4", ShowMomentComments(4)),
        ("/mlike 4", LikeMoment(4)),
        ("/munlike 4", LikeMoment(4, like=False)),
        ("/delmoment 4", DeleteMoment(4)),
        ("/delmoment 4 #9", DeleteMoment(4, 9)),
    ],
)
def test_parse_moment_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/moment @bob", r"usage: /moment \[@a @b ...\] text"),
        ("/moments @bob x", r"usage: /moments \[@handle\] \[N\]"),
        ("/mcomment x hi", r"usage: /mcomment ID \[#N\] text"),
        ("/mlike", "usage: /mlike ID"),
        ("/delmoment 4 9", r"usage: /delmoment ID \[#N\]"),
    ],
)
def test_moment_commands_say_their_usage(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_command(line)


async def test_post_comment_like_and_read_moments_in_chat(tmp_path: Path) -> None:
    async with run_server(make_settings(tmp_path)) as server:
        keys = {h: tmp_path / f"{h}.key" for h in ("alice", "bob")}
        for handle, key in keys.items():
            await _register(server.url, key, handle, handle.title())
        ids = {}
        for handle, key in keys.items():  # alice and bob become each other's contacts
            async with Client(server.url, KeyStore.open(key)) as c:
                ids[handle] = c.account
        for me, other in (("alice", "bob"), ("bob", "alice")):
            async with Client(server.url, KeyStore.open(keys[me])) as c:
                await c.direct(ids[other])
        alice = Terminal(server.url, keys["alice"]).start()
        bob = Terminal(server.url, keys["bob"]).start()
        try:
            await alice.wait_for("connected as @alice")
            await bob.wait_for("connected as @bob")
            alice.send("/moment @bob sunset at the beach")
            got = await alice.wait_for(r"^\[moment (\d+)\] posted to @bob$")
            m = got.group(1)
            await bob.wait_for(rf"^\[moment {m}\] alice \d\d:\d\d sunset at the beach$")
            bob.send(f"/mcomment {m} wish I was there")
            said = await bob.wait_for(rf"^\[moment {m}\] comment #(\d+) posted$")
            await alice.wait_for(rf"^\[moment {m}\] #{said.group(1)} bob: wish I was there$")
            bob.send(f"/mlike {m}")
            await alice.wait_for(rf"^\[moment {m}\] #\d+ bob likes it ❤$")
            alice.send("/moment next time, come along")  # to all contacts: bob
            await bob.wait_for(r"^\[moment \d+\] alice \d\d:\d\d next time, come along$")
            bob.send(f"/mcomments {m}", "/moments @alice")
            await bob.wait_for(rf"^\[moment {m}\]: 2 comments and likes you see$")
            await bob.wait_for(rf"^\[moment {m}\] alice \d\d:\d\d sunset at the beach$", start=1)
            alice.send(f"/delmoment {m}")
            await alice.wait_for(rf"^\[moment {m}\] deleted$")
            await bob.wait_for(rf"^\[moment {m}\] alice \(deleted\)$")
        finally:
            assert await alice.close() == alice.expected_status
            assert await bob.close() == bob.expected_status
