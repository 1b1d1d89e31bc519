"""A malicious server against pairwise sessions, device lists and prekeys (issue 12, E2E.md 13).

Each test runs a real chatd and plays the server's operator: it writes the server's database
(forged to-device items, replayed ones, downgraded bundles, rolled-back lists) and records every
frame the server sent. The clients must refuse, raise a ``SecurityWarning``, or stay readable by
the right devices only; a marker scan over everything the server held or sent, and over what the
attacker's own keys decrypt, proves it learnt no plaintext.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest
from botkit import Inbox
from chatclient import Client, KeyStore, Message
from chatclient import client as client_module
from chatclient import e2e as e2e_module
from chatclient.e2e import NS_DEVICE
from chatclient.events import Event, MasterKeyReceived, SecurityWarning
from chatproto import codec
from chatproto import frames as F
from chatproto.e2e import devicelist, pairwise, payload, sender_keys, x3dh
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ChatProtoError
from conftest import RunningServer, make_settings, run_server

MARKER = "MARKER-adv-5e55"
_decode_server = codec.decode_server


# ---------------------------------------------------------------------- the attacker


@dataclass
class Attacker:
    """The server's operator: its database, and every frame it sent to any client here."""

    db: Path
    frames: list[bytes] = field(default_factory=list)
    rewrite: Callable[[F.ServerFrame], F.ServerFrame] | None = None
    """The server lying in its answers: applied to every frame before the client reads it."""

    def write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        con = sqlite3.connect(self.db, timeout=10)
        try:
            with con:
                return con.execute(sql, args).rowcount
        finally:
            con.close()

    def read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        con = sqlite3.connect(self.db, timeout=10)
        try:
            return con.execute(sql, args).fetchall()
        finally:
            con.close()

    def queue_to_device(self, target: int, sender: int, sender_device: int, body: bytes) -> int:
        """Put an item in ``target``'s to-device queue as if (``sender``, ``sender_device``) had
        sent it: the server names the sender, so it can name anyone."""
        (last,) = self.read(
            "SELECT COALESCE(MAX(last_tid), 0) FROM to_device_state WHERE device_id=?", (target,)
        )[0]
        tid = last + 1
        self.write(
            "INSERT INTO to_device (device_id, tid, sender, sender_device, body, queued_at)"
            " VALUES (?,?,?,?,?,?)",
            (target, tid, sender, sender_device, body, int(time.time() * 1000)),
        )
        self.write(
            "INSERT INTO to_device_state (device_id, last_tid, queued) VALUES (?,?,1)"
            " ON CONFLICT (device_id) DO UPDATE SET last_tid=excluded.last_tid,"
            " queued=queued+1",
            (target, tid),
        )
        return tid

    def ghost_device(self, account: int) -> tuple[int, bytes]:
        """A device the server adds to ``account`` without any approval: ``(id, seed)``."""
        seed = SigningKey.generate()
        self.write(
            "INSERT INTO devices (account_id, public_key, name, approved_by, created_at)"
            " VALUES (?,?,?,NULL,?)",
            (account, seed.public_key, "ghost", int(time.time() * 1000)),
        )
        ((device,),) = self.read("SELECT id FROM devices WHERE public_key=?", (seed.public_key,))
        return device, seed.seed

    def decoded(self) -> Iterator[F.ServerFrame]:
        for raw in list(self.frames):
            yield _decode_server(raw)

    def to_device_bodies(self) -> list[tuple[int, int, bytes]]:
        """``(sender, sender device, body)`` of every to-device item the server relayed."""
        out = []
        for frame in self.decoded():
            items: list[F.ToDeviceEvent | F.ToDeviceItem] = []
            if isinstance(frame, F.ToDeviceEvent):
                items = [frame]
            elif isinstance(frame, F.ToDeviceBatch):
                items = list(frame.events)
            out += [(i.sender, i.device, i.body) for i in items]
        return out

    async def relayed(self, pred: Callable[[F.ServerFrame], bool], n: int = 1) -> None:
        """Wait until the server has sent ``n`` frames matching ``pred``."""
        deadline = time.monotonic() + 8
        while sum(1 for f in self.decoded() if pred(f)) < n:
            assert time.monotonic() < deadline, "the server never relayed it"
            await asyncio.sleep(0.02)

    def e2e_messages(self) -> list[F.Deliver]:
        return [f for f in self.decoded() if isinstance(f, F.Deliver) and f.kind == "e2e"]

    def saw_marker(self, tmp_path: Path) -> list[str]:
        """Where the marker appears in what the server held (its files) or sent (frames)."""
        hits = [p.name for p in tmp_path.glob("chatd.db*") if MARKER.encode() in p.read_bytes()]
        hits += ["a frame" for raw in self.frames if MARKER.encode() in raw]
        return hits


