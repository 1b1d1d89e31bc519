"""Typed events from ``Client.events()``, shaped for ``match``."""

from __future__ import annotations

from dataclasses import dataclass

from chatproto import frames as F
from chatproto import kinds
from chatproto.errors import ProtocolError


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
    to: tuple[int, ...] = ()
    """The accounts the message is addressed to (``send(..., to=...)``, SPEC.md 16.3),
    ascending: clear metadata, the same for every member."""
    reply_to: int = 0
    """The seq of the message this one answers (end-to-end encrypted; 0: none)."""
    cmid: str = ""
    """The sender's client message id (SPEC.md 7.3; empty for system messages): an own
    message's ``cmid`` is the one ``Client.pending`` listed while it waited in the outbox."""
    e2e: bool = True
    """False for a client kind that came outside ``e2e`` (SPEC.md 9): allowed, but nothing
    authenticates its sender (the server could have written it); show it marked."""
    fc: bytes | None = None
    """The franking commitment delivered with it (SPEC.md 18.7). A message whose payload
    carries a franking key is shown only when this opens with it (E2E.md 17): it can be
    reported; one without a key (an older client) has nothing to check and cannot be."""

    @property
    def text(self) -> str | None:
        c = self.content
        return c.text if isinstance(c, kinds.Text | kinds.Edit) else None

    @property
    def forwarded(self) -> kinds.Content | None:
        """The typed content inside a ``forward`` message (None for other kinds, or a kind this
        SDK cannot read)."""
        c = self.content
        if not isinstance(c, kinds.Forward):
            return None
        try:
            return kinds.decode_content(c.kind, c.body)
        except ProtocolError:
            return None


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
    """Something about an account's keys cannot be trusted (a forged or rolled-back device
    list, a changed master key, a device that is not on its list, a device whose keys changed
    (its old session is dropped, a new one starts), a downgraded or replayed key agreement, a
    payment receipt its payer never signed). Show it to the user; nothing it concerns was used."""

    account: int
    reason: str
    conv: int = 0
    """The conversation concerned (a membership change no member signed, a message from a
    sender who is not a verified member, ...); 0 when it is about the account's keys."""


@dataclass(frozen=True, slots=True)
class MembershipChanged:
    """A verified change of conversation ``conv``'s members (E2E.md section 15): signed by a
    device of ``actor`` and checked against the conversation's membership log. ``op``:
    ``create``, ``add``, ``remove``, ``leave`` (``account`` is the actor), ``role`` (``role``
    is the new one) or ``access`` (a bot's, ``access``). ``member_count``: how many members
    after it; ``Client.members.state(conv)`` lists them (this device encrypts to exactly those)."""

    conv: int
    seq: int
    epoch: int
    op: str
    actor: int
    account: int
    role: str = ""
    access: str = ""
    member_count: int = 0


@dataclass(frozen=True, slots=True)
class TranscriptWarning:
    """What the members' messages say they had seen does not match what reached this device
    (E2E.md section 16): the server dropped, reordered or selectively delivered messages, or
    showed members different membership logs. Emitted right after message ``seq`` of ``conv``
    that revealed it. ``problem``: ``missing`` (``count`` messages of ``device`` never arrived),
    ``iteration_gap`` (``count`` sender-key iterations skipped), ``reordered``,
    ``forked_chain``, ``unseen`` (the sender had read ``count`` messages of ``device`` that
    never reached this device), ``own`` (it claims messages of this device it never sent) or
    ``membership_fork``."""

    conv: int
    seq: int
    sender: int
    problem: str
    account: int
    device: int
    count: int = 0


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


@dataclass(frozen=True, slots=True)
class BotAdded:
    """A bot joined conversation ``conv`` (invited by ``by``, or among the members it was created
    with: then ``by`` is the creator). A bot's own client gets it too, for itself. ``access``:
    what the bot receives there (``addressed`` or ``all``, SPEC.md 16.3)."""

    conv: int
    bot: int
    by: int
    access: str
    seq: int


@dataclass(frozen=True, slots=True)
class BotRemoved:
    """A bot left conversation ``conv`` or was removed (``by`` is who removed it; the bot itself
    when it left)."""

    conv: int
    bot: int
    by: int
    seq: int


@dataclass(frozen=True, slots=True)
class InvocationTimeout:
    """A mini-app invocation (``Client.invoke``) got no ``miniapp.result`` in time: show it as
    failed. The bot may still answer later (a late result is an ordinary ``Message``)."""

    conv: int
    bot: int
    invocation_id: str
    app: str
    action: str
    waited: float


