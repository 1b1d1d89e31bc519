"""Creators in the ``chat`` terminal client (issue 19.5): the commands' parser, then a creator
pricing her channel and publishing for subscribers while a reader tips, subscribes, reads the
paid post and cancels, against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from chatclient.tui import (
    ChannelPriceCmd,
    PaidPost,
    ParseError,
    ShowSubscriptions,
    SubscribeCmd,
    TipPost,
    UnsubscribeCmd,
    parse_command,
)
from integration.terminalkit import connected_terminals
from paykit import mint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/tip @news 3 2.00 usd", TipPost("news", 3, "2.00", "USD")),
        ("/tip! @news 3 2 USD", TipPost("news", 3, "2", "USD", confirmed=True)),
        ("/price @news", ChannelPriceCmd("news")),
        ("/price @news 4.99 USD", ChannelPriceCmd("news", "4.99", "USD", 30)),
        ("/price @news 4.99 USD 7", ChannelPriceCmd("news", "4.99", "USD", 7)),
        ("/price @news off", ChannelPriceCmd("news", "0")),
        ("/subscribe @news", SubscribeCmd("news")),
        ("/subscribe @news 12 4.99 usd", SubscribeCmd("news", 12, "4.99", "USD")),
        ("/subscribe! @news 1 4.99 USD", SubscribeCmd("news", 1, "4.99", "USD", confirmed=True)),
        ("/unsubscribe @news", UnsubscribeCmd("news")),
        ("/subscription", ShowSubscriptions()),
        ("/subscription @news", ShowSubscriptions("news")),
        ("/paidpost @news it's for members", PaidPost("news", "it's for members")),
    ],
)
def test_parse_creator_commands(line: str, expected: object) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/tip @news 3 2.005 USD", "USD has 2 decimals"),
        ("/tip @news three 2 USD", "usage: /tip"),
        ("/tip news 3 2 USD", "usage: /tip"),
        ("/price @news 4.99", "usage: /price"),
        ("/subscribe @news 0 4.99 USD", "usage: /subscribe"),
        ("/subscribe @news 3 4.99", "usage: /subscribe"),
        ("/unsubscribe", "usage: /unsubscribe"),
        ("/paidpost @news", "usage: /paidpost"),
    ],
)
def test_creator_command_errors(line: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_command(line)


async def test_a_creator_is_tipped_and_subscribed_to_from_the_terminal(tmp_path: Path) -> None:
    async with connected_terminals(tmp_path, "alice", "bob") as (server, (alice, bob)):
        db = Path(server.app.settings.store.db)
        await mint(db, 2, 10_000)  # bob is account 2
        alice.send('/public @alice_news "Alice News"')
        await alice.wait_for(r"^public channel @alice_news created")
        alice.send("/price @alice_news 4.99 USD 30", "/publish @alice_news hello all")
        await alice.wait_for(r"^@alice_news: 4\.99 USD every 30 days$")
        await alice.wait_for(r"^\[@alice_news\] #1 published$")
        bob.send("/tip @alice_news 1 1.50 USD")
        await bob.wait_for(r"^tip 1\.50 USD for @alice_news #1\? /yes to confirm")
        bob.send("/yes")
        await bob.wait_for(r"^\[@alice_news\] #1 tipped 1\.50 USD \(receipt tip_\w+ verified\)$")
        # a stranger's handle is not known to alice's terminal: its account number shows
        await alice.wait_for(r"^\[@alice_news\] #1 user#2 tipped you 1\.50 USD$")
        bob.send("/subscribe @alice_news")
        await bob.wait_for(r"to agree: /subscribe @alice_news PERIODS 4\.99 USD$")
        bob.send("/subscribe! @alice_news 3 4.99 USD")
        await bob.wait_for(
            r"^\[@alice_news\] subscription of you: active, 4\.99 USD / 30 days, 1/3 periods"
        )
        await alice.wait_for(r"^\[@alice_news\] subscription of user#2: active, period 1 charged")
        alice.send("/paidpost @alice_news members only")
        await alice.wait_for(r"^\[@alice_news\] #2 published for subscribers$")
        bob.send("/posts @alice_news")
        await bob.wait_for(r"^\[@alice_news\] #2 \d\d:\d\d members only$")
        bob.send("/unsubscribe @alice_news")
        await bob.wait_for(r"^\[@alice_news\] subscription of you: cancelled")
        bob.send("/subscription")
        await bob.wait_for(r"^\[@alice_news\] subscription of you: cancelled, .* 1/3 periods")
