"""An account's signed device list (E2E.md section 3).

The body is canonical msgpack of ``{account, version, master_key, devices}`` with ``devices``
sorted by device id, each ``{device, signing_key, identity_key, pq?}``; the account's master Ed25519
key signs ``"chatd-e2e-device-list-v1" || 0x00 || body``. Receivers pin the master key on first
contact (trust on first use, upgraded by comparing safety numbers) and accept only increasing
versions.
"""

from __future__ import annotations

from typing import Annotated, Final

import msgspec

from chatproto.e2e import primitives as P
from chatproto.errors import ChatProtoError, UntrustedKeyError
from chatproto.limits import MAX_ID, MAX_U32

CONTEXT: Final = b"chatd-e2e-device-list-v1"
MAX_DEVICES: Final = 100
MAX_VERSION: Final = MAX_U32
_MAX_BYTES: Final = 64 * 1024

Key32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]


class DeviceEntry(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    device: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    signing_key: Key32
    """The device's Ed25519 key (its login key)."""
    identity_key: Key32
    """The device's X25519 identity key."""
    pq: bool = False
    """The device publishes an ML-KEM-768 prekey (signed by ``signing_key``): sessions with it
    MUST be PQXDH, so a bundle or header without one is a downgrade and refused. Absent (never
    written as ``false``: canonical form) when it has none."""


class DeviceList(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_U32)]
    master_key: Key32
    devices: Annotated[tuple[DeviceEntry, ...], msgspec.Meta(max_length=MAX_DEVICES)]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(DeviceList)


def encode_device_list(device_list: DeviceList) -> bytes:
    """Canonical body bytes (devices sorted by id; ids must be unique)."""
    devices = tuple(sorted(device_list.devices, key=lambda d: d.device))
    if len({d.device for d in devices}) != len(devices):
        raise ChatProtoError("duplicate device id in device list")
    return _encoder.encode(msgspec.structs.replace(device_list, devices=devices))


def signed_payload(body: bytes) -> bytes:
    return CONTEXT + b"\x00" + body


def sign_device_list(device_list: DeviceList, master_seed: bytes) -> tuple[bytes, bytes]:
    """``(body, sig)`` for ``put_device_list``. ``master_seed`` must be the seed of
    ``device_list.master_key``."""
    signer = P.SigningKey(master_seed)
    if signer.public_key != device_list.master_key:
        raise ChatProtoError("master seed does not match the list's master key")
    body = encode_device_list(device_list)
    return body, signer.sign(signed_payload(body))


def verify_device_list(
    body: bytes,
    sig: bytes,
    pinned_master_key: bytes | None,
    last_seen_version: int = 0,
    *,
    account: int | None = None,
) -> DeviceList:
    """The verified list, or ``UntrustedKeyError``: a body that is not canonical, a signature
    that does not verify under the body's master key, a master key other than the pinned one,
    a version not greater than ``last_seen_version``, or (if given) another ``account``."""
    if len(body) > _MAX_BYTES:
        raise UntrustedKeyError("device list too large")
    try:
        device_list = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, TypeError) as exc:
        raise UntrustedKeyError(f"malformed device list: {exc}") from None
    try:
        canonical = encode_device_list(device_list)
    except ChatProtoError as exc:
        raise UntrustedKeyError(exc.message) from None
    if canonical != body:
        raise UntrustedKeyError("device list body is not canonical")
    try:
        P.verify(device_list.master_key, sig, signed_payload(body))
    except ChatProtoError as exc:
        raise UntrustedKeyError("device list signature does not verify") from exc
    if pinned_master_key is not None and not P.constant_time_equal(
        pinned_master_key, device_list.master_key
    ):
        raise UntrustedKeyError("device list master key differs from the pinned one")
    if account is not None and device_list.account != account:
        raise UntrustedKeyError("device list of another account")
    if device_list.version <= last_seen_version:
        raise UntrustedKeyError("device list version is not newer than the last seen")
    return device_list
