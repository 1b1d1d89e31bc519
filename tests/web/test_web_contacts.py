"""The contacts view (SPEC.md 18.1, paged as 11.5 says), with chatd's real consent defaults:
the accounts a browser user messaged first or accepted are listed a server page at a time; a
chat is started from a contact; a contact blocked from the list can no longer write, and writes
again once unblocked from the blocked list."""

from __future__ import annotations

import contextlib

import pytest
from botkit import user
from chatclient.errors import NotFound
from conftest import RunningServer
from playwright.async_api import Browser, Dialog, expect

from .conftest import open_app, register


async def test_contacts_are_paged_and_a_chat_and_blocks_start_from_them(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd_defaults, "carol")
        await user(stack, chatd_defaults, "dave")
        bob = await user(stack, chatd_defaults, "bob")
        alice = await open_app(browser, chatd_defaults)
        await register(alice, "alice")
        alice_id = int(await alice.evaluate("chatd.id.account"))
        asked: list[str] = []

        async def confirm(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept()

        alice.on("dialog", confirm)

        # bob's chat is a request to alice until she accepts it: then bob is her contact.
        from_bob = await bob.direct(alice_id)
        await bob.send_text(from_bob, "hi alice")
        await alice.get_by_role("button", name="Accept request from @bob").click()
        # Accepting opens bob's chat once the server has answered, then puts the cursor in its
        # composer (reply next). Typing carol's handle before that could land in bob's composer.
        await expect(alice.get_by_role("heading", name="@bob")).to_be_visible()
        await expect(alice.get_by_label("Message", exact=True)).to_be_focused()
        # carol and dave become her contacts by being messaged first.
        for handle in ("carol", "dave"):
            await alice.get_by_label("New chat with").fill(handle)
            await alice.get_by_role("button", name="Start chat").click()
            await expect(alice.get_by_role("heading", name=f"@{handle}")).to_be_visible()
            await alice.get_by_label("Message", exact=True).fill(f"hi {handle}")
            await alice.keyboard.press("Enter")
        chats = alice.get_by_role("list", name="Chats").get_by_role("listitem")
        await expect(chats).to_have_count(3)

        # Two a page: the first page holds the two lowest account ids, "Show more" the rest.
        await alice.evaluate("chatd.contactsPageSize = 2")
        await alice.get_by_text("Contacts", exact=True).click()
        contacts = alice.get_by_role("list", name="Contacts", exact=True)
        await expect(contacts.get_by_role("listitem")).to_have_count(2)
        await expect(contacts).to_contain_text("@carol")
        await expect(contacts).to_contain_text("@dave")
        await alice.get_by_role("button", name="Show more").click()
        await expect(contacts.get_by_role("listitem")).to_have_count(3)
        await expect(contacts.get_by_role("listitem").nth(2)).to_contain_text("@bob")
        await expect(alice.get_by_role("button", name="Show more")).to_have_count(0)

        # A chat from a contact: the existing one opens, no second chat is made.
        await contacts.get_by_role("button", name="Message @bob").click()
        await expect(alice.get_by_role("heading", name="@bob")).to_be_visible()
        await expect(alice.get_by_label("Messages")).to_contain_text("hi alice")
        await expect(chats).to_have_count(3)

        # Blocked from the list: carol leaves it, and can no longer write to alice.
        await contacts.get_by_role("button", name="Block @carol").click()
        assert asked[-1].startswith("Block @carol?")
        await expect(contacts).not_to_contain_text("@carol")
        to_alice = await alice.evaluate(
            "[...chatd.convs.values()].find(c => c.kind === 'direct'"
            " && c.members.some(m => m.handle === 'carol')).conv"
        )
        with pytest.raises(NotFound):
            await carol.send_text(to_alice, "let me in")
        await alice.get_by_role("button", name="Blocked", exact=True).click()
        blocked = alice.get_by_role("list", name="Blocked accounts")
        await expect(blocked.get_by_role("listitem")).to_have_count(1)
        await expect(blocked).to_contain_text("@carol")

        # Unblocked: she writes again, and alice reads it in their chat.
        await blocked.get_by_role("button", name="Unblock @carol").click()
        await expect(blocked).not_to_contain_text("@carol")
        await carol.send_text(to_alice, "back again")
        await alice.get_by_role("button", name="@carol").click()
        await expect(alice.get_by_label("Messages")).to_contain_text("back again")
        await expect(alice.get_by_text("let me in")).to_have_count(0)
        assert alice.errors == []  # type: ignore[attr-defined]
