"""The exact byte strings devices sign. SPEC.md specifies them; vectors pin them.

Every payload starts with a distinct context string and a NUL, so a signature made for one purpose
can never be replayed as another. Variable-length fields are length-prefixed (u16 big-endian), so
no two different inputs give the same bytes.
"""

from __future__ import annotations

import struct

LOGIN_CONTEXT = b"chatd-login-v1"
DEVICE_APPROVAL_CONTEXT = b"chatd-device-approval-v1"
BOT_APPROVAL_CONTEXT = b"chatd-bot-approval-v1"


def _field(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def login_payload(server: str, nonce: bytes, device_key: bytes) -> bytes:
    """What a device signs to log in (or register, or link) on one connection.

    Binding ``server`` stops a signature collected by another server from working here; binding the
    connection's single-use ``nonce`` stops a captured login from working on any other connection;
    binding ``device_key`` ties the proof to the key being claimed.
    """
    return LOGIN_CONTEXT + b"\x00" + _field(server.encode()) + _field(nonce) + _field(device_key)


def bot_approval_payload(server: str, handle: str, device_key: bytes) -> bytes:
    """What an owner's device signs to create the bot account ``handle`` whose first device is
    ``device_key`` (SPEC.md 6.1: ``register`` with ``type: "bot"``, ``approver``, ``approval``)."""
    return (
        BOT_APPROVAL_CONTEXT
        + b"\x00"
        + _field(server.encode())
        + _field(handle.encode())
        + _field(device_key)
    )


def device_approval_payload(server: str, account: int, device_key: bytes) -> bytes:
    """What an existing device signs to approve adding ``device_key`` to ``account``."""
    return (
        DEVICE_APPROVAL_CONTEXT
        + b"\x00"
        + _field(server.encode())
        + struct.pack(">Q", account)
        + _field(device_key)
    )
