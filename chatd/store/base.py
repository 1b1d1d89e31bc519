"""The rows the store and the services exchange: frozen dataclasses, in the order of the concerns.

What each store method does with them, returns and raises is said where it is written once, in
its concern's module; ``chatd.store.Store`` composes the concerns (its docstring maps each use
case to its file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chatproto import frames as F
from chatproto import kinds

from chatd.core.consent import Privacy, Relation


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    handle: str
    name: str
    type: str
    last_seen: int
    owner: int = 0
    """A bot's owner, whose device signed its registration; 0 for users and self-declared bots."""
    suspended: int = 0
    """When an operator suspended the account (ms); 0: it is not."""


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
    access: str = ""
    """A bot member's access (``addressed`` or ``all``); empty for a user."""


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
    access: str = ""
    """The asking account's access when it is a bot; empty for a user."""


@dataclass(frozen=True, slots=True)
class Membership:
    """One account's membership of one conversation, as the read paths need it."""

    kind: str
    """The conversation's kind."""
    role: str
    joined_seq: int
    bot: bool
    access: str
    """``addressed`` or ``all`` (always ``all`` for a user)."""


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
    to: tuple[int, ...] = ()
    """The accounts the message is addressed to, ascending (SPEC.md 16.3)."""
    withheld: tuple[int, ...] = ()
    """The bot members it was withheld from when committed (access ``addressed``, not in
    ``to``, not the sender), ascending. Never leaves the server."""
    fc: bytes | None = None
    """The franking commitment it was sent with (SPEC.md 18.7); None: not franked."""
    removals: int = 0
    """How many members had left or been removed from the conversation when it was appended
    (PostgreSQL; 0 on SQLite, where one node orders its removals and messages itself). Its
    envelope carries it: a node re-reads the membership before delivering a message that follows
    a removal it has not applied (``chatd.hub``)."""


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
    to: tuple[int, ...] = ()
    """Ascending and unique (``chatproto.bots.check_to``)."""
    fc: bytes | None = None
    """The franking commitment (``Send.fc``), stored in the message's row."""


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
class SignedChange:
    """A membership-log entry (E2E.md 15) the service has checked: well formed, signed by the
    acting device, naming exactly this change. The store checks the rest in the change's own
    transaction (``rules.check_link``: it extends the log's head; the roster or access against
    the accounts' types) and stores it with the change's system message."""

    epoch: int
    prev: bytes
    hash: bytes
    group: bytes
    body: bytes
    sig: bytes
    roster: tuple[tuple[int, str, str], ...] = ()
    """``create``: ``(account, role, access)`` of every member, ascending."""
    access: str = ""
    """``add``: the access the entry gives the new member."""

    @property
    def link(self) -> tuple[int, bytes, bytes]:
        return self.epoch, self.prev, self.group


@dataclass(frozen=True, slots=True)
class LogRow:
    """A stored membership-log entry; ``seq`` is its system message's (0 for the first entry
    of a conversation created before it had a log)."""

    epoch: int
    seq: int
    body: bytes
    sig: bytes


@dataclass(frozen=True, slots=True)
class BotProfileRow:
    """A bot's stored profile (msgpack of ``chatproto.bots.StoredProfile``); ``body`` empty and
    ``updated_at`` 0 when the bot never set one."""

    account: int
    body: bytes
    updated_at: int


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


# --------------------------------------------------------------------------- ledger


ReceiptSigner = Callable[[kinds.PaymentReceipt], bytes]
"""Turns an unsigned receipt into the body of its ``payment.receipt`` message (signed by the
server's payment key). The store calls it inside the write transaction, once the receipt's
fields are final; it is deterministic, so a re-run transaction signs the same bytes."""


@dataclass(frozen=True, slots=True)
class NewTransfer:
    """A verified transfer intent to post: payer -> payee in ``conv``, with its receipt."""

    transfer_id: str
    payer: int
    payee: int
    amount: int
    currency: str
    conv: int
    request_id: str
    intent_hash: bytes
    memo_hash: bytes
    intent_expires_at: int
    device: int
    payer_sig: bytes
    now: int
    day_limit: int | None


