"""Bytes <-> frames. The only place msgpack is called for frames.

``decode_client`` (server side) and ``decode_server`` (client side) turn one WebSocket message into
one typed frame or raise ``ProtocolError`` with a stable code, and nothing else: random bytes never
raise anything but ``ProtocolError`` (a hypothesis test holds this). ``encode`` turns a frame into
bytes. Decoding enforces the frame size limit before parsing and every field limit after.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from chatproto import frames as F
from chatproto.errors import ErrorCode, ProtocolError
from chatproto.limits import MAX_FRAME_BYTES, MAX_U32

_encoder = msgspec.msgpack.Encoder()
_client_decoder = msgspec.msgpack.Decoder(F.ClientFrame)
_server_decoder = msgspec.msgpack.Decoder(F.ServerFrame)
_peek_decoder = msgspec.msgpack.Decoder()
_CLIENT_TAGS = frozenset(str(c.__struct_config__.tag) for c in F.CLIENT_FRAMES)
_SERVER_TAGS = frozenset(str(c.__struct_config__.tag) for c in F.SERVER_FRAMES)


encode: Callable[[F.Frame], bytes] = _encoder.encode
"""Encode one frame as one msgpack map (the payload of one binary WebSocket message). The
encoder's own method, not a function around it: the server encodes every ack and delivery."""


def decode_client(data: bytes, max_size: int = MAX_FRAME_BYTES) -> F.ClientFrame:
    """Decode a frame a client sent. Raises ``ProtocolError`` only."""
    return _decode(data, _client_decoder, _CLIENT_TAGS, max_size)  # type: ignore[no-any-return]


def decode_server(data: bytes, max_size: int = MAX_FRAME_BYTES) -> F.ServerFrame:
    """Decode a frame the server sent. Raises ``ProtocolError`` only."""
    return _decode(data, _server_decoder, _SERVER_TAGS, max_size)  # type: ignore[no-any-return]


def request_id_of(data: bytes) -> int:
    """Best-effort request id of an undecodable frame, so its ``Error`` can carry ``re``; else 0."""
    try:
        raw = _peek_decoder.decode(data)
    except Exception:
        return 0
    if isinstance(raw, dict):
        rid = raw.get("id")
        if type(rid) is int and 0 < rid <= MAX_U32:
            return rid
    return 0


def _decode(data: bytes, decoder: Any, tags: frozenset[str], max_size: int) -> Any:
    if len(data) > max_size:
        raise ProtocolError(
            f"frame of {len(data)} bytes exceeds {max_size}", ErrorCode.FRAME_TOO_LARGE
        )
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _classify(data, tags, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"not a msgpack frame: {exc}", ErrorCode.MALFORMED) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"undecodable frame: {exc}", ErrorCode.MALFORMED) from None


def _classify(data: bytes, tags: frozenset[str], detail: str) -> ProtocolError:
    """Tell an unknown frame type from a bad field of a known one."""
    try:
        raw = _peek_decoder.decode(data)
    except Exception:
        return ProtocolError(f"not a msgpack frame: {detail}", ErrorCode.MALFORMED)
    if not isinstance(raw, dict):
        return ProtocolError("a frame is a msgpack map", ErrorCode.MALFORMED)
    tag = raw.get("t")
    if not isinstance(tag, str):
        return ProtocolError("frame has no string field 't'", ErrorCode.MALFORMED)
    if tag not in tags:
        return ProtocolError(f"unknown frame type {tag[:32]!r}", ErrorCode.UNKNOWN_FRAME)
    return ProtocolError(detail, ErrorCode.BAD_FIELD)
