"""The key directory and the to-device queue against a real server, over raw frames."""

from __future__ import annotations

import asyncio
import os
from collections import Counter

import msgspec
import pytest
from chatproto import auth
from chatproto import frames as F
from chatproto import limits as L
from chatproto.e2e.primitives import SigningKey
from chatproto.errors import ErrorCode
from conftest import RunningServer
from testkit import Raw


def pub() -> bytes:
    return os.urandom(32)


SIG = bytes(range(64))


async def user(url: str, handle: str) -> Raw:
    r = await Raw.open(url)
    await r.register(handle)
    return r


async def link(url: str, owner: Raw, handle: str) -> Raw:
    """A second device of ``owner``'s account, approved by ``owner``'s device."""
    r = await Raw.open(url)
    r.key = SigningKey.generate()
    approval = owner.key.sign(
        auth.device_approval_payload(r.challenge.server, owner.account, r.key.public_key)
    )
    w = await r.request(
        F.LinkDevice(
            id=r.next_id(),
            handle=handle,
            device_key=r.key.public_key,
            device_name="second",
            approver=owner.device,
            approval=approval,
            sig=r.login_sig(),
        ),
        F.Welcome,
    )
    r.account, r.device = w.account, w.device
    return r


async def upload(
    r: Raw,
    identity: bytes,
    kids: range | list[int] = range(0),
    signed: F.SignedPrekey | None = None,
    pq: F.SignedPrekey | None = None,
) -> F.KeyCount:
    frame = F.UploadKeys(
        id=r.next_id(),
        identity_key=identity,
        identity_sig=SIG,
        signed_prekey=signed,
        pq_prekey=pq,
        one_time=[F.OneTimePrekey(kid=k, key=pub()) for k in kids],
    )
    count: F.KeyCount = await r.request(frame, F.KeyCount)
    return count


async def claim(r: Raw, account: int) -> F.Bundles:
    bundles: F.Bundles = await r.request(F.ClaimKeys(id=r.next_id(), account=account), F.Bundles)
    return bundles


async def direct(a: Raw, b: Raw) -> int:
    conv = await a.request(F.CreateConv(id=a.next_id(), kind="direct", members=[b.account]))
    return int(conv.info.conv)


async def close_all(*clients: Raw) -> None:
    for c in clients:
        await c.close()


# ------------------------------------------------------------------ key directory


async def test_upload_then_claim_hands_each_one_time_prekey_out_exactly_once(
    server: RunningServer,
) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    identity = pub()
    spk = F.SignedPrekey(kid=1, key=pub(), sig=SIG)
    pq = F.SignedPrekey(kid=2, key=os.urandom(L.MAX_PREKEY_BYTES), sig=SIG)
    one_time = [F.OneTimePrekey(kid=k, key=pub()) for k in (10, 11)]
    count = await alice.request(
        F.UploadKeys(
            id=alice.next_id(),
            identity_key=identity,
            identity_sig=SIG,
            signed_prekey=spk,
            pq_prekey=pq,
            one_time=one_time,
        ),
        F.KeyCount,
    )
    assert count.one_time == 2

    first = await claim(bob, alice.account)
    assert first.account == alice.account
    assert first.bundles == [
        F.Bundle(
            device=alice.device,
            signing_key=alice.key.public_key,
            identity_key=identity,
            identity_sig=SIG,
            signed_prekey=spk,
            pq_prekey=pq,
            one_time=one_time[0],
        )
    ]
    assert (await upload(alice, identity)).one_time == 1  # one consumed
    second = await claim(bob, alice.account)
    assert second.bundles[0].one_time == one_time[1]
    exhausted = await claim(bob, alice.account)
    (bundle,) = exhausted.bundles
    assert bundle.one_time is None
    assert (bundle.signed_prekey, bundle.pq_prekey) == (spk, pq)
    assert (await upload(alice, identity)).one_time == 0
    await close_all(alice, bob)


