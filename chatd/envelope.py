"""What travels through the broker: a fixed header and one already-encoded frame.

The frame is encoded once on the committing node and its bytes are what every recipient's socket
gets, whatever the number of nodes or watchers.
"""

from __future__ import annotations

import struct
from typing import Final

_HEADER = struct.Struct(">BQQ")
HEADER_SIZE: Final = _HEADER.size

MESSAGE: Final = 1
"""A stored message (``Deliver``): seq is its sequence number."""
EVENT: Final = 2
"""An ephemeral event (typing, receipt): seq is 0; never held back by sync."""


def pack(kind: int, seq: int, origin: int, frame: bytes) -> bytes:
    return _HEADER.pack(kind, seq, origin) + frame


def unpack(data: bytes) -> tuple[int, int, int, bytes]:
    """``(kind, seq, origin connection, frame bytes)``."""
    kind, seq, origin = _HEADER.unpack_from(data)
    return kind, seq, origin, data[HEADER_SIZE:]


def conv_topic(conv: int) -> str:
    return f"c.{conv}"


def account_topic(account: int) -> str:
    return f"a.{account}"


def device_topic(device: int) -> str:
    """Events for one device's connections (to-device items)."""
    return f"d.{device}"
