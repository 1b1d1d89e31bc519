"""What the services need from storage, as small Protocols, plus the rows they exchange.

The store is the truth: a message exists once ``append`` resolves, and only then is it acked and
published. Writes are serialised per store (SQLite: one writer task with group commit), and the
authorisation that guards a write is checked inside the same transaction as the write.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    handle: str
    name: str
    type: str
    last_seen: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: int
    account: int
    public_key: bytes
    name: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    account: int
    role: str
    handle: str
    joined_seq: int


@dataclass(frozen=True, slots=True)
class ConvRow:
    id: int
    kind: str
    title: str
    last_seq: int
    role: str
    """The asking account's role."""
    member_count: int
    read: int = 0
    delivered: int = 0
    members: tuple[MemberRow, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredMessage:
    conv: int
    seq: int
    ts: int
    sender: int
    device: int
    cmid: str | None
    kind: str
    body: bytes


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A client's message, before the store gives it a seq."""

    conv: int
    sender: int
    device: int
    cmid: str
    kind: str
    body: bytes
    ts: int


@dataclass(frozen=True, slots=True)
class Appended:
    """The committed message; ``duplicate`` when ``cmid`` had been stored before (resend)."""

    message: StoredMessage
    duplicate: bool


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """A committed change of membership or title, with the system message that records it.

    ``added``/``removed`` name accounts whose view of the conversation changed, so the hub can
    start or stop routing it to their connections.
    """

    conv: int
    message: StoredMessage
    added: tuple[int, ...] = ()
    removed: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class CreatedConv:
    conv: ConvRow
    messages: tuple[StoredMessage, ...] = field(default=())
    existed: bool = False


class AccountStore(Protocol):
    async def create_account(
        self, handle: str, name: str, type: str, device_key: bytes, device_name: str, now: int
    ) -> tuple[AccountRow, DeviceRow]: ...
    async def add_device(
        self, account: int, device_key: bytes, name: str, approver: int, now: int
    ) -> DeviceRow: ...
    async def device(self, device: int) -> DeviceRow | None: ...
    async def account(self, account: int) -> AccountRow | None: ...
    async def account_by_handle(self, handle: str) -> AccountRow | None: ...
    async def set_last_seen(self, account: int, now: int) -> None: ...


class ConversationStore(Protocol):
    async def create_conversation(
        self, kind: str, title: str, creator: int, members: Sequence[int], now: int
    ) -> CreatedConv: ...
    async def conversation(self, conv: int, account: int, device: int) -> ConvRow: ...
    async def conversations_of(self, account: int, device: int) -> list[ConvRow]: ...
    async def conversation_ids_of(self, account: int) -> list[int]: ...
    async def invite(self, conv: int, actor: int, account: int, now: int) -> MembershipChange: ...
    async def remove(self, conv: int, actor: int, account: int, now: int) -> MembershipChange: ...
    async def leave(self, conv: int, actor: int, now: int) -> MembershipChange: ...
    async def set_role(
        self, conv: int, actor: int, account: int, role: str, now: int
    ) -> MembershipChange: ...
    async def rename(self, conv: int, actor: int, title: str, now: int) -> MembershipChange: ...
    async def contacts_of(self, account: int) -> list[int]: ...
    async def member_kind(self, conv: int, account: int) -> tuple[str, str] | None:
        """``(conv kind, role)`` of ``account`` in ``conv``, or None when not a member."""
        ...


class MessageStore(Protocol):
    def append(self, message: NewMessage) -> asyncio.Future[Appended]:
        """Queue ``message`` for the next group commit. The future resolves once it is durable
        (or with ``Conflict``/``NotFound``/``Forbidden``/``Unavailable``); futures resolve in
        commit order, which is seq order within a conversation."""
        ...

    async def messages(
        self, conv: int, after: int, before: int | None, limit: int
    ) -> list[StoredMessage]: ...


class CursorStore(Protocol):
    async def move_cursor(self, device: int, conv: int, type: str, seq: int) -> bool:
        """Raise the device's ``type`` cursor to ``seq``; True when it moved."""
        ...


class Store(AccountStore, ConversationStore, MessageStore, CursorStore, Protocol):
    """Everything the server stores. ``open`` migrates; ``aclose`` drains queued writes first."""

    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> bool: ...