@contextlib.asynccontextmanager
async def malicious_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RunningServer, Attacker]]:
    attacker = Attacker(tmp_path / "chatd.db")

    def recording(data: bytes) -> F.ServerFrame:
        attacker.frames.append(bytes(data))
        frame = _decode_server(data)
        return frame if attacker.rewrite is None else attacker.rewrite(frame)

    monkeypatch.setattr(codec, "decode_server", recording)
    async with run_server(make_settings(tmp_path)) as server:
        yield server, attacker


def warning(account: int, *words: str) -> Callable[[Event], bool]:
    return lambda ev: (
        isinstance(ev, SecurityWarning)
        and ev.account == account
        and all(w in ev.reason for w in words)
    )


def text(conv: int, value: str) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, Message) and ev.conv == conv and ev.text == value


async def processed(client: Client, tid: int, timeout: float = 8) -> None:
    """Wait until ``client`` has handled its to-device item ``tid`` (accepted or refused)."""
    deadline = time.monotonic() + timeout
    while int(client.keystore.get(NS_DEVICE, "to_device_done") or b"0") < tid:
        assert time.monotonic() < deadline, f"to-device item {tid} never processed"
        await asyncio.sleep(0.02)


async def fetch_now(client: Client, tid: int) -> None:
    """Make ``client`` fetch its queue (a reconnect does) and wait for item ``tid``."""
    await client.drop_connection()
    await processed(client, tid)


def distribution(conv: int) -> bytes:
    return payload.encode_to_device(sender_keys.distribution(sender_keys.new_sender_key(conv)))


async def bundle_of(attacker_client: Client, account: int, device: int) -> x3dh.PreKeyBundle:
    got: F.Bundles = await attacker_client._call(
        F.ClaimKeys(id=attacker_client._next_id(), account=account), F.Bundles
    )
    (b,) = [b for b in got.bundles if b.device == device]
    return e2e_module._bundle(b)


async def publish_list(owner: Client, entries: list[devicelist.DeviceEntry]) -> int:
    """``owner`` (holding its master key) signs and stores a list of its own making."""
    seed = owner.keystore.get(NS_DEVICE, "master")
    assert seed is not None
    trust = owner.e2e.trust(owner.account)
    version = (trust.version if trust else 0) + 1
    master = owner.e2e.master_key
    assert master is not None
    dl = devicelist.DeviceList(
        account=owner.account, version=version, master_key=master, devices=tuple(entries)
    )
    body, sig = devicelist.sign_device_list(dl, seed)
    await owner._call(
        F.PutDeviceList(
            id=owner._next_id(), body=body, sig=sig, master_key=master, version=version
        ),
        F.Ok,
    )
    return version


