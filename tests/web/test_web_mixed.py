"""Browsers and the Python SDK in one group, end to end; what the server relays and stores."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from botkit import Inbox, assert_never_seen, recorded_frames, text_is, user
from chatclient import Message
from conftest import RunningServer
from playwright.async_api import Browser, Page, WebSocket, expect

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

        # The marker typed in the browsers is in no frame the server relayed (to the pages or
        # to the SDK) and nowhere in its database files: only ciphertext went through.
        assert frames and not [f for f in frames if MARKER.encode() in f]
        assert_never_seen(MARKER, sdk_frames, chatd)
