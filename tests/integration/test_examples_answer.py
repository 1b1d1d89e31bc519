"""Every example bot answers every command its profile advertises, typed bare (a usage hint is
an answer) and with arguments, and never prints a raw Python value (issue 15)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest
from chatclient import Message
from chatclient.bots import Bot
from chatproto import kinds

from tests.botkit import Inbox, example, user
from tests.conftest import RunningServer

WITH_ARGS = {
    "poll": "/poll Lunch? | Pizza | Sushi",
    "vote": "/vote 1 1",
    "results": "/results",
}
"""Commands sent once more with arguments (after their bare form)."""


@pytest.mark.parametrize("name", ["echo_bot", "poll_bot", "shop_bot", "taxi_bot"])
async def test_an_example_answers_every_command_it_advertises(
    server: RunningServer, tmp_path: Path, name: str
) -> None:
    module = example(name)
    async with contextlib.AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            Bot(server.url, tmp_path / f"{name}.key", module.router, handle=name)
        )
        alice = await user(stack, server, "alice")
        conv = await alice.direct(bot.me.account)
        inbox = Inbox(alice)
        profile = await alice.bot_profile(bot.me.account)
        names = [c.name for c in profile.commands]
        assert "start" in names and "help" in names, names
        lines = [f"/{n}" for n in names]
        lines += [WITH_ARGS[n] for n in names if n in WITH_ARGS]
        if name == "poll_bot":  # the poll's own id, as its message says
            lines.remove("/vote 1 1")
        for line in lines:
            ack = await alice.send_text(conv, line)

            def answer(ev: object, after: int = ack.seq) -> bool:
                """The bot's text answering ``after`` (a reply to it, or a poll it posts)."""
                return (
                    isinstance(ev, Message)
                    and isinstance(ev.content, kinds.Text)
                    and ev.conv == conv
                    and ev.sender == bot.me.account
                    and (ev.reply_to == after or (ev.seq > after and "poll" in ev.content.text))
                )

            got = await inbox.one(answer)
            text = got.text or ""
            assert text, f"{line!r}: {got!r}"
            assert not re.search(r"\{'|': \{|\[\{", text), f"{line!r} printed a raw value: {text}"
            if line == "/poll Lunch? | Pizza | Sushi":
                pid = re.search(r"poll (\d+)", text)
                assert pid is not None
                vote = await alice.send_text(conv, f"/vote {pid.group(1)} 2")
                voted = await inbox.one(lambda ev, a=vote.seq: answer(ev, a) and bool(ev.text))
                assert voted.text is not None
                assert voted.text.startswith(("You voted for Sushi", "📊"))