def attacker_reads(
    attacker: Attacker,
    sessions: list[tuple[pairwise.Session, x3dh.PreKeyState]],
) -> list[bytes]:
    """Everything the attacker's own sessions open among the to-device items it relayed, then
    every e2e message those sender keys open: what the attack gained."""
    opened: list[bytes] = []
    keys: list[sender_keys.SenderKeyReceiverState] = []
    for sender, device, body in attacker.to_device_bodies():
        for session, prekeys in sessions:
            try:
                pt = pairwise.decrypt_from_device(session, prekeys, body).plaintext
            except ChatProtoError:
                continue
            opened.append(pt)
            content = payload.decode_to_device(pt)
            if isinstance(content, sender_keys.SenderKeyDistribution):
                keys.append(
                    sender_keys.receiver_from_distribution(
                        content, sender_account=sender, sender_device=device
                    )
                )
    for m in attacker.e2e_messages():
        for k in keys:
            with contextlib.suppress(ChatProtoError):
                opened.append(sender_keys.decrypt(k, m.body)[0])
    return opened


# ---------------------------------------------------------------------- 1. sessions


async def test_a_server_account_claiming_bobs_device_id_never_replaces_alices_session_with_bob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The critical finding: the server's own account lists a device with Bob's device id, and a
    PREKEY from it reaches Alice. Her session with Bob's device is untouched, the next sender key
    she hands Bob's device is readable by Bob only, and a PREKEY naming Bob himself with the
    attacker's keys is refused with a warning."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        mallory = await stack.enter_async_context(Client(server.url))  # the server's account
        await mallory.register("mallory", "Mallory")
        ia, ib = Inbox(alice), Inbox(bob)
        direct = await alice.direct(bob.account)
        await alice.send_text(direct, "hello bob")
        await ib.take(text(direct, "hello bob"))
        before = alice.e2e._session(bob.account, bob.device)
        assert before is not None

        # Mallory's correctly signed list claims Bob's device id with Mallory's keys.
        ident = mallory.e2e.identity
        claimed = devicelist.DeviceEntry(
            device=bob.device, signing_key=ident.signing_key, identity_key=ident.identity_key
        )
        await publish_list(mallory, [claimed])
        bundle = await bundle_of(mallory, alice.account, alice.device)
        forged, m_session = pairwise.encrypt_to_device(
            None, distribution(direct), identity=ident, bundle=bundle
        )
        attacker.queue_to_device(alice.device, mallory.account, bob.device, forged)
        # The same PREKEY named as Bob's own: its keys are not on Bob's list.
        last = attacker.queue_to_device(alice.device, bob.account, bob.device, forged)
        await fetch_now(alice, last)
        await ia.take(warning(bob.account, "unexpected signing key"))

        # Alice's next sender key goes to Bob's real device over the real session.
        group = (await alice.create("group", "Plans", [bob.account])).conv
        await alice.send_text(group, MARKER)
        await attacker.relayed(lambda f: isinstance(f, F.Deliver) and f.conv == group, 2)
        gained = attacker_reads(attacker, [(m_session, mallory.e2e.prekeys)])  # type: ignore[list-item]
        assert not [pt for pt in gained if MARKER.encode() in pt]
        assert attacker.saw_marker(tmp_path) == []
        await ib.take(text(group, MARKER))
        ia.none(warning(bob.account, "new keys"))
        after = alice.e2e._session(bob.account, bob.device)
        assert after is not None and after.base_key == before.base_key
        assert after.remote_identity_key == bob.e2e.identity.identity_key
        mine = alice.e2e._session(mallory.account, bob.device)
        assert mine is not None and mine.remote_identity_key == ident.identity_key


