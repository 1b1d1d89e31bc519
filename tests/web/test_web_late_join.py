"""A member added to a group late reads from its own join on (SPEC.md 7.8): the server starts
its sync and fetch at its `joined` message, and the page's cursor starts there too."""

from __future__ import annotations

import contextlib

from botkit import Inbox, text_is, user
from conftest import RunningServer
from playwright.async_api import Browser, expect

from .conftest import open_app, register


async def test_a_late_joiner_sees_everything_after_its_join_live_and_after_a_reload(
    chatd: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")  # a Python owner
        inbox = Inbox(carol)
        dave = await user(stack, chatd, "dave")
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        info = await carol.create("group", title="Late", members=[dave.account])
        conv = info.conv
        for i in range(3):
            await carol.send_text(conv, f"before alice {i}")

        await carol.invite(conv, await carol.lookup("alice"))
        await alice.get_by_role("button", name="Late").click()
        log = alice.get_by_label("Messages")
        await expect(log).to_contain_text("— joined")  # its own joined message, live
        await carol.send_text(conv, "after alice joined")
        await dave.send_text(conv, "hello alice")
        await expect(log).to_contain_text("after alice joined")
        await expect(log).to_contain_text("hello alice")
        await alice.get_by_label("Message", exact=True).fill("thanks for having me")
        await alice.keyboard.press("Enter")
        alice_id = await carol.lookup("alice")
        got = await inbox.one(text_is(alice_id, conv, "thanks for having me"), 15)
        assert got.text == "thanks for having me"
        await expect(log).not_to_contain_text("before alice")

        await alice.reload()  # from IndexedDB and a sync that starts at the join
        await alice.get_by_role("button", name="Late").click()
        log = alice.get_by_label("Messages")
        await expect(log).to_contain_text("hello alice")
        await carol.send_text(conv, "after the reload")
        await expect(log).to_contain_text("after the reload")
        for text in ("— joined", "after alice joined", "hello alice", "thanks for having me"):
            await expect(log.get_by_text(text)).to_have_count(1)
        await expect(log).not_to_contain_text("before alice")
        assert await alice.evaluate("chatd.warnings") == []
        assert alice.errors == []  # type: ignore[attr-defined]
