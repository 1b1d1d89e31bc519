"""To-device items are processed in tid order, none skipped (SPEC.md 13 step 9, 14.3).

A receiving device remembers one number, the last tid it processed. A sender key pushed live
while the device is still logging in (before its fetch of the queue) must not be processed
ahead of one queued while it was away: that would mark the earlier one done unread (and
acknowledge it away on the server), and every message under it would be undecryptable. This is
what made ``test_reconnect_resumes_in_order_without_gap_or_duplicate_while_others_keep_sending``
fail now and then: bob, reconnecting, got carol's key live before his fetch reached alice's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import chatclient.client
import pytest
from chatclient import Client, KeyStore, Message
from chatclient.events import Undecryptable
from chatproto import frames as F
from conftest import RunningServer


class SlowLoginSetup(Client):
    """A client whose login is slow to reach its to-device fetch: the answer to its key refill
    (the last step before the fetch) is held until a to-device item pushed live meanwhile has
    been dealt with (the next ``ok``, which answers its ``ack_to_device``)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.holding = asyncio.Event()
        self.pushed_live: list[int] = []
        self._held: F.ServerFrame | None = None
        self._done_holding = False

    async def _on_frame(self, frame: F.ServerFrame) -> None:
        if isinstance(frame, F.KeyCount) and not self._done_holding and self._held is None:
            self._held = frame
            self.holding.set()
            return
        if isinstance(frame, F.ToDeviceEvent) and self._held is not None:
            self.pushed_live.append(frame.tid)
        await super()._on_frame(frame)
        if isinstance(frame, F.Ok) and self.pushed_live and self._held is not None:
            held, self._held, self._done_holding = self._held, None, True
            await super()._on_frame(held)


async def test_a_key_pushed_live_during_login_does_not_skip_one_queued_while_away(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chatclient.client, "PARK_SECONDS", 2.0)  # the bug fails fast
    keyfile = tmp_path / "bob.key"
    async with Client(server.url) as alice, Client(server.url) as carol:
        await alice.register("alice", "Alice")
        await carol.register("carol", "Carol")
        async with Client(server.url, KeyStore.open(keyfile)) as bob:
            await bob.register("bob", "Bob")
            group = await alice.create("group", "Keys", [bob.account, carol.account])
        await alice.send_text(group.conv, "from alice")  # her key waits in bob's queue
        async with SlowLoginSetup(server.url, KeyStore.open(keyfile)) as bob:
            await asyncio.wait_for(bob.holding.wait(), 10)  # logged in, not fetched yet
            await carol.send_text(group.conv, "from carol")  # her key: pushed to bob live
            got: list[Message | Undecryptable] = []

            async def collect() -> None:
                async for ev in bob.events():
                    shown = isinstance(ev, Undecryptable) or (
                        isinstance(ev, Message) and ev.kind != "system"
                    )
                    if shown and ev.conv == group.conv:
                        got.append(ev)
                        if len(got) == 2:
                            return

            await asyncio.wait_for(collect(), 20)
            assert bob.pushed_live, "carol's key was not pushed while bob was logging in"
            assert [(type(m), getattr(m, "text", None)) for m in got] == [
                (Message, "from alice"),
                (Message, "from carol"),
            ], got