async def test_a_handover_reaches_the_users_own_device_not_the_server_claiming_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same attack aimed at the master key: the server's account claims the id of Alice's
    second device and sends her first device a PREKEY from it. /handover still encrypts the
    master seed to her real second device only."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        a0 = await stack.enter_async_context(Client(server.url))
        await a0.register("alice", "Alice")
        ks = KeyStore.memory()
        a1 = await stack.enter_async_context(Client(server.url, ks))
        await a1.link("alice", a0.device, a0.approve_device(ks.key.public_key))
        assert await a0.publish_devices([a1.device]) == 2
        mallory = await stack.enter_async_context(Client(server.url))
        await mallory.register("mallory", "Mallory")
        ident = mallory.e2e.identity
        claimed = devicelist.DeviceEntry(
            device=a1.device, signing_key=ident.signing_key, identity_key=ident.identity_key
        )
        await publish_list(mallory, [claimed])
        bundle = await bundle_of(mallory, a0.account, a0.device)
        forged, m_session = pairwise.encrypt_to_device(
            None, distribution(1), identity=ident, bundle=bundle
        )
        last = attacker.queue_to_device(a0.device, mallory.account, a1.device, forged)
        await fetch_now(a0, last)

        seed = a0.keystore.get(NS_DEVICE, "master")
        assert seed is not None
        await a0.transfer_master_key(a1.device)
        await Inbox(a1).take(lambda ev: isinstance(ev, MasterKeyReceived))
        assert a1.e2e.master_key == a0.e2e.master_key
        gained = attacker_reads(attacker, [(m_session, mallory.e2e.prekeys)])  # type: ignore[list-item]
        assert not [pt for pt in gained if seed in pt]


async def test_a_changed_identity_is_a_new_session_and_a_security_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's master key lists his device with a new identity key (a reinstall): Alice's kept
    session with that device is never used again; a new one starts, and she is warned."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob_ks = KeyStore.open(tmp_path / "bob.keys")
        bob = await stack.enter_async_context(Client(server.url, bob_ks))
        await bob.register("bob", "Bob")
        ia, ib = Inbox(alice), Inbox(bob)
        direct = await alice.direct(bob.account)
        await alice.send_text(direct, "one")
        await ib.take(text(direct, "one"))
        old = alice.e2e._session(bob.account, bob.device)
        assert old is not None

        # Bob's device gets a new identity (its e2e state reset), and his master key lists it.
        fresh = x3dh.new_device(bob.keystore.seed, one_time=10)
        bob.keystore.put(NS_DEVICE, "prekeys", msgspec.msgpack.encode(fresh))
        up = x3dh.upload_material(fresh)
        await bob.e2e._upload(fresh, prekeys=up, one_time=up.one_time)
        entry = devicelist.DeviceEntry(
            device=bob.device,
            signing_key=fresh.identity.signing_key,
            identity_key=fresh.identity.identity_key,
            pq=fresh.pq_prekey is not None,
        )
        await publish_list(bob, [entry])
        alice.e2e.forget_devices(bob.account)

        alice.e2e.rotate(direct)  # the next message hands Bob's device a new sender key
        await alice.send_text(direct, MARKER)
        await ia.take(warning(bob.account, "new keys"))
        await ib.take(text(direct, MARKER))
        new = alice.e2e._session(bob.account, bob.device)
        assert new is not None and new.base_key != old.base_key
        assert new.remote_identity_key == fresh.identity.identity_key
        assert alice.e2e._archived(bob.account, bob.device) == []  # the old one is gone
        assert attacker.saw_marker(tmp_path) == []


# ---------------------------------------------------------------------- 2. approval, removal