@dataclass(frozen=True, slots=True)
class SendFailed:
    """A message left the outbox unsent: the server refused it for good (``code``, e.g.
    ``FORBIDDEN`` after leaving the conversation), or it could not be encrypted (``code`` 0).
    Its ``send`` raised the same error, if anyone still waited for it. Not emitted for
    ``CONFLICT``: a message under that cmid is stored already (sent by an earlier run)."""

    conv: int
    cmid: str
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ChannelPost:
    """A post of a public channel (SPEC.md 20), verified: its signature is the publishing
    device's, as the publisher's signed device list names it, over every field below. ``ver``
    above 0 is an edit; ``deleted`` marks the signed tombstone of a deleted post. A post that
    does not verify is never one of these (a ``SecurityWarning`` instead)."""

    channel: int
    seq: int
    ver: int
    ts: int
    author: int
    device: int
    kind: str
    content: bytes
    text: str | None
    """The text of a ``text`` post (None for another kind or a tombstone)."""
    deleted: bool = False
    paid: bool = False
    """For the channel's subscribers only (SPEC.md 15.14); the signature covers it."""
    views: int = 0
    """How many accounts viewed it, as the server counts (not signed; SPEC.md 20.9)."""


@dataclass(frozen=True, slots=True)
class LockedPost:
    """A paid post this account may not read (no subscription paid for now): the server sent
    its placeholder without content, so its signature cannot be checked; show it as locked
    ("subscribe to read"), never as the publisher's words."""

    channel: int
    seq: int
    ver: int
    ts: int
    author: int
    kind: str


@dataclass(frozen=True, slots=True)
class TipReceived:
    """A tip to this account's post, its receipt verified (SPEC.md 15.12)."""

    receipt: F.CreatorReceipt


@dataclass(frozen=True, slots=True)
class SubscriptionChanged:
    """A mandate of this account (as subscriber or owner) changed: charged (``receipt``,
    verified), past due, lapsed, cancelled or completed (SPEC.md 15.13)."""

    subscription: F.SubscriptionInfo
    receipt: F.CreatorReceipt | None = None


@dataclass(frozen=True, slots=True)
class MomentPost:
    """A Moment (SPEC.md 22) of ``author``, decrypted (``readable`` False: its key never came;
    ``text`` is then None and ``content`` empty). Pushed when a contact posts one to this
    account; ``deleted`` True (and nothing else known) when its author deleted it."""

    moment: int
    author: int
    ts: int
    text: str | None
    kind: str = "text"
    content: bytes = b""
    readable: bool = True
    deleted: bool = False
    handle: str = ""
    """The author's handle, as the server names it."""


@dataclass(frozen=True, slots=True)
class MomentNote:
    """A comment (``like`` False) or like under a Moment, decrypted, as the visibility rule
    lets this account see it (its own, the Moment's author's, its contacts'); ``deleted``: it
    was deleted or the like taken back (``text`` None)."""

    moment: int
    comment: int
    author: int
    ts: int
    like: bool
    text: str | None
    reply_to: int = 0
    readable: bool = True
    deleted: bool = False
    handle: str = ""
    """The commenter's handle, as the server names it."""


ChannelComment = F.CommentEvent
"""A new comment under a post this connection watches (``client.timeline.watch_post``, SPEC.md
20.6, 20.7)."""
PostReactions = F.ReactionsEvent
"""A watched post's reaction counts after changes (at most one a second per post; SPEC.md 20.7)."""
Receipt = F.ReceiptEvent
Typing = F.TypingEvent
Presence = F.PresenceEvent
RequestReceived = F.RequestEvent
"""A message request or invitation reached this account (SPEC.md 18.3; chatclient/contacts.py)."""
InvitationAnswered = F.InvitationAnswered
"""Someone this account invited accepted or declined (SPEC.md 18.3). ``joined`` False on an
accept: the conversation has a signed log, and the invitee is let in by an owner's or admin's
signed ``client.invite(conv, account)`` (``chat`` sends it at once)."""
JoinRequestReceived = F.JoinRequestEvent
"""Someone asked to join a conversation this account manages, through an invite link
(SPEC.md 19.4; chatclient/links.py)."""
Event = (
    Message
    | Connected
    | Disconnected
    | Receipt
    | Typing
    | Presence
    | RequestReceived
    | InvitationAnswered
    | JoinRequestReceived
    | Undecryptable
    | SecurityWarning
    | MembershipChanged
    | TranscriptWarning
    | DevicesChanged
    | MasterKeyReceived
    | BotAdded
    | BotRemoved
    | InvocationTimeout
    | SendFailed
    | ChannelPost
    | ChannelComment
    | PostReactions
    | LockedPost
    | TipReceived
    | SubscriptionChanged
    | MomentPost
    | MomentNote
)
