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
    joined: int = 0
    """The seq of the asking account's join (its "created"/"joined" message)."""
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


@dataclass(frozen=True, slots=True)
class PrekeyRow:
    """A signed prekey (``sig`` set) or a one-time prekey (``sig`` empty)."""

    kid: int
    key: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class KeyUpload:
    """One device's ``upload_keys``: ``device`` is always the uploading connection's device."""

    device: int
    identity_key: bytes
    identity_sig: bytes
    signed_prekey: PrekeyRow | None = None
    pq_prekey: PrekeyRow | None = None
    one_time: tuple[PrekeyRow, ...] = ()


@dataclass(frozen=True, slots=True)
class BundleRow:
    """What ``claim_keys`` hands out for one device (``one_time`` taken from its pool)."""

    device: int
    signing_key: bytes
    identity_key: bytes
    identity_sig: bytes
    signed_prekey: PrekeyRow | None
    pq_prekey: PrekeyRow | None
    one_time: PrekeyRow | None


@dataclass(frozen=True, slots=True)
class DeviceListRow:
    account: int
    version: int
    body: bytes
    sig: bytes
    master_key: bytes


@dataclass(frozen=True, slots=True)
class ToDeviceRow:
    """A queued to-device item of ``target``, from account ``sender``'s device ``sender_device``."""

    target: int
    tid: int
    sender: int
    sender_device: int
    body: bytes


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


class KeyDirectoryStore(Protocol):
    """Public end-to-end keys of devices and signed device lists of accounts. The store enforces
    atomicity only; who may write what (a device its own keys) is fixed by the caller."""

    async def upload_keys(self, upload: KeyUpload, now: int, max_one_time: int) -> int:
        """Store ``upload`` for its device in one transaction; the device's unclaimed one-time
        prekey count afterwards. A new identity key discards the device's stored prekeys; a kid
        the device already has is ignored; ``Invalid`` (nothing stored) when the pool would pass
        ``max_one_time``."""
        ...

    async def one_time_count(self, device: int) -> int: ...

    async def claim_keys(self, account: int, exclude_device: int = 0) -> list[BundleRow]:
        """A bundle per device of ``account`` with an identity key (but ``exclude_device``),
        ascending by device, each with the device's lowest-kid one-time prekey, deleted in the
        same transaction: no two claims ever get the same one. ``NotFound`` for no account."""
        ...

    async def put_device_list(self, row: DeviceListRow, now: int) -> None:
        """Replace the account's device list; ``Conflict`` unless ``row.version`` is higher."""
        ...

    async def device_list(self, account: int) -> DeviceListRow | None: ...


class ToDeviceStore(Protocol):
    """A bounded queue per device of opaque items, each with a tid increasing per device."""

    async def queue_to_device(
        self, target: int, sender: int, sender_device: int, body: bytes, now: int, max_queued: int
    ) -> ToDeviceRow:
        """Append to ``target``'s queue; resolves once committed. ``NotFound`` for no such
        device, ``RateLimited`` when ``max_queued`` items are already queued for it."""
        ...

    async def to_device_items(self, device: int, after: int, limit: int) -> list[ToDeviceRow]:
        """Queued items of ``device`` with tid > ``after``, ascending, at most ``limit``."""
        ...

    async def ack_to_device(self, device: int, up_to: int) -> int:
        """Delete ``device``'s items with tid <= ``up_to``; how many were deleted."""
        ...


class Store(
    AccountStore,
    ConversationStore,
    MessageStore,
    CursorStore,
    KeyDirectoryStore,
    ToDeviceStore,
    Protocol,
):
    """Everything the server stores. ``open`` migrates; ``aclose`` drains queued writes first."""

    async def open(self) -> None: ...
    async def aclose(self) -> None: ...
    async def ping(self) -> bool: ...