async def test_the_master_key_lists_only_the_keys_the_user_approved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server adds a ghost device to Alice's account, then answers her claim for the device
    she did approve with the ghost's (validly self-signed) keys: her master key signs neither.
    Bob's messages reach her approved devices only."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        new_ks = KeyStore.memory()
        approval = alice.approve_device(new_ks.key.public_key)  # the user's approval
        new = await stack.enter_async_context(Client(server.url, new_ks))
        await new.link("alice", alice.device, approval)
        gid, gseed = attacker.ghost_device(alice.account)
        ghost_ks = KeyStore(seed=gseed, account=alice.account, device=gid, handle="alice")
        ghost = await stack.enter_async_context(Client(server.url, ghost_ks))
        deadline = time.monotonic() + 8
        while ghost.e2e.prekeys is None:  # it logged in and published its keys
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        ghost_bundle = await bundle_of(bob, alice.account, gid)

        # The server names its ghost as "your new device".
        with pytest.raises(ChatProtoError, match="did not approve"):
            await alice.publish_devices([gid])

        # The server answers the claim for the approved device with the ghost's keys.
        def swap(frame: F.ServerFrame) -> F.ServerFrame:
            if not isinstance(frame, F.Bundles) or frame.account != alice.account:
                return frame
            forged = [
                msgspec.structs.replace(
                    b,
                    signing_key=ghost_bundle.signing_key,
                    identity_key=ghost_bundle.identity_key,
                    identity_sig=ghost_bundle.identity_sig,
                    signed_prekey=F.SignedPrekey(
                        kid=ghost_bundle.signed_prekey.kid,
                        key=ghost_bundle.signed_prekey.key,
                        sig=ghost_bundle.signed_prekey.sig,
                    ),
                    pq_prekey=None,
                )
                if b.device == new.device
                else b
                for b in frame.bundles
            ]
            return msgspec.structs.replace(frame, bundles=forged)

        attacker.rewrite = swap
        with pytest.raises(ChatProtoError, match="did not approve"):
            await alice.publish_devices([new.device])
        attacker.rewrite = None
        trust = alice.e2e.trust(alice.account)
        assert trust is not None and trust.version == 1
        assert [d.device for d in trust.devices] == [alice.device]

        # Unforged, the approved device is listed with exactly its own keys.
        assert await alice.publish_devices([new.device]) == 2
        trust = alice.e2e.trust(alice.account)
        assert trust is not None
        (listed,) = [d for d in trust.devices if d.device == new.device]
        assert listed.signing_key == new_ks.key.public_key
        assert listed.identity_key == new.e2e.identity.identity_key
        assert listed.pq == (new.e2e.prekeys is not None and new.e2e.prekeys.pq_prekey is not None)

        ia, inew, ig = Inbox(alice), Inbox(new), Inbox(ghost)
        direct = await bob.direct(alice.account)
        await bob.send_text(direct, MARKER)
        await ia.take(text(direct, MARKER))
        await inew.take(text(direct, MARKER))
        assert ghost.e2e.inbound_key_ids(direct, bob.device) == set()
        ig.none(text(direct, MARKER))
        assert attacker.saw_marker(tmp_path) == []


async def test_a_device_removed_from_another_device_is_rotated_out_of_every_sender_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice's third device is stolen. From her second device (not the master key's), she
    removes it: the first device re-signs the list without it, and neither Alice's devices nor
    Bob give it any sender key again."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        a0 = await stack.enter_async_context(Client(server.url))
        await a0.register("alice", "Alice")
        ks = KeyStore.memory()
        a1 = await stack.enter_async_context(Client(server.url, ks))
        await a1.link("alice", a0.device, a0.approve_device(ks.key.public_key))
        assert await a0.publish_devices([a1.device]) == 2
        # The third device is approved on the second, which sends the approval to the first.
        ks = KeyStore.memory()
        approval = a1.approve_device(ks.key.public_key)
        await a1.send_approval(ks.key.public_key)
        stolen = await stack.enter_async_context(Client(server.url, ks))
        await stolen.link("alice", a1.device, approval)
        deadline = time.monotonic() + 8
        while not a0.e2e.approved(ks.key.public_key):
            assert time.monotonic() < deadline, "the approval never reached the first device"
            await asyncio.sleep(0.02)
        assert await a0.publish_devices([stolen.device]) == 3
        devices = [a0, a1, stolen]
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        boxes = {c.device: Inbox(c) for c in (*devices, bob)}
        group = (await bob.create("group", "Plans", [a0.account])).conv
        await bob.send_text(group, "before")
        await a0.send_text(group, "before too")
        for c in devices:
            await boxes[c.device].take(text(group, "before"))
            await boxes[c.device].take(text(group, "before too"))
        keys_before = {d: stolen.e2e.inbound_key_ids(group, d) for d in (bob.device, a0.device)}

        await a1.remove_device(stolen.device)
        deadline = time.monotonic() + 8
        while stolen.device in {d.device for d in a0.e2e.trust(a0.account).devices}:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the master key's device never removed it"
            await asyncio.sleep(0.02)
        trust = a0.e2e.trust(a0.account)
        assert trust is not None and trust.version == 4

        await bob.send_text(group, MARKER)
        await a1.send_text(group, MARKER + "-a1")
        await a0.send_text(group, MARKER + "-a0")
        for c in (a0, a1):
            for t in (MARKER, MARKER + "-a1", MARKER + "-a0"):
                if not (c is a1 and t.endswith("-a1")) and not (c is a0 and t.endswith("-a0")):
                    await boxes[c.device].take(text(group, t))
        await boxes[bob.device].take(text(group, MARKER + "-a0"))
        for d in (bob.device, a0.device):
            assert stolen.e2e.inbound_key_ids(group, d) == keys_before[d]  # nothing new
        assert stolen.e2e.inbound_key_ids(group, a1.device) == set()
        boxes[stolen.device].none(lambda ev: isinstance(ev, Message) and MARKER in (ev.text or ""))
        assert attacker.saw_marker(tmp_path) == []


