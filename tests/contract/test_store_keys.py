"""The store contract for the key directory and the to-device queue (every backend)."""

from __future__ import annotations

import asyncio

import pytest

from chatd.errors import Conflict, Invalid, NotFound, RateLimited
from chatd.store import Store
from chatd.store.base import DeviceListRow, DeviceRow, KeyUpload, PrekeyRow

from .conftest import MakeAccount, Stores, device_key

NOW = 1_700_000_000_000
POOL = 500


def x25519(n: int) -> bytes:
    return n.to_bytes(32, "big")


def sig(n: int) -> bytes:
    return n.to_bytes(64, "big")


def upload(
    device: DeviceRow,
    *,
    identity: int = 1,
    one_time: range | list[int] = range(0),
    signed: PrekeyRow | None = None,
    pq: PrekeyRow | None = None,
) -> KeyUpload:
    return KeyUpload(
        device=device.id,
        identity_key=x25519(identity),
        identity_sig=sig(identity),
        signed_prekey=signed,
        pq_prekey=pq,
        one_time=tuple(PrekeyRow(k, x25519(1000 + k)) for k in one_time),
    )


# ------------------------------------------------------------------ upload


async def test_upload_stores_keys_and_counts_one_time_prekeys(
    store: Store, make_account: MakeAccount
) -> None:
    _, dev = await make_account("alice")
    assert await store.upload_keys(upload(dev, one_time=range(1, 4)), NOW, POOL) == 3
    assert await store.one_time_count(dev.id) == 3
    assert await store.upload_keys(upload(dev, one_time=range(4, 6)), NOW, POOL) == 5


async def test_a_duplicate_kid_is_ignored_and_keeps_the_first_key(
    store: Store, make_account: MakeAccount
) -> None:
    account, dev = await make_account("alice")
    await store.upload_keys(upload(dev, one_time=[7]), NOW, POOL)
    again = KeyUpload(dev.id, x25519(1), sig(1), one_time=(PrekeyRow(7, x25519(99)),))
    assert await store.upload_keys(again, NOW, POOL) == 1
    inside = KeyUpload(
        dev.id, x25519(1), sig(1), one_time=(PrekeyRow(8, x25519(5)), PrekeyRow(8, x25519(6)))
    )
    assert await store.upload_keys(inside, NOW, POOL) == 2
    _, claimer = await make_account("bob")
    first = await store.claim_keys(account.id, claimer.id)
    second = await store.claim_keys(account.id, claimer.id)
    assert first[0].one_time == PrekeyRow(7, x25519(1007))
    assert second[0].one_time == PrekeyRow(8, x25519(5))


async def test_the_pool_is_capped_and_a_refused_upload_stores_nothing(
    store: Store, make_account: MakeAccount
) -> None:
    _, dev = await make_account("alice")
    assert await store.upload_keys(upload(dev, one_time=range(1, 9)), NOW, 10) == 8
    with pytest.raises(Invalid):
        await store.upload_keys(upload(dev, identity=1, one_time=range(9, 12)), NOW, 10)
    assert await store.one_time_count(dev.id) == 8
    # duplicates do not count against the cap
    assert await store.upload_keys(upload(dev, one_time=range(1, 11)), NOW, 10) == 10


async def test_signed_prekeys_are_replaced_and_kept_when_absent(
    store: Store, make_account: MakeAccount
) -> None:
    account, dev = await make_account("alice")
    _, claimer = await make_account("bob")
    spk1, spk2 = PrekeyRow(1, x25519(11), sig(11)), PrekeyRow(2, x25519(12), sig(12))
    pq = PrekeyRow(3, bytes(1184), sig(13))
    await store.upload_keys(upload(dev, signed=spk1, pq=pq), NOW, POOL)
    await store.upload_keys(upload(dev, signed=spk2), NOW, POOL)
    (bundle,) = await store.claim_keys(account.id, claimer.id)
    assert bundle.signed_prekey == spk2
    assert bundle.pq_prekey == pq
    assert bundle.signing_key == dev.public_key
    assert (bundle.identity_key, bundle.identity_sig) == (x25519(1), sig(1))


