"""Shares and forwards (issue 7, SPEC.md 16.6) through the SDK against the real server: a card
shared into a conversation and a message forwarded from another one are readable by the target
conversation's members, with attribution, and never by the server (no frame and no byte of its
database holds what they say); a shared mini-app card opens its action with the bot."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from botkit import Inbox, assert_never_seen, example, recorded_frames, sent_by, user
from chatclient import Message
from chatclient.bots import Bot
from chatclient.errors import ChatClientError
from chatproto import kinds
from conftest import RunningServer

MARKER = "MARKER-54a2e5"


async def test_a_forwarded_message_is_readable_in_the_target_conversation_and_never_by_the_server(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with recorded_frames(monkeypatch) as frames:
        async with contextlib.AsyncExitStack() as stack:
            alice = await user(stack, server, "alice")
            bob = await user(stack, server, "bob")
            carol = await user(stack, server, "carol")
            dave = await user(stack, server, "dave")
            source = (await alice.create("group", "Source", [bob.account])).conv
            target = (await alice.create("group", "Target", [carol.account, dave.account])).conv
            ia, ic, idv = Inbox(alice), Inbox(carol), Inbox(dave)

            ack = await bob.send_text(source, f"the secret is {MARKER}")
            [original] = await ia.take(sent_by(bob.account, source))
            await alice.forward(original, target)
            received = {}
            for who, inbox in (("carol", ic), ("dave", idv)):
                [fwd] = received[who] = await inbox.take(
                    sent_by(alice.account, target, kinds.Forward)
                )
                c = fwd.content
                assert (c.sender, c.ts, c.conv, c.seq, c.kind) == (
                    bob.account,
                    original.ts,
                    source,
                    ack.seq,
                    "text",
                )
                assert fwd.forwarded == kinds.Text(text=f"the secret is {MARKER}")

            # Forwarded again, without saying where from: the author stays bob.
            back = await carol.direct(dave.account)
            await carol.forward(received["carol"][0], back, origin=False)
            [again] = await idv.take(sent_by(carol.account, back, kinds.Forward))
            assert (again.content.sender, again.content.conv, again.content.seq) == (
                bob.account,
                0,
                0,
            )
            assert again.forwarded.text == f"the secret is {MARKER}"  # type: ignore[union-attr]

            # Only what this client decrypted can be forwarded.
            with pytest.raises(ChatClientError):
                await alice.forward(
                    Message(source, 9, 0, bob.account, 1, "e2e", b"\x01", None), target
                )
    assert_never_seen(MARKER, frames, server)


async def test_shared_cards_reach_members_and_a_mini_app_card_opens_its_action(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = example("shop_bot")
    with recorded_frames(monkeypatch) as frames:
        async with contextlib.AsyncExitStack() as stack:
            bot = await stack.enter_async_context(
                Bot(server.url, tmp_path / "shop_bot.key", shop.router)
            )
            alice = await user(stack, server, "alice")
            bob = await user(stack, server, "bob")
            group = (await alice.create("group", "Friends", [bob.account])).conv
            ib = Inbox(bob)

            link = kinds.Share(
                title=f"Look {MARKER}", text="a place I like", link="https://example.org/x"
            )
            await alice.share(group, link)
            [got] = await ib.take(sent_by(alice.account, group, kinds.Share))
            assert got.content == link

            card = kinds.Share(
                title=f"Green tea at the shop {MARKER}",
                bot=bot.me.account,
                app="shop",
                action="item",
                params={"item": "tea"},
            )
            await alice.share(group, card)  # the bot is not a member of this group
            [got] = await ib.take(sent_by(alice.account, group, kinds.Share))
            result = await bob.open_share(got.content)  # in bob's direct chat with the bot
            assert result.conv == await bob.direct(bot.me.account)
            assert (result.content.title, result.content.text) == ("Green tea", "4.50 USD each")
            with pytest.raises(ChatClientError):
                await bob.open_share(link)  # not a mini-app card
    assert_never_seen(MARKER, frames, server)
