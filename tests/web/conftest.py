"""Playwright driving real headless Chromium (Debian's ``chromium``, never a downloaded browser)
against a chatd serving its web app. Skipped, with the reason, where chromium or the built app
is missing (``.ci/run`` installs chromium)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningServer, make_settings, run_server
from playwright.async_api import Browser, Page, async_playwright, expect

from chatd import web
from chatd.settings import ConsentSettings

CHROMIUM = os.environ.get("CHATD_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
STEP = 15_000  # ms: the longest any one browser step (or expectation) may take
expect.set_options(timeout=STEP)  # the default 5 s is short for a loaded CI machine

HAVE_CHROMIUM = Path(CHROMIUM).exists()


@pytest.fixture
async def chatd(tmp_path: Path) -> AsyncIterator[RunningServer]:
    async with run_server(make_settings(tmp_path)) as s:
        yield s


CHATD_DEFAULTS = {
    key: getattr(ConsentSettings(), key) for key in ("add_me", "presence", "last_seen")
}
"""chatd's own privacy defaults (``contacts``), which a user running ``chatd serve`` gets:
tests/conftest.py opens them up for the suites that test messaging, not consent."""


@pytest.fixture
async def chatd_defaults(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """A chatd with the real consent defaults: strangers' chats are requests, their groups
    invitations."""
    assert CHATD_DEFAULTS == {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}
    async with run_server(make_settings(tmp_path, consent=CHATD_DEFAULTS)) as s:
        yield s


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    if web.serve("/") is None:
        pytest.skip("chatd/web/static has no built app (cd clients/web && npm ci && npm run build)")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            yield b
        finally:
            await b.close()


async def open_app(browser: Browser, server: RunningServer, **context: Any) -> Page:
    ctx = await browser.new_context(viewport={"width": 1000, "height": 700}, **context)
    page = await ctx.new_page()
    page.set_default_timeout(STEP)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: print(f"[{m.type}] {m.text}") if m.type in ("error", "warning") else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(server.http + "/")
    return page


async def register(page: Page, handle: str) -> None:
    await page.get_by_label("Handle").fill(handle)
    await page.get_by_label("Display name").fill(handle.title())
    await page.get_by_role("button", name="Create account").click()
    await page.get_by_role("navigation", name="Conversations").wait_for()
    # Online only once the keys and the device list are published: a peer who writes before
    # that finds no device list to encrypt for.
    await expect(page.get_by_label("connection: online")).to_be_visible()