async def test_a_new_identity_key_discards_the_old_identitys_prekeys(
    store: Store, make_account: MakeAccount
) -> None:
    account, dev = await make_account("alice")
    _, claimer = await make_account("bob")
    old_spk = PrekeyRow(1, x25519(11), sig(11))
    await store.upload_keys(upload(dev, one_time=range(1, 5), signed=old_spk), NOW, POOL)
    assert await store.upload_keys(upload(dev, identity=2, one_time=[50]), NOW, POOL) == 1
    (bundle,) = await store.claim_keys(account.id, claimer.id)
    assert bundle.identity_key == x25519(2)
    assert bundle.signed_prekey is None
    assert bundle.one_time == PrekeyRow(50, x25519(1050))


async def test_upload_for_an_unknown_device_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.upload_keys(KeyUpload(999, x25519(1), sig(1)), NOW, POOL)


# ------------------------------------------------------------------ claim


async def test_claim_returns_a_bundle_per_device_with_keys_and_consumes_one_time_prekeys(
    store: Store, make_account: MakeAccount
) -> None:
    account, phone = await make_account("alice")
    laptop = await store.add_device(account.id, device_key(), "laptop", phone.id, NOW)
    silent = await store.add_device(account.id, device_key(), "tablet", phone.id, NOW)
    _, claimer = await make_account("bob")
    await store.upload_keys(upload(phone, one_time=[1, 2]), NOW, POOL)
    await store.upload_keys(upload(laptop, identity=2, one_time=[5]), NOW, POOL)
    first = await store.claim_keys(account.id, claimer.id)
    assert [b.device for b in first] == [phone.id, laptop.id]  # silent uploaded nothing
    assert silent.id not in {b.device for b in first}
    assert [b.one_time.kid if b.one_time else None for b in first] == [1, 5]
    second = await store.claim_keys(account.id, claimer.id)
    assert [b.one_time.kid if b.one_time else None for b in second] == [2, None]
    third = await store.claim_keys(account.id, claimer.id)
    assert [b.one_time for b in third] == [None, None]
    assert await store.one_time_count(phone.id) == 0


async def test_claim_leaves_out_the_claiming_device(
    store: Store, make_account: MakeAccount
) -> None:
    account, phone = await make_account("alice")
    laptop = await store.add_device(account.id, device_key(), "laptop", phone.id, NOW)
    for d in (phone, laptop):
        await store.upload_keys(upload(d, one_time=[1]), NOW, POOL)
    bundles = await store.claim_keys(account.id, phone.id)
    assert [b.device for b in bundles] == [laptop.id]
    assert await store.one_time_count(phone.id) == 1


async def test_claim_of_an_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.claim_keys(424242)


async def test_claim_of_an_account_without_keys_is_empty(
    store: Store, make_account: MakeAccount
) -> None:
    account, _ = await make_account("alice")
    assert await store.claim_keys(account.id) == []


async def test_concurrent_claims_never_share_a_one_time_prekey(
    store: Store, make_account: MakeAccount
) -> None:
    account, phone = await make_account("alice")
    laptop = await store.add_device(account.id, device_key(), "laptop", phone.id, NOW)
    await store.upload_keys(upload(phone, one_time=range(1, 31)), NOW, POOL)
    await store.upload_keys(upload(laptop, one_time=range(1, 21)), NOW, POOL)
    results = await asyncio.gather(*(store.claim_keys(account.id) for _ in range(50)))
    handed: dict[int, list[int]] = {phone.id: [], laptop.id: []}
    for bundles in results:
        assert len(bundles) == 2
        for b in bundles:
            if b.one_time is not None:
                handed[b.device].append(b.one_time.kid)
    assert sorted(handed[phone.id]) == list(range(1, 31))
    assert sorted(handed[laptop.id]) == list(range(1, 21))


async def test_claims_survive_a_restart(stores: Stores) -> None:
    store = await stores.open()
    account, dev = await store.create_account("alice", "A", "user", device_key(), "p", NOW)
    await store.upload_keys(upload(dev, one_time=[1, 2]), NOW, POOL)
    await store.claim_keys(account.id)
    await stores.close(store)
    store = await stores.open()
    assert await store.one_time_count(dev.id) == 1
    (bundle,) = await store.claim_keys(account.id)
    assert bundle.one_time == PrekeyRow(2, x25519(1002))


# ------------------------------------------------------------------ device lists


