"""The plaintexts inside end-to-end ciphertexts (E2E.md section 8), padded to size buckets.

* Conversation messages (sender-key ciphertext, ``Send.kind`` = ``"e2e"``): ``Payload`` =
  msgpack map ``{kind, body, ts?, reply_to?}`` where ``kind``/``body`` are what
  ``kinds.encode_content`` returned.
* To-device messages (pairwise ciphertext): a msgpack map with a ``t`` tag: ``sender_key``
  (``sender_keys.SenderKeyDistribution``), ``master_key`` (``MasterKeyTransfer``) or
  ``device_change`` (``DeviceChange``).

Padding (ISO/IEC 7816-4): the plaintext, then 0x80, then zero bytes up to the smallest bucket
that holds ``len + 1``. Buckets are 64, 128, ... 32 768 bytes, then ``MAX_PADDED`` (the largest
plaintext whose sender-key ciphertext still fits a 64 KiB message body).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

from chatproto import kinds
from chatproto.e2e.sender_keys import OVERHEAD as SENDER_KEY_OVERHEAD
from chatproto.e2e.sender_keys import SenderKeyDistribution
from chatproto.e2e.transcript import Transcript
from chatproto.errors import ErrorCode, ProtocolError
from chatproto.limits import MAX_BODY_BYTES, MAX_ID, MAX_KIND_CHARS

E2E_KIND: Final = "e2e"
"""``Send.kind`` of an encrypted conversation message; never a kind inside a payload."""
MIN_BUCKET: Final = 64
MAX_PADDED: Final = MAX_BODY_BYTES - SENDER_KEY_OVERHEAD
"""65 447: a padded plaintext this large encrypts to exactly ``MAX_BODY_BYTES``."""
MAX_TO_DEVICE_PADDED: Final = 32 * 1024
"""To-device plaintexts stay in the buckets up to 32 KiB (room for the PQXDH header)."""
BUCKETS: Final = (*(MIN_BUCKET << i for i in range(10)), MAX_PADDED)
"""64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65447."""

Kind = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_KIND_CHARS)]


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The plaintext of one encrypted conversation message."""

    kind: Kind
    body: bytes
    ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] | None = None
    """Sender's clock, Unix milliseconds (informational; the server's ``ts`` orders)."""
    reply_to: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)] | None = None
    """Seq of the message this one answers."""
    tr: Transcript | None = None
    """What the sender had seen when it sent this (E2E.md section 16)."""
    fk: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)] | None = None
    """The franking key of a reportable message (E2E.md section 17)."""


class MasterKeyTransfer(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", tag="master_key"):
    """The account's master key, handed by the device holding it to another device of the same
    account once the user approved it (E2E.md section 3.1). The receiver accepts it only from a
    device on its account's verified list, and only if ``seed`` is the pinned master key's."""

    account: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    seed: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    """The 32-byte Ed25519 seed of the master key."""


class DeviceChange(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", tag="device_change"):
    """A change of the account's device list the user asked for on one of its devices, sent to
    the account's other listed devices so the one holding the master key applies it (E2E.md
    3.2). ``approve``: the user approved the new device whose login key is ``device_key``;
    ``remove``: the user removed ``device``, listed with ``device_key`` (both must match the
    list). Accepted only from a listed device of the same account."""

    account: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    op: Literal["approve", "remove"]
    device_key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    device: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    """``remove``: the device to remove (0 for ``approve``: its id is not known yet)."""


ToDeviceContent = SenderKeyDistribution | MasterKeyTransfer | DeviceChange
"""Union of to-device contents (tagged by ``t``)."""

_encoder = msgspec.msgpack.Encoder()
_payload_decoder = msgspec.msgpack.Decoder(Payload)
_to_device_decoder: msgspec.msgpack.Decoder[ToDeviceContent] = msgspec.msgpack.Decoder(
    ToDeviceContent
)


def _bad(message: str) -> ProtocolError:
    return ProtocolError(message, ErrorCode.BAD_FIELD)


def bucket(length: int, max_size: int = MAX_PADDED) -> int:
    """The padded size of a ``length``-byte plaintext."""
    for size in BUCKETS:
        if size > max_size:
            break
        if length + 1 <= size:
            return size
    raise ProtocolError(f"plaintext of {length} bytes is too large to pad", ErrorCode.INVALID)


def pad(data: bytes, max_size: int = MAX_PADDED) -> bytes:
    size = bucket(len(data), max_size)
    return data + b"\x80" + bytes(size - len(data) - 1)


def unpad(padded: bytes) -> bytes:
    """The data of ``pad``'s output; ``ProtocolError(BAD_FIELD)`` unless ``padded`` is exactly
    a bucket long and ends with 0x80 followed only by zeros."""
    if len(padded) not in BUCKETS:
        raise _bad("padded plaintext is not a bucket size")
    end = len(padded.rstrip(b"\x00"))
    if end == 0 or padded[end - 1] != 0x80:
        raise _bad("bad padding")
    data = padded[: end - 1]
    if bucket(len(data)) != len(padded):
        raise _bad("padding longer than needed")
    return data


def encode_payload(
    kind: str,
    body: bytes,
    *,
    ts: int | None = None,
    reply_to: int | None = None,
    transcript: Transcript | None = None,
    franking_key: bytes | None = None,
) -> bytes:
    """The padded plaintext of a conversation message (``kind``/``body`` from
    ``kinds.encode_content``)."""
    payload = Payload(
        kind=kind, body=body, ts=ts, reply_to=reply_to, tr=transcript, fk=franking_key
    )
    _check_kind(payload.kind)
    return pad(_encoder.encode(payload))


def _check_kind(kind: str) -> None:
    if not kinds.client_may_send(kind, inside_e2e=True) or kind == E2E_KIND:
        raise ProtocolError(f"kind {kind[:32]!r} cannot be end-to-end content", ErrorCode.INVALID)


def decode_payload(padded: bytes) -> Payload:
    """Strict inverse of ``encode_payload``: padding, msgpack, field types, and a kind a client
    may send (never ``system``, never ``e2e``). Unknown map keys are ignored (SPEC.md 2)."""
    data = unpad(padded)
    try:
        payload = _payload_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _bad(f"bad payload: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _bad(f"undecodable payload: {exc}") from None
    try:
        _check_kind(payload.kind)
    except ProtocolError as exc:
        raise _bad(exc.message) from None
    return payload


def payload_content(payload: Payload) -> kinds.Content:
    """The typed content of a decrypted payload (``kinds.decode_content``)."""
    return kinds.decode_content(payload.kind, payload.body)


def encode_to_device(content: ToDeviceContent) -> bytes:
    return pad(_encoder.encode(content), MAX_TO_DEVICE_PADDED)


def decode_to_device(padded: bytes) -> ToDeviceContent:
    data = unpad(padded)
    if len(padded) > MAX_TO_DEVICE_PADDED:
        raise _bad("to-device plaintext too large")
    try:
        return _to_device_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _bad(f"bad to-device content: {exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise _bad(f"undecodable to-device content: {exc}") from None
