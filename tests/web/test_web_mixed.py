"""Browsers and the Python SDK in one group, end to end; what the server relays and stores."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

from botkit import Inbox, assert_never_seen, example, recorded_frames, text_is, user
from chatclient import Message
from chatclient.bots import Bot
from chatclient.events import SecurityWarning
from chatproto import kinds
from conftest import RunningServer
from paykit import mint
from playwright.async_api import Browser, Dialog, Page, WebSocket, expect

from .conftest import open_app, register

MARKER = "WEB-MARKER-5c1e"


def record_frames(page: Page, into: list[bytes]) -> None:
    """Every WebSocket frame the page sends or receives, as bytes."""

    def on_ws(ws: WebSocket) -> None:
        for event in ("framereceived", "framesent"):
            ws.on(event, lambda p: into.append(p if isinstance(p, bytes) else p.encode()))

    page.on("websocket", on_ws)


async def send(page: Page, text: str) -> None:
    await page.get_by_label("Message", exact=True).fill(text)
    await page.keyboard.press("Enter")


async def test_a_group_of_two_browsers_and_a_python_user_read_each_other(
    chatd: RunningServer, browser: Browser, monkeypatch: object
) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    frames: list[bytes] = []
    async with contextlib.AsyncExitStack() as stack:
        with recorded_frames(monkeypatch) as sdk_frames:
            carol = await user(stack, chatd, "carol")
            inbox = Inbox(carol)
            alice = await open_app(browser, chatd)
            bob = await open_app(browser, chatd)
            record_frames(alice, frames)
            record_frames(bob, frames)
            await register(alice, "alice")
            await register(bob, "bob")

            await alice.get_by_label("Group title").fill("Trio")
            await alice.get_by_label("Members").fill("bob, carol")
            await alice.get_by_role("button", name="Create group").click()
            await send(alice, f"from alice {MARKER}")

            alice_id = await carol.lookup("alice")
            bob_id = await carol.lookup("bob")
            got = await inbox.one(
                lambda ev: (
                    isinstance(ev, Message)
                    and ev.sender == alice_id
                    and "from alice" in (ev.text or "")
                ),
                15,
            )
            conv = got.conv
            assert got.text == f"from alice {MARKER}"

            await bob.get_by_role("button", name="Trio").click()
            await expect(bob.get_by_label("Messages")).to_contain_text(f"from alice {MARKER}")
            await carol.send_text(conv, "from carol")
            await expect(alice.get_by_label("Messages")).to_contain_text("from carol")
            await expect(bob.get_by_label("Messages")).to_contain_text("from carol")
            await send(bob, f"from bob {MARKER}")
            await expect(alice.get_by_label("Messages")).to_contain_text(f"from bob {MARKER}")
            got = await inbox.one(text_is(bob_id, conv, "from bob"), 15)
            assert got.text == f"from bob {MARKER}"

            shot = os.environ.get("CHATD_WEB_SCREENSHOT")
            if shot:  # the README's picture (clients/web/README: how it is made)
                await alice.get_by_role("button", name="Trio").click()
                await alice.screenshot(path=str(Path(shot)))
            assert alice.errors == [] and bob.errors == []  # type: ignore[attr-defined]
            # PQXDH across the two implementations, both ways: alice's page started the
            # session with carol's Python device (carol answered), carol's Python client started
            # the one with bob's page (bob answered).
            carol_dev = carol.device
            kinds_js = "async ([a, d]) => (await new Promise((ok) => { const r = indexedDB.open('chatd'); r.onsuccess = () => { const g = r.result.transaction('kv').objectStore('kv').get(`sess:${a}:${d}`); g.onsuccess = () => ok(g.result); }; }))"
            alice_sess = await alice.evaluate(kinds_js, [carol.account, carol_dev])
            bob_sess = await bob.evaluate(kinds_js, [carol.account, carol_dev])
            assert alice_sess["kind"] == bob_sess["kind"] == "pqxdh"
            bob_dev = int(await bob.evaluate("chatd.id.device"))
            alice_dev = int(await alice.evaluate("chatd.id.device"))
            assert carol.e2e._session(bob_id, bob_dev).kind == "pqxdh"
            assert carol.e2e._session(alice_id, alice_dev).kind == "pqxdh"
            assert carol.e2e._session(bob_id, bob_dev).pending_header is None  # bob answered
            # No safety or transcript warning on any side: every check passed across the two
            # implementations (device lists, membership log, transcripts).
            assert await alice.evaluate("chatd.warnings") == []
            assert await bob.evaluate("chatd.warnings") == []
            inbox.none(lambda ev: type(ev).__name__ in ("SecurityWarning", "TranscriptWarning"))

        # The marker typed in the browsers is in no frame the server relayed (to the pages or
        # to the SDK) and nowhere in its database files: only ciphertext went through.
        assert frames and not [f for f in frames if MARKER.encode() in f]
        assert_never_seen(MARKER, sdk_frames, chatd)


async def test_a_browser_user_pays_a_python_user_and_both_verify_the_receipt(
    chatd: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        await mint(Path(chatd.app.settings.store.db), await carol.lookup("alice"), 10_000)
        await alice.get_by_label("New chat with").fill("carol")
        await alice.get_by_role("button", name="Start chat").click()
        await alice.get_by_text("More").click()
        await alice.get_by_label("Pay (USD)").fill("12.50")
        asked: list[str] = []

        async def confirm(dialog: Dialog) -> None:  # money leaves only after a confirmation
            asked.append(dialog.message)
            await dialog.accept()

        alice.on("dialog", confirm)
        await alice.get_by_role("button", name="Pay", exact=True).click()
        # The page verified the server's signature and the payer's (its own device's) intent.
        await expect(alice.get_by_label("Messages")).to_contain_text(
            "transfer 12.50 USD (receipt verified)"
        )
        assert asked == ["Send 12.50 USD to @carol?"]
        got = await inbox.one(
            lambda ev: isinstance(ev, Message) and isinstance(ev.content, kinds.PaymentReceipt),
            15,
        )
        assert (got.content.type, got.content.amount, got.content.currency) == (
            "transfer",
            1250,
            "USD",
        )
        assert await carol.balance("USD") == {"USD": 1250}
        inbox.none(lambda ev: isinstance(ev, SecurityWarning))
        assert await alice.evaluate("chatd.warnings") == []


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "PNG")
    return out.getvalue()


async def test_attachments_cross_between_a_browser_and_a_python_user(
    chatd: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        await alice.get_by_label("New chat with").fill("carol")
        await alice.get_by_role("button", name="Start chat").click()
        red = png((200, 0, 0))
        await alice.get_by_label("Attach a file").set_input_files(
            files=[{"name": "red.png", "mimeType": "image/png", "buffer": red}]
        )
        # The page shows its own image first (one download at a time: chatd's media store on
        # SQLite can fail a download that races another, HTTP 500, reported separately).
        await expect(alice.get_by_role("img", name="red.png")).to_be_visible()
        got = await inbox.one(
            lambda ev: isinstance(ev, Message) and isinstance(ev.content, kinds.Attachment), 15
        )
        assert got.content.name == "red.png" and got.content.media_type == "image/png"
        path = await carol.download(got, tmp_path / "red.png")
        assert path.read_bytes() == red  # encrypted in the page, decrypted by Python

        blue = tmp_path / "blue.png"
        blue.write_bytes(png((0, 0, 200)))
        await carol.send_image(got.conv, blue)
        img = alice.get_by_role("img", name="blue.png")
        await expect(img).to_be_visible()  # decrypted in the page, shown from a blob: URL
        assert await img.evaluate("i => i.naturalWidth") == 40
        assert await alice.get_by_role("img", name="red.png").evaluate("i => i.naturalWidth") == 40
        assert alice.errors == []  # type: ignore[attr-defined]


def receipt(kind: str) -> Callable[[object], bool]:
    return lambda ev: (
        isinstance(ev, Message)
        and isinstance(ev.content, kinds.PaymentReceipt)
        and ev.content.type == kind
    )


async def test_requests_and_red_packets_between_browsers_and_a_python_user(
    chatd: RunningServer, browser: Browser
) -> None:
    db = Path(chatd.app.settings.store.db)
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        bob = await open_app(browser, chatd)
        await register(alice, "alice")
        await register(bob, "bob")
        alice_id = await carol.lookup("alice")
        await mint(db, alice_id, 10_000)
        await mint(db, carol.account, 10_000)
        alice.on("dialog", lambda d: d.accept())

        # The browser asks the Python user for money; Python pays that request.
        await alice.get_by_label("New chat with").fill("carol")
        await alice.get_by_role("button", name="Start chat").click()
        await alice.get_by_text("More").click()
        await alice.get_by_label("Request (USD)").fill("3.00")
        await alice.get_by_label("For what").fill("lunch")
        await alice.get_by_role("button", name="Request", exact=True).click()
        asked = await inbox.one(receipt("request"), 15)
        note = await inbox.one(lambda ev: isinstance(ev, Message) and ev.kind == "payment.request")
        assert (note.content.memo, note.content.request_id) == ("lunch", asked.content.ref)
        await carol.pay(asked.conv, alice_id, "3.00", "USD", request_id=asked.content.ref)
        log = alice.get_by_label("Messages")
        await expect(log).to_contain_text("transfer 3.00 USD (receipt verified)")

        # Python asks the browser; the page pays the request after a confirmation.
        await carol.request(asked.conv, "2.50", "USD", "tickets", payer=alice_id)
        await alice.get_by_role("button", name="Pay request").click()
        paid = await inbox.one(
            lambda ev: receipt("transfer")(ev) and ev.content.payer == alice_id, 15
        )
        assert (paid.content.amount, paid.content.payee) == (250, carol.account)

        # A red packet from the page, claimed by another browser and by Python.
        await alice.get_by_label("Group title").fill("Treats")
        await alice.get_by_label("Members").fill("bob, carol")
        await alice.get_by_role("button", name="Create group").click()
        # The group opens once create_conv answers: wait for it, or "More" opens carol's chat's.
        await expect(alice.get_by_role("heading", name="Treats")).to_be_visible()
        await alice.get_by_text("More").click()
        await alice.get_by_label("Red packet (USD)").fill("1.00")
        await alice.get_by_label("Shares").fill("2")
        await alice.get_by_role("button", name="Send red packet").click()
        packet = await inbox.one(receipt("red_packet"), 15)
        claimed = await carol.claim(packet.content.ref)
        await bob.get_by_role("button", name="Treats").click()
        await bob.get_by_role("button", name="Claim").click()
        await expect(bob.get_by_text("claimed", exact=True)).to_be_visible()
        await expect(bob.get_by_label("Messages")).to_contain_text("claim ")
        shares = claimed.receipt.amount
        bob_wallet = bob.get_by_role("navigation").get_by_text("Wallet")
        await bob_wallet.click()
        await expect(bob.get_by_label("Wallet", exact=True)).to_contain_text(
            f"Balance: {(100 - shares) / 100:.2f} USD"
        )
        inbox.none(lambda ev: isinstance(ev, SecurityWarning))
        assert await alice.evaluate("chatd.warnings") == []
        assert await bob.evaluate("chatd.warnings") == []


async def test_a_browser_shops_with_a_python_bot_through_its_cards_and_pays_the_order(
    chatd: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    shop = example("shop_bot")
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(
            Bot(chatd.url, tmp_path / "shop_bot.key", shop.router, app_title="Shop")
        )
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        await mint(
            Path(chatd.app.settings.store.db),
            int(await alice.evaluate("chatd.id.account")),
            5_000,
        )
        alice.on("dialog", lambda d: d.accept())
        await alice.get_by_label("New chat with").fill("shop_bot")
        await alice.get_by_role("button", name="Start chat").click()
        await alice.get_by_role("group", name="Mini-app").get_by_role("button").first.click()
        await alice.get_by_role("button", name="Green tea").click()
        await alice.get_by_role("button", name="Buy 2 (9.00 USD)").click()
        await alice.get_by_role("button", name="Pay order (9.00 USD)").click()
        log = alice.get_by_label("Messages")
        await expect(log).to_contain_text("transfer 9.00 USD (receipt verified)")
        await expect(log).to_contain_text("✅ Paid 9.00 USD")
        assert await alice.evaluate("chatd.warnings") == []
        assert alice.errors == []  # type: ignore[attr-defined]


async def test_safety_numbers_agree_across_implementations_and_typing_shows(
    chatd: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        await alice.get_by_label("New chat with").fill("carol")
        await alice.get_by_role("button", name="Start chat").click()
        await alice.get_by_label("Message", exact=True).fill("hello carol")
        await alice.keyboard.press("Enter")
        got = await inbox.one(lambda ev: isinstance(ev, Message) and ev.text == "hello carol", 15)

        await alice.get_by_role("button", name="Show safety number").click()
        digits = await alice.get_by_label("Safety number digits").inner_text()
        alice_id = await carol.lookup("alice")
        assert digits.replace(" ", "") == carol.safety_number(alice_id)  # 60 digits, both sides
        await expect(alice.get_by_role("img", name="Safety number QR code")).to_be_visible()
        # Carol's scannable code (libsignal's CombinedFingerprints) verifies alice's view of her.
        from chatproto.e2e import safety

        theirs = safety.scannable(
            carol.e2e.master_key or b"", str(carol.account).encode(),
            carol.e2e.trust(alice_id).master_key, str(alice_id).encode(),
        )  # fmt: skip
        await alice.get_by_label("Their code (scanned)").fill(theirs.hex())
        await alice.get_by_role("button", name="Compare").click()
        await expect(alice.get_by_text("They match: verified.")).to_be_visible()
        await expect(alice.get_by_label("Verified")).to_be_checked()

        await carol.typing(got.conv, True)
        await expect(alice.get_by_text("carol is typing…")).to_be_visible()
        await carol.typing(got.conv, False)
        await expect(alice.get_by_text("carol is typing…")).to_have_count(0)


HOLDERS_JS = """async ([conv, name]) => {
  const db = await new Promise((ok) => { const r = indexedDB.open("chatd"); r.onsuccess = () => ok(r.result); });
  const out = await new Promise((ok) => {
    const r = db.transaction("kv").objectStore("kv").get(name + conv);
    r.onsuccess = () => ok(r.result);
  });
  return out ? out.holders : null;
}"""


async def test_a_bot_in_a_group_gets_only_what_is_addressed_to_it(
    chatd: RunningServer, browser: Browser, tmp_path: Path
) -> None:
    echo = example("echo_bot")
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(chatd.url, tmp_path / "echo_bot.key", echo.router, app_title="Echo")
        )
        alice = await open_app(browser, chatd)
        bob = await open_app(browser, chatd)
        await register(alice, "alice")
        await register(bob, "bob")
        await alice.get_by_label("Group title").fill("With a bot")
        await alice.get_by_label("Members").fill("bob")
        await alice.get_by_role("button", name="Create group").click()
        await alice.get_by_text("More").click()
        await alice.get_by_label("Add member").fill("echo_bot")
        await alice.get_by_role("button", name="Add", exact=True).click()
        await expect(alice.get_by_label("Messages")).to_contain_text("joined")
        # Said once the member list is refreshed: a message sent before it is not addressed to
        # the bot, which then never reads it.
        await expect(alice.get_by_text("@echo_bot was added.")).to_be_visible()
        await alice.get_by_label("Message", exact=True).fill("just between us")
        await alice.keyboard.press("Enter")
        await alice.get_by_label("Message", exact=True).fill("@echo_bot say hi")
        await alice.keyboard.press("Enter")
        await bob.get_by_role("button", name="With a bot").click()
        answer = bob.get_by_label("Messages").get_by_role("listitem").filter(has_text="echo_bot")
        await expect(answer.last).to_contain_text("@echo_bot say hi")  # the bot read it
        await expect(bob.get_by_label("Messages")).to_contain_text("just between us")
        # E2E.md 7.1: the main key never went to the bot; the addressed key did.
        conv = int(await alice.evaluate("[...chatd.convs.keys()].pop()"))
        me = bot.me.account
        main = await alice.evaluate(HOLDERS_JS, [conv, "out:"])
        addressed = await alice.evaluate(HOLDERS_JS, [f"{conv}:addressed", "out:"])
        assert main and not [h for h in main if h.startswith(f"{me}:")]
        assert [h for h in addressed if h.startswith(f"{me}:")]
        assert await alice.evaluate("chatd.warnings") == []
        assert await bob.evaluate("chatd.warnings") == []


async def test_a_group_the_python_user_creates_is_verified_and_read_in_the_browsers(
    chatd: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        bob = await open_app(browser, chatd)
        await register(alice, "alice")
        await register(bob, "bob")
        members = [await carol.lookup("alice"), await carol.lookup("bob")]
        conv = (await carol.create("group", "Made in Python", members)).conv
        await carol.send_text(conv, "welcome, browsers")
        for page in (alice, bob):
            await page.get_by_role("button", name="Made in Python").click()
            await expect(page.get_by_label("Messages")).to_contain_text("welcome, browsers")
        await send(alice, "thanks carol")
        got = await inbox.one(lambda ev: isinstance(ev, Message) and ev.text == "thanks carol", 15)
        assert got.conv == conv and got.sender == members[0]
        await expect(bob.get_by_label("Messages")).to_contain_text("thanks carol")
        # carol (the owner) removes bob: the page rotates its key, bob reads nothing after.
        await carol.remove(conv, members[1])
        await expect(alice.get_by_label("Messages")).to_contain_text("removed")
        await send(alice, "after bob left")
        got = await inbox.one(
            lambda ev: isinstance(ev, Message) and ev.text == "after bob left", 15
        )
        # The page rotated its sender key (E2E.md 7): the key it sent under is held by carol's
        # device only, never by bob's.
        holders = await alice.evaluate(HOLDERS_JS, [conv, "out:"])
        assert holders == [f"{carol.account}:{carol.device}"]
        assert await alice.evaluate("chatd.warnings") == []
        inbox.none(lambda ev: type(ev).__name__ in ("SecurityWarning", "TranscriptWarning"))
