"""Typed events from ``Client.events()``, shaped for ``match``."""

from __future__ import annotations

from dataclasses import dataclass

from chatproto import frames as F
from chatproto import kinds


@dataclass(frozen=True, slots=True)
class Message:
    """A message of a conversation, in seq order, exactly once per client.

    ``content`` is the decoded typed content (``kinds.Text``, ``kinds.SystemEvent``, ...) or None
    when this SDK does not know the kind or the body does not parse. ``own`` marks messages this
    device sent (reported once their ack arrives).
    """

    conv: int
    seq: int
    ts: int
    sender: int
    device: int
    kind: str
    body: bytes
    content: kinds.Content | None
    own: bool = False

    @property
    def text(self) -> str | None:
        c = self.content
        return c.text if isinstance(c, kinds.Text | kinds.Edit) else None


@dataclass(frozen=True, slots=True)
class Connected:
    account: int
    device: int
    reconnect: bool


@dataclass(frozen=True, slots=True)
class Disconnected:
    code: int | None
    reason: str
    will_retry: bool


@dataclass(frozen=True, slots=True)
class Undecryptable:
    """A message that could not be decrypted: tampered, replayed, from a device its account does
    not vouch for, or sent under a key this device was never given (e.g. before it joined)."""

    conv: int
    seq: int
    sender: int
    device: int
    reason: str


@dataclass(frozen=True, slots=True)
class SecurityWarning:
    """Something about another account's keys cannot be trusted (a forged or rolled-back device
    list, a changed master key, a device that is not on its list)."""

    account: int
    reason: str


@dataclass(frozen=True, slots=True)
class DevicesChanged:
    """An account published a new device list (a device was added or removed)."""

    account: int


@dataclass(frozen=True, slots=True)
class MasterKeyReceived:
    """Another device of this account handed this device the account's master key (checked: the
    sender is on the account's signed list, and the key is the pinned master key). This device
    can now sign the account's device list (``Client.publish_devices``)."""

    from_device: int


Receipt = F.ReceiptEvent
Typing = F.TypingEvent
Presence = F.PresenceEvent
Event = (
    Message
    | Connected
    | Disconnected
    | Receipt
    | Typing
    | Presence
    | Undecryptable
    | SecurityWarning
    | DevicesChanged
    | MasterKeyReceived
)
