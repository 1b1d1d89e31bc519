"""Moving an account's master key to another of its devices (E2E.md 3.1), against a real server.

The master key is made on the account's first device; ``transfer_master_key`` (the user's
approval) hands it to a device already on the signed list, over the pairwise session. The new
holder then signs the next list, which contacts who pinned the key earlier accept. Transfers to
devices off the list are refused by the sender; transfers of another key, from another account or
from a device off the list are refused by the receiver, which keeps what it had.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pytest
from chatclient import Client, KeyStore, Message
from chatclient import client as client_module
from chatclient.e2e import NS_DEVICE
from chatclient.events import (
    DevicesChanged,
    Event,
    MasterKeyReceived,
    SecurityWarning,
    Undecryptable,
)
from chatproto.e2e import payload
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ChatProtoError, CryptoError
from conftest import RunningServer
from integration.test_e2e import Inbox, at, chat, two_devices


@pytest.fixture
def short_park(monkeypatch: pytest.MonkeyPatch) -> None:
    """New devices wait this long for keys of messages older than them (never coming)."""
    monkeypatch.setattr(client_module, "PARK_SECONDS", 0.5)


def received(ev: Event) -> bool:
    return isinstance(ev, MasterKeyReceived)


def texts(events: list[Event]) -> list[str | None]:
    return [ev.text if isinstance(ev, Message) else None for ev in events]


def changed(account: int) -> Callable[[Event], bool]:
    return lambda ev: isinstance(ev, DevicesChanged) and ev.account == account


async def test_the_master_key_moves_to_an_approved_device_whose_new_list_a_contact_accepts(
    server: RunningServer, short_park: None
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alice = await two_devices(stack, server.url, "alice")  # alice[0] holds the master key
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        ia0, ia1, ib = Inbox(alice[0]), Inbox(alice[1]), Inbox(bob)
        conv = await bob.direct(alice[0].account)
        await bob.send_text(conv, "hello alice")  # Bob pins Alice's master key (list version 2)
        await alice[1].send_text(conv, "hello bob")
        for box in (ia0, ia1, ib):
            assert texts(await box.take(chat(conv), 2)) == ["hello alice", "hello bob"]
        master = alice[0].e2e.master_key
        assert master is not None
        pinned = bob.e2e.trust(alice[0].account)
        assert pinned is not None and pinned.master_key == master and pinned.version == 2

        # Before the transfer the second device cannot sign the list.
        assert alice[1].e2e.master_key is None
        with pytest.raises(CryptoError):
            await alice[1].publish_devices()

        # The user approves moving the key (and retiring the first device's copy).
        await alice[0].transfer_master_key(alice[1].device, keep=False)
        (ev,) = await ia1.take(received)
        assert ev == MasterKeyReceived(from_device=alice[0].device)
        assert alice[1].e2e.master_key == master
        assert alice[0].e2e.master_key is None  # keep=False: deleted once sent
        with pytest.raises(CryptoError):
            await alice[0].publish_devices()
        with pytest.raises(CryptoError):  # nothing left to hand over
            await alice[0].transfer_master_key(alice[1].device)

        # The new holder approves a third device and signs list version 3.
        ks = KeyStore.memory()
        third = await stack.enter_async_context(Client(server.url, ks))
        await third.link("alice", alice[1].device, alice[1].approve_device(ks.key.public_key))
        ia3 = Inbox(third)
        assert await alice[1].publish_devices([third.device]) == 3

        # Bob, who pinned the master key before the move, accepts the new list, and his
        # messages reach all three devices; the third device's own messages reach him.
        await ib.take(changed(alice[0].account))
        ack = await bob.send_text(conv, "three of you now")
        for box in (ia0, ia1, ia3):
            assert texts(await box.take(at(conv, ack.seq))) == ["three of you now"]
        # (The third device sees what came before it only as undecryptable, by design.)
        earlier = await ia3.take(chat(conv), 2)
        assert [(type(ev), getattr(ev, "seq", 0)) for ev in earlier] == [
            (Undecryptable, 2),
            (Undecryptable, 3),
        ]
        ack = await third.send_text(conv, "hi from the third device")
        assert texts(await ib.take(at(conv, ack.seq))) == ["hi from the third device"]
        trust = bob.e2e.trust(alice[0].account)
        assert trust is not None and trust.master_key == master and trust.version == 3
        assert third.device in {d.device for d in trust.devices}
        assert not trust.changed
        await ib.quiet(lambda ev: isinstance(ev, SecurityWarning))
        await ia1.quiet(received)  # exactly one event for the one transfer


async def test_transfers_off_the_list_are_refused_by_the_sender_and_forged_ones_by_the_receiver(
    server: RunningServer,
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        alice = await two_devices(stack, server.url, "alice")
        account = alice[0].account
        bob = await stack.enter_async_context(Client(server.url))
        await bob.register("bob", "Bob")
        # A device the server let log in as Alice's, but that her master key never listed.
        ks = KeyStore.memory()
        ghost = await stack.enter_async_context(Client(server.url, ks))
        await ghost.link("alice", alice[0].device, alice[0].approve_device(ks.key.public_key))
        ia1, ig = Inbox(alice[1]), Inbox(ghost)
        master = alice[0].e2e.master_key
        assert master is not None

        # The sender refuses: a device off the list, another account's device, itself; and a
        # device without the key has nothing to send.
        for target in (ghost.device, bob.device, alice[0].device):
            with pytest.raises(ChatProtoError):
                await alice[0].transfer_master_key(target)
        with pytest.raises(CryptoError):
            await alice[1].transfer_master_key(alice[0].device)
        await ig.quiet(lambda ev: isinstance(ev, MasterKeyReceived | SecurityWarning))
        assert ghost.e2e.master_key is None
        assert alice[0].e2e.master_key == master

        async def forge(
            sender: Client, to_account: int, seed: bytes, transfer_account: int
        ) -> None:
            """A MasterKeyTransfer sent to ``alice[1]`` the way the SDK sends one: padded,
            over a valid pairwise session (SDK internals; ``transfer_master_key`` would refuse)."""
            content = payload.encode_to_device(
                payload.MasterKeyTransfer(account=transfer_account, seed=seed)
            )
            sent = await sender.e2e._send_pairwise(to_account, [alice[1].device], content)
            assert sent == [alice[1].device]

        async def refused(reason: str) -> None:
            (w,) = await ia1.take(lambda ev: isinstance(ev, SecurityWarning))
            assert reason in w.reason  # type: ignore[union-attr]
            await ia1.quiet(received)

        # 1. A device of the same account on the list sends a seed that is not the master key:
        # refused, nothing stored.
        await forge(alice[0], account, SigningKey.generate().seed, account)
        await refused("not this account's pinned master key")
        assert alice[1].e2e.master_key is None

        # The real transfer (default keep=True: both devices hold the key now).
        await alice[0].transfer_master_key(alice[1].device)
        (ev,) = await ia1.take(received)
        assert ev == MasterKeyReceived(from_device=alice[0].device)
        assert alice[1].e2e.master_key == master == alice[0].e2e.master_key
        seed = alice[1].keystore.get(NS_DEVICE, "master")

        # 2. The same forgery again: refused, and the real key is not replaced.
        await forge(alice[0], account, SigningKey.generate().seed, account)
        await refused("not this account's pinned master key")
        # 3. Another account (with its own real master key, or claiming Alice's account).
        bob_seed = bob.keystore.get(NS_DEVICE, "master")
        assert bob_seed is not None
        await forge(bob, account, bob_seed, bob.account)
        await refused("only this account's own devices")
        await forge(bob, account, bob_seed, account)
        await refused("only this account's own devices")
        # 4. A device of Alice's account that is not on her signed list.
        await forge(ghost, account, SigningKey.generate().seed, account)
        await refused("not on account")
        assert alice[1].keystore.get(NS_DEVICE, "master") == seed
        assert alice[1].e2e.master_key == master

        # The holder still signs lists that verify under the pinned key.
        assert await alice[1].publish_devices() == 3
        assert await alice[0].publish_devices() == 4