@dataclass(frozen=True, slots=True)
class NewRedPacket:
    """A verified red packet intent: ``sum(shares)`` moves from ``sender`` to escrow."""

    packet_id: str
    sender: int
    conv: int
    currency: str
    shares: tuple[int, ...]
    """The precomputed shares, claimed in this order."""
    split: str
    intent_hash: bytes
    memo_hash: bytes
    intent_expires_at: int
    device: int
    payer_sig: bytes
    expires_at: int
    """When unclaimed shares go back to the sender."""
    now: int
    day_limit: int | None


@dataclass(frozen=True, slots=True)
class NewRequest:
    request_id: str
    conv: int
    payee: int
    """The requester, who would be paid."""
    payer: int
    """0: any member but the payee."""
    amount: int
    currency: str
    expires_at: int
    now: int


@dataclass(frozen=True, slots=True)
class Posting:
    """A committed payment event and its receipt message (in ``message.conv``). ``replay``: it
    was committed earlier (an idempotent retry); nothing moved this time."""

    message: StoredMessage
    replay: bool = False


CreatorSigner = Callable[[F.CreatorReceipt], F.CreatorReceipt]
"""Signs a tip's or a charge's final receipt with the server's payment key (deterministic, so a
re-run transaction signs the same bytes)."""


@dataclass(frozen=True, slots=True)
class NewTip:
    """A verified tip intent: payer -> the channel's owner, for post ``post``."""

    intent: F.TipIntent
    intent_hash: bytes
    device: int
    payer_sig: bytes
    now: int
    day_limit: int | None


@dataclass(frozen=True, slots=True)
class NewMandate:
    """A verified subscription mandate; its first period is charged with it."""

    intent: F.MandateIntent
    intent_hash: bytes
    device: int
    payer_sig: bytes
    now: int
    day_limit: int | None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A mandate as stored, with the receipt of its first charge; ``replay``: a retry."""

    subscription: F.SubscriptionInfo
    receipt: F.CreatorReceipt
    replay: bool = False


@dataclass(frozen=True, slots=True)
class Renewed:
    """What a sweep did to one mandate: charged it (``receipt``) or changed its state."""

    subscription: F.SubscriptionInfo
    receipt: F.CreatorReceipt | None


@dataclass(frozen=True, slots=True)
class EntryRow:
    """One ledger entry of an account's wallet: ``amount`` signed, ``balance`` after it."""

    entry: int
    ref: str
    type: str
    currency: str
    amount: int
    balance: int
    counterparty: int
    """The other account of the transfer (``ISSUANCE``/``ESCROW`` are negative)."""
    conv: int
    posted_at: int


@dataclass(frozen=True, slots=True)
class LedgerAudit:
    """The ledger's invariants, read in one snapshot: every field empty/zero when it holds.

    ``sums``: per currency, the sum of all wallet balances (must be 0: issuance included).
    ``negative``: non-issuance wallets below zero. ``unbalanced``: transfers whose entries do
    not cancel out or are not exactly two. ``drift``: wallets whose balance is not the sum of
    their entries. ``escrow_drift``: currencies whose escrow is not the sum of what open red
    packets have left."""

    sums: dict[str, int]
    negative: list[tuple[int, str, int]]
    unbalanced: list[str]
    drift: list[tuple[int, str]]
    escrow_drift: list[str]
    transfers: int
    unreceipted: list[str] = field(default_factory=list)
    """Tips and charges without exactly one matching creator receipt (payer, payee, amount,
    currency), and creator receipts without their posting."""
    charge_drift: list[str] = field(default_factory=list)
    """Mandates whose ``charged`` is not their number of charges, whose charges are not
    periods 1 .. charged, or charged beyond their ``periods``."""

    @property
    def ok(self) -> bool:
        return (
            not any(self.sums.values())
            and not self.negative
            and not self.unbalanced
            and not self.drift
            and not self.escrow_drift
            and not self.unreceipted
            and not self.charge_drift
        )


@dataclass(frozen=True, slots=True)
class RequestRow:
    """A message request (``kind`` direct: ``conv``'s recipient has not accepted it) or an
    invitation (a group or channel the invitee is not a member of), as the invitee sees it."""

    conv: int
    kind: str
    sender: int
    handle: str
    """The sender's handle."""
    at: int
    title: str
    last_seq: int
    state: str
    """``pending``, or ``accepted``: an invitation to a signed conversation, accepted, waiting
    for an admin's signed ``invite``."""


