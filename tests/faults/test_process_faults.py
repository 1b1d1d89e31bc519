"""Real processes killed and restarted: acknowledged means durable; SIGTERM drains cleanly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import testkit
from chatclient import Client, Disconnected, KeyStore
from chatproto import frames as F
from testkit import Checker, Raw, ServerProcess
from testkit import free_port as real_free_port


async def test_every_acked_message_survives_kill_9_right_after_the_acks(tmp_path: Path) -> None:
    srv = ServerProcess(
        tmp_path / "chatd.db",
        env={"CHATD_LIMITS__FRAMES_PER_SECOND": "100000", "CHATD_LIMITS__FRAME_BURST": "100000"},
    )
    await srv.start()
    checker = Checker()
    senders = []
    try:
        owner = await Raw.open(srv.url)
        await owner.register("owner")
        members = []
        for i in range(4):
            r = await Raw.open(srv.url)
            await r.register(f"user{i}")
            members.append(r)
        conv = (
            await owner.request(
                F.CreateConv(
                    id=owner.next_id(),
                    kind="group",
                    title="G",
                    members=[m.account for m in members],
                ),
                F.Conv,
            )
        ).info.conv
        senders = [owner, *members]

        async def blast(r: Raw, name: str) -> None:
            # Pipeline 400 sends, then read acks as they come; the server is killed mid-stream.
            for i in range(400):
                await r.send_frame(
                    F.Send(
                        id=r.next_id(), conv=conv, cmid=f"{name}-{i}", kind="text", body=b"x" * 50
                    )
                )
            try:
                while True:
                    ack = await r.expect(F.Ack, timeout=5)
                    checker.ack(conv, ack.seq)
            except Exception:
                return

        tasks = [asyncio.create_task(blast(r, f"s{i}")) for i, r in enumerate(senders)]

        async def kill_after_some_acks() -> None:
            while sum(len(v) for v in checker.acked.values()) < 300:
                await asyncio.sleep(0.001)
            srv.kill9()

        await asyncio.gather(kill_after_some_acks(), *tasks)
        acked = set(checker.acked[conv])
        assert len(acked) >= 300
        await srv.start()  # restart on the same file
        reader = await Raw.open(srv.url)
        await reader.login(owner.device, owner.key)
        stored: list[int] = []
        after = 0
        while True:
            page = await reader.request(
                F.Fetch(id=reader.next_id(), conv=conv, after=after, limit=500), F.Messages
            )
            stored += [m.seq for m in page.messages]
            if not page.more:
                break
            after = page.messages[-1].seq
        assert acked <= set(stored), f"lost acked messages: {sorted(acked - set(stored))[:10]}"
        assert stored == list(range(1, len(stored) + 1))  # gapless after recovery
        # The sequence continues without a gap after the restart.
        ack = await reader.request(
            F.Send(id=reader.next_id(), conv=conv, cmid="after-restart", kind="text", body=b"y"),
            F.Ack,
        )
        assert ack.seq == len(stored) + 1
        await reader.close()
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()


async def test_sigterm_closes_clients_with_1001_commits_queued_writes_and_exits_0(
    tmp_path: Path,
) -> None:
    srv = ServerProcess(tmp_path / "chatd.db")
    await srv.start()
    ks = KeyStore.open(tmp_path / "a.key")
    async with Client(srv.url, ks, reconnect=False) as a:
        await a.register("alice", "Alice")
        group = await a.create("group", "G")
        acks = [await a.send_text(group.conv, f"m{i}") for i in range(20)]
        code = await asyncio.to_thread(srv.terminate)
        assert code == 0
        seen = []
        async for ev in a.events():
            if isinstance(ev, Disconnected):
                seen.append(ev)
                break
        assert seen[0].code == 1001
    await srv.start()
    async with Client(srv.url, KeyStore.open(tmp_path / "a.key")) as a:
        page = await a.fetch(group.conv, after=0, limit=100)
        assert [m.seq for m in page.messages][-20:] == [x.seq for x in acks]
    srv.terminate()


async def test_a_second_node_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    """Several nodes cannot share one SQLite file (each keeps the conversations' last seqs in
    memory, and SQLite has one writer): the second says so and exits; the first serves on."""
    first = ServerProcess(tmp_path / "shared.db")
    await first.start()
    second = ServerProcess(tmp_path / "shared.db", log=tmp_path / "second.log")
    try:
        try:
            await second.start()
            raise AssertionError("a second chatd started on the same SQLite file")
        except RuntimeError as exc:
            assert "exited" in str(exc)
        assert second.proc is not None and second.proc.returncode != 0
        assert "in use by another chatd process" in second.log.read_text()
        c = await Raw.open(first.url)
        await c.register("still_served")
        await c.close()
    finally:
        first.terminate()


async def test_a_taken_port_is_chosen_again_and_the_client_reaches_chatd_not_the_squatter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test kit names a port that was free a moment ago; another process may take it before
    chatd binds it (a cluster fixture once waited 20 s on a node that had exited at once). The
    node is ready only when ITS log says it serves, and a port the kit chose is chosen again."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    ports = iter([taken])
    monkeypatch.setattr(testkit, "free_port", lambda: next(ports, None) or real_free_port())
    srv = ServerProcess(tmp_path / "chatd.db")
    try:
        assert srv.port == taken
        await srv.start()
        assert srv.port != taken
        await srv.wait_ready(timeout=10)
        async with Client(srv.url, KeyStore.memory(), reconnect=False) as a:
            await a.register("alice", "Alice")
        assert "address is already in use" in srv.log.read_text()
    finally:
        squatter.close()
        if srv.proc is not None and srv.proc.poll() is None:
            srv.terminate()
