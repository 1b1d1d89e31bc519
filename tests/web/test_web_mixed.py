"""Browsers and the Python SDK in one group, end to end; what the server relays and stores."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from botkit import Inbox, assert_never_seen, recorded_frames, text_is, user
from chatclient import Message
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
