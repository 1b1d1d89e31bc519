"""Where a client keeps its end-to-end state (E2E.md section 10): storage protocols the SDK
implements (files, a database, a keychain), plus in-memory versions for tests.

Everything stored is a msgspec Struct; ``msgspec.msgpack.encode`` / ``decode(..., type=...)``
turn it into bytes and back. Callers load, compute the new state with the pure functions of
``chatproto.e2e`` and store it only when the operation succeeded.
"""

from __future__ import annotations

from typing import Protocol

from chatproto.e2e.pairwise import Session
from chatproto.e2e.sender_keys import SenderKeyReceiverState, SenderKeyState
from chatproto.e2e.x3dh import PreKeyState


class SessionStore(Protocol):
    """Pairwise sessions, one per remote device."""

    def load_session(self, device: int) -> Session | None: ...

    def store_session(self, device: int, session: Session) -> None: ...


class PreKeyStore(Protocol):
    """This device's identity and prekeys."""

    def load_prekeys(self) -> PreKeyState: ...

    def store_prekeys(self, state: PreKeyState) -> None: ...


class SenderKeyStore(Protocol):
    """Own sender keys per conversation, and received ones per (conversation, sending device,
    key id)."""

    def load_own(self, conv: int) -> SenderKeyState | None: ...

    def store_own(self, conv: int, state: SenderKeyState) -> None: ...

    def load_received(
        self, conv: int, device: int, key_id: int
    ) -> SenderKeyReceiverState | None: ...

    def store_received(self, state: SenderKeyReceiverState) -> None: ...


class TrustStore(Protocol):
    """Pinned account master keys and the last device-list version seen per account."""

    def pinned_master_key(self, account: int) -> tuple[bytes, int] | None:
        """``(master key, last seen device-list version)``, or None before first contact."""
        ...

    def pin_master_key(self, account: int, master_key: bytes, version: int) -> None: ...


class MemorySessionStore:
    def __init__(self) -> None:
        self.sessions: dict[int, Session] = {}

    def load_session(self, device: int) -> Session | None:
        return self.sessions.get(device)

    def store_session(self, device: int, session: Session) -> None:
        self.sessions[device] = session


class MemoryPreKeyStore:
    def __init__(self, state: PreKeyState) -> None:
        self.state = state

    def load_prekeys(self) -> PreKeyState:
        return self.state

    def store_prekeys(self, state: PreKeyState) -> None:
        self.state = state


class MemorySenderKeyStore:
    def __init__(self) -> None:
        self.own: dict[int, SenderKeyState] = {}
        self.received: dict[tuple[int, int, int], SenderKeyReceiverState] = {}

    def load_own(self, conv: int) -> SenderKeyState | None:
        return self.own.get(conv)

    def store_own(self, conv: int, state: SenderKeyState) -> None:
        self.own[conv] = state

    def load_received(self, conv: int, device: int, key_id: int) -> SenderKeyReceiverState | None:
        return self.received.get((conv, device, key_id))

    def store_received(self, state: SenderKeyReceiverState) -> None:
        self.received[(state.conv, state.sender_device, state.key_id)] = state


class MemoryTrustStore:
    def __init__(self) -> None:
        self.pins: dict[int, tuple[bytes, int]] = {}

    def pinned_master_key(self, account: int) -> tuple[bytes, int] | None:
        return self.pins.get(account)

    def pin_master_key(self, account: int, master_key: bytes, version: int) -> None:
        self.pins[account] = (master_key, version)
