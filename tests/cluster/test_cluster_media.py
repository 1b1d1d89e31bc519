"""Attachments on three nodes sharing PostgreSQL (SPEC.md 17.5: ``backend = auto`` keeps blobs in
the store's database): a file uploaded through node 1 is downloaded through nodes 2 and 3 after
node 1 was killed."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from chatclient import Message
from chatproto import kinds

from .conftest import Cluster, Fleet, Member


async def _attachment(m: Member, conv: int, timeout: float = 30) -> Message:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in m.client.events_nowait():
            if (
                isinstance(ev, Message)
                and ev.conv == conv
                and isinstance(ev.content, kinds.Attachment)
            ):
                return ev
        await asyncio.sleep(0.02)
    raise AssertionError(f"{m.name} got no attachment")


async def test_a_blob_uploaded_on_node_1_is_served_by_nodes_2_and_3_after_node_1_dies(
    cluster: Cluster, fleet: Fleet, tmp_path: Path
) -> None:
    alice = await fleet.add("alice", 0, encrypt=True, record=False)
    bob = await fleet.add("bob", 1, encrypt=True, record=False)
    carol = await fleet.add("carol", 2, encrypt=True, record=False)
    members = [bob.client.account, carol.client.account]
    conv = (await alice.client.create("group", "Photos", members)).conv
    data = os.urandom(3 * 1024 * 1024 + 5)
    src = tmp_path / "holiday.jpg"
    src.write_bytes(data)
    assert alice.client.url == cluster.nodes[0].url
    await alice.client.send_file(conv, src)
    got = {m.name: await _attachment(m, conv) for m in (bob, carol)}
    cluster.nodes[0].kill9()
    for m, node in ((bob, 1), (carol, 2)):
        assert m.client.url == cluster.nodes[node].url
        out = await m.client.download(got[m.name], tmp_path / f"{m.name}.jpg")
        assert out.read_bytes() == data
