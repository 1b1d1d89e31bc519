"""The plaintext of a Web Push (SPEC.md 21.3): what a device's service worker decrypts.

It says only that something new is waiting, and which conversation when the device allowed
that. Never a sender, a body, a count or a title: the push travels through a third party's push
service (which sees its length and timing, never its plaintext), and a notification built from
it is shown on a locked screen. Padded to a fixed length so that the two forms cannot be told
apart by size either.
"""

from __future__ import annotations

import json

from chatproto.errors import ErrorCode, ProtocolError
from chatproto.limits import MAX_ID, PUSH_PAYLOAD_BYTES


def encode(conv: int | None) -> bytes:
    """The payload: ``{"t":"new"}`` or ``{"t":"new","conv":<id>}``, space-padded JSON."""
    body: dict[str, object] = {"t": "new"}
    if conv is not None:
        body["conv"] = conv
    raw = json.dumps(body, separators=(",", ":")).encode()
    return raw.ljust(PUSH_PAYLOAD_BYTES, b" ")


def decode(data: bytes) -> int | None:
    """The conversation a payload names (None: it names none); ``ProtocolError`` when it is not
    a push payload of this version."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("not a push payload", ErrorCode.MALFORMED) from None
    if not isinstance(body, dict) or body.get("t") != "new":
        raise ProtocolError("not a push payload", ErrorCode.MALFORMED)
    conv = body.get("conv")
    if conv is None:
        return None
    if type(conv) is not int or not 1 <= conv <= MAX_ID:
        raise ProtocolError("conv", ErrorCode.BAD_FIELD)
    return conv
