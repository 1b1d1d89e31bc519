"""``chat`` and the moderation of a public channel's comments and its view counts (issue 19.2,
SPEC.md 20.9): /bancomments (by handle, or by a comment's number as /comments showed it, for a
while or until lifted, with the comments deleted), /unbancomments, /commentbans, /slowmode,
and /posts reporting what it shows (each reader counts once) and showing the counts; against a
real server, stdin piped."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatclient.tui import (
    BanComments,
    CommentBanList,
    ParseError,
    SlowMode,
    parse_command,
)
from integration.terminalkit import connected_terminals


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/bancomments @daily @bob", BanComments("daily", "@bob")),
        ("/bancomments @daily #12 2h delete", BanComments("daily", "#12", 7200, delete=True)),
        ("/bancomments daily @Bob delete 30m", BanComments("daily", "@bob", 1800, delete=True)),
        ("/unbancomments @daily @bob", BanComments("daily", "@bob", lift=True)),
        ("/commentbans @daily", CommentBanList("daily")),
        ("/slowmode @daily 30", SlowMode("daily", 30)),
        ("/slowmode @daily off", SlowMode("daily", 0)),
    ],
)
def test_parse_moderation_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/bancomments @daily", "usage: /bancomments @channel @user|#N [30m|2h|7d] [delete]"),
        ("/bancomments @daily bob", "usage: /bancomments @channel @user|#N [30m|2h|7d] [delete]"),
        ("/bancomments @daily @bob soon", "usage: /bancomments @channel @user|#N"),
        ("/unbancomments @daily @bob 2h", "usage: /unbancomments @channel @user|#N"),
        ("/commentbans", "usage: /commentbans @channel"),
        ("/slowmode @daily", "usage: /slowmode @channel SECONDS|off"),
        ("/slowmode @daily 3601", "usage: /slowmode @channel SECONDS|off"),
    ],
)
def test_moderation_commands_say_their_usage(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("|", r"\|").replace("[", r"\[")):
        parse_command(line)


async def test_an_owner_moderates_comments_and_readers_see_view_counts(tmp_path: Path) -> None:
    async with connected_terminals(tmp_path, "alice", "bob") as (_server, (alice, bob)):
        alice.send('/public @daily_news "Daily News"', "/publish @daily_news good morning")
        await alice.wait_for(r"^\[@daily_news\] #1 published$")
        # bob reads it twice: his /posts counts him once, and alice sees the count.
        bob.send("/posts @daily_news", "/posts @daily_news")
        await bob.wait_for(r"^\[@daily_news\] #1 \d\d:\d\d good morning · 1 view$")
        alice.send("/posts @daily_news")
        await alice.wait_for(r"^\[@daily_news\] #1 \d\d:\d\d good morning · 1 view$")
        alice.send("/slowmode @daily_news 60")
        await alice.wait_for(r"^@daily_news: slow mode one comment every 60 s$")
        bob.expected_status = (
            1  # slow mode refuses the second comment: a script with a failed command exits 1
        )
        bob.send("/comment @daily_news 1 first!", "/comment @daily_news 1 second!")
        await bob.wait_for(r"^\[@daily_news\] #1 comment #\d+ posted$")
        await bob.wait_for(r"^error: RATE_LIMITED: slow mode: one comment every 60 s")
        alice.send("/slowmode @daily_news off")
        await alice.wait_for(r"^@daily_news: slow mode off$")
        alice.send("/comments @daily_news 1")
        got = await alice.wait_for(r"^  #(\d+) bob: first!$")
        alice.send(f"/bancomments @daily_news #{got.group(1)} 2h delete")
        await alice.wait_for(
            r"^@bob may not comment in @daily_news until [-\d: ]+, their comments deleted$"
        )
        bob.send("/comment @daily_news 1 let me in")
        await bob.wait_for(r"^error: FORBIDDEN: banned from commenting in this channel")
        alice.send("/commentbans @daily_news", "/comments @daily_news 1")
        await alice.wait_for(r"^  @bob until [-\d: ]+$")
        await alice.wait_for(rf"^  #{got.group(1)} bob: \(deleted\)$")
        alice.send("/unbancomments @daily_news @bob", "/commentbans @daily_news")
        await alice.wait_for(r"^@bob may comment in @daily_news again$")
        await alice.wait_for(r"^nobody is banned from commenting in @daily_news$")
        bob.send("/comment @daily_news 1 thanks")
        await bob.wait_for(r"^\[@daily_news\] #1 comment #\d+ posted$")
        bob.send("/bancomments @daily_news @alice")
        await bob.wait_for(r"^error: FORBIDDEN: only the channel's admins ban")
