"""Chat between several real clients against a real server: direct, group, channel, resends,
history, reconnect and resume."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from chatclient import Client, Connected, Forbidden, KeyStore, Message
from chatproto import frames as F
from chatproto import kinds
from chatproto.errors import ErrorCode
from conftest import RunningServer
from testkit import Checker, Raw


async def texts(
    client: Client, n: int, conv: int | None = None, timeout: float = 10
) -> list[Message]:
    """The next ``n`` non-system messages the client's application sees."""
    out: list[Message] = []

    async def collect() -> None:
        async for ev in client.events():
            if (
                isinstance(ev, Message)
                and ev.kind != "system"
                and (conv is None or ev.conv == conv)
            ):
                out.append(ev)
                if len(out) == n:
                    return

    await asyncio.wait_for(collect(), timeout)
    return out


async def test_direct_chat_reaches_the_peer_once_and_acks_with_seq(server: RunningServer) -> None:
    async with Client(server.url) as alice, Client(server.url) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        conv = await alice.direct(await alice.lookup("@bob"))
        assert await bob.direct(alice.account) == conv  # one direct conversation per pair
        acks = [await alice.send_text(conv, f"hi {i}") for i in range(5)]
        assert [a.seq for a in acks] == [2, 3, 4, 5, 6]  # seq 1 is the "created" system message
        got = await texts(bob, 5, conv)
        assert [m.text for m in got] == [f"hi {i}" for i in range(5)]
        assert [m.seq for m in got] == [2, 3, 4, 5, 6]
        assert all(m.sender == alice.account and not m.own for m in got)


async def test_group_message_reaches_every_member_device_including_senders_other_device(
    server: RunningServer,
) -> None:
    async with (
        Client(server.url) as a1,
        Client(server.url) as b,
        Client(server.url) as c,
    ):
        await a1.register("alice", "Alice")
        await b.register("bob", "Bob")
        await c.register("carol", "Carol")
        # Alice's second device, approved by her first.
        ks2 = KeyStore.memory()
        async with Client(server.url, ks2) as a2:
            await a2.link("alice", a1.device, a1.approve_device(ks2.key.public_key))
            assert a2.account == a1.account and a2.device != a1.device
            # The device holding the account's master key vouches for the new one.
            assert await a1.publish_devices([a2.device]) == 2
            group = await a1.create("group", "Friends", [b.account, c.account])
            await a1.send_text(group.conv, "hello group")
            for client in (b, c, a2):
                (m,) = await texts(client, 1, group.conv)
                assert m.text == "hello group" and m.sender == a1.account
            (own,) = await texts(
                a1, 1, group.conv
            )  # the sender sees its own message once, via the ack
            assert own.own and own.text == "hello group"


async def test_channel_only_admins_post_and_members_read(server: RunningServer) -> None:
    async with Client(server.url) as owner, Client(server.url) as reader:
        await owner.register("news", "News Desk")
        await reader.register("reader", "Reader")
        ch = await owner.create("channel", "Daily news", [reader.account])
        await owner.send_text(ch.conv, "headline")
        (m,) = await texts(reader, 1, ch.conv)
        assert m.text == "headline"
        try:
            await reader.send_text(ch.conv, "can I post?")
        except Forbidden as exc:
            assert exc.code == ErrorCode.FORBIDDEN
        else:
            raise AssertionError("a channel member could post")


async def test_resend_with_same_client_msg_id_returns_same_seq_and_is_delivered_once(
    server: RunningServer,
) -> None:
    a = await Raw.open(server.url)
    b = await Raw.open(server.url)
    await a.register("alice")
    await b.register("bob")
    conv = (
        await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]), F.Conv)
    ).info.conv
    body = kinds.encode_content(kinds.Text(text="once"))[1]
    first = await a.request(
        F.Send(id=a.next_id(), conv=conv, cmid="m-1", kind="text", body=body), F.Ack
    )
    again = await a.request(
        F.Send(id=a.next_id(), conv=conv, cmid="m-1", kind="text", body=body), F.Ack
    )
    assert (again.seq, again.ts) == (first.seq, first.ts)
    clash = await a.request(
        F.Send(id=a.next_id(), conv=conv, cmid="m-1", kind="text", body=b"\x80"), F.Error
    )
    assert clash.code == ErrorCode.CONFLICT
    await b.expect(F.Deliver, conv=conv, seq=first.seq)
    page = await b.request(F.Fetch(id=b.next_id(), conv=conv), F.Messages)
    assert [m.seq for m in page.messages] == [1, 2]  # stored once
    with contextlib.suppress(TimeoutError):
        extra = await b.expect(F.Deliver, timeout=0.3, seq=first.seq)
        raise AssertionError(f"delivered twice: {extra}")
    await a.close()
    await b.close()