async def test_device_list_versions_only_move_up(store: Store, make_account: MakeAccount) -> None:
    account, _ = await make_account("alice")
    assert await store.device_list(account.id) is None
    v2 = DeviceListRow(account.id, 2, b"list v2", sig(2), x25519(7))
    await store.put_device_list(v2, NOW)
    assert await store.device_list(account.id) == v2
    for version in (1, 2):
        with pytest.raises(Conflict):
            await store.put_device_list(
                DeviceListRow(account.id, version, b"old", sig(1), x25519(7)), NOW
            )
    assert await store.device_list(account.id) == v2
    v5 = DeviceListRow(account.id, 5, b"list v5", sig(5), x25519(8))
    await store.put_device_list(v5, NOW)
    assert await store.device_list(account.id) == v5


async def test_device_list_of_an_unknown_account_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.put_device_list(DeviceListRow(4242, 1, b"", sig(1), x25519(1)), NOW)


# ------------------------------------------------------------------ to-device queue


async def test_to_device_items_queue_in_tid_order_until_acked(
    store: Store, make_account: MakeAccount
) -> None:
    alice, phone = await make_account("alice")
    _, bob = await make_account("bob")
    queued = [
        await store.queue_to_device(bob.id, alice.id, phone.id, f"m{i}".encode(), NOW, 100)
        for i in range(5)
    ]
    assert [q.tid for q in queued] == [1, 2, 3, 4, 5]
    items = await store.to_device_items(bob.id, 0, 100)
    assert items == queued
    assert (items[0].sender, items[0].sender_device, items[0].target) == (
        alice.id,
        phone.id,
        bob.id,
    )
    assert [i.tid for i in await store.to_device_items(bob.id, 2, 2)] == [3, 4]
    assert await store.ack_to_device(bob.id, 3) == 3
    assert [i.tid for i in await store.to_device_items(bob.id, 0, 100)] == [4, 5]
    assert await store.ack_to_device(bob.id, 3) == 0
    assert await store.to_device_items(phone.id, 0, 100) == []


async def test_tids_are_never_reused_after_acks_or_a_restart(stores: Stores) -> None:
    store = await stores.open()
    a, phone = await store.create_account("alice", "A", "user", device_key(), "p", NOW)
    _, bob = await store.create_account("bob", "B", "user", device_key(), "p", NOW)
    for _ in range(3):
        await store.queue_to_device(bob.id, a.id, phone.id, b"x", NOW, 100)
    await store.ack_to_device(bob.id, 3)
    await stores.close(store)
    store = await stores.open()
    item = await store.queue_to_device(bob.id, a.id, phone.id, b"y", NOW, 100)
    assert item.tid == 4
    assert [i.tid for i in await store.to_device_items(bob.id, 0, 100)] == [4]


async def test_tids_count_per_target_device(store: Store, make_account: MakeAccount) -> None:
    a, phone = await make_account("alice")
    _, bob = await make_account("bob")
    _, carol = await make_account("carol")
    assert (await store.queue_to_device(bob.id, a.id, phone.id, b"", NOW, 10)).tid == 1
    assert (await store.queue_to_device(carol.id, a.id, phone.id, b"", NOW, 10)).tid == 1
    assert (await store.queue_to_device(bob.id, a.id, phone.id, b"", NOW, 10)).tid == 2


async def test_the_queue_is_bounded_and_acks_make_room(
    store: Store, make_account: MakeAccount
) -> None:
    a, phone = await make_account("alice")
    _, bob = await make_account("bob")
    for _ in range(3):
        await store.queue_to_device(bob.id, a.id, phone.id, b"x", NOW, 3)
    with pytest.raises(RateLimited):
        await store.queue_to_device(bob.id, a.id, phone.id, b"x", NOW, 3)
    assert len(await store.to_device_items(bob.id, 0, 100)) == 3
    await store.ack_to_device(bob.id, 1)
    item = await store.queue_to_device(bob.id, a.id, phone.id, b"x", NOW, 3)
    assert item.tid == 4


async def test_to_an_unknown_device_is_not_found(store: Store, make_account: MakeAccount) -> None:
    a, phone = await make_account("alice")
    with pytest.raises(NotFound):
        await store.queue_to_device(9999, a.id, phone.id, b"x", NOW, 10)
