"""Shares (SPEC.md 16.6) between the browser and the Python SDK: a link card and a mini-app card
composed in the page arrive as typed ``share`` messages in Python, and the cards a Python user
shares render in the page (a link as a link, a mini-app card that opens its bot's action)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from botkit import Inbox, example, user
from chatclient import Message
from chatclient.bots import Bot
from chatproto import kinds
from conftest import RunningServer
from playwright.async_api import Browser, expect

from .conftest import open_app, register


def shared_by(account: int) -> object:
    def pred(ev: object) -> bool:
        return isinstance(ev, Message) and ev.sender == account and ev.kind == "share"

    return pred


async def test_cards_shared_between_a_browser_and_a_python_user_in_a_group(
    chatd: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    shop = example("shop_bot")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            Bot(chatd.url, tmp_path / "shop_bot.key", shop.router, app_title="Shop")
        )
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        alice_id = int(await alice.evaluate("chatd.id.account"))
        shop_id = await carol.lookup("shop_bot")
        await alice.get_by_label("Group title").fill("Picks")
        await alice.get_by_label("Members").fill("carol")
        await alice.get_by_role("button", name="Create group").click()
        await expect(alice.get_by_role("heading", name="Picks")).to_be_visible()

        # A link card composed in the page reaches the Python user as a typed share.
        await alice.get_by_text("More").click()
        await alice.get_by_label("Card title").fill("chatd docs")
        await alice.get_by_label("Link", exact=True).fill("https://example.org/docs")
        await alice.get_by_label("Card text").fill("worth a read")
        await alice.get_by_role("button", name="Share link").click()
        got = await inbox.one(shared_by(alice_id), 15)
        conv = got.conv
        assert got.e2e and got.content == kinds.Share(
            title="chatd docs", link="https://example.org/docs", text="worth a read"
        )
        await expect(alice.get_by_label("Shared: chatd docs")).to_be_visible()

        # The Python user's cards render in the page: an https link is a link; a script link is
        # shown as text only; a mini-app card opens its action with the bot.
        await carol.share(conv, kinds.Share(title="Recipe", link="https://example.org/tea"))
        await carol.share(conv, kinds.Share(title="Trap", link="javascript:alert(1)"))
        await carol.share(
            conv,
            kinds.Share(
                title="Tea shop", text="browse it", bot=shop_id, app="shop", action="browse"
            ),
        )
        log = alice.get_by_label("Messages")
        recipe = log.get_by_label("Shared: Recipe")
        await expect(recipe.get_by_role("link")).to_have_attribute(
            "href", "https://example.org/tea"
        )
        await expect(recipe.get_by_role("link")).to_have_attribute(
            "rel", "noopener noreferrer nofollow"
        )
        trap = log.get_by_label("Shared: Trap")
        await expect(trap).to_contain_text("javascript:alert(1)")
        await expect(trap.get_by_role("link")).to_have_count(0)
        card = log.get_by_label("Shared: Tea shop")
        await expect(card).to_contain_text("browse it")
        await card.get_by_role("button", name="Open").click()
        # The page opened a chat with the bot and invoked the action there: its card arrives.
        await expect(alice.get_by_role("heading", name="@shop_bot")).to_be_visible()
        await expect(alice.get_by_label("Messages")).to_contain_text("🛒 Shop")

        # From the chat with the bot, the page shares its mini-app into the group.
        mini = alice.get_by_role("group", name="Mini-app")
        await mini.get_by_label("Share action").select_option("browse")
        await mini.get_by_label("Share to").select_option(label="Picks")
        await mini.get_by_role("button", name="Share mini-app").click()
        await expect(mini).to_contain_text("Shared to Picks.")
        app_card = await inbox.one(lambda ev: shared_by(alice_id)(ev) and ev.seq > got.seq, 15)  # type: ignore[operator,attr-defined]
        share = app_card.content
        assert isinstance(share, kinds.Share)
        assert (share.bot, share.app, share.action) == (shop_id, "shop", "browse")
        assert share.title == "Shop"
        # ... and it is a card the Python SDK opens: the bot answers it.
        result = await carol.open_share(share)
        assert isinstance(result.content, kinds.MiniappResult)
        assert result.content.title == "🛒 Shop"
        assert await alice.evaluate("chatd.warnings") == []
        assert alice.errors == []  # type: ignore[attr-defined]