async def test_twenty_concurrent_claimers_never_get_the_same_one_time_prekey(
    server: RunningServer,
) -> None:
    phone = await user(server.url, "alice")
    laptop = await link(server.url, phone, "alice")
    await upload(phone, pub(), range(1, 6))
    await upload(laptop, pub(), range(1, 6))
    claimers = [await user(server.url, f"claimer{i}") for i in range(20)]
    results = await asyncio.gather(*(claim(c, phone.account) for c in claimers))
    handed = Counter()
    for r in results:
        assert sorted(b.device for b in r.bundles) == sorted([phone.device, laptop.device])
        for b in r.bundles:
            if b.one_time is not None:
                handed[(b.device, b.one_time.kid)] += 1
    assert set(handed.values()) == {1}  # nothing handed out twice
    assert len(handed) == 10  # and the whole pool was handed out
    after = await claim(claimers[0], phone.account)
    assert [b.one_time for b in after.bundles] == [None, None]
    await close_all(phone, laptop, *claimers)


async def test_claiming_your_own_account_returns_your_other_devices(
    server: RunningServer,
) -> None:
    phone = await user(server.url, "alice")
    laptop = await link(server.url, phone, "alice")
    tablet = await link(server.url, phone, "alice")  # never uploads: no bundle for it
    phone_identity = pub()
    await upload(phone, phone_identity, [1])
    await upload(laptop, pub(), [1])
    own = await claim(phone, phone.account)
    assert [b.device for b in own.bundles] == [laptop.device]
    assert (await upload(phone, phone_identity)).one_time == 1  # its own pool was not touched
    await close_all(phone, laptop, tablet)


async def test_a_device_uploads_only_its_own_keys(server: RunningServer) -> None:
    phone = await user(server.url, "alice")
    laptop = await link(server.url, phone, "alice")
    bob = await user(server.url, "bob")
    laptop_identity, phone_identity = pub(), pub()
    await upload(laptop, laptop_identity, [1])
    # A "device" field naming the laptop is not part of upload_keys: it is ignored and the keys
    # go to the connection's own authenticated device.
    raw = msgspec.msgpack.encode(
        {
            "t": "upload_keys",
            "id": 99,
            "device": laptop.device,
            "identity_key": phone_identity,
            "identity_sig": SIG,
            "one_time": [{"kid": 7, "key": pub()}],
        }
    )
    await phone.ws.send(raw)
    count = await phone.expect(F.KeyCount, re=99)
    assert count.one_time == 1
    by_device = {b.device: b for b in (await claim(bob, phone.account)).bundles}
    assert by_device[laptop.device].identity_key == laptop_identity
    assert by_device[laptop.device].one_time is not None
    assert by_device[laptop.device].one_time.kid == 1
    assert by_device[phone.device].identity_key == phone_identity
    assert by_device[phone.device].signing_key == phone.key.public_key
    await close_all(phone, laptop, bob)


async def test_claims_of_unknown_accounts_and_accounts_without_keys(
    server: RunningServer,
) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    assert (await claim(alice, bob.account)).bundles == []
    err = await alice.request(F.ClaimKeys(id=alice.next_id(), account=10**9), F.Error)
    assert err.code == ErrorCode.NOT_FOUND
    await close_all(alice, bob)


async def test_upload_limits(server: RunningServer) -> None:
    alice = await user(server.url, "alice")
    identity = pub()
    for start in range(0, L.MAX_ONE_TIME_PREKEYS, L.MAX_ONE_TIME_PER_UPLOAD):
        count = await upload(alice, identity, range(start, start + L.MAX_ONE_TIME_PER_UPLOAD))
    assert count.one_time == L.MAX_ONE_TIME_PREKEYS
    over = F.UploadKeys(
        id=alice.next_id(),
        identity_key=identity,
        identity_sig=SIG,
        one_time=[F.OneTimePrekey(kid=10_000, key=pub())],
    )
    assert (await alice.request(over, F.Error)).code == ErrorCode.INVALID
    assert (await upload(alice, identity, [0, 1])).one_time == L.MAX_ONE_TIME_PREKEYS  # dups
    long_spk = F.UploadKeys(
        id=alice.next_id(),
        identity_key=identity,
        identity_sig=SIG,
        signed_prekey=F.SignedPrekey(kid=1, key=os.urandom(33), sig=SIG),
    )
    assert (await alice.request(long_spk, F.Error)).code == ErrorCode.INVALID
    too_many = msgspec.msgpack.encode(
        {
            "t": "upload_keys",
            "id": 77,
            "identity_key": identity,
            "identity_sig": SIG,
            "one_time": [{"kid": k, "key": pub()} for k in range(L.MAX_ONE_TIME_PER_UPLOAD + 1)],
        }
    )
    await alice.ws.send(too_many)
    assert (await alice.expect(F.Error, re=77)).code == ErrorCode.BAD_FIELD
    await alice.close()


