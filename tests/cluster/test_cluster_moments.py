"""Moments (issue 19.3, SPEC.md 22) on three real nodes sharing PostgreSQL and Redis: the
author, its two contacts (not each other's) and a stranger each on another node; the Moment
and the comments each may see are pushed across nodes, decrypted with keys that travelled
between nodes, and nothing else arrives: WeChat's rule holds whichever node serves whom."""

from __future__ import annotations

import asyncio
from typing import TypeVar

import pytest
from chatclient import Client, NotFound
from chatclient.events import MomentNote, MomentPost

from .conftest import Cluster, Fleet

E = TypeVar("E")
TIMEOUT = 15


async def next_event(client: Client, kind: type[E]) -> E:
    async with asyncio.timeout(TIMEOUT):
        async for ev in client.events():
            if isinstance(ev, kind):
                return ev
    raise AssertionError("event stream ended")


async def befriend(a: Client, b: Client) -> None:
    await a.direct(b.account)
    await b.direct(a.account)


async def test_moments_visibility_holds_across_three_nodes(cluster: Cluster, fleet: Fleet) -> None:
    a = (await fleet.add("alice", 0, encrypt=True, record=False)).client
    b = (await fleet.add("bob", 1, encrypt=True, record=False)).client
    c = (await fleet.add("carol", 2, encrypt=True, record=False)).client
    d = (await fleet.add("dave", 0, encrypt=True, record=False)).client
    await befriend(a, b)
    await befriend(a, c)
    posted = await a.moments.post("from node 1", [b.account, c.account])
    for viewer in (b, c):
        got = await next_event(viewer, MomentPost)
        assert (got.moment, got.text, got.readable) == (posted.moment, "from node 1", True)
    await b.moments.comment(posted.moment, "bob on node 2")
    note = await next_event(a, MomentNote)
    assert (note.author, note.text) == (b.account, "bob on node 2")
    await c.moments.comment(posted.moment, "carol on node 3")
    note = await next_event(a, MomentNote)
    assert (note.author, note.text) == (c.account, "carol on node 3")
    await a.moments.comment(posted.moment, "alice answers")
    for viewer in (b, c):  # the first comment each is pushed is alice's: not the other's
        note = await next_event(viewer, MomentNote)
        assert (note.author, note.text) == (a.account, "alice answers")
    seen_b = [(n.author, n.text) async for n in b.moments.comments(posted.moment)]
    seen_c = [(n.author, n.text) async for n in c.moments.comments(posted.moment)]
    assert seen_b == [(b.account, "bob on node 2"), (a.account, "alice answers")]
    assert seen_c == [(c.account, "carol on node 3"), (a.account, "alice answers")]
    with pytest.raises(NotFound):
        await d.moments.get(posted.moment)
    assert (await d.moments.feed()).items == []
