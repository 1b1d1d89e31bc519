"""The news-bot example (issue 19.6, clients/examples/news_bot.py): a bot its owner made admin
of a public channel publishes headlines there on the owner's word; followers get each post live
and verify it against the bot's own device key; anyone else asking is refused."""

from __future__ import annotations

import contextlib
from pathlib import Path

from chatclient import Message
from chatclient.bots import Bot
from chatclient.events import ChannelPost
from chatproto import kinds

from tests.botkit import Inbox, example, user
from tests.conftest import RunningServer


def reply_to(conv: int, bot: int, after: int) -> object:
    return lambda ev: (
        isinstance(ev, Message)
        and isinstance(ev.content, kinds.Text)
        and ev.conv == conv
        and ev.sender == bot
        and ev.seq > after
    )


async def test_the_news_bot_publishes_for_the_channels_owner_only(
    server: RunningServer, tmp_path: Path
) -> None:
    module = example("news_bot")
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, tmp_path / "news_bot.key", module.router, handle="news_bot")
        )
        alice = await user(stack, server, "alice")
        bob = await user(stack, server, "bob")
        ch = (await alice.channels.create("alice_news", "Alice News")).channel
        await alice.channels.set_admin(ch, bot.me.account)
        await bob.channels.follow(ch)
        await bob.timeline.watch_feed()  # posts are pushed to connections watching the feed
        bob_posts = Inbox(bob)

        conv = await alice.direct(bot.me.account)
        inbox = Inbox(alice)
        ack = await alice.send_text(conv, "/news @alice_news Rain expected tomorrow")
        got = await inbox.one(reply_to(conv, bot.me.account, ack.seq))
        assert got.text == "published #1 in @alice_news"
        post = await bob_posts.one(lambda ev: isinstance(ev, ChannelPost))
        assert (post.author, post.text) == (bot.me.account, "Rain expected tomorrow")

        mallory = await user(stack, server, "mallory")
        other = await mallory.direct(bot.me.account)
        theirs = Inbox(mallory)
        ack = await mallory.send_text(other, "/news @alice_news Fake news")
        got = await theirs.one(reply_to(other, bot.me.account, ack.seq))
        assert got.text == "only the owner of @alice_news may publish through me"
        page = await bob.channels.posts(ch)
        assert [p.text for p in page.posts] == ["Rain expected tomorrow"] and page.rejected == []
