"""Prekey upkeep: the signed prekey rotates weekly and sessions keep working across it."""

from __future__ import annotations

import asyncio
import time

from chatclient import Client, Message
from chatclient.e2e import ONE_TIME_TARGET, ROTATE_SECONDS
from chatproto import frames as F
from conftest import RunningServer


async def _next_text(client: Client) -> Message:
    async with asyncio.timeout(10):
        async for ev in client.events():
            if isinstance(ev, Message) and ev.kind == "text":
                return ev
    raise AssertionError("no message")


async def test_signed_prekey_rotates_when_due_and_new_sessions_use_it(
    server: RunningServer,
) -> None:
    async with Client(server.url) as a, Client(server.url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        before = b.e2e.prekeys
        assert before is not None
        assert not await b.e2e.rotate_prekeys_if_due()  # fresh: not due
        assert await b.e2e.rotate_prekeys_if_due(now=time.time() + ROTATE_SECONDS + 1)
        after = b.e2e.prekeys
        assert after is not None
        assert after.signed_prekey.kid != before.signed_prekey.kid
        assert after.previous_signed_prekey == before.signed_prekey
        bundles = await a._call(F.ClaimKeys(id=a._next_id(), account=b.account), F.Bundles)
        assert bundles.bundles[0].signed_prekey is not None
        assert bundles.bundles[0].signed_prekey.kid == after.signed_prekey.kid
        conv = await a.direct(b.account)
        await a.send_text(conv, "after rotation")
        assert (await _next_text(b)).text == "after rotation"


async def test_one_time_prekeys_are_refilled_on_login(server: RunningServer) -> None:
    async with Client(server.url) as b:
        await b.register("bob", "Bob")
        for i in range(ONE_TIME_TARGET // 2 + 5):  # others claim most of bob's one-time prekeys
            async with Client(server.url) as other:
                await other.register(f"claimer{i}", "C")
                # Bob's contacts (he messaged them first): a stranger may take only a few of
                # bob's one-time prekeys (SPEC.md 18.5).
                await b.direct(other.account)
                await other._call(F.ClaimKeys(id=other._next_id(), account=b.account), F.Bundles)
        assert await b.e2e.refill() == ONE_TIME_TARGET