@dataclass(frozen=True, slots=True)
class AnswerRow:
    """An answer to an invitation its inviter has yet to act on (``Consent.answers_of``)."""

    conv: int
    account: int
    """The invitee."""
    handle: str
    """The invitee's handle."""
    answer: str
    """``accept`` (waiting for a signed ``invite``) or ``decline``."""


@dataclass(frozen=True, slots=True)
class Seen:
    """How one account sees another (``Consent.seen_by``)."""

    relation: Relation
    privacy: Privacy | None
    """Its settings; None when it never chose (the server's defaults apply)."""
    bot: bool


@dataclass(frozen=True, slots=True)
class Franked:
    """What a report of message ``seq`` of ``conv`` is verified against (E2E.md 17): its sender
    and ts, and its commitment ``fc`` (stored in its row), or for a message franked before
    the commitment was stored (schema 11, 12) the server's ``tag`` kept then."""

    conv: int
    seq: int
    sender: int
    ts: int
    fc: bytes | None = None
    tag: bytes | None = None


@dataclass(frozen=True, slots=True)
class ReportRow:
    """A verified report (SPEC.md 18.7): ``plaintext`` is what the reporter revealed."""

    id: int
    reporter: int
    conv: int
    seq: int
    sender: int
    ts: int
    plaintext: bytes
    reason: str
    created_at: int
    resolved_at: int
    resolution: str


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A device's Web Push subscription (SPEC.md 21): where to send, and the device's keys to
    encrypt to (RFC 8291)."""

    device: int
    account: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    show_conv: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class LinkRow:
    id: int
    conv: int
    selector: bytes
    creator: int
    name: str
    created: int
    expires: int
    max_uses: int
    uses: int
    approval: bool
    revoked: int


@dataclass(frozen=True, slots=True)
class JoinRequestRow:
    account: int
    handle: str
    at: int
    link: int


@dataclass(frozen=True, slots=True)
class LinkPreviewRow:
    kind: str
    title: str
    member_count: int
    approval: bool
    """A join makes a request: the link asks for approval, or the conversation has a log."""


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    """What ``join_link`` did: ``joined`` (``change`` is the membership change), ``member``
    (already one: nothing), ``requested`` (a join request filed: ``request``), or ``pending``
    (one was pending already: nothing)."""

    state: str
    conv: int
    change: MembershipChange | None = None
    request: JoinRequestRow | None = None


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A public channel (SPEC.md 20.1); ``following``: the account that asked follows it."""

    id: int
    handle: str
    title: str
    about: str
    owner: int
    followers: int
    last_seq: int
    following: bool
    slow_mode: int = 0
    """Seconds a non-admin waits between two comments (0: off, SPEC.md 20.9)."""


@dataclass(frozen=True, slots=True)
class TimelinePost:
    """A channel post as the timeline lists it: ``at`` is the server's time when it was first
    stored (the timeline's order, SPEC.md 20.8), ``post`` its current version."""

    at: int
    post: F.Post


@dataclass(frozen=True, slots=True)
class MomentRow:
    """A Moment (SPEC.md 22) as stored: ``ciphertext`` is opaque to the server (the author's
    client encrypted it to the audience); ``audience`` counts the accounts it was posted to (the
    author not counted); ``ts_ms`` is the server's time of posting."""

    moment: int
    author: int
    ts_ms: int
    ciphertext: bytes
    audience: int = 0
    device: int = 0
    """The author's device that encrypted it (receivers find the Moment's key by it)."""
    handle: str = ""
    """The author's handle (viewers are its contacts: they know it)."""


@dataclass(frozen=True, slots=True)
class MomentCommentRow:
    """A comment or like (``kind``) under a Moment; ``reply_to`` a comment it answers (0)."""

    comment: int
    moment: int
    author: int
    device: int
    reply_to: int
    kind: str
    ts_ms: int
    ciphertext: bytes
    handle: str = ""
    """The commenter's handle."""


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    backend: str
    """``sqlite`` or ``postgresql``."""
    queued_writes: int
    """Writes waiting for the next group commit."""
    retries: int = 0
    """Batches run again after losing a race to another node (PostgreSQL)."""
