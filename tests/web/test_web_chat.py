"""Two browser users register, chat end to end, and keep their session across a reload."""

from __future__ import annotations

from conftest import RunningServer
from playwright.async_api import Browser, expect

from .conftest import open_app, register


async def test_two_browser_users_register_and_chat(chatd: RunningServer, browser: Browser) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await alice.get_by_label("Message", exact=True).fill("hello bob")
    await alice.keyboard.press("Enter")
    await expect(bob.get_by_label("1 unread")).to_be_visible()
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("hello bob")
    await bob.get_by_label("Message", exact=True).fill("hi alice")
    await bob.keyboard.press("Enter")
    await expect(alice.get_by_label("Messages")).to_contain_text("hi alice")
    await expect(alice.get_by_label("status: read")).to_have_count(1)
    await expect(alice.get_by_text("● bob")).to_be_visible()  # presence: bob is online
    await bob.close()
    await expect(alice.get_by_text("● bob")).to_have_count(0)  # ... and then offline
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_reload_keeps_the_session_from_indexeddb(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await alice.get_by_label("Message", exact=True).fill("before the reload")
    await alice.keyboard.press("Enter")
    await expect(bob.get_by_label("1 unread")).to_be_visible()

    await alice.reload()  # same browser profile: keys and history come back from IndexedDB
    await expect(alice.get_by_role("button", name="Create account")).to_have_count(0)
    await alice.get_by_role("button", name="@bob").click()
    await expect(alice.get_by_label("Messages")).to_contain_text("before the reload")
    await alice.get_by_label("Message", exact=True).fill("after the reload")
    await alice.keyboard.press("Enter")
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("after the reload")
    # The same session, not a new account: bob's conversation list still has one chat.
    await expect(bob.get_by_role("navigation").get_by_role("listitem")).to_have_count(1)
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_message_typed_offline_is_delivered_once_when_back(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await alice.get_by_label("Message", exact=True).fill("online first")
    await alice.keyboard.press("Enter")
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("online first")

    await alice.context.set_offline(True)
    await expect(alice.get_by_label("connection: offline")).to_be_visible()
    await alice.get_by_label("Message", exact=True).fill("typed while offline")
    await alice.keyboard.press("Enter")
    await expect(alice.get_by_label("status: sending")).to_have_count(1)
    await alice.context.set_offline(False)
    await expect(bob.get_by_label("Messages")).to_contain_text("typed while offline")
    await expect(alice.get_by_label("status: sending")).to_have_count(0)
    # Once: the outbox resent it with its cmid, and the server stored it once.
    await expect(bob.get_by_text("typed while offline")).to_have_count(1)
    await bob.reload()
    await bob.get_by_role("button", name="@alice").click()
    await expect(bob.get_by_text("online first")).to_have_count(1)
    await expect(bob.get_by_text("typed while offline")).to_have_count(1)
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_reply_edit_delete_and_react(chatd: RunningServer, browser: Browser) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    for text in ("first draft", "regrettable"):
        await alice.get_by_label("Message", exact=True).fill(text)
        await alice.keyboard.press("Enter")
    await bob.get_by_role("button", name="@alice").click()
    log = bob.get_by_label("Messages")
    await expect(log).to_contain_text("regrettable")
    first = log.get_by_role("listitem").filter(has_text="first draft")
    seq = await first.get_attribute("data-seq")

    await bob.get_by_role("button", name=f"Reply to message {seq}").click()
    await bob.get_by_label("Message", exact=True).fill("an answer")
    await bob.keyboard.press("Enter")
    await bob.get_by_role("button", name=f"React ❤ to message {seq}").click()
    answer = alice.get_by_label("Messages").get_by_role("listitem").filter(has_text="an answer")
    await expect(answer).to_contain_text("↪ first draft")

    alice.on("dialog", lambda d: d.accept("final text") if d.type == "prompt" else d.accept())
    await alice.get_by_role("button", name=f"Edit message {seq}").click()
    gone = alice.get_by_label("Messages").get_by_role("listitem").filter(has_text="regrettable")
    await gone.get_by_role("button", name="Delete").click()
    await expect(log.get_by_role("listitem").filter(has_text="final text")).to_contain_text(
        "(edited)"
    )
    await expect(log.get_by_role("listitem").filter(has_text="final text")).to_contain_text("❤")
    await expect(log).to_contain_text("message deleted")
    await expect(log).not_to_contain_text("regrettable")
    assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]


async def test_a_second_browser_is_linked_with_approval_and_reads_and_writes(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await alice.get_by_label("Message", exact=True).fill("from the first device")
    await alice.keyboard.press("Enter")

    laptop = await open_app(browser, chatd)  # another browser profile: a new device
    await laptop.get_by_role("button", name="Link this browser").click()
    key = await laptop.get_by_label("This browser's key", exact=True).inner_text()
    await expect(laptop.get_by_role("img", name="This browser's key as a QR code")).to_be_visible()
    await alice.get_by_text("Approve a new device").click()
    await alice.get_by_label("New device's key").fill(key)
    await alice.get_by_role("button", name="Approve").click()
    code = await alice.get_by_label("Pairing code", exact=True).inner_text()
    await laptop.get_by_label("Pairing code").fill(code)
    await laptop.get_by_role("button", name="Link", exact=True).click()
    await laptop.get_by_role("navigation", name="Conversations").wait_for()
    # The device holding the master key lists the new device once it published keys signed by
    # exactly the approved key.
    await expect(alice.get_by_text("Listed: this account has 2 devices.")).to_be_visible()

    await bob.get_by_role("button", name="@alice").click()
    await bob.get_by_label("Message", exact=True).fill("to both of your devices")
    await bob.keyboard.press("Enter")
    await laptop.get_by_role("button", name="@bob").click()
    await expect(laptop.get_by_label("Messages")).to_contain_text("to both of your devices")
    await expect(alice.get_by_label("Messages")).to_contain_text("to both of your devices")
    await laptop.get_by_label("Message", exact=True).fill("from the laptop")
    await laptop.keyboard.press("Enter")
    await expect(bob.get_by_label("Messages")).to_contain_text("from the laptop")
    await expect(alice.get_by_label("Messages")).to_contain_text("from the laptop")
    for page in (alice, bob, laptop):
        assert page.errors == []  # type: ignore[attr-defined]


async def test_a_message_is_forwarded_with_attribution(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    carol = await open_app(browser, chatd)
    for page, handle in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        await register(page, handle)
    await alice.get_by_label("New chat with").fill("bob")
    await alice.get_by_role("button", name="Start chat").click()
    await alice.get_by_label("Message", exact=True).fill("worth passing on")
    await alice.keyboard.press("Enter")
    await bob.get_by_label("New chat with").fill("carol")
    await bob.get_by_role("button", name="Start chat").click()
    # The new chat opens once it exists: wait for it, or it would open over alice's.
    await expect(bob.get_by_role("heading", name="@carol")).to_be_visible()
    await bob.get_by_role("button", name="@alice").click()
    first = bob.get_by_label("Messages").get_by_role("listitem").filter(has_text="worth passing on")
    await first.get_by_role("button", name="Forward message").click()
    await bob.get_by_label("Forward to").select_option(label="@carol")
    await bob.get_by_role("button", name="Forward", exact=True).click()
    await carol.get_by_role("button", name="@bob").click()
    # Attributed to alice's account (carol, who shares no conversation with her, knows its id).
    alice_id = await alice.evaluate("chatd.id.account")
    await expect(carol.get_by_label("Messages")).to_contain_text(
        f"↪ forwarded from #{alice_id}: worth passing on"
    )
    await bob.get_by_role("button", name="@carol").click()
    await expect(bob.get_by_label("Messages")).to_contain_text(
        "↪ forwarded from @alice: worth passing on"
    )


async def test_a_second_tab_of_the_same_browser_does_not_drive_the_device(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    await register(alice, "alice")
    second = await alice.context.new_page()
    await second.goto(chatd.http + "/")
    await expect(second.get_by_role("status")).to_contain_text("open in another tab")
    await alice.close()  # the lock is released: the waiting tab takes over by itself
    await expect(second.get_by_role("navigation", name="Conversations")).to_be_visible()


async def test_a_channel_is_read_by_members_who_cannot_post(
    chatd: RunningServer, browser: Browser
) -> None:
    alice = await open_app(browser, chatd)
    bob = await open_app(browser, chatd)
    await register(alice, "alice")
    await register(bob, "bob")
    await alice.get_by_label("Group title").fill("News")
    await alice.get_by_label("Members").fill("bob")
    await alice.get_by_label("Channel (only admins post)").check()
    await alice.get_by_role("button", name="Create group").click()
    await alice.get_by_label("Message", exact=True).fill("first issue")
    await alice.keyboard.press("Enter")
    await bob.get_by_role("button", name="# News").click()
    await expect(bob.get_by_label("Messages")).to_contain_text("first issue")
    await expect(bob.get_by_text("Only the channel's owner and admins post here.")).to_be_visible()
    await expect(bob.get_by_label("Message", exact=True)).to_have_count(0)