async def test_key_frames_need_login(server: RunningServer) -> None:
    r = await Raw.open(server.url)
    err = await r.request(F.ClaimKeys(id=1, account=1), F.Error)
    assert err.code == ErrorCode.AUTH_REQUIRED
    await r.close()


# ------------------------------------------------------------------ device lists


async def test_device_list_versions_are_monotonic_and_changes_reach_contacts(
    server: RunningServer,
) -> None:
    alice, bob, carol = [await user(server.url, h) for h in ("alice", "bob", "carol")]
    alice_again = await Raw.open(server.url)
    await alice_again.login(alice.device, alice.key)
    await direct(alice, bob)
    empty = await carol.request(F.GetDeviceList(id=carol.next_id(), account=alice.account))
    assert empty == F.DeviceList(
        re=empty.re, account=alice.account, version=0, body=b"", sig=b"", master_key=b""
    )

    master = pub()
    put = F.PutDeviceList(id=alice.next_id(), body=b"v1", sig=SIG, master_key=master, version=1)
    await alice.request(put, F.Ok)
    changed = await bob.expect(F.DeviceListChanged)
    assert changed == F.DeviceListChanged(account=alice.account, version=1)
    assert await alice_again.expect(F.DeviceListChanged) == changed  # own other connection
    got = await carol.request(F.GetDeviceList(id=carol.next_id(), account=alice.account))
    assert (got.version, got.body, got.sig, got.master_key) == (1, b"v1", SIG, master)

    stale = F.PutDeviceList(id=alice.next_id(), body=b"old", sig=SIG, master_key=master, version=1)
    assert (await alice.request(stale, F.Error)).code == ErrorCode.CONFLICT
    zero = {"t": "put_device_list", "id": 55, "body": b"", "sig": SIG, "master_key": master}
    await alice.ws.send(msgspec.msgpack.encode({**zero, "version": 0}))
    assert (await alice.expect(F.Error, re=55)).code == ErrorCode.BAD_FIELD
    v3 = F.PutDeviceList(id=alice.next_id(), body=b"v3", sig=SIG, master_key=master, version=3)
    await alice.request(v3, F.Ok)
    assert await bob.expect(F.DeviceListChanged, version=3)
    got = await bob.request(F.GetDeviceList(id=bob.next_id(), account=alice.account))
    assert (got.version, got.body) == (3, b"v3")

    # carol shares no conversation with alice: no events, and alice's own sending connection
    # gets none either (it has the ok).
    await carol.request(F.ListConvs(id=carol.next_id()), F.Convs)
    await alice.request(F.ListConvs(id=alice.next_id()), F.Convs)
    assert not [f for f in carol.backlog if isinstance(f, F.DeviceListChanged)]
    assert not [f for f in alice.backlog if isinstance(f, F.DeviceListChanged)]
    unknown = await bob.request(F.GetDeviceList(id=bob.next_id(), account=10**9), F.Error)
    assert unknown.code == ErrorCode.NOT_FOUND
    await close_all(alice, alice_again, bob, carol)


# ------------------------------------------------------------------ to-device


