"""End-to-end encryption through the SDK against a real server and its real SQLite file.

Each test shows one property of protocol/E2E.md from the outside: what every member device
reads, what a late or removed member cannot read, what survives a restart, what a tampering
server or device achieves (nothing but an event), what the server ever holds (ciphertext), and
what a changed master key does to sending once safety numbers were verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
from chatclient import Client, KeyStore, Message
from chatclient import client as client_module
from chatclient.e2e import NS_IN, NS_SESSION, session_name
from chatclient.events import DevicesChanged, Event, SecurityWarning, Undecryptable
from chatproto import codec, kinds
from chatproto import frames as F
from chatproto.e2e import devicelist, sender_keys
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ChatProtoError
from conftest import RunningServer, make_settings, run_server
from testkit import Raw

MARKER = "MARKER-7f3a9c"


# ---------------------------------------------------------------------- helpers


class Inbox:
    """A client's events, taken by predicate; what does not match stays for later takes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pending: list[Event] = []

    def _pull(self) -> None:
        self.pending += self.client.events_nowait()

    async def take(
        self, pred: Callable[[Event], bool], n: int = 1, timeout: float = 8.0
    ) -> list[Event]:
        deadline = time.monotonic() + timeout
        while True:
            self._pull()
            hits = [i for i, ev in enumerate(self.pending) if pred(ev)]
            if len(hits) >= n:
                chosen = [self.pending[i] for i in hits[:n]]
                for i in reversed(hits[:n]):
                    del self.pending[i]
                return chosen
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"device {self.client.device}: {len(hits)}/{n} matching events"
                    f" in {timeout}s; pending: {self.pending!r}"
                )
            await asyncio.sleep(0.01)

    async def quiet(self, pred: Callable[[Event], bool], wait: float = 0.3) -> None:
        """Nothing matching ``pred`` arrives within ``wait`` seconds (no duplicates, no extras)."""
        await asyncio.sleep(wait)
        self._pull()
        extra = [ev for ev in self.pending if pred(ev)]
        assert not extra, f"device {self.client.device}: unexpected {extra!r}"


def chat(conv: int) -> Callable[[Event], bool]:
    """A non-system message or an undecryptable one, of ``conv``."""

    def pred(ev: Event) -> bool:
        return (isinstance(ev, Message) and ev.kind != "system" and ev.conv == conv) or (
            isinstance(ev, Undecryptable) and ev.conv == conv
        )

    return pred


def system(conv: int, event: str) -> Callable[[Event], bool]:
    def pred(ev: Event) -> bool:
        return (
            isinstance(ev, Message)
            and isinstance(ev.content, kinds.SystemEvent)
            and ev.conv == conv
            and ev.content.event == event
        )

    return pred


def at(conv: int, seq: int) -> Callable[[Event], bool]:
    def pred(ev: Event) -> bool:
        return isinstance(ev, Message | Undecryptable) and ev.conv == conv and ev.seq == seq

    return pred


def warning(account: int) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, SecurityWarning) and ev.account == account


async def two_devices(stack: contextlib.AsyncExitStack, url: str, handle: str) -> list[Client]:
    """An account with two devices: the first registers (and holds the master key), the second
    is linked with its approval, then the first signs a device list naming both."""
    first = await stack.enter_async_context(Client(url))
    await first.register(handle, handle.title())
    ks = KeyStore.memory()
    second = await stack.enter_async_context(Client(url, ks))
    await second.link(handle, first.device, first.approve_device(ks.key.public_key))
    assert await first.publish_devices([second.device]) == 2
    return [first, second]


async def as_device(url: str, client: Client) -> Raw:
    """A raw connection logged in as ``client``'s own device (same login key)."""
    raw = await Raw.open(url)
    await raw.login(client.device, SigningKey(client.keystore.seed))
    return raw


def flip(body: bytes, index: int) -> bytes:
    return body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]


def db_write(db: Path, sql: str, args: Sequence[Any]) -> int:
    """A write to the running server's SQLite file from outside (what a tampering server does)."""
    con = sqlite3.connect(db, timeout=10)
    try:
        with con:
            cur = con.execute(sql, args)
            return cur.rowcount
    finally:
        con.close()


def server_files(tmp_path: Path) -> dict[str, bytes]:
    """The server's SQLite files (database, WAL, shared memory) as bytes."""
    return {p.name: p.read_bytes() for p in sorted(tmp_path.glob("chatd.db*"))}


