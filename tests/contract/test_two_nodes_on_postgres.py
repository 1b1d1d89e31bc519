"""Two chatd nodes sharing one PostgreSQL database (in-process broker on each): what each node
commits is visible to the other's clients through sync, with one gapless sequence. Live
fan-out between nodes needs the Redis broker (issue 4 work in progress); here clients on the
other node catch up from the shared store, which is the truth."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatclient import Client, Message
from conftest import make_settings, run_server

from .conftest import PostgresServer


async def test_two_nodes_share_one_sequence_through_the_database(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    dsn = await postgres_server.create_database()
    try:
        settings = make_settings(tmp_path, store={"db": dsn})
        async with run_server(settings) as node_a, run_server(settings) as node_b:
            async with Client(node_a.url, encrypt=False) as alice:
                await alice.register("alice", "Alice")
                async with Client(node_b.url, encrypt=False) as bob:
                    await bob.register("bob", "Bob")  # the account lives in the shared database
                    conv = await alice.direct(await alice.lookup("bob"))
                    acks_a = [(await alice.send_text(conv, f"a{i}")).seq for i in range(5)]
                    acks_b = [(await bob.send_text(conv, f"b{i}")).seq for i in range(5)]
                    assert acks_a == [2, 3, 4, 5, 6]
                    assert acks_b == [7, 8, 9, 10, 11]
            # Alice's device, reading from the start again on node B, syncs everything both
            # nodes committed, in one order.
            alice.keystore.cursors.clear()
            async with Client(node_b.url, alice.keystore, encrypt=False) as again:
                texts: list[str | None] = []
                async with asyncio.timeout(20):
                    async for ev in again.events():
                        if isinstance(ev, Message) and ev.kind == "text":
                            texts.append(ev.text)
                            if len(texts) == 10:
                                break
                assert texts == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    finally:
        await postgres_server.drop_database(dsn)