async def test_to_device_is_pushed_live_and_fetched_until_acked(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    await alice.request(F.ToDevice(id=alice.next_id(), device=bob.device, body=b"hello"), F.Ok)
    live = await bob.expect(F.ToDeviceEvent)
    assert live == F.ToDeviceEvent(tid=1, sender=alice.account, device=alice.device, body=b"hello")
    await alice.request(F.ToDevice(id=alice.next_id(), device=bob.device, body=b"again"), F.Ok)
    assert (await bob.expect(F.ToDeviceEvent)).tid == 2

    batch = await bob.request(F.FetchToDevice(id=bob.next_id()), F.ToDeviceBatch)
    assert [(e.tid, e.body) for e in batch.events] == [(1, b"hello"), (2, b"again")]
    assert not batch.more
    assert batch.events[0] == F.ToDeviceItem(
        tid=1, sender=alice.account, device=alice.device, body=b"hello"
    )
    again = await bob.request(F.FetchToDevice(id=bob.next_id()), F.ToDeviceBatch)
    assert again.events == batch.events  # still queued: not acked yet
    paged = await bob.request(F.FetchToDevice(id=bob.next_id(), after=1, limit=1))
    assert [e.tid for e in paged.events] == [2]

    await bob.request(F.AckToDevice(id=bob.next_id(), up_to=1), F.Ok)
    rest = await bob.request(F.FetchToDevice(id=bob.next_id()), F.ToDeviceBatch)
    assert [e.tid for e in rest.events] == [2]
    await bob.request(F.AckToDevice(id=bob.next_id(), up_to=2), F.Ok)
    assert (await bob.request(F.FetchToDevice(id=bob.next_id()), F.ToDeviceBatch)).events == []
    await close_all(alice, bob)


async def test_to_device_waits_for_an_offline_device_and_reaches_only_that_device(
    server: RunningServer,
) -> None:
    alice = await user(server.url, "alice")
    bob_phone = await user(server.url, "bob")
    bob_laptop = await link(server.url, bob_phone, "bob")
    phone_device, phone_key = bob_phone.device, bob_phone.key
    await bob_phone.close()
    await alice.request(F.ToDevice(id=alice.next_id(), device=phone_device, body=b"x"), F.Ok)
    with pytest.raises(TimeoutError):
        await bob_laptop.expect(F.ToDeviceEvent, timeout=0.3)
    back = await Raw.open(server.url)
    await back.login(phone_device, phone_key)
    batch = await back.request(F.FetchToDevice(id=back.next_id()), F.ToDeviceBatch)
    assert [(e.tid, e.sender, e.body) for e in batch.events] == [(1, alice.account, b"x")]
    laptop_batch = await bob_laptop.request(F.FetchToDevice(id=9), F.ToDeviceBatch)
    assert laptop_batch.events == []
    await close_all(alice, bob_laptop, back)


async def test_to_device_to_an_unknown_device_is_not_found(server: RunningServer) -> None:
    alice = await user(server.url, "alice")
    err = await alice.request(F.ToDevice(id=1, device=10**9, body=b"x"), F.Error)
    assert err.code == ErrorCode.NOT_FOUND
    await alice.close()


async def test_a_fetch_batch_stays_within_the_frame_limit(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    big = os.urandom(L.MAX_TO_DEVICE_BYTES)
    for _ in range(5):
        await alice.request(F.ToDevice(id=alice.next_id(), device=bob.device, body=big), F.Ok)
    first = await bob.request(F.FetchToDevice(id=bob.next_id()), F.ToDeviceBatch)
    assert 1 <= len(first.events) < 5
    assert first.more
    rest = await bob.request(
        F.FetchToDevice(id=bob.next_id(), after=first.events[-1].tid), F.ToDeviceBatch
    )
    assert [e.tid for e in first.events + rest.events] == [1, 2, 3, 4, 5]
    assert not rest.more
    await close_all(alice, bob)


# ------------------------------------------------------------------ the e2e kind


async def test_e2e_messages_are_routed_like_any_kind(server: RunningServer) -> None:
    alice, bob = await user(server.url, "alice"), await user(server.url, "bob")
    conv = await direct(alice, bob)
    ack = await alice.request(
        F.Send(id=alice.next_id(), conv=conv, cmid="e1", kind="e2e", body=b"\x00ciphertext"),
        F.Ack,
    )
    d = await bob.expect(F.Deliver, conv=conv, seq=ack.seq)
    assert (d.kind, d.body) == ("e2e", b"\x00ciphertext")
    await close_all(alice, bob)