# ---------------------------------------------------------------------- 4. prekeys


async def test_a_stripped_pq_prekey_is_refused_not_downgraded_to_x3dh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's list says his device has an ML-KEM prekey; the server leaves it out of the bundle
    Alice claims. She refuses to run X3DH with it (a warning, nothing sent); once the bundle is
    whole, the session is PQXDH."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        ia, ib = Inbox(alice), Inbox(bob)
        (entry,) = await alice.e2e.devices(bob.account)
        assert entry.pq

        def strip(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.Bundles) and frame.account == bob.account:
                bundles = [msgspec.structs.replace(b, pq_prekey=None) for b in frame.bundles]
                return msgspec.structs.replace(frame, bundles=bundles)
            return frame

        attacker.rewrite = strip
        monkeypatch.setattr(client_module, "PARK_SECONDS", 0.5)  # "first" is never readable
        direct = await alice.direct(bob.account)
        await alice.send_text(direct, "first")
        await ia.take(warning(bob.account, "PQXDH required"))
        assert alice.e2e._session(bob.account, bob.device) is None  # no X3DH session

        attacker.rewrite = None
        alice.e2e.rotate(direct)
        await alice.send_text(direct, MARKER)
        await ib.take(text(direct, MARKER))
        session = alice.e2e._session(bob.account, bob.device)
        assert session is not None and session.kind == "pqxdh"
        assert attacker.saw_marker(tmp_path) == []


async def test_a_prekey_message_without_a_one_time_prekey_cannot_be_replayed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server hands out Bob's bundle without a one-time prekey (exhausted, or withheld):
    the session is still PQXDH (the PQ prekey is the last resort). It then queues Alice's PREKEY
    message to Bob again, while the session is kept and after it is gone: both refused, and the
    sender key it carried is not rewound."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        ib = Inbox(bob)

        def no_one_time(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.Bundles) and frame.account == bob.account:
                bundles = [msgspec.structs.replace(b, one_time=None) for b in frame.bundles]
                return msgspec.structs.replace(frame, bundles=bundles)
            return frame

        attacker.rewrite = no_one_time
        direct = await alice.direct(bob.account)
        for i in range(3):
            await alice.send_text(direct, f"m{i}")
            await ib.take(text(direct, f"m{i}"))
        attacker.rewrite = None
        session = alice.e2e._session(bob.account, bob.device)
        assert session is not None and session.kind == "pqxdh"
        (prekey,) = [
            body
            for sender, _, body in attacker.to_device_bodies()
            if sender == alice.account and pairwise.message_type(body) == "prekey"
        ]
        assert pairwise.prekey_header(prekey).otk_id is None
        (name,) = [n for n, _ in bob.keystore.items(e2e_module.NS_IN)]
        held = bob.keystore.get(e2e_module.NS_IN, name)

        # Replayed while Bob keeps the session: the ratchet refuses the used message key.
        tid = attacker.queue_to_device(bob.device, alice.account, alice.device, prekey)
        await fetch_now(bob, tid)
        await ib.take(warning(alice.account, "refused"))
        # Replayed after the session is gone (replaced, or dropped from the archive).
        bob.e2e._drop_sessions(alice.account, alice.device)
        tid = attacker.queue_to_device(bob.device, alice.account, alice.device, prekey)
        await fetch_now(bob, tid)
        await ib.take(warning(alice.account, "replay"))
        assert bob.e2e._session(alice.account, alice.device) is None  # no session re-created
        assert bob.keystore.get(e2e_module.NS_IN, name) == held  # the chain is not rewound


