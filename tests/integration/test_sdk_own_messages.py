"""A sender's own messages are readable to it however they come back (issue 21, point 3): by a
resync, a reconnect's sync or a gap fetch before their ack arrives, they were shown as
``Undecryptable(... 'sent by this device, which stopped before the server acknowledged it')``
(a device never gets its own sender key; only the ack gave the client the plaintext). The real
server stores and acks each message; the test holds the acks back on their way into the client,
as a slow network would, so each of 1,000 messages comes back first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from chatclient import Client, Message
from chatclient.client import SEND_WINDOW
from chatclient.events import Undecryptable
from chatproto import frames as F
from conftest import RunningServer, make_settings, run_server

ROUNDS = 50
PER_ROUND = 20
assert PER_ROUND <= SEND_WINDOW  # a round is written whole before any of its acks is let in


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """No frame budget per account: alice sends ~1,000 messages in a few seconds (over SPEC
    11.1's default, 150/s for all her connections), and a send refused with RATE_LIMITED would
    wait for the acks this test holds back."""
    async with run_server(make_settings(tmp_path, limits={"account_connections": 0})) as s:
        yield s


class SlowAcks(Client):
    """A client whose acks arrive late: held while ``holding``, handled on ``release``."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.holding = False
        self.held: list[F.Ack] = []

    async def _on_frame(self, frame: F.ServerFrame) -> None:
        if self.holding and isinstance(frame, F.Ack):
            self.held.append(frame)
            return
        await super()._on_frame(frame)

    async def release(self) -> None:
        self.holding = False
        held, self.held = self.held, []
        for frame in held:
            await super()._on_frame(frame)


async def test_own_messages_back_by_sync_reconnect_or_gap_fetch_before_their_ack_are_readable(
    server: RunningServer,
) -> None:
    async with SlowAcks(server.url, backoff_initial=0.01) as alice, Client(server.url) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        conv = await alice.direct(bob.account)
        seen: list[Message | Undecryptable] = []
        arrived = asyncio.Event()

        async def watch() -> None:
            async for ev in alice.events():
                if isinstance(ev, Undecryptable) or (isinstance(ev, Message) and ev.own):
                    seen.append(ev)
                    arrived.set()

        watcher = asyncio.create_task(watch())
        ways = {"resync": 0, "reconnect": 0, "gap fetch": 0}
        for r in range(ROUNDS):
            alice.holding = True
            texts = [f"r{r}m{i}" for i in range(PER_ROUND)]
            sends = [asyncio.create_task(alice.send_text(conv, t)) for t in texts]
            while len(alice.held) < PER_ROUND:  # all stored; no ack handled yet
                await asyncio.sleep(0.001)
            way = list(ways)[r % 3]
            ways[way] += 1
            if way == "resync":
                await alice.resync()
            elif way == "reconnect":
                alice.held.clear()  # lost with the connection
                alice.holding = False
                await alice.drop_connection()
            else:  # a later message arrives live first: the client fetches the gap
                await bob.send_text(conv, f"bob {r}")
            own = [ev for ev in seen if not isinstance(ev, Message) or ev.text in texts]
            while len(own) < PER_ROUND:  # shown before any ack was handled
                arrived.clear()
                await asyncio.wait_for(arrived.wait(), 20)
                own = [ev for ev in seen if not isinstance(ev, Message) or ev.text in texts]
            assert [ev.text if isinstance(ev, Message) else ev for ev in own] == texts, way
            await alice.release()  # the late acks find nothing left to do
            acks = await asyncio.wait_for(asyncio.gather(*sends), 20)
            assert [ev.seq for ev in own] == [a.seq for a in acks]
        watcher.cancel()
        assert [ev for ev in seen if isinstance(ev, Undecryptable)] == []
        assert len(seen) == ROUNDS * PER_ROUND  # each shown once
        assert min(ways.values()) >= ROUNDS // 3, ways
