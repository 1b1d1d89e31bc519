"""Deleting a message for everyone with the SDK (SPEC.md 18.9): an admin deletes a member's
end-to-end encrypted message; every member's client is told (a ``deleted`` system message), its
history shows the tombstone (who, when) in the message's seq and never the text again, and a
member who read it can still report it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from chatclient import Client, Message
from chatclient.errors import RequestError
from chatproto import kinds
from chatproto.errors import ErrorCode

from tests.conftest import make_settings, run_server


async def _event(c: Client, conv: int, pred: object, timeout: float = 10.0) -> Message:
    """The next ``Message`` of ``conv`` at ``c`` for which ``pred`` holds."""
    async with asyncio.timeout(timeout):
        async for ev in c.events():
            if isinstance(ev, Message) and ev.conv == conv and pred(ev):  # type: ignore[operator]
                return ev
    raise AssertionError("the event stream ended")


def _deleted(seq: int) -> object:
    def match(m: Message) -> bool:
        c = m.content
        return isinstance(c, kinds.SystemEvent) and c.event == "deleted" and c.target == seq

    return match


async def test_an_admin_deletes_a_members_message_for_everyone(tmp_path: Path) -> None:
    async with (
        run_server(make_settings(tmp_path)) as server,
        Client(server.url) as ann,
        Client(server.url) as bob,
        Client(server.url) as cat,
    ):
        for c, h in ((ann, "ann"), (bob, "bob"), (cat, "cat")):
            await c.register(h, h.title())
        conv = (await ann.create("group", "club", [bob.account, cat.account])).conv
        await ann.set_role(conv, bob.account, "admin")
        ack = await cat.send_text(conv, "something regrettable")
        for c in (ann, bob):
            await _event(c, conv, lambda m: m.text == "something regrettable")

        # A member may not delete another member's message; an admin may.
        with pytest.raises(RequestError) as refused:
            await ann.delete_for_everyone(conv, 1)  # the "created" message: the server's
        assert refused.value.code == ErrorCode.INVALID
        await bob.delete_for_everyone(conv, ack.seq)
        for c in (ann, bob, cat):
            told = await _event(c, conv, _deleted(ack.seq))
            assert isinstance(told.content, kinds.SystemEvent)
            assert (told.content.actor, told.content.account) == (bob.account, cat.account)

        # History: the tombstone in the same seq, never the text.
        for c in (ann, cat):
            shown = [m for m in await c.history(conv) if m.seq == ack.seq]
            assert len(shown) == 1 and isinstance(shown[0], Message)
            tomb = shown[0].content
            assert isinstance(tomb, kinds.Deleted) and tomb.by == bob.account
            assert shown[0].sender == cat.account and shown[0].text is None
        # Ann read it before: she can still report it (the commitment outlives the body).
        reported = await ann.report(conv, ack.seq, "abuse")
        assert reported.sender == cat.account