async def test_late_joiner_sees_history_paged_backwards(server: RunningServer) -> None:
    # Plaintext clients: with end-to-end encryption (the default) a late joiner could not open
    # what was sent before it joined anyway; it is not sent at all (SPEC.md 7.8, issue 14.8).
    async with Client(server.url, encrypt=False) as a, Client(server.url, encrypt=False) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        group = await a.create("group", "Book club")
        for i in range(30):
            await a.send_text(group.conv, f"old{i}")
        await a.invite(group.conv, b.account)
        for i in range(20):
            await a.send_text(group.conv, f"m{i}")
        info = await b.conversation(group.conv)
        assert {m.handle for m in info.members} == {"alice", "bob"}
        newest = await b.fetch(group.conv, before=info.last_seq + 1, limit=10)
        assert newest.more and len(newest.messages) == 10
        older = await b.fetch(group.conv, before=newest.messages[0].seq, limit=20)
        assert older.messages[-1].seq + 1 == newest.messages[0].seq
        assert not older.more  # the history ends at bob's join
        seen = [kinds.decode_content(m.kind, m.body) for m in older.messages + newest.messages]
        # The oldest message is bob's own "joined" system message; then m0..m19, no old*.
        assert older.messages[0].seq == info.joined
        assert isinstance(seen[0], kinds.SystemEvent) and seen[0].event == "joined"
        assert [c.text for c in seen if isinstance(c, kinds.Text)] == [f"m{i}" for i in range(20)]


async def test_reconnect_resumes_in_order_without_gap_or_duplicate_while_others_keep_sending(
    server: RunningServer, tmp_path: Path
) -> None:
    checker = Checker()
    async with (
        Client(server.url) as a,
        Client(server.url) as c,
        Client(server.url, KeyStore.open(tmp_path / "bob.key"), backoff_initial=0.05) as b,
    ):
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        await c.register("carol", "Carol")
        group = await a.create("group", "Busy", [b.account, c.account])
        total = 300

        async def send_all(client: Client, prefix: str) -> None:
            for i in range(total // 2):
                ack = await client.send_text(group.conv, f"{prefix}{i}")
                checker.ack(group.conv, ack.seq)
                if i % 10 == 0:
                    await asyncio.sleep(0.005)

        async def drop_bob() -> None:
            for _ in range(3):
                await asyncio.sleep(0.05)
                await b.drop_connection()

        async def record(client: Client, name: str, n: int) -> None:
            for m in await texts(client, n, group.conv, timeout=30):
                checker.deliver(name, group.conv, m.seq)

        bob_reconnects = 0

        async def count_reconnects() -> None:
            nonlocal bob_reconnects
            # Connected events are interleaved with messages; record() consumes messages only
            # from its own iterator, so count via the client's property instead.
            while True:
                await asyncio.sleep(0.01)
                if not b.connected:
                    bob_reconnects += 1
                    while not b.connected:
                        await asyncio.sleep(0.01)

        watcher = asyncio.create_task(count_reconnects())
        await asyncio.gather(
            send_all(a, "a"), send_all(c, "c"), drop_bob(), record(b, "bob", total)
        )
        watcher.cancel()
        report = checker.report({group.conv: ["bob"]})
        assert report == {"lost": 0, "duplicates": 0, "order_violations": 0}, report
        assert bob_reconnects >= 1


async def test_reconnecting_client_gets_missed_messages_in_order_once_then_nothing(
    server: RunningServer, tmp_path: Path
) -> None:
    keyfile = tmp_path / "bob.key"
    async with Client(server.url) as a:
        await a.register("alice", "Alice")
        async with Client(server.url, KeyStore.open(keyfile)) as b:
            await b.register("bob", "Bob")
            conv = await a.direct(b.account)
            await a.send_text(conv, "before")
            assert [m.text for m in await texts(b, 1, conv)] == ["before"]
        for i in range(20):  # bob is offline
            await a.send_text(conv, f"missed {i}")
        async with Client(server.url, KeyStore.open(keyfile)) as b:
            got = await texts(b, 20, conv)
            assert [m.text for m in got] == [f"missed {i}" for i in range(20)]
        async with Client(
            server.url, KeyStore.open(keyfile)
        ) as b:  # a second reconnect: nothing new
            events = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    async for ev in b.events():
                        events.append(ev)
            assert [e for e in events if isinstance(e, Message)] == []
            assert any(isinstance(e, Connected) for e in events)
