"""The traffic of the cluster fault tests: 60 clients, 20 on each of 3 nodes, sending 5,000
messages over about 8 seconds into groups, direct conversations and a channel whose members
are spread over every node, while a test breaks something in the middle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .conftest import NODES, Fleet, Member

CLIENTS = 60
GROUP_SIZE = 6
PER_CLIENT = 80
CHANNEL_POSTS = 200  # 60 x 80 + 200 = 5,000 messages
SECONDS = 8.0


@dataclass
class Layout:
    members: list[Member]
    convs: dict[int, list[str]]
    """Every conversation and the names of its members (who must all show every acked message)."""
    plans: dict[str, list[int]]
    """The conversations each member sends to, one entry per message, in order."""


async def build(fleet: Fleet) -> Layout:
    members = await asyncio.gather(
        *(fleet.add(f"user{i:02d}", home=i % NODES) for i in range(CLIENTS))
    )
    convs: dict[int, list[str]] = {}
    plans: dict[str, list[int]] = {m.name: [] for m in members}
    groups: dict[str, int] = {}
    for g in range(CLIENTS // GROUP_SIZE):  # each group has 2 members on every node
        group = members[g * GROUP_SIZE : (g + 1) * GROUP_SIZE]
        info = await group[0].client.create(
            "group", f"group{g}", [m.client.account for m in group[1:]]
        )
        convs[info.conv] = [m.name for m in group]
        for m in group:
            groups[m.name] = info.conv
    directs: dict[str, int] = {}
    for i in range(0, CLIENTS, 2):  # neighbours live on different nodes
        a, b = members[i], members[i + 1]
        conv = await a.client.direct(b.client.account)
        convs[conv] = [a.name, b.name]
        directs[a.name] = directs[b.name] = conv
    owner, admin = members[0], members[1]
    channel = await owner.client.create("channel", "news", [m.client.account for m in members[1:]])
    await owner.client.set_role(channel.conv, admin.client.account, "admin")
    convs[channel.conv] = [m.name for m in members]
    for m in members:
        plans[m.name] = [
            directs[m.name] if i % 3 == 2 else groups[m.name] for i in range(PER_CLIENT)
        ]
    plans[owner.name] += [channel.conv] * (CHANNEL_POSTS // 2)
    plans[admin.name] += [channel.conv] * (CHANNEL_POSTS // 2)
    return Layout(list(members), convs, plans)


async def run(
    fleet: Fleet,
    layout: Layout,
    fault: Callable[[], Awaitable[None]],
    fault_at: float = 2.5,
) -> None:
    """Send every plan at an even pace over ``SECONDS`` (each client waits for each ack: what
    it sends next depends on nothing else), with ``fault()`` started ``fault_at`` s in."""
    start = time.monotonic()

    async def sender(m: Member) -> None:
        plan = layout.plans[m.name]
        for i, conv in enumerate(plan):
            delay = start + SECONDS * i / len(plan) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await fleet.send(m, conv, f"{m.name}:{i}")

    async def breaker() -> None:
        await asyncio.sleep(fault_at)
        await fault()

    async with asyncio.timeout(120):
        await asyncio.gather(breaker(), *(sender(m) for m in layout.members))
    await fleet.all_delivered(layout.convs)
