"""An answer to an invitation reaches an inviter who was away across nodes (SPEC.md 18.3,
``list_answers``): three nodes sharing PostgreSQL and Redis; the invitation sent through one,
answered through another, the inviter back through the third: told once, the accept completed
once, the decline not told again on the next node either."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore
from integration.test_answers_while_away import told
from redisd import RedisServer
from serverkit import three_nodes

DEFAULTS = {"add_me": "contacts", "presence": "contacts", "last_seen": "contacts"}


@pytest.fixture
async def nodes(pg_dsn: str, redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[list[str]]:
    async with three_nodes(pg_dsn, redis_server.url, tmp_path, consent=DEFAULTS) as urls:
        yield urls


def client(url: str, tmp_path: Path, who: str) -> Client:
    return Client(url, KeyStore.open(tmp_path / f"{who}.key"))


async def test_answers_while_away_across_nodes(nodes: list[str], tmp_path: Path) -> None:
    ids = {}
    for n, who in enumerate(("carol", "dave")):
        async with client(nodes[n], tmp_path, who) as c:
            await c.register(who, who.title())
            ids[who] = c.account
    async with client(nodes[0], tmp_path, "alice") as alice:
        await alice.register("alice", "Alice")
        conv = (await alice.create("group", "signed club")).conv
        await alice.invite(conv, ids["carol"])
        await alice.invite(conv, ids["dave"])
    async with client(nodes[1], tmp_path, "carol") as c:
        await c.contacts.accept(conv)
    async with client(nodes[1], tmp_path, "dave") as c:
        await c.contacts.delete(conv)
    async with client(nodes[2], tmp_path, "alice") as alice:
        got = await told(alice)
        assert sorted((a.account, a.answer, a.joined) for a in got) == sorted(
            [(ids["carol"], "accept", False), (ids["dave"], "decline", False)]
        )
        await alice.invite(conv, ids["carol"])
        seats = [m.account for m in (await alice.conversation(conv)).members]
        assert seats.count(ids["carol"]) == 1 and ids["dave"] not in seats
    async with client(nodes[0], tmp_path, "alice") as alice:
        assert await told(alice) == []
        assert [a async for a in alice.contacts.answers()] == []
