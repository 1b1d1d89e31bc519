"""The sync/live boundary on the server (SPEC.md 7.4 point 3): a message published while a sync
of its conversation holds live delivery back reaches the client, by the sync or live after
``synced``, never neither.

This is what made ``test_redis_down_same_node_live_other_node_resyncs_when_it_returns`` fail now
and then: after Redis came back, node B told bob to resync twice (its subscriber came back, then
its publisher found its connection dead), and the second sync, with nothing newer than bob's
cursor, read the conversation's highest seq while live delivery was held back; alice's "back",
published during that read, was dropped by the hold and ``synced`` named the seq below it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from chatclient import Client
from chatproto import frames as F
from conftest import RunningServer
from testkit import Raw


async def test_a_message_sent_while_a_sync_with_nothing_newer_reads_the_end_still_arrives(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server.app.services is not None
    store = server.app.services.deps.store
    async with Client(server.url, encrypt=False) as alice:
        await alice.register("alice", "Alice")
        bob = await Raw.open(server.url)
        try:
            await bob.register("bob")
            conv = (await alice.create("group", "team", [bob.account])).conv
            await alice.send_text(conv, "before")
            assert (await bob.expect(F.Deliver, conv=conv, seq=2)).kind == "text"

            # Hold the sync's read of the conversation's end (nothing is newer than seq 2)
            # until alice's next message is committed and published.
            reading, release = asyncio.Event(), asyncio.Event()
            messages = store.messages

            async def held_messages(*args: Any) -> Any:
                if args == (conv, 0, 3, 1):
                    reading.set()
                    await release.wait()
                return await messages(*args)

            monkeypatch.setattr(store, "messages", held_messages)
            rid = bob.next_id()
            await bob.send_frame(F.Sync(id=rid, conv=conv, after=2))
            async with asyncio.timeout(5):
                await reading.wait()
            ack = await alice.send_text(conv, "back")
            assert ack.seq == 3
            release.set()

            synced = await bob.expect(F.Synced, re=rid)
            back = await bob.expect(F.Deliver, conv=conv, seq=3)
            assert synced.seq <= back.seq
            assert back.sender == alice.account
        finally:
            await bob.close()
