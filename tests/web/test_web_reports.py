"""Message franking in the browser (E2E.md 17, SPEC.md 18.7): the page franks every message it
encrypts and keeps the opening of what it decrypts, so a report from the browser of a Python
user's message verifies on the server and names its sender, and a Python user's report of a
browser's message does too. A report whose plaintext was changed is refused."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from types import SimpleNamespace

import pytest
from botkit import Inbox, user
from chatclient import Message, sending
from chatproto import franking, kinds
from conftest import RunningServer
from playwright.async_api import Browser, Dialog, expect

from .conftest import open_app, register


async def reports_listed(server: RunningServer) -> str:
    """What the operator's ``chatd admin reports`` lists."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatd",
        "admin",
        "reports",
        "--db",
        str(server.app.settings.store.db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out
    return out.decode()


async def test_reports_from_and_of_the_browser_verify_and_name_the_sender(
    chatd: RunningServer, browser: Browser
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        inbox = Inbox(carol)
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        alice_id = int(await alice.evaluate("chatd.id.account"))
        await alice.get_by_label("Group title").fill("Reports")
        await alice.get_by_label("Members").fill("carol")
        await alice.get_by_role("button", name="Create group").click()
        await alice.get_by_label("Message", exact=True).fill("hi all")
        await alice.keyboard.press("Enter")
        got = await inbox.one(
            lambda ev: isinstance(ev, Message) and ev.sender == alice_id and ev.text == "hi all",
            15,
        )
        conv = got.conv

        # The Python user reports the browser's message: the page franked it (fk inside the
        # ciphertext, fc in its send), so the server verifies it and names alice.
        reported = await carol.report(conv, got.seq, "from python")
        assert reported.sender == alice_id

        # The browser reports the Python user's message.
        ack = await carol.send_text(conv, "python says something bad")
        row = (
            alice.get_by_label("Messages")
            .get_by_role("listitem")
            .filter(has_text="python says something bad")
        )
        await expect(row).to_be_visible()
        asked: list[str] = []

        async def answer(dialog: Dialog) -> None:
            asked.append(dialog.message)
            await dialog.accept("spam")

        alice.on("dialog", answer)
        await row.get_by_role("button", name=f"Report message {ack.seq}").click()
        await expect(row.get_by_role("status")).to_have_text(
            "Reported: the server confirmed @carol sent it."
        )
        assert asked and "operator will read it" in asked[0]
        # Own messages carry no report button; the server listed both reports.
        mine = alice.get_by_label("Messages").get_by_role("listitem").filter(has_text="hi all")
        await expect(mine.get_by_role("button", name="Report message")).to_have_count(0)
        listed = await reports_listed(chatd)
        assert f"seq {got.seq} sender {alice_id}" in listed, listed
        assert f"seq {ack.seq} sender {carol.account}" in listed, listed
        assert "'python says something bad'" in listed and "spam" in listed

        # A report with a changed plaintext (but the true key) is refused: the server checks.
        forged = await alice.evaluate(
            """async ([conv, seq, body]) => {
                 const o = await new Promise((ok) => { const r = indexedDB.open('chatd');
                   r.onsuccess = () => { const g = r.result.transaction('kv').objectStore('kv')
                     .get(`open:${conv}:${seq}`); g.onsuccess = () => ok(g.result); }; });
                 try {
                   await chatd.call({t: 'report', conv, seq, plaintext: new Uint8Array(body), fk: o.fk});
                   return 'accepted';
                 } catch (e) { return String(e.code); }
               }""",
            [
                conv,
                ack.seq,
                list(
                    franking.encode_plaintext(
                        "text", kinds.encode_content(kinds.Text(text="python says hello"))[1]
                    )
                ),
            ],
        )
        assert forged == "25"  # REPORT_REFUSED
        assert await alice.evaluate("chatd.warnings") == []
        assert alice.errors == []  # type: ignore[attr-defined]


async def test_a_message_whose_commitment_does_not_open_is_not_shown(
    chatd: RunningServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """E2E.md 17: the page checks the commitment delivered with a franked message before it
    shows it; a sender that commits to something else (or to nothing) is not shown as saying
    anything, and its message cannot be reported."""
    async with contextlib.AsyncExitStack() as stack:
        carol = await user(stack, chatd, "carol")
        alice = await open_app(browser, chatd)
        await register(alice, "alice")
        await alice.get_by_label("New chat with").fill("carol")
        await alice.get_by_role("button", name="Start chat").click()
        await alice.get_by_label("Message", exact=True).fill("hello carol")
        await alice.keyboard.press("Enter")
        conv = int(
            await alice.evaluate("[...chatd.convs.values()].find(c => c.kind === 'direct').conv")
        )
        # carol's client commits to other bytes than it encrypts, then to nothing at all.
        for commitment in (lambda key, pt: franking.commit(key, pt + b"x"), lambda key, pt: None):
            monkeypatch.setattr(
                sending,
                "franking",
                SimpleNamespace(
                    new_key=franking.new_key,
                    encode_plaintext=franking.encode_plaintext,
                    commit=commitment,
                ),
            )
            await carol.send_text(conv, "words carol disowns")
        monkeypatch.setattr(sending, "franking", franking)
        await carol.send_text(conv, "words carol stands by")
        log = alice.get_by_label("Messages")
        await expect(log).to_contain_text("words carol stands by")
        bad = log.get_by_role("listitem").filter(has_text="franking commitment does not match")
        await expect(bad).to_have_count(2)
        await expect(log).not_to_contain_text("words carol disowns")
        await expect(bad.get_by_role("button", name="Report message")).to_have_count(0)
        good = log.get_by_role("listitem").filter(has_text="words carol stands by")
        await expect(good.get_by_role("button", name="Report message")).to_have_count(1)
        assert alice.errors == []  # type: ignore[attr-defined]
