"""Issue 14.7, the removal races, against a real server on SQLite and on PostgreSQL:

* a member removed while its own ``sync`` streams a long history must get nothing written after
  its removal (the sync used to check membership once, at its start, and then stream on);
* a login racing a removal must not keep live delivery of the conversation it was removed from
  (the login used to read its memberships and only then attach to the hub, so an UNWATCH
  published in between reached no connection: on PostgreSQL the read is a round trip).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e.primitives import SigningKey
from conftest import make_settings, run_server
from redisd import RedisServer
from testkit import Raw

_cmids = itertools.count(1)
HISTORY = 160
FAST = {"frames_per_second": 10_000.0, "frame_burst": 10_000.0}
"""These tests are about races, not about the rate limit."""


def text(s: str) -> bytes:
    return kinds.encode_content(kinds.Text(text=s))[1]


async def send(c: Raw, conv: int, kind: str, body: bytes) -> F.Ack:
    ack: F.Ack = await c.request(
        F.Send(id=c.next_id(), conv=conv, cmid=f"m{next(_cmids)}", kind=kind, body=body), F.Ack
    )
    return ack


async def group(owner: Raw, *members: int, title: str = "team") -> int:
    conv: F.Conv = await owner.request(
        F.CreateConv(id=owner.next_id(), kind="group", title=title, members=list(members)), F.Conv
    )
    return conv.info.conv


async def test_a_member_removed_during_its_own_sync_gets_nothing_written_after_its_removal(
    db: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, store={"db": db}, limits=FAST)
    async with run_server(settings) as server:
        alice = await Raw.open(server.url)
        await alice.register("alice")
        first = await Raw.open(server.url)
        await first.register("bob")
        bob_key, bob_device, bob = first.key, first.device, first.account
        await first.close()
        conv = await group(alice, bob)
        # 10.5 MB of history: more than the kernel's socket buffers on both sides (4 MiB and
        # bob's 4 KiB), so the sync below is still streaming when bob is removed.
        for _ in range(HISTORY):
            await send(alice, conv, "x-blob", bytes(65_536))

        # bob's new connection reads slowly (a 4 KiB receive buffer, and it stops reading)
        reader = await Raw.open(server.url, rcvbuf=4096)
        await reader.login(bob_device, bob_key)
        await reader.send_frame(F.Sync(id=reader.next_id(), conv=conv, after=0))
        assert (await reader.expect(F.Deliver, conv=conv)).seq == 1  # the sync is under way

        await alice.request(F.Remove(id=alice.next_id(), conv=conv, account=bob), F.Ok)
        removal = await alice.expect(F.Deliver, conv=conv, seq=2 + HISTORY)
        assert kinds.decode_content(removal.kind, removal.body) == kinds.SystemEvent(
            event="removed", actor=alice.account, account=bob
        )
        removed = removal.seq
        after = await send(alice, conv, "text", text("posted after bob's removal"))
        await alice.request(F.Invite(id=alice.next_id(), conv=conv, account=bob), F.Ok)
        rejoined = (await alice.expect(F.Deliver, conv=conv, seq=after.seq + 1)).seq

        got = [1]
        synced = None
        while synced is None:
            f = await reader.recv(timeout=30)
            if isinstance(f, F.Deliver) and f.conv == conv:
                got.append(f.seq)
            elif isinstance(f, F.Synced):
                synced = f
        # Through the removal (its own `removed` message included, as live delivery sends it),
        # then nothing: not the text posted while bob was out. The sync ends at the removal;
        # the re-invitation reaches bob live (the message that added it), as any join does.
        assert synced.seq == removed
        assert after.seq not in got
        assert sorted(set(got) - {rejoined}) == list(range(1, removed + 1))
        await reader.close()
        await alice.close()


async def test_a_login_racing_a_removal_keeps_no_live_delivery_of_that_conversation(
    db: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, store={"db": db})
    async with run_server(settings) as server:
        leaks = await login_race(server.url, server.url, rounds=8, logins=10)
    assert leaks == {"connections": 80, "leaked": 0}


async def test_a_login_on_one_node_racing_a_removal_on_another_keeps_no_live_delivery(
    pg_dsn: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, store={"db": pg_dsn}, broker={"url": redis_server.url})
    async with run_server(settings) as node_a, run_server(settings) as node_b:
        for node in (node_a, node_b):
            async with asyncio.timeout(10):
                while not node.app.broker.healthy():
                    await asyncio.sleep(0.01)
        leaks = await login_race(node_a.url, node_b.url, rounds=8, logins=10)
    assert leaks == {"connections": 80, "leaked": 0}


async def log_in(url: str, device: int, key: SigningKey, started: asyncio.Event) -> Raw:
    c = await Raw.open(url)
    started.set()
    await c.login(device, key)
    return c


async def login_race(
    owner_url: str, victim_url: str, *, rounds: int, logins: int
) -> dict[str, int]:
    """``rounds`` times: bob's device logs in on ``logins`` new connections (to
    ``victim_url``) while alice (on ``owner_url``) removes bob from a fresh group; then alice
    posts in that group and, last, in a direct conversation with bob. Each of bob's
    connections reads until that last message: a connection that saw the group's post first
    kept live delivery after its removal (a leak)."""
    alice = await Raw.open(owner_url)
    await alice.register("alice")
    first = await Raw.open(victim_url)
    await first.register("bob")
    bob, bob_key, bob_device = first.account, first.key, first.device
    await first.close()
    dm: F.Conv = await alice.request(
        F.CreateConv(id=alice.next_id(), kind="direct", members=[bob]), F.Conv
    )
    connections = leaked = 0
    for r in range(rounds):
        conv = await group(alice, bob, title=f"round {r}")
        started = asyncio.Event()

        tasks = [
            asyncio.create_task(log_in(victim_url, bob_device, bob_key, started))
            for _ in range(logins)
        ]
        await started.wait()  # the logins are under way: remove now
        await alice.request(F.Remove(id=alice.next_id(), conv=conv, account=bob), F.Ok)
        victims = await asyncio.gather(*tasks)
        for c in victims:  # a sync returns once the node's subscription to dm is in effect
            await c.request(F.Sync(id=c.next_id(), conv=dm.info.conv, after=0), F.Synced)
        posted = await send(alice, conv, "text", text("after the removal"))
        sentinel = await send(alice, dm.info.conv, "text", text(f"sentinel {r}"))
        for c in victims:
            connections += 1
            while True:
                f = await c.recv(timeout=10)
                if isinstance(f, F.Deliver) and f.conv == conv and f.seq == posted.seq:
                    leaked += 1
                if isinstance(f, F.Deliver) and f.seq == sentinel.seq and f.conv == dm.info.conv:
                    break
            await c.close()
    await alice.close()
    return {"connections": connections, "leaked": leaked}
