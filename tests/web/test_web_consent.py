"""Consent in the web app (SPEC.md 18), with chatd's real defaults (``[consent]`` ``contacts``,
what ``chatd serve`` gives a user): two browser users who never met chat once a message request
is accepted; a blocked requester reaches nobody; a group invitation is accepted in the page."""

from __future__ import annotations

import contextlib

from botkit import Inbox, text_is, user
from conftest import RunningServer
from playwright.async_api import Browser, Dialog, Page, expect

from .conftest import open_app, register


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.keyboard.press("Enter")


async def start_chat(page: Page, handle: str) -> None:
    await page.get_by_label("New chat with").fill(handle)
    await page.get_by_role("button", name="Start chat").click()


async def test_strangers_chat_once_the_message_request_is_accepted(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd_defaults)
    bob = await open_app(browser, chatd_defaults)
    await register(alice, "alice")
    await register(bob, "bob")
    await start_chat(alice, "bob")
    await send(alice, "hello stranger")
    # The requester sees nothing of bob (no presence, no receipts) until he accepts.
    await expect(alice.get_by_role("status").filter(has_text="Waiting for @bob")).to_be_visible()

    requests = bob.get_by_role("list", name="Message requests and invitations")
    await expect(requests).to_contain_text("@alice wants to message you")
    # Not a chat yet: bob's chat list is empty, the request is listed apart.
    await expect(bob.get_by_role("list", name="Chats").get_by_role("listitem")).to_have_count(0)
    await bob.get_by_role("button", name="@alice wants to message you").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("hello stranger")
    await expect(bob.get_by_label("Message", exact=True)).to_have_count(0)  # accept first
    # bob's page read it (delivered and read receipts went out): alice is told nothing.
    await expect(alice.get_by_label("status: sent")).to_have_count(1)
    await expect(alice.get_by_text("● bob")).to_have_count(0)

    await (
        bob.get_by_role("region", name="Message request")
        .get_by_role("button", name="Accept")
        .click()
    )
    await expect(requests).to_have_count(0)
    await expect(bob.get_by_role("list", name="Chats").get_by_role("listitem")).to_have_count(1)
    await send(bob, "hi alice, accepted")
    await expect(alice.get_by_label("Messages")).to_contain_text("hi alice, accepted")
    await expect(alice.get_by_label("status: read")).to_have_count(1)  # receipts now flow
    await expect(alice.get_by_role("status").filter(has_text="Waiting for @bob")).to_have_count(0)
    await send(alice, "glad we met")
    await expect(bob.get_by_label("Messages")).to_contain_text("glad we met")

    await bob.reload()  # the accepted chat stays a chat, and no request comes back
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("glad we met")
    await expect(bob.get_by_role("list", name="Message requests and invitations")).to_have_count(0)
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_blocked_requester_cannot_reach_the_blocker(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd_defaults)
    bob = await open_app(browser, chatd_defaults)
    await register(alice, "alice")
    await register(bob, "bob")
    await start_chat(alice, "bob")
    await send(alice, "buy my stuff")
    requests = bob.get_by_role("list", name="Message requests and invitations")
    await expect(requests).to_contain_text("@alice wants to message you")
    asked: list[str] = []

    async def confirm(dialog: Dialog) -> None:
        asked.append(dialog.message)
        await dialog.accept()

    bob.on("dialog", confirm)
    await bob.get_by_role("button", name="Block @alice").click()
    await expect(requests).to_have_count(0)
    assert asked == ["Block @alice? They will not be able to message you or add you to groups."]

    # alice cannot open a new chat with bob: to her, bob is an unknown account.
    await start_chat(alice, "bob")
    await expect(alice.get_by_role("alert")).to_contain_text("no account")
    # Her old chat reaches nobody: bob left it with the block.
    await alice.get_by_role("button", name="@bob").click()
    await send(alice, "are you there")
    await expect(alice.get_by_label("status: sending")).to_have_count(0)
    await bob.reload()
    await bob.get_by_role("navigation", name="Conversations").wait_for()
    await expect(bob.get_by_role("list", name="Chats").get_by_role("listitem")).to_have_count(0)
    await expect(bob.get_by_text("are you there")).to_have_count(0)
    await expect(bob.get_by_text("buy my stuff")).to_have_count(0)
    assert await bob.evaluate("[...chatd.blocked]") == [await alice.evaluate("chatd.id.account")]
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_group_invitation_is_accepted_in_the_browser(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd_defaults)
    bob = await open_app(browser, chatd_defaults)
    await register(alice, "alice")
    await register(bob, "bob")
    # A signed create_conv may not name a stranger (CONSENT_REQUIRED): the page creates the
    # group with alice and invites bob instead.
    await alice.get_by_label("Group title").fill("Book club")
    await alice.get_by_label("Members").fill("bob")
    await alice.get_by_role("button", name="Create group").click()
    await send(alice, "before bob")
    await alice.get_by_text("More").click()
    invited = alice.get_by_role("group", name="Invited, not joined yet")
    await expect(invited).to_contain_text("@bob")

    requests = bob.get_by_role("list", name="Message requests and invitations")
    await expect(requests).to_contain_text("@alice invites you to the group “Book club”")
    await bob.get_by_role("button", name="Accept invitation from @alice").click()
    # A group with a signed membership log: bob joins when an admin adds him. Alice's page is
    # told he accepted (invitation_answered, SPEC.md 18.3) and sends the signed add itself.
    await expect(invited).to_have_count(0)

    await bob.get_by_role("button", name="Book club").click()
    await send(alice, "welcome bob")
    await expect(bob.get_by_label("Messages")).to_contain_text("welcome bob")
    await expect(bob.get_by_label("Messages")).not_to_contain_text("before bob")
    await send(bob, "thanks alice")
    await expect(alice.get_by_label("Messages")).to_contain_text("thanks alice")
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_privacy_settings_and_blocking_from_a_chat(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd_defaults)
    bob = await open_app(browser, chatd_defaults)
    await register(alice, "alice")
    await register(bob, "bob")
    await bob.get_by_text("Privacy").click()
    add_me = bob.get_by_label("Who can add me to chats and groups")
    await expect(add_me).to_have_value("contacts")  # chatd's default
    await expect(bob.get_by_label("Who can see when I'm online")).to_have_value("contacts")
    await add_me.select_option("everyone")
    await expect(bob.get_by_text("Saved.")).to_be_visible()

    await start_chat(alice, "bob")  # bob lets everyone add him: a chat, not a request
    await send(alice, "straight in")
    await expect(bob.get_by_label("1 unread")).to_be_visible()
    await expect(bob.get_by_role("list", name="Message requests and invitations")).to_have_count(0)

    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("straight in")
    bob.on("dialog", lambda d: d.accept())
    await bob.get_by_role("button", name="Block", exact=True).click()
    await expect(bob.get_by_text("You blocked @alice.")).to_be_visible()
    await expect(bob.get_by_label("Message", exact=True)).to_have_count(0)
    await bob.get_by_role("button", name="Unblock", exact=True).click()
    # The composer comes back once the server has answered the unblock. Alice sending before
    # that is alice sending while still blocked: refused, NOT_FOUND (SPEC.md 18.4).
    await expect(bob.get_by_label("Message", exact=True)).to_have_count(1)
    await send(alice, "after the unblock")  # bob's membership is back (SPEC.md 18.4)
    await expect(bob.get_by_label("Messages")).to_contain_text("after the unblock")
    await send(bob, "back again")
    await expect(alice.get_by_label("Messages")).to_contain_text("back again")

    await bob.reload()  # the setting is the server's, not the page's
    await bob.get_by_text("Privacy").click()
    await expect(bob.get_by_label("Who can add me to chats and groups")).to_have_value("everyone")
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_python_owners_invitation_is_accepted_in_the_browser(
    chatd_defaults: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd_defaults, "carol")  # the Python SDK, signed log
        inbox = Inbox(carol)
        bob = await open_app(browser, chatd_defaults)
        await register(bob, "bob")
        bob_id = await carol.lookup("bob")
        conv = (await carol.create("group", title="Club")).conv
        await carol.send_text(conv, "before bob")
        await carol.invite(conv, bob_id)  # a stranger: an invitation, not a member
        assert [m.account for m in (await carol.conversation(conv)).members] == [carol.account]

        requests = bob.get_by_role("list", name="Message requests and invitations")
        await expect(requests).to_contain_text("@carol invites you to the group “Club”")
        await bob.get_by_role("button", name="Accept invitation from @carol").click()
        await expect(requests).to_contain_text("you join when @carol or another admin adds you")
        await carol.invite(conv, bob_id)  # accepted: the signed add goes through now
        await bob.get_by_role("button", name="Club").click()
        log = bob.get_by_label("Messages")
        await expect(log).to_contain_text("— joined")
        await expect(requests).to_have_count(0)
        await carol.send_text(conv, "welcome bob")
        await expect(log).to_contain_text("welcome bob")
        await expect(log).not_to_contain_text("before bob")
        await send(bob, "thanks carol")
        got = await inbox.one(text_is(bob_id, conv, "thanks carol"), 15)
        assert got.text == "thanks carol"
        assert await bob.evaluate("chatd.warnings") == []
        assert bob.errors == []  # type: ignore[attr-defined]