async def test_a_pq_prekey_stripped_while_a_device_is_approved_is_reported_by_that_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server leaves the PQ prekey out of the bundle the master key's device claims when
    approving a new device, so the list says it has none (and contacts could run X3DH with it).
    The new device checks its own entry in every list of its account and warns."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        ks = KeyStore.memory()
        approval = alice.approve_device(ks.key.public_key)
        new = await stack.enter_async_context(Client(server.url, ks))
        await new.link("alice", alice.device, approval)
        inew = Inbox(new)

        def strip(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.Bundles) and frame.account == alice.account:
                bundles = [msgspec.structs.replace(b, pq_prekey=None) for b in frame.bundles]
                return msgspec.structs.replace(frame, bundles=bundles)
            return frame

        attacker.rewrite = strip
        assert await alice.publish_devices([new.device]) == 2
        attacker.rewrite = None
        await inew.take(warning(alice.account, "no PQ prekey"))
        # Approved again with the whole bundle, the entry is right and nothing more is said.
        assert await alice.publish_devices([new.device]) == 3
        deadline = time.monotonic() + 8
        while (t := new.e2e.trust(alice.account)) is None or t.version < 3:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        inew.none(warning(alice.account, "PQ prekey"))


async def test_the_device_list_version_is_the_signed_one_not_the_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server serves Alice's older signed list to Bob (rollback), then states version
    2^32 - 1 in the frames it gives Alice's master key device (a freeze): Bob refuses the old
    list and keeps the new one; Alice signs her next list from the signed version."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        v1: F.DeviceList = await bob._call(
            F.GetDeviceList(id=bob._next_id(), account=alice.account), F.DeviceList
        )
        ks = KeyStore.memory()
        approval = alice.approve_device(ks.key.public_key)
        new = await stack.enter_async_context(Client(server.url, ks))
        await new.link("alice", alice.device, approval)
        assert await alice.publish_devices([new.device]) == 2
        assert len(await bob.e2e.devices(alice.account, refresh=True)) == 2

        def rollback(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.DeviceList) and frame.account == alice.account:
                return msgspec.structs.replace(v1, re=frame.re, version=3)
            return frame

        attacker.rewrite = rollback
        with pytest.raises(ChatProtoError, match="older"):
            await bob.e2e.devices(alice.account, refresh=True)
        trust = bob.e2e.trust(alice.account)
        assert trust is not None and trust.version == 2 and len(trust.devices) == 2

        def freeze(frame: F.ServerFrame) -> F.ServerFrame:
            if isinstance(frame, F.DeviceList) and frame.account == alice.account:
                return msgspec.structs.replace(frame, version=2**32 - 1)
            return frame

        attacker.rewrite = freeze
        assert await alice.publish_devices([]) == 3
        attacker.rewrite = None
        assert len(await bob.e2e.devices(alice.account, refresh=True)) == 2
        assert bob.e2e.trust(alice.account).version == 3  # type: ignore[union-attr]


