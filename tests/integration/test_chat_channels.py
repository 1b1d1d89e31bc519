"""``chat`` and public channels (issue 19.1-19.2, SPEC.md 20): /public, /publish, /editpost,
/delpost, /follow, /unfollow, /search, /posts, /comment, /comments, /reactpost, against a real server, stdin piped; a follower's
terminal shows live posts, checked against the publisher's device key."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatclient.tui import (
    CommentPost,
    EditPost,
    Follow,
    NewPublic,
    ParseError,
    Publish,
    ReactToPost,
    Search,
    ShowComments,
    ShowPosts,
    ShowTimeline,
    parse_command,
)
from integration.terminalkit import connected_terminals


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('/public @daily "Daily News" world news', NewPublic("daily", "Daily News", "world news")),
        ("/publish @daily good morning, all", Publish("daily", "good morning, all")),
        ("/editpost @daily 3 fixed typo", EditPost("daily", 3, "fixed typo")),
        ("/delpost @daily 3", EditPost("daily", 3, None)),
        ("/follow @daily", Follow("daily")),
        ("/unfollow daily", Follow("daily", follow=False)),
        ("/search daily news", Search("daily news")),
        ("/posts @daily", ShowPosts("daily")),
        ("/posts @daily 5", ShowPosts("daily", 5)),
        ("/comment @daily 3 so true", CommentPost("daily", 3, "so true")),
        ("/comment @daily 3 #7 indeed", CommentPost("daily", 3, "indeed", 7)),
        ("/comments @daily 3", ShowComments("daily", 3)),
        ("/timeline", ShowTimeline()),
        ("/timeline more", ShowTimeline(more=True)),
        ("/reactpost @daily 3 👍", ReactToPost("daily", 3, "👍")),
        ("/unreactpost @daily 3 👍", ReactToPost("daily", 3, "👍", remove=True)),
        # every @channel also takes the channel's link (SPEC.md 20.1)
        ("/follow chatd://channel/daily", Follow("daily")),
        ("/posts chatd://channel/daily 5", ShowPosts("daily", 5)),
        ("/publish chatd://channel/daily hi", Publish("daily", "hi")),
        ("/delpost chatd://channel/daily 3", EditPost("daily", 3, None)),
        ("/comment chatd://channel/daily 3 so true", CommentPost("daily", 3, "so true")),
        ("/reactpost chatd://channel/daily 3 👍", ReactToPost("daily", 3, "👍")),
    ],
)
def test_parse_channel_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/publish @daily", "usage: /publish @channel text"),
        ("/editpost @daily x text", "usage: /editpost @channel SEQ text"),
        ("/delpost @daily", "usage: /delpost @channel SEQ"),
        ("/follow", "usage: /follow @channel"),
        ("/search", "usage: /search WORDS | /search more"),
        ("/posts @daily many", "usage: /posts @channel [N]"),
        ("/timeline all", "usage: /timeline [more]"),
        ("/follow chatd://channel/Daily", "not a channel link: chatd://channel/Daily"),
        ("/posts chatd://channel/", "not a channel link"),
        ("/follow chatd://join/daily", "not a handle"),
    ],
)
def test_channel_commands_say_their_usage(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message.replace("|", r"\|").replace("[", r"\[")):
        parse_command(line)


async def test_publish_follow_search_and_read_a_public_channel(tmp_path: Path) -> None:
    async with connected_terminals(tmp_path, "alice", "bob") as (_server, (alice, bob)):
        alice.send('/public @daily_news "Daily News" world news every morning')
        await alice.wait_for(r"^public channel @daily_news created")
        alice.send("/publish @daily_news good morning")
        await alice.wait_for(r"^\[@daily_news\] #1 published$")
        bob.send("/search morning news")
        await bob.wait_for(r"^  @daily_news  Daily News: world news every morning  0 followers$")
        bob.send("/posts @daily_news")
        await bob.wait_for(r"^\[@daily_news\] #1 \d\d:\d\d good morning$")
        bob.send("/follow @daily_news")
        await bob.wait_for(
            r"^following @daily_news \(1 followers; link chatd://channel/daily_news\)$"
        )
        alice.send("/publish @daily_news the news at noon")
        await bob.wait_for(r"^\[@daily_news\] #2 \d\d:\d\d the news at noon$")
        alice.send("/editpost @daily_news 2 the news at one")
        await bob.wait_for(r"^\[@daily_news\] #2 \d\d:\d\d the news at one \(edited\)$")
        alice.send("/delpost @daily_news 1")
        await bob.wait_for(r"^\[@daily_news\] #1 \d\d:\d\d \(deleted\)$")
        bob.send("/comment @daily_news 2 thanks")
        got = await bob.wait_for(r"^\[@daily_news\] #2 comment #(\d+) posted$")
        alice.send(f"/comment @daily_news 2 #{got.group(1)} you're welcome")
        await alice.wait_for(r"^\[@daily_news\] #2 comment #\d+ posted$")
        # bob follows: alice's comment is pushed to his terminal as it is made
        await bob.wait_for(
            rf"^\[@daily_news\] #2 comment #\d+ alice \(↩ #{got.group(1)}\): you're welcome$"
        )
        bob.send("/comments @daily_news 2", "/reactpost @daily_news 2 👍")
        await bob.wait_for(rf"^  #{got.group(1)} bob: thanks$")
        await bob.wait_for(rf"^  #\d+ alice \(↩ #{got.group(1)}\): you're welcome$")
        await bob.wait_for(r"^\[@daily_news\] #2: 2 comments$")
        await bob.wait_for(r"^\[@daily_news\] #2: 👍 1$")
        mark = len(bob.text)
        bob.send("/timeline", "/timeline more")  # the followed channels' live posts
        await bob.wait_for(r"^\[@daily_news\] #2 \d\d:\d\d the news at one \(edited\)$", mark)
        await bob.wait_for(r"^no older posts in your timeline$", mark)
        assert "#1" not in bob.text[mark:]  # deleted: not in the timeline
        bob.send("/unfollow @daily_news")
        await bob.wait_for(
            r"^no longer following @daily_news \(0 followers; link chatd://channel/daily_news\)$"
        )
        alice.send("/publish @daily_news after bob left")
        await alice.wait_for(r"^\[@daily_news\] #3 published$")
        bob.send("/posts @daily_news 1")
        await bob.wait_for(r"^\[@daily_news\] #3 \d\d:\d\d after bob left$")
        assert bob.text.count("after bob left") == 1  # read with /posts, never pushed


async def test_a_second_user_follows_a_channel_from_its_printed_link(tmp_path: Path) -> None:
    """The link ``/public`` prints is what a follower pastes: ``/posts`` and ``/follow`` take it."""
    async with connected_terminals(tmp_path, "alice", "bob") as (_server, (alice, bob)):
        alice.send('/public @daily_news "Daily News"')
        got = await alice.wait_for(r"^public channel @daily_news created: .* share it as (\S+)$")
        link = got.group(1)
        assert link == "chatd://channel/daily_news"
        alice.send(f"/publish {link} hello")
        await alice.wait_for(r"^\[@daily_news\] #1 published$")
        bob.send(f"/posts {link}", f"/follow {link}")
        await bob.wait_for(r"^\[@daily_news\] #1 \d\d:\d\d hello$")
        await bob.wait_for(
            r"^following @daily_news \(1 followers; link chatd://channel/daily_news\)$"
        )
        alice.send("/publish @daily_news live")
        await bob.wait_for(r"^\[@daily_news\] #2 \d\d:\d\d live$")
