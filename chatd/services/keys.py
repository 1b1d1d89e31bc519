"""The end-to-end key directory and the to-device queue.

The server stores and relays public keys and opaque bytes; it never makes or checks a key. What
it enforces is ownership and atomicity: a connection uploads keys only for its own authenticated
device (the frame has no device field), a device list only for its own account, and every claim
takes a one-time prekey in the store's single writer, so no two claimers ever get the same one.

To-device items are committed before ``ok``, then pushed to the target device's live
connections (``to_device_event``); they stay queued until the target acknowledges them, so
delivery is at least once and clients dedupe by ``tid``.
"""

from __future__ import annotations

from chatproto import frames as F
from chatproto import limits as L

from chatd.core.consent import Quota
from chatd.errors import Invalid, NotFound
from chatd.services.deps import Deps
from chatd.services.fanout import publish_to_account, publish_to_device
from chatd.store.base import DeviceListRow, KeyUpload, PrekeyRow

_ITEM_OVERHEAD = 64
"""Upper bound of the msgpack bytes around one ``ToDeviceItem``'s body (keys, ints, headers)."""
_BATCH_BUDGET = L.MAX_FRAME_BYTES - 1024
"""A ``to_device_batch`` stays a legal frame: items are cut once their bodies would pass this."""


def _prekey(p: F.SignedPrekey | None) -> PrekeyRow | None:
    return None if p is None else PrekeyRow(p.kid, p.key, p.sig)


def _signed(p: PrekeyRow | None) -> F.SignedPrekey | None:
    return None if p is None else F.SignedPrekey(kid=p.kid, key=p.key, sig=p.sig)


class KeyService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps

    # ------------------------------------------------------------------ key directory

    async def upload(self, device: int, f: F.UploadKeys) -> F.KeyCount:
        if f.signed_prekey is not None and len(f.signed_prekey.key) != L.X25519_PUBLIC_KEY_BYTES:
            raise Invalid(f"signed_prekey.key must be {L.X25519_PUBLIC_KEY_BYTES} bytes (X25519)")
        count = await self._d.store.upload_keys(
            KeyUpload(
                device=device,
                identity_key=f.identity_key,
                identity_sig=f.identity_sig,
                signed_prekey=_prekey(f.signed_prekey),
                pq_prekey=_prekey(f.pq_prekey),
                one_time=tuple(PrekeyRow(k.kid, k.key) for k in f.one_time),
            ),
            self._d.clock.now_ms(),
            L.MAX_ONE_TIME_PREKEYS,
        )
        return F.KeyCount(re=f.id, one_time=count)

    async def claim(self, device: int, f: F.ClaimKeys, *, one_time: bool = True) -> F.Bundles:
        """``f.account``'s bundles; without ``one_time``, none takes a one-time prekey."""
        rows = await self._d.store.claim_keys(f.account, exclude_device=device, one_time=one_time)
        return F.Bundles(
            re=f.id,
            account=f.account,
            bundles=[
                F.Bundle(
                    device=b.device,
                    signing_key=b.signing_key,
                    identity_key=b.identity_key,
                    identity_sig=b.identity_sig,
                    signed_prekey=_signed(b.signed_prekey),
                    pq_prekey=_signed(b.pq_prekey),
                    one_time=None
                    if b.one_time is None
                    else F.OneTimePrekey(kid=b.one_time.kid, key=b.one_time.key),
                )
                for b in rows
            ],
        )

    async def put_device_list(self, conn_id: int, account: int, f: F.PutDeviceList) -> None:
        d = self._d
        await d.store.put_device_list(
            DeviceListRow(account, f.version, f.body, f.sig, f.master_key), d.clock.now_ms()
        )
        event = F.DeviceListChanged(account=account, version=f.version)
        for contact in await d.store.contacts_of(account):
            publish_to_account(d.hub, contact, event)
        publish_to_account(d.hub, account, event, origin=conn_id)  # its other connections

    async def get_device_list(self, f: F.GetDeviceList) -> F.DeviceList:
        d = self._d
        row = await d.store.device_list(f.account)
        if row is None:
            if await d.store.account(f.account) is None:
                raise NotFound(f"no account {f.account}")
            return F.DeviceList(
                re=f.id, account=f.account, version=0, body=b"", sig=b"", master_key=b""
            )
        return F.DeviceList(
            re=f.id,
            account=f.account,
            version=row.version,
            body=row.body,
            sig=row.sig,
            master_key=row.master_key,
        )

    # ------------------------------------------------------------------ to-device queue

    async def to_device(
        self, account: int, device: int, f: F.ToDevice, quota: Quota | None = None
    ) -> None:
        """Queue ``f`` for its device; within ``quota`` of what ``account`` has queued there."""
        d = self._d
        row = await d.store.queue_to_device(
            f.device, account, device, f.body, d.clock.now_ms(), L.MAX_TO_DEVICE_QUEUE, quota
        )
        publish_to_device(
            d.hub,
            row.target,
            F.ToDeviceEvent(
                tid=row.tid, sender=row.sender, device=row.sender_device, body=row.body
            ),
        )
        await d.hub.published()

    async def fetch(self, device: int, f: F.FetchToDevice) -> F.ToDeviceBatch:
        rows = await self._d.store.to_device_items(device, f.after, f.limit + 1)
        more = len(rows) > f.limit
        events: list[F.ToDeviceItem] = []
        size = 0
        for r in rows[: f.limit]:
            size += len(r.body) + _ITEM_OVERHEAD
            if events and size > _BATCH_BUDGET:
                more = True
                break
            events.append(
                F.ToDeviceItem(tid=r.tid, sender=r.sender, device=r.sender_device, body=r.body)
            )
        return F.ToDeviceBatch(re=f.id, events=events, more=more)

    async def ack(self, device: int, f: F.AckToDevice) -> None:
        await self._d.store.ack_to_device(device, f.up_to)
