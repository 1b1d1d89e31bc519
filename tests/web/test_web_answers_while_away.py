"""An invitation accepted while the inviter's page was closed (SPEC.md 18.3, ``list_answers``):
the page reads the answer when it opens again and sends the signed add itself, once."""

from __future__ import annotations

import contextlib

from botkit import user
from conftest import RunningServer
from playwright.async_api import Browser, expect

from .conftest import STEP, open_app, register


async def test_an_accept_while_the_page_was_closed_is_completed_when_it_opens(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd_defaults, "carol")  # the Python SDK
        alice = await open_app(browser, chatd_defaults)
        await register(alice, "alice")
        await alice.get_by_label("Group title").fill("Book club")
        await alice.get_by_label("Members").fill("carol")
        await alice.get_by_role("button", name="Create group").click()
        await alice.get_by_text("More").click()
        await expect(alice.get_by_role("group", name="Invited, not joined yet")).to_contain_text(
            "@carol"
        )
        ctx = alice.context
        await alice.close()  # no device of alice is connected now
        [inv] = [r async for r in carol.contacts.requests()]
        await carol.contacts.accept(inv.conv)
        alice = await ctx.new_page()
        alice.set_default_timeout(STEP)
        await alice.goto(chatd_defaults.http + "/")
        await alice.get_by_role("button", name="Book club").click()
        await expect(alice.get_by_label("Messages")).to_contain_text("— joined")
        for _ in range(50):
            members = [m.account for m in (await carol.conversation(inv.conv)).members]
            if carol.account in members:
                break
            await alice.wait_for_timeout(100)
        assert members.count(carol.account) == 1
        await alice.get_by_text("More").click()
        await expect(alice.get_by_role("group", name="Invited, not joined yet")).to_have_count(0)