async def test_a_removed_device_is_rotated_out_even_if_another_account_lists_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob removes his stolen device; the server's account, a member of the group, signs a list
    naming the stolen device's id. Alice's sender key is still replaced: who holds a key is
    (account, device), so the id reappearing under another account keeps nothing alive."""
    async with (
        malicious_server(tmp_path, monkeypatch) as (server, attacker),
        contextlib.AsyncExitStack() as stack,
    ):
        alice = await stack.enter_async_context(Client(server.url))
        await alice.register("alice", "Alice")
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        ks = KeyStore.memory()
        approval = bob.approve_device(ks.key.public_key)
        stolen = await stack.enter_async_context(Client(server.url, ks))
        await stolen.link("bob", bob.device, approval)
        assert await bob.publish_devices([stolen.device]) == 2
        mallory = await stack.enter_async_context(Client(server.url))
        await mallory.register("mallory", "Mallory")
        ib, isto = Inbox(bob), Inbox(stolen)
        group = (await alice.create("group", "Plans", [bob.account, mallory.account])).conv
        await alice.send_text(group, "before")
        await isto.take(text(group, "before"))

        ident = mallory.e2e.identity
        own = devicelist.DeviceEntry(
            device=mallory.device, signing_key=ident.signing_key, identity_key=ident.identity_key
        )
        claimed = msgspec.structs.replace(own, device=stolen.device)
        await publish_list(mallory, [own, claimed])
        alice.e2e.forget_devices(mallory.account)
        await bob.remove_device(stolen.device)
        deadline = time.monotonic() + 8
        while stolen.device in {
            d.device for d in await alice.e2e.devices(bob.account, refresh=True)
        }:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        alice.e2e.forget_devices(bob.account)

        ack = await alice.send_text(group, MARKER)
        await ib.take(text(group, MARKER))
        await attacker.relayed(
            lambda f: isinstance(f, F.Deliver) and f.conv == group and f.seq == ack.seq, 3
        )  # Bob's, Mallory's and the stolen device's copies
        isto.none(text(group, MARKER))
        assert len(stolen.e2e.inbound_key_ids(group, alice.device)) == 1  # only the old key
        assert attacker.saw_marker(tmp_path) == []


async def test_chat_approve_lists_a_device_only_with_the_key_the_user_compared(
    tmp_path: Path,
) -> None:
    """In ``chat``, ``/approve DEVICE`` shows the key the server reports for the device; the
    user compares it with ``/me`` on that device and approves exactly that key: another one (or
    a key the server swapped in) is refused and nothing is signed."""
    from chatproto import auth
    from integration.test_chat_cli import Terminal, _register

    async with run_server(make_settings(tmp_path)) as server:
        key = tmp_path / "alice.key"
        await _register(server.url, key, "alice", "Alice")
        async with Client(server.url, KeyStore.open(key)) as alice:
            account, server_name = alice.account, alice.server_name
            ks = KeyStore.memory()
            # The approval of the login, signed out of band (not recorded in alice's store).
            approval = alice.keystore.key.sign(
                auth.device_approval_payload(server_name, account, ks.key.public_key)
            )
            approver = alice.device
        async with Client(server.url, ks) as new:
            await new.link("alice", approver, approval)
            term = Terminal(server.url, key).start()
            try:
                await term.wait_for("connected as @alice")
                shown = ks.key.public_key.hex()
                term.send(f"/approve {new.device}")
                await term.wait_for(f"device {new.device} has key {shown}")
                term.expected_status = (
                    1  # the wrong key is refused: a script with a failed command exits 1
                )
                term.send(f"/approve {new.device} {'0' * 16}")
                await term.wait_for("has another key: not approved")
                assert new.e2e.trust(account) is None or new.device not in {
                    d.device
                    for d in new.e2e.trust(account).devices  # type: ignore[union-attr]
                }
                term.send(f"/approve {new.device} {shown[:16]}")
                await term.wait_for(rf"device {new.device} added to your device list \(version 2\)")
            finally:
                assert await term.close() == term.expected_status
            listed = await new.e2e.devices(account, refresh=True)
            assert {d.device: d.signing_key for d in listed}[new.device] == ks.key.public_key
