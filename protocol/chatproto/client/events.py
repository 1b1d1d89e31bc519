"""What the client core tells its driver: frozen events, one per thing that happened.

The driver (an asyncio SDK, a load generator, a browser) calls ``ClientProtocol.receive_data``
and then handles ``events_received()`` in order, usually with ``match``. Each event says what
the driver may do next in its docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from chatproto import frames as F
from chatproto.client.outbox import Entry
from chatproto.errors import ProtocolError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Challenged:
    """The server's challenge arrived: log in, register or link now (``ClientProtocol.login``
    and friends), or close if ``server`` is not the service meant."""

    challenge: F.Challenge


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The connection is authenticated. Next: catch up (``sync`` every conversation), then
    ``start_sending`` (SPEC.md 13 steps 3 and 6)."""

    welcome: F.Welcome


@dataclass(frozen=True, slots=True)
class LoginFailed:
    """The server refused a register, login or link (the connection stays; SPEC.md 6.1)."""

    error: F.Error


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to request ``rid`` the application made (a result frame, or ``F.Error``)."""

    rid: int
    frame: F.ServerFrame


@dataclass(frozen=True, slots=True)
class Unanswered:
    """Request ``rid`` will never be answered: its deadline passed, or the connection went."""

    rid: int
    reason: Literal["timeout", "connection_lost"]


@dataclass(frozen=True, slots=True)
class Own:
    """The item of a ``Delivery`` for this client's own message: its ack and its outbox entry."""

    ack: F.Ack
    entry: Entry


Item = F.Deliver | F.Message | Own
"""What a ``Delivery`` carries: a pushed or synced ``deliver``, a message of a gap ``fetch``
page, or this client's own acknowledged send."""


@dataclass(frozen=True, slots=True)
class Delivery(Generic[T]):
    """Message ``seq`` of ``conv`` is next: hand it to the application. With ``ordered`` (the
    default) deliveries of a conversation come in seq order with none missing; otherwise as
    they arrive, still once each."""

    conv: int
    seq: int
    item: T


@dataclass(frozen=True, slots=True)
class Duplicate(Generic[T]):
    """A seq already handed over came again and was dropped. ``overlap``: sent again by a sync
    this client asked for (SPEC.md 7.4 point 4), not a fault."""

    conv: int
    seq: int
    item: T
    overlap: bool


@dataclass(frozen=True, slots=True)
class Gap:
    """Messages of ``conv`` between ``after`` and ``before`` are missing and no sync is
    filling them. ``fill_gap(conv)`` fetches them (an application should; a load generator
    measuring live delivery may not)."""

    conv: int
    after: int
    before: int


@dataclass(frozen=True, slots=True)
class Synced:
    """The sync of ``conv`` is complete up to ``seq`` (SPEC.md 7.4): live delivery goes on
    from there with no gap and no duplicate. ``seq`` below the cursor: the server lost
    messages (a restored backup); tell the user."""

    conv: int
    seq: int
    rid: int


@dataclass(frozen=True, slots=True)
class SyncFailed:
    """The sync of ``conv`` was refused (``NOT_FOUND``: not a member any more)."""

    conv: int
    rid: int
    error: F.Error


@dataclass(frozen=True, slots=True)
class Acked:
    """The server stored ``entry`` as ``ack.seq``; it left the outbox."""

    ack: F.Ack
    entry: Entry


@dataclass(frozen=True, slots=True)
class AckedAgain:
    """An ack for a cmid no longer in the outbox (a resend answered again, SPEC.md 7.3)."""

    ack: F.Ack


@dataclass(frozen=True, slots=True)
class SendFailed:
    """The server refused ``entry`` for good; it left the outbox. Show the user."""

    entry: Entry
    error: F.Error


@dataclass(frozen=True, slots=True)
class SendDeferred:
    """A retryable refusal (``RATE_LIMITED``, ``UNAVAILABLE``, ``INTERNAL``): ``entry`` is
    written again, same cmid, at ``retry_at`` (``handle_timer``)."""

    entry: Entry
    error: F.Error
    retry_at: float


@dataclass(frozen=True, slots=True)
class Pushed:
    """A pushed frame the core has no rule for (``receipt_event``, ``typing_event``,
    ``presence``, ``device_list_changed``, ``to_device_event``, ``resync``), or an ``error``
    with no request of this client's (``re`` 0). ``resync`` means: sync every conversation
    again."""

    frame: F.ServerFrame


@dataclass(frozen=True, slots=True)
class BadFrame:
    """The server sent bytes that are not a frame of SPEC.md 4.2; they were ignored."""

    error: ProtocolError


Event = (
    Challenged
    | LoggedIn
    | LoginFailed
    | Answer
    | Unanswered
    | Delivery[Item]
    | Duplicate[Item]
    | Gap
    | Synced
    | SyncFailed
    | Acked
    | AckedAgain
    | SendFailed
    | SendDeferred
    | Pushed
    | BadFrame
)