def forged_list(
    account: int, version: int, devices: Sequence[devicelist.DeviceEntry]
) -> tuple[bytes, bytes, bytes]:
    """``(body, sig, master_key)`` of a well-formed list for ``account`` signed by a key that is
    not the account's master key."""
    evil = SigningKey.generate()
    dl = devicelist.DeviceList(
        account=account, version=version, master_key=evil.public_key, devices=tuple(devices)
    )
    body, sig = devicelist.sign_device_list(dl, evil.seed)
    return body, sig, evil.public_key


def contents_of_every_kind(target: int, marker: str = "") -> list[kinds.Content]:
    """One content of every kind a client sends (``marker`` in every string field)."""
    m = marker
    return [
        kinds.Text(text=f"hello {m}"),
        kinds.Reaction(target=target, emoji=m or "+1"),
        kinds.Edit(target=target, text=f"hello again {m}"),
        kinds.Delete(target=target),
        kinds.ReadReceipt(up_to=target),
        kinds.PaymentTransfer(transfer_id=f"t-{m}", amount=1250, currency="EUR", memo=f"rent {m}"),
        kinds.PaymentRequest(request_id=f"r-{m}", amount=99, currency="USD", memo=f"pizza {m}"),
        kinds.MiniappInvoke(
            invocation_id=f"i-{m}", app=f"poll-{m}", action="vote", params={"choice": m, "n": 3}
        ),
        kinds.MiniappResult(invocation_id=f"i-{m}", title=f"Poll {m}", text=f"2 votes {m}"),
        kinds.Share(title=f"Link {m}", text=f"look {m}", link=f"https://x.test/{m}", image=m),
    ]


# ---------------------------------------------------------------------- 1. exchange


async def test_every_device_of_every_member_reads_every_kind_once_in_order(
    server: RunningServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alice = await two_devices(stack, server.url, "alice")
        bob = await two_devices(stack, server.url, "bob")
        carol = await two_devices(stack, server.url, "carol")
        inbox = {c.device: Inbox(c) for c in (*alice, *bob, *carol)}

        direct = await alice[0].direct(bob[0].account)
        group = (await alice[0].create("group", "Six", [bob[0].account, carol[0].account])).conv
        plan = [
            (direct, [alice[0], bob[0], alice[1], bob[1]], [*alice, *bob]),
            (group, [*alice, *bob, *carol], [*alice, *bob, *carol]),
        ]
        for conv, senders, members in plan:
            sent: list[tuple[int, int, int, kinds.Content]] = []
            live: dict[int, list[Event]] = {m.device: [] for m in members}
            target = 0
            for i, sender in enumerate(senders * 3):
                if not target:
                    content: kinds.Content = kinds.Text(text=f"first in {conv}")
                else:
                    every = contents_of_every_kind(target)
                    content = every[i % len(every)]
                ack = await sender.send(conv, content)
                target = target or ack.seq
                sent.append((ack.seq, sender.account, sender.device, content))
                for member in members:  # each message is read before the next is sent
                    live[member.device] += await inbox[member.device].take(chat(conv))
            assert {type(c) for *_, c in sent} == set(map(type, contents_of_every_kind(1)))
            for member in members:
                await inbox[member.device].quiet(chat(conv))  # nothing twice, nothing more
                got = live[member.device]
                assert all(isinstance(m, Message) for m in got), got
                read = [(m.seq, m.sender, m.device, m.content) for m in got]  # type: ignore[union-attr]
                assert read == sent, f"device {member.device} of account {member.account}"
                assert [m.own for m in got] == [d == member.device for _, _, d, _ in sent]  # type: ignore[union-attr]
            stored = (await alice[0].fetch(conv)).messages
            assert {m.kind for m in stored} == {"system", "e2e"}  # the server holds ciphertext


# ---------------------------------------------------------------------- 2. joining, removal


def key_names(client: Client) -> set[str]:
    """``conv:account:device:key_id`` of every sender key this device was given."""
    return {name for name, _ in client.keystore.items(NS_IN)}


async def test_late_joiner_reads_only_after_joining_and_removed_member_nothing_after_removal(
    server: RunningServer,
) -> None:
    async with (
        Client(server.url) as a,
        Client(server.url) as b,
        Client(server.url) as c,
    ):
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        await c.register("carol", "Carol")
        ia, ib, ic = Inbox(a), Inbox(b), Inbox(c)
        conv = (await a.create("group", "G", [b.account])).conv
        before = [await a.send_text(conv, "before-1"), await b.send_text(conv, "before-2")]
        await ia.take(chat(conv), 2)
        await ib.take(chat(conv), 2)

        # Carol joins: what was sent before never reaches her, not even as ciphertext (SPEC.md
        # 7.8, issue 14.8; she got it as Undecryptable before), and nothing waits for it: her
        # own "joined" comes at once (not after a park).
        started = time.monotonic()
        await a.invite(conv, c.account)
        joined = (await ic.take(system(conv, "joined"), timeout=5))[0]
        assert time.monotonic() - started < 3  # client.PARK_SECONDS is 10
        assert joined.seq > max(x.seq for x in before)
        # ... and everything after, from every member, including her own. (The inviter sends
        # at once; Bob first sees her join, as a member who sends concurrently could not.)
        await ib.take(system(conv, "joined"))
        after = [
            await a.send_text(conv, "after-1"),
            await b.send_text(conv, "after-2"),
            await c.send_text(conv, "after-3"),
        ]
        for box in (ia, ib, ic):
            got = await box.take(chat(conv), 3)
            assert [(m.seq, getattr(m, "text", None)) for m in got] == [
                (x.seq, f"after-{i}") for i, x in enumerate(after, 1)
            ]
        history = await c.history(conv)
        assert [type(m).__name__ for m in history if not system(conv, "joined")(m)] == [
            "Message",
            "Message",
            "Message",
        ]
        assert min(m.seq for m in history) == joined.seq  # from her join on, nothing before
        had = key_names(c)
        assert had  # she was given keys while a member

        # Carol is removed; the remover and the others send right after.
        await a.remove(conv, c.account)
        removed = (await ic.take(system(conv, "removed")))[0]
        await ib.take(system(conv, "removed"))
        later = [await a.send_text(conv, "secret-1"), await b.send_text(conv, "secret-2")]
        for box in (ia, ib):
            got = await box.take(chat(conv), 2)
            assert [getattr(m, "text", None) for m in got] == ["secret-1", "secret-2"]
        await asyncio.sleep(0.3)  # a key wrongly sent to Carol would have arrived by now
        assert key_names(c) == had  # no new sender key reached her
        await ic.quiet(chat(conv), wait=0)
        # Even handed the ciphertext (the server refuses her a fetch now), she cannot read it.
        page = (await b.fetch(conv, after=removed.seq)).messages
        assert [m.seq for m in page] == [x.seq for x in later]
        for m in page:
            name = f"{conv}:{m.device}:{sender_keys.message_key_id(m.body)}"
            assert name not in had  # a new sender key, not the one she holds
            assert isinstance(c.message_from(conv, m), Undecryptable)


# ---------------------------------------------------------------------- 3. restart


async def test_device_restarted_from_its_key_store_file_keeps_decrypting_and_shows_nothing_twice(
    server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "alice.keys"
    async with Client(server.url) as b:
        await b.register("bob", "Bob")
        ib = Inbox(b)
        async with Client(server.url, KeyStore.open(path)) as a:
            await a.register("alice", "Alice")
            conv = await a.direct(b.account)
            ia = Inbox(a)
            await a.send_text(conv, "from alice")
            for i in range(3):
                await b.send_text(conv, f"old {i}")
            got = await ia.take(chat(conv), 4)
            assert [getattr(m, "text", None) for m in got] == [
                "from alice",
                *(f"old {i}" for i in range(3)),
            ]
        await ib.take(chat(conv), 4)
        await b.send_text(conv, "while away 1")  # the same sender key, read on return
        await b.send_text(conv, "while away 2")

        async with Client(server.url, KeyStore.open(path)) as a:
            ia = Inbox(a)
            got = await ia.take(chat(conv), 2)
            assert [getattr(m, "text", None) for m in got] == ["while away 1", "while away 2"]
            await b.send_text(conv, "live")
            assert [getattr(m, "text", None) for m in await ia.take(chat(conv))] == ["live"]
            await a.send_text(conv, "back")  # its own sender key survived too
            (own,) = await ia.take(chat(conv))
            assert isinstance(own, Message) and own.own and own.text == "back"
            got = await ib.take(chat(conv), 4)
            assert [getattr(m, "text", None) for m in got] == [
                "while away 1",
                "while away 2",
                "live",
                "back",
            ]
            assert all(isinstance(m, Message) for m in got)
            stored = [m for m in (await b.fetch(conv)).messages if m.sender == a.account]
            assert len(stored) == 2  # "from alice" and "back": under the same, stored sender key
            assert len({sender_keys.message_key_id(m.body) for m in stored}) == 1
            await ia.quiet(chat(conv))  # and the old ones were not shown again
            assert not [ev for ev in ia.pending if isinstance(ev, Undecryptable | SecurityWarning)]


# ---------------------------------------------------------------------- 4. tampering


@pytest.fixture
def short_park(monkeypatch: pytest.MonkeyPatch) -> None:
    """Messages whose sender key never comes are reported after 1 s instead of 10."""
    monkeypatch.setattr(client_module, "PARK_SECONDS", 1.0)


async def test_tampered_replayed_and_wrongly_signed_messages_are_undecryptable(
    server: RunningServer, short_park: None
) -> None:
    async with Client(server.url) as a, Client(server.url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        ia, ib = Inbox(a), Inbox(b)
        conv = await a.direct(b.account)
        first = await a.send_text(conv, "genuine")
        assert [getattr(m, "text", None) for m in await ib.take(chat(conv))] == ["genuine"]
        (stored,) = [m for m in (await b.fetch(conv)).messages if m.seq == first.seq]
        body = stored.body
        head, ct = body[:9], body[9:-64]
        binding = conv.to_bytes(8, "big") + a.account.to_bytes(8, "big")
        binding += a.device.to_bytes(8, "big")
        wrong_sig = SigningKey.generate().sign(
            sender_keys.SIG_CONTEXT + b"\x00" + binding + head + ct
        )
        forged = {
            "ciphertext byte flipped": flip(body, 9 + len(ct) // 2),
            "tag byte flipped": flip(body, 9 + len(ct) - 1),
            "signature byte flipped": flip(body, len(body) - 1),
            "iteration changed": flip(body, 8),
            "signed by another key": head + ct + wrong_sig,
            "truncated": body[:40],
            "replayed as it was": body,
        }
        # Alice's own device, on a second connection, sends the forgeries (as the server, or
        # anyone holding her login key, could): right sender, right key id, wrong bytes.
        raw = await as_device(server.url, a)
        try:
            seqs = []
            for i, forgery in enumerate(forged.values()):
                ack = await raw.request(
                    F.Send(
                        id=raw.next_id(), conv=conv, cmid=f"forged-{i}", kind="e2e", body=forgery
                    ),
                    F.Ack,
                )
                seqs.append(ack.seq)
        finally:
            await raw.close()
        started = time.monotonic()
        got = await ib.take(chat(conv), len(forged), timeout=5)
        assert time.monotonic() - started < 1  # refused at once, not parked
        assert [(type(u), u.seq, u.sender) for u in got] == [
            (Undecryptable, s, a.account) for s in seqs
        ], got
        reasons = {name: u.reason for name, u in zip(forged, got, strict=True)}  # type: ignore[union-attr]
        assert "signature" in reasons["signed by another key"]
        assert "already used" in reasons["replayed as it was"]
        # Bob goes on: he reads Alice's next message (same sender key, later iteration) and
        # Alice reads his.
        await a.send_text(conv, "still genuine")
        assert [getattr(m, "text", None) for m in await ib.take(chat(conv))] == ["still genuine"]
        await b.send_text(conv, "got it")
        got = await ia.take(lambda ev: isinstance(ev, Message) and ev.text == "got it")
        assert got[0].sender == b.account  # type: ignore[union-attr]
        # Alice's own device was shown the forgeries too (as her device's): not readable.
        mine = await ia.take(lambda ev: isinstance(ev, Undecryptable), len(forged), timeout=5)
        assert sorted(u.seq for u in mine) == seqs  # type: ignore[union-attr]
        (echo,) = await ib.take(chat(conv))
        assert isinstance(echo, Message) and echo.own and echo.text == "got it"
        await ib.quiet(chat(conv), wait=0.1)


async def test_body_tampered_in_the_servers_database_is_undecryptable_on_sync(
    server: RunningServer, tmp_path: Path
) -> None:
    path = tmp_path / "bob.keys"
    async with Client(server.url) as a:
        await a.register("alice", "Alice")
        async with Client(server.url, KeyStore.open(path)) as b:
            await b.register("bob", "Bob")
        # Bob is offline: his sender key waits in his to-device queue, the messages in the db.
        conv = await a.direct(b.account)
        acks = [await a.send_text(conv, f"m{i}") for i in range(3)]
        db = tmp_path / "chatd.db"
        with contextlib.closing(sqlite3.connect(db)) as con:
            body = con.execute(
                "SELECT body FROM messages WHERE conv_id=? AND seq=?", (conv, acks[1].seq)
            ).fetchone()[0]
        changed = db_write(
            db,
            "UPDATE messages SET body=? WHERE conv_id=? AND seq=?",
            (flip(body, 20), conv, acks[1].seq),
        )
        assert changed == 1
        async with Client(server.url, KeyStore.open(path)) as b:
            ib = Inbox(b)
            got = await ib.take(chat(conv), 3, timeout=5)
            assert [(type(m), m.seq) for m in got] == [
                (Message, acks[0].seq),
                (Undecryptable, acks[1].seq),
                (Message, acks[2].seq),
            ]
            assert [getattr(m, "text", None) for m in got] == ["m0", None, "m2"]
            await a.send_text(conv, "after")
            assert [getattr(m, "text", None) for m in await ib.take(chat(conv))] == ["after"]


async def test_ghost_device_not_on_the_signed_list_gets_no_key_and_is_refused(
    server: RunningServer, short_park: None
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(Client(server.url))
        await a.register("alice", "Alice")
        b = await stack.enter_async_context(Client(server.url))
        await b.register("bob", "Bob")
        # A device the server lets log in as Bob's, with keys uploaded, but that Bob's master key
        # never signed onto his list.
        ks = KeyStore.memory()
        ghost = await stack.enter_async_context(Client(server.url, ks))
        await ghost.link("bob", b.device, b.approve_device(ks.key.public_key))
        assert ghost.e2e.prekeys is not None  # its keys are on the server
        ia, ib, ig = Inbox(a), Inbox(b), Inbox(ghost)
        conv = await a.direct(b.account)
        await a.send_text(conv, "for bob's listed devices")
        await ia.take(chat(conv))  # her own
        assert [getattr(m, "text", None) for m in await ib.take(chat(conv))] == [
            "for bob's listed devices"
        ]
        assert a.e2e.ks.get(NS_SESSION, session_name(b.account, b.device)) is not None
        # never a session, no key
        assert a.e2e.ks.get(NS_SESSION, session_name(b.account, ghost.device)) is None
        (u,) = await ig.take(chat(conv), timeout=5)
        assert isinstance(u, Undecryptable)
        assert not [n for n in key_names(ghost) if n.startswith(f"{conv}:{a.account}:{a.device}:")]

        # The ghost speaks as Bob: its sender key is refused, its message unreadable, and
        # Bob's own device refuses it as well.
        await ghost.send_text(conv, "it is me, bob")
        (w,) = await ia.take(warning(b.account), timeout=5)
        assert "not on account" in w.reason  # type: ignore[union-attr]
        await ib.take(warning(b.account), timeout=5)
        for box in (ia, ib):
            (u,) = await box.take(chat(conv), timeout=5)
            assert isinstance(u, Undecryptable) and u.device == ghost.device
        # Both go on talking.
        await b.send_text(conv, "the real bob")
        await a.send_text(conv, "hi real bob")
        for box in (ia, ib):
            got = await box.take(chat(conv), 2, timeout=5)
            assert [getattr(m, "text", None) for m in got] == ["the real bob", "hi real bob"]
        assert a.e2e.ks.get(NS_SESSION, session_name(b.account, ghost.device)) is None


async def test_device_list_forged_in_the_servers_database_is_refused(
    server: RunningServer, tmp_path: Path, short_park: None
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(Client(server.url))
        await a.register("alice", "Alice")
        b = await stack.enter_async_context(Client(server.url))
        await b.register("bob", "Bob")
        ks = KeyStore.memory()
        ghost = await stack.enter_async_context(Client(server.url, ks))
        await ghost.link("bob", b.device, b.approve_device(ks.key.public_key))
        ia, ib = Inbox(a), Inbox(b)
        conv = await a.direct(b.account)
        await b.send_text(conv, "hello")  # Alice pins Bob's master key and list (version 1)
        await ia.take(chat(conv))
        await ib.take(chat(conv))
        pinned = a.e2e.trust(b.account)
        assert pinned is not None and pinned.version == 1
        for account in (a.account, b.account):  # the ghost (an honest SDK) checks lists too:
            await ghost.e2e.devices(account)  # let it pin them before the forgery

        # The server now claims Bob's list is version 2 with the ghost on it: same master key,
        # Bob's real signature of version 1 (it does not cover this body).
        db = tmp_path / "chatd.db"
        with contextlib.closing(sqlite3.connect(db)) as con:
            row = con.execute(
                "SELECT sig, master_key FROM device_lists WHERE account_id=?", (b.account,)
            ).fetchone()
        listed = [*pinned.devices]
        listed.append(
            devicelist.DeviceEntry(
                device=ghost.device,
                signing_key=ghost.e2e.identity.signing_key,
                identity_key=ghost.e2e.identity.identity_key,
            )
        )
        dl = devicelist.DeviceList(
            account=b.account, version=2, master_key=row[1], devices=tuple(listed)
        )
        body = devicelist.encode_device_list(dl)
        assert (
            db_write(
                db,
                "UPDATE device_lists SET version=2, body=? WHERE account_id=?",
                (body, b.account),
            )
            == 1
        )
        # The ghost sends: Alice fetches Bob's list again to check it, and refuses the forgery.
        await ghost.send_text(conv, "it is me, bob")
        (w,) = await ia.take(warning(b.account), timeout=5)
        assert "signature does not verify" in w.reason  # type: ignore[union-attr]
        (u,) = await ia.take(chat(conv), timeout=5)
        assert isinstance(u, Undecryptable) and u.device == ghost.device
        after = a.e2e.trust(b.account)
        assert after is not None and after.version == 1 and after.devices == pinned.devices
        # Alice keeps talking to Bob's real device only.
        await a.send_text(conv, "still there?")
        await b.send_text(conv, "yes")
        got = await ib.take(chat(conv), 3, timeout=5)
        assert [getattr(m, "text", None) for m in got] == [None, "still there?", "yes"]
        got = await ia.take(chat(conv), 2, timeout=5)
        assert [getattr(m, "text", None) for m in got] == ["still there?", "yes"]
        assert a.e2e.ks.get(NS_SESSION, session_name(b.account, ghost.device)) is None


# ---------------------------------------------------------------------- 5. what the server sees


async def test_server_never_holds_nor_sends_the_plaintext_of_any_kind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames: list[bytes] = []  # every frame any client here receives
    decode = codec.decode_server

    def recording(data: bytes) -> F.ServerFrame:
        frames.append(bytes(data))
        return decode(data)

    monkeypatch.setattr(codec, "decode_server", recording)
    marker = MARKER.encode()
    async with (
        run_server(make_settings(tmp_path)) as server,
        contextlib.AsyncExitStack() as stack,
    ):
        a = await stack.enter_async_context(Client(server.url))
        await a.register("alice", "Alice")
        b = await stack.enter_async_context(Client(server.url))
        await b.register("bob", "Bob")
        c = await stack.enter_async_context(Client(server.url))
        await c.register("carol", "Carol")
        # A raw connection of Bob's device: a member that keeps every byte it is sent.
        raw = await as_device(server.url, b)
        seen: list[bytes] = []

        async def record() -> None:
            with contextlib.suppress(Exception):
                while True:
                    data = await raw.ws.recv()
                    seen.append(data if isinstance(data, bytes) else data.encode())

        recorder = asyncio.create_task(record())
        boxes = [Inbox(x) for x in (b, c)]
        group = (await a.create("group", "Plans", [b.account, c.account])).conv
        direct = await a.direct(b.account)
        sent = 0
        for conv, receivers in ((group, boxes), (direct, boxes[:1])):
            first = await a.send_text(conv, f"first {MARKER}")
            sent += 1
            for i, content in enumerate(contents_of_every_kind(first.seq, MARKER)):
                sender = (a, b)[i % 2]
                kind, body = kinds.encode_content(content)
                if MARKER.encode() not in body:  # delete, receipt: no string field
                    body = msgspec.msgpack.encode({**msgspec.to_builtins(content), "note": MARKER})
                await sender.send_raw(conv, kind, body)
                sent += 1
            for box in receivers:
                got = await box.take(chat(conv), 11)
                # Read in full: every kind, as typed content, with the marker inside.
                assert all(isinstance(m, Message) for m in got), got
                assert [type(m.content) for m in got] == [  # type: ignore[union-attr]
                    kinds.Text,
                    *map(type, contents_of_every_kind(1)),
                ]
                assert all(marker in m.body for m in got)  # type: ignore[union-attr]
        await asyncio.sleep(0.2)
        await raw.close()
        await recorder

        e2e_delivers = [
            f for f in map(decode, seen) if isinstance(f, F.Deliver) and f.kind == "e2e"
        ]
        assert len(e2e_delivers) == sent  # the observer got every message, as ciphertext
        assert frames and seen
        assert not [f for f in frames + seen if marker in f]
        files = server_files(tmp_path)
        assert files
        assert not [name for name, data in files.items() if marker in data]
        assert any(b"carol" in data for data in files.values())  # the scan does find things
    files = server_files(tmp_path)  # and after shutdown (WAL checkpointed)
    assert files
    assert not [name for name, data in files.items() if marker in data]


# ---------------------------------------------------------------------- 6. safety numbers


async def test_safety_numbers_match_and_a_changed_master_key_blocks_sending_until_verified(
    server: RunningServer,
) -> None:
    async with Client(server.url) as a, Client(server.url) as b:
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        ia, ib = Inbox(a), Inbox(b)
        conv = await a.direct(b.account)
        await a.send_text(conv, "hi")
        await b.send_text(conv, "hi back")  # both have pinned each other's master key now
        await ia.take(chat(conv), 2)
        await ib.take(chat(conv), 2)
        number = a.safety_number(b.account)
        assert number == b.safety_number(a.account)
        assert len(number) == 60 and number.isdigit()
        a.verify(b.account)
        trust = a.e2e.trust(b.account)
        assert trust is not None and trust.verified

        # Bob's account publishes a list signed by another master key (a reinstall, or an
        # attacker holding his device's login key): the server accepts and announces it.
        raw = await as_device(server.url, b)
        entry = devicelist.DeviceEntry(
            device=b.device,
            signing_key=b.e2e.identity.signing_key,
            identity_key=b.e2e.identity.identity_key,
        )
        body, sig, master = forged_list(b.account, 2, [entry])
        await raw.request(
            F.PutDeviceList(id=raw.next_id(), body=body, sig=sig, master_key=master, version=2),
            F.Ok,
        )
        await raw.close()
        await ia.take(lambda ev: isinstance(ev, DevicesChanged) and ev.account == b.account)
        for _ in range(2):
            with pytest.raises(ChatProtoError):
                await a.send_text(conv, "are you still you?")
        await ia.take(warning(b.account), timeout=5)
        assert a.safety_number(b.account) == number  # still the verified key, not the new one
        a.verify(b.account)  # the user compared numbers again
        await a.send_text(conv, "verified again")  # to the devices of the verified list
        got = await ib.take(chat(conv))
        assert [getattr(m, "text", None) for m in got] == ["verified again"]
        trust = a.e2e.trust(b.account)
        assert trust is not None and trust.master_key != master and not trust.changed


# ---------------------------------------------------------------------- simultaneous sessions


async def test_sessions_started_simultaneously_still_carry_later_sender_keys(
    server: RunningServer, short_park: None
) -> None:
    async with (
        Client(server.url) as a,
        Client(server.url) as b,
        Client(server.url) as c,
    ):
        await a.register("alice", "Alice")
        await b.register("bob", "Bob")
        await c.register("carol", "Carol")
        ia, ib = Inbox(a), Inbox(b)
        conv = (await a.create("group", "G", [b.account])).conv
        await asyncio.gather(a.send_text(conv, "a1"), b.send_text(conv, "b1"))
        await ia.take(chat(conv), 2)
        await ib.take(chat(conv), 2)
        await a.invite(conv, c.account)  # a rotation: new sender keys over the sessions
        await ib.take(system(conv, "joined"))
        await a.send_text(conv, "a2")
        await b.send_text(conv, "b2")
        for box in (ia, ib):
            got = await box.take(chat(conv), 2)
            assert [getattr(m, "text", None) for m in got] == ["a2", "b2"]
