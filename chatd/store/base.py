"""What the services need from storage, as small Protocols, plus the rows they exchange.

The store is the truth: a message exists once ``append`` resolves, and only then is it acked and
published. Writes are serialised per store (one writer task with group commit), and the
authorisation that guards a write is checked inside the same transaction as the write.

Errors: a refusal is a ``chatd.errors`` class (``NotFound``, ``Forbidden``, ``Invalid``,
``Conflict``, ...) raised before anything is written: a refused write changes nothing. Besides
those each method names, any method may raise ``Unavailable``: the database cannot be reached
or could not commit, the store is overloaded or shutting down (nothing acked is lost; retry).
Where the implementations live: ``chatd.store`` (its docstring maps each use case to its file).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chatproto import frames as F
from chatproto import kinds

from chatd.core.consent import Privacy, Quota, Relation
from chatd.core.creators import Price, Renewal
from chatd.core.publishing import SearchCursor


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


class AccountStore(Protocol):
    async def create_account(
        self,
        handle: str,
        name: str,
        type: str,
        device_key: bytes,
        device_name: str,
        now: int,
        owner: int = 0,
    ) -> tuple[AccountRow, DeviceRow]:
        """A new account (``type`` ``user`` or ``bot``) with its first device. ``HandleTaken``
        when the handle is, ``Conflict`` when the device key is registered."""

    async def add_device(
        self, account: int, device_key: bytes, name: str, approver: int, now: int
    ) -> DeviceRow:
        """A new device of ``account``, approved by device ``approver`` (the caller checked it
        may). ``Conflict`` when the key is registered."""

    async def device(self, device: int) -> DeviceRow | None:
        """The device, or None."""

    async def account(self, account: int) -> AccountRow | None:
        """The account, or None."""

    async def account_by_handle(self, handle: str) -> AccountRow | None:
        """The account with this handle, or None."""

    async def set_suspended(self, account: int, at: int) -> bool:
        """Suspend ``account`` as of ``at`` (ms), or lift its suspension (``at`` 0); False when
        there is no such account."""

    async def suspended_after(self, after: int) -> list[tuple[int, int]]:
        """``(account, suspended_at)`` of the accounts suspended later than ``after``."""

    async def set_last_seen(self, account: int, now: int) -> None:
        """Record ``now`` as the account's last activity (no error for no account)."""


class ConversationStore(Protocol):
    """Conversations and members. Every membership change may carry a ``SignedChange``: it is
    checked against the conversation's membership log and stored with the change, in the same
    transaction (``Conflict`` when the log moved on, ``Invalid`` when it does not match or a
    signed conversation gets an unsigned change; nothing is written then). Who may change what
    is ``core.rules`` (``Forbidden`` when the actor's role may not; ``NotFound`` when the actor
    is not a member, as for no conversation). A change returns its ``MembershipChange``: the
    system message it appended and the accounts it added or removed."""

    async def create_conversation(
        self,
        kind: str,
        title: str,
        creator: int,
        members: Sequence[int],
        now: int,
        entry: SignedChange | None = None,
    ) -> CreatedConv:
        """A new conversation (``creator`` its owner, ``members`` members) with its ``created``
        message; for ``direct``, the existing one of the two accounts if there is one
        (``existed``). ``entry`` starts its log (for an existing direct conversation without a
        log, it becomes its first entry). ``NotFound`` for an unknown account, ``Invalid`` for
        a direct conversation without exactly one other account or a roster that does not
        match, ``Conflict`` when the log's group id is another conversation's."""

    async def conversation(
        self, conv: int, account: int, device: int, member_limit: int | None = None
    ) -> ConvRow:
        """``conv`` as ``account`` (and ``device``'s cursors) sees it, with its members (the
        first ``member_limit`` of them by join, when given). ``NotFound`` unless ``account``
        is a member."""

    async def conversations_of(
        self, account: int, device: int, after: int = 0, limit: int | None = None
    ) -> list[ConvRow]:
        """The conversations ``account`` is a member of with an id above ``after``, ascending
        by id, without members (the first ``limit`` of them, when given), but its pending
        message requests (``ConsentStore.requests_of``)."""

    async def members_page(self, conv: int, after: int, limit: int) -> list[MemberRow]:
        """Members of ``conv`` with an account id above ``after``, ascending, at most
        ``limit`` (the caller checked access)."""

    async def members_since(self, conv: int, accounts: Sequence[int]) -> dict[int, int]:
        """``{account: joined seq}`` of those of ``accounts`` that are members of ``conv`` now
        (a hub's re-check after a removal it had not applied, ``chatd.hub``)."""

    async def conversation_ids_of(self, account: int) -> list[int]:
        """The ids of the conversations ``account`` is a member of."""

    async def invite(
        self, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        """Add ``account`` as a member (``joined``); a bot starts with its kind's initial
        access. ``NotFound`` for no such account, ``Conflict`` when already a member,
        ``Forbidden`` when ``actor`` may not add members (or bots)."""

    async def remove(
        self,
        conv: int,
        actor: int,
        account: int,
        now: int,
        entry: SignedChange | None = None,
        ban: bool = False,
    ) -> MembershipChange:
        """Remove member ``account`` (``removed``). ``Invalid`` when ``account`` is the actor
        (use ``leave``), ``NotFound`` when it is not a member, ``Forbidden`` by the rules.
        ``ban``: also ban it (its pending invitation goes too; ``invite`` of it is then
        ``Forbidden``) until ``unban``."""

    async def unban(self, conv: int, actor: int, account: int) -> None:
        """Lift a ban (``Forbidden`` unless ``actor`` is an owner or admin)."""

    async def is_banned(self, conv: int, account: int) -> bool: ...

    async def leave(
        self, conv: int, actor: int, now: int, entry: SignedChange | None = None
    ) -> MembershipChange:
        """``actor`` leaves (``left``); an owner leaving hands ownership to the next member
        (``core.rules.next_owner``) with a ``role`` message. ``Forbidden`` in a direct
        conversation."""

    async def set_role(
        self,
        conv: int,
        actor: int,
        account: int,
        role: str,
        now: int,
        entry: SignedChange | None = None,
    ) -> MembershipChange:
        """Give member ``account`` ``role`` (``role`` message). ``NotFound`` when it is not a
        member, ``Forbidden`` by the rules."""

    async def member_log(self, conv: int, after: int, limit: int) -> list[LogRow]:
        """Entries of ``conv``'s membership log with epoch > ``after``, ascending, at most
        ``limit`` (the caller checked membership)."""

    async def log_head(self, conv: int) -> tuple[int, bytes, bytes] | None:
        """``(epoch, hash, group)`` of the log's last entry; None when it has none."""

    async def rename(self, conv: int, actor: int, title: str, now: int) -> MembershipChange:
        """Set the title (``renamed`` message). ``Forbidden`` by the rules (never direct)."""

    async def contacts_of(self, account: int) -> list[int]:
        """Accounts sharing a direct conversation or group with ``account`` (its presence
        audience), each once."""

    async def member_kind(self, conv: int, account: int) -> tuple[str, str] | None:
        """``(conv kind, role)`` of ``account`` in ``conv``, or None when not a member."""

    async def membership(self, conv: int, account: int) -> Membership | None:
        """``account``'s membership of ``conv`` (with its bot access), or None."""


class BotStore(Protocol):
    """Bot profiles and bot members' access (SPEC.md section 16). Membership writes elsewhere
    (``create_conversation``, ``invite``) also follow its rules: only an owner or admin adds a
    bot (``Forbidden``), whose access starts ``addressed`` in a group or channel and ``all`` in
    a direct conversation; ``append`` records, per message, the bots it is withheld from."""

    async def set_bot_profile(self, account: int, body: bytes, now: int) -> None:
        """Replace the bot's profile; ``Forbidden`` when ``account`` is not a bot."""

    async def bot_profile(self, account: int) -> BotProfileRow | None:
        """The bot's profile (empty if never set), or None when ``account`` is not a bot."""

    async def set_bot_access(
        self,
        conv: int,
        actor: int,
        account: int,
        access: str,
        now: int,
        entry: SignedChange | None = None,
    ) -> MembershipChange | None:
        """Change a bot member's access and append its ``bot_access`` system message in one
        transaction; None (nothing written) when it already has that access. ``NotFound``
        (actor or bot not a member), ``Invalid`` (direct, or not a bot), ``Forbidden`` (actor
        neither owner nor admin)."""


class MessageStore(Protocol):
    def append(self, message: NewMessage) -> asyncio.Future[Appended]:
        """Queue ``message`` for the next group commit. The future resolves once it is durable
        (``duplicate`` when its cmid was stored before with the same content), or fails with
        ``NotFound`` (sender not a member), ``Forbidden`` (may not send there), ``Conflict``
        (the cmid was used for another message) or ``Unavailable``; futures resolve in commit
        order, which is seq order within a conversation."""

    async def messages(
        self, conv: int, after: int, before: int | None, limit: int
    ) -> list[StoredMessage]:
        """Messages of ``conv`` with ``after`` < seq (< ``before``), ascending: the first
        ``limit`` of them, or with ``before`` the last ``limit`` (the caller checked access)."""

    async def message_page(
        self, conv: int, after: int, before: int | None, limit: int, max_bytes: int
    ) -> tuple[list[StoredMessage], bool]:
        """``messages``, stopped before the bodies pass ``max_bytes`` (one message at least),
        and whether the range holds messages not in the page. Bodies past the budget are never
        read."""


class CursorStore(Protocol):
    async def move_cursor(self, device: int, conv: int, type: str, seq: int) -> bool:
        """Raise the device's ``type`` (``delivered`` or ``read``) cursor to ``seq`` (at most
        the conversation's last seq); True when it moved. ``NotFound`` for no conversation."""


class KeyDirectoryStore(Protocol):
    """Public end-to-end keys of devices and signed device lists of accounts. The store enforces
    atomicity only; who may write what (a device its own keys) is fixed by the caller."""

    async def upload_keys(self, upload: KeyUpload, now: int, max_one_time: int) -> int:
        """Store ``upload`` for its device in one transaction; the device's unclaimed one-time
        prekey count afterwards. A new identity key discards the device's stored prekeys; a kid
        the device already has is ignored; ``Invalid`` (nothing stored) when the pool would pass
        ``max_one_time``; ``NotFound`` for no such device."""

    async def one_time_count(self, device: int) -> int:
        """The device's unclaimed one-time prekeys (0 for no such device)."""

    async def claim_keys(
        self, account: int, exclude_device: int = 0, one_time: bool = True
    ) -> list[BundleRow]:
        """A bundle per device of ``account`` with an identity key (but ``exclude_device``),
        ascending by device, each with the device's lowest-kid one-time prekey, deleted in the
        same transaction: no two claims ever get the same one. ``NotFound`` for no account.
        Without ``one_time``, the signed prekeys only (the last resort, SPEC.md 18.5)."""

    async def put_device_list(self, row: DeviceListRow, now: int) -> None:
        """Replace the account's device list; ``Conflict`` unless ``row.version`` is higher,
        ``NotFound`` for no account."""

    async def device_list(self, account: int) -> DeviceListRow | None:
        """The account's device list, or None when it has none."""


class ToDeviceStore(Protocol):
    """A bounded queue per device of opaque items, each with a tid increasing per device."""

    async def queue_to_device(
        self,
        target: int,
        sender: int,
        sender_device: int,
        body: bytes,
        now: int,
        max_queued: int,
        quota: Quota | None = None,
    ) -> ToDeviceRow:
        """Append to ``target``'s queue; resolves once committed. ``NotFound`` for no such
        device, ``RateLimited`` when ``max_queued`` items are already queued for it, or when
        ``sender``'s items there with this one would pass ``quota`` (counted under the queue's
        lock, so concurrent items from any node cannot pass it together)."""

    async def to_device_items(self, device: int, after: int, limit: int) -> list[ToDeviceRow]:
        """Queued items of ``device`` with tid > ``after``, ascending, at most ``limit``."""

    async def ack_to_device(self, device: int, up_to: int) -> int:
        """Delete ``device``'s items with tid <= ``up_to``; how many were deleted."""


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


class LedgerStore(Protocol):
    """Wallets, a double-entry ledger, red packets and pay requests.

    Every posting debits one account and credits another by the same amount, writes its two
    append-only entries, and appends its signed receipt to the conversation's sequence, all in
    ONE transaction (the group-commit batch): a posting is never half applied, and no receipt
    exists without its money movement or the reverse. Each returns a future like ``append``;
    refusals are the ``chatd.core.ledger`` errors (and ``NotFound``, ``Conflict``, ...), and a
    refused posting changes nothing. Ids are idempotency keys: the same id with the same content
    resolves to the first ``Posting`` (``replay``); with other content, ``Conflict``."""

    def post_transfer(self, t: NewTransfer, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        """Payer -> payee (both members of ``conv``); pays ``t.request_id`` if set. Refusals:
        ``NotFound`` (payer not a member), ``NotMember`` (payee), ``Expired``, ``OverLimit``
        (daily), ``InsufficientFunds`` (the database's CHECK), ``Conflict``, request rules."""

    def create_red_packet(self, p: NewRedPacket, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        """Sender -> escrow, and the packet opens with its precomputed shares. Refusals:
        ``NotFound`` (sender not a member), ``Expired``, ``OverLimit``, ``InsufficientFunds``,
        ``Conflict``."""

    def claim_red_packet(
        self, packet_id: str, account: int, now: int, sign: ReceiptSigner
    ) -> asyncio.Future[Posting]:
        """Escrow -> ``account``: the next share, once per account (again: the same claim).
        ``NotFound`` (no such packet, or ``account`` not a member), the packet rules
        (``core.ledger.next_share``: emptied, expired)."""

    def open_request(self, r: NewRequest, sign: ReceiptSigner) -> asyncio.Future[Posting]:
        """Payee ``r.payee`` asks to be paid. Refusals: ``NotFound`` (payee not a member),
        ``NotMember`` (a named payer), ``Forbidden`` (may not post there), ``Conflict``."""

    def close_request(
        self, request_id: str, actor: int, state: str, now: int, sign: ReceiptSigner
    ) -> asyncio.Future[Posting]:
        """``state``: ``declined`` (by the payer) or ``cancelled`` (by the payee); settled once
        (again by the same actor: the same posting). ``NotFound`` (no such request, or
        ``actor`` not a member), the request rules (``core.ledger.check_close_request``)."""

    async def sweep_payments(self, now: int, sign: ReceiptSigner, limit: int) -> list[Posting]:
        """Refund the unclaimed rest of red packets expired by ``now`` to their senders and mark
        expired requests, at most ``limit`` of each, each with its receipt. Idempotent: a packet
        is refunded once however many sweepers (nodes) run."""

    async def mint(self, account: int, amount: int, currency: str, now: int, note: str) -> str:
        """Issuance -> ``account`` (an operator top-up); the new transfer's id. ``NotFound``
        for no account, ``InvalidAmount`` when the wallet cannot hold it."""

    async def balances(self, account: int) -> list[tuple[str, int]]:
        """``(currency, balance)`` of the account's wallets, ascending by currency."""

    async def wallet_entries(
        self, account: int, currency: str, before: int | None, limit: int
    ) -> list[EntryRow]:
        """Entries of ``account`` (one currency, or all with ""), newest first, below entry
        ``before``, at most ``limit``."""

    async def payment_key(self, seed: bytes) -> bytes:
        """The server's payment signing seed, stored once: the first caller's ``seed`` wins and
        every node (and restart) gets it back."""

    async def ledger_audit(self) -> LedgerAudit:
        """The ledger's invariants, read in one snapshot (``LedgerAudit.ok`` when they hold)."""


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
class Seen:
    """How one account sees another (``ConsentStore.seen_by``)."""

    relation: Relation
    privacy: Privacy | None
    """Its settings; None when it never chose (the server's defaults apply)."""
    bot: bool


class ConsentStore(Protocol):
    """Contacts, blocks, privacy settings, requests and invitations (``store.consent``)."""

    async def privacy(self, account: int) -> Privacy | None: ...
    async def set_privacy(self, account: int, privacy: Privacy) -> None: ...
    async def relations(self, target: int, actors: Sequence[int]) -> dict[int, Relation]: ...
    async def seen_by(self, actor: int, targets: Sequence[int]) -> dict[int, Seen]: ...
    async def add_contact(self, account: int, contact: int, now: int) -> None: ...
    async def contact_list(
        self, account: int, blocked: bool, after: int, limit: int
    ) -> list[int]: ...
    async def add_request(self, conv: int, account: int, sender: int, now: int) -> bool: ...
    async def request(self, conv: int, account: int) -> RequestRow | None: ...
    async def pending_convs(self, account: int, convs: Sequence[int]) -> set[int]: ...
    async def requests_of(self, account: int, after: int, limit: int) -> list[RequestRow]: ...
    async def accept_request(self, conv: int, account: int, now: int) -> RequestRow: ...
    async def mark_accepted(self, conv: int, account: int) -> RequestRow: ...
    async def drop_request(self, conv: int, account: int) -> RequestRow: ...
    async def block(self, account: int, blocked: int, now: int) -> tuple[int, int] | None: ...
    async def unblock(self, account: int, blocked: int) -> int | None: ...
    async def queued_from(self, device: int, sender: int) -> tuple[int, int]: ...


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


class ReportStore(Protocol):
    """Franking and reports (``store.reports``)."""

    async def franking_secret(self, secret: bytes) -> bytes: ...
    async def franked(self, conv: int, seq: int) -> Franked | None:
        """Message ``seq`` of ``conv`` as a report checks it; None: no such message, or it was
        sent without franking."""

    async def add_report(
        self, reporter: int, t: Franked, plaintext: bytes, reason: str, now: int
    ) -> int: ...
    async def reports(self, everything: bool, after: int, limit: int) -> list[ReportRow]: ...


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


class PushStore(Protocol):
    """Web Push subscriptions (``store.push``)."""

    async def set_push(self, sub: PushSubscription) -> None: ...
    async def clear_push(self, device: int, endpoint: str | None) -> bool: ...
    async def push_of(self, device: int) -> PushSubscription | None: ...
    async def push_targets(self, conv: int) -> list[PushSubscription]: ...


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


class LinkStore(Protocol):
    """Invite links and join requests (``store.links``, SPEC.md 20). Every script checks the
    caller's role itself (owner or admin; ``NotFound`` for a non-member); an unusable link is
    ``core.links.LinkInvalid``."""

    async def link_secret(self, secret: bytes) -> bytes: ...
    async def create_link(
        self,
        conv: int,
        actor: int,
        selector: bytes,
        name: str,
        now: int,
        expires_in: int,
        max_uses: int,
        approval: bool,
    ) -> LinkRow: ...
    async def links_of(self, conv: int, actor: int, after: int, limit: int) -> list[LinkRow]: ...
    async def revoke_link(self, conv: int, actor: int, link: int, now: int) -> None: ...
    async def preview_link(self, selector: bytes, now: int) -> LinkPreviewRow: ...
    async def join_link(self, selector: bytes, account: int, now: int) -> JoinOutcome: ...
    async def join_requests_of(
        self, conv: int, actor: int, after: int, limit: int
    ) -> list[JoinRequestRow]: ...
    async def answer_join(
        self,
        conv: int,
        actor: int,
        account: int,
        approve: bool,
        now: int,
        entry: SignedChange | None = None,
    ) -> MembershipChange | None: ...
    async def cancel_join(self, conv: int, account: int) -> None: ...
    async def managers_of(self, conv: int) -> list[int]: ...


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


class ChannelStore(Protocol):
    """Public channels, followers, signed posts and the directory (``store.channels``)."""

    async def create_channel(
        self, owner: int, handle: str, title: str, about: str, now: int
    ) -> ChannelRow: ...
    async def channel(self, channel: int, viewer: int) -> ChannelRow | None: ...
    async def channel_by_handle(self, handle: str, viewer: int) -> ChannelRow | None: ...
    async def search_channels(
        self, words: list[str], cursor: SearchCursor | None, limit: int, viewer: int
    ) -> tuple[list[ChannelRow], SearchCursor | None]: ...
    async def follow(self, channel: int, account: int, now: int) -> ChannelRow: ...
    async def unfollow(self, channel: int, account: int) -> ChannelRow: ...
    async def followed_channels(self, account: int) -> list[int]: ...
    async def is_channel_admin(self, channel: int, account: int) -> bool: ...
    async def set_channel_admin(
        self, channel: int, owner: int, account: int, admin: bool
    ) -> bool: ...
    async def put_post(self, p: F.Post, now: int) -> bool: ...
    async def posts_before(self, channel: int, before: int, limit: int) -> list[F.Post]: ...
    async def post_history(self, channel: int, seq: int) -> list[F.Post]: ...
    async def add_comment(
        self,
        channel: int,
        seq: int,
        author: int,
        reply_to: int,
        kind: str,
        content: bytes,
        now: int,
    ) -> F.CommentInfo: ...
    async def comments(
        self, channel: int, seq: int, after: int, limit: int
    ) -> tuple[list[F.CommentInfo], int]: ...
    async def delete_comment(self, channel: int, comment: int, account: int) -> None: ...
    async def react(
        self, channel: int, seq: int, account: int, emoji: str, remove: bool, *, now: int
    ) -> list[F.ReactionCount]: ...
    async def reactions(self, channel: int, seq: int, account: int) -> list[F.ReactionCount]: ...


class ChannelModerationStore(Protocol):
    """Bans from a public channel's comments, its slow mode, and post views
    (``store.channel_moderation``, SPEC.md 20.9). ``add_comment`` and ``react`` check the bans
    and slow mode inside their own writes."""

    async def ban_commenter(
        self,
        channel: int,
        actor: int,
        account: int,
        until: int,
        delete_comments: bool,
        now: int,
    ) -> int:
        """Ban ``account`` from commenting and reacting until ``until`` (0: until lifted); the
        number of its comments deleted (``delete_comments``). ``NotFound``, ``Forbidden``
        (``actor`` not an admin, or ``account`` one), ``Invalid`` (an end in the past)."""

    async def unban_commenter(self, channel: int, actor: int, account: int) -> None: ...
    async def comment_bans(
        self, channel: int, actor: int, after: int, limit: int, now: int
    ) -> list[F.CommentBan]:
        """Bans in force at ``now``, by account above ``after`` (admins only)."""

    async def set_slow_mode(self, channel: int, actor: int, seconds: int) -> None: ...
    async def view_secret(self, secret: bytes) -> bytes:
        """The server's view secret (``secret`` stored if there is none yet)."""

    async def view_posts(self, channel: int, viewed: list[tuple[int, bytes]]) -> int:
        """Count each (seq, tag) once for a live post; the views counted (``NotFound``)."""


@dataclass(frozen=True, slots=True)
class TimelinePost:
    """A channel post as the timeline lists it: ``at`` is the server's time when it was first
    stored (the timeline's order, SPEC.md 20.8), ``post`` its current version."""

    at: int
    post: F.Post


class TimelineStore(Protocol):
    """The timeline's reads (``store.timeline``): fan-out on read, nothing per follower."""

    async def timeline_posts(
        self, account: int, before: tuple[int, int, int] | None, limit: int
    ) -> list[TimelinePost]:
        """The newest ``limit`` live posts of the channels ``account`` follows whose
        ``(at, channel, seq)`` is below ``before`` (None: the newest), newest first; a bounded
        number of rows read however many channels are followed (``store.timeline``)."""

    async def live_post(self, channel: int, seq: int) -> bool:
        """Post ``seq`` of ``channel`` exists and is not deleted."""


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


class MomentStore(Protocol):
    """Moments, their audiences, comments and likes (``store.moments``). Whatever a caller may
    not see (``chatd.core.moments``, read at each call) is ``NotFound``, as if it did not exist."""

    async def post_moment(
        self,
        author: int,
        device: int,
        audience: list[int],
        everyone: bool,
        body: bytes,
        now: int,
        cmid: str = "",
    ) -> tuple[MomentRow, list[int], bool]:
        """Store a Moment for ``audience`` (``everyone``: all of the author's mutual contacts
        now); it, the audience it was stored for, ascending, and whether it was written now.
        ``CONSENT_REQUIRED`` when one is not a mutual contact (nothing stored), ``Invalid`` for
        a malformed audience. A ``cmid`` of the author's stored before: the stored Moment and
        False when the body is the same (a resend), else ``Conflict``."""

    async def moment(self, moment: int, viewer: int) -> tuple[MomentRow, list[int]]:
        """A Moment and the part of its audience ``viewer`` may know (SPEC.md 22.3)."""

    async def moments_for(
        self, viewer: int, before: tuple[int, int] | None, limit: int
    ) -> list[MomentRow]:
        """The Moments ``viewer`` may see (its own, and those posted to it by accounts that are
        still its mutual contacts), ordered by (ts_ms DESC, moment DESC), strictly older than
        ``before`` = (ts_ms, moment) when given; at most ``limit`` (the timeline's source)."""

    async def moments_of(
        self, author: int, viewer: int, before: tuple[int, int] | None, limit: int
    ) -> list[MomentRow]:
        """As ``moments_for``, only ``author``'s."""

    async def delete_moment(self, moment: int, account: int) -> list[int]:
        """Delete a Moment, comments and likes included; the accounts that saw it until then.
        ``NotFound``, ``Forbidden`` (not its author)."""

    async def comment_moment(
        self,
        moment: int,
        author: int,
        device: int,
        reply_to: int,
        kind: str,
        body: bytes,
        now: int,
        cmid: str = "",
    ) -> tuple[MomentCommentRow, MomentRow, bool]:
        """Store a comment or like (a second like returns the first, False: nothing written).
        A ``cmid`` of the author's stored before: that comment and False when this is a resend
        of it, else ``Conflict``."""

    async def unlike_moment(self, moment: int, account: int) -> MomentCommentRow | None: ...
    async def delete_moment_comment(
        self, moment: int, comment: int, account: int
    ) -> tuple[MomentCommentRow, MomentRow]: ...
    async def moment_comments(
        self, moment: int, viewer: int, after: int, limit: int
    ) -> list[MomentCommentRow]: ...
    async def comment_readers(self, moment: int, commenter: int) -> list[int]:
        """The accounts that see ``commenter``'s comments under ``moment`` now."""

    async def moment_readers(self, moment: int) -> list[int]:
        """The accounts that see ``moment`` now, its author first."""


class ModerationStore(Protocol):
    """Deleting messages for everyone (``store.moderation``)."""

    async def delete_message(
        self, conv: int, seq: int, actor: int, now: int
    ) -> MembershipChange | None:
        """Put a tombstone in place of message ``seq`` and append the ``deleted`` system
        message that records it (None: a tombstone already, nothing written). ``NotFound``
        (not a member, no such message, or one before the actor's join), ``Forbidden``
        (``core.rules.check_delete``), ``Invalid`` (a server message)."""


class CreatorStore(Protocol):
    """Tips, channel prices, subscriptions and their charges (``store.creators``, SPEC.md
    15.12-15.14). Each posting is ONE transaction with its receipt, like the ledger's."""

    async def post_tip(self, t: NewTip, sign: CreatorSigner) -> tuple[F.CreatorReceipt, bool]:
        """Tipper -> the channel's owner, the post's totals counted; ``(receipt, replay)``.
        ``NotFound`` (no channel, or no live post), ``Invalid`` (``to`` is not the owner),
        ``Conflict`` (the id was used for another intent), ``Expired``, ``OverLimit``,
        ``InsufficientFunds``."""

    async def set_channel_price(
        self, channel: int, owner: int, price: Price | None, now: int
    ) -> None:
        """``Forbidden`` unless ``owner`` owns it; ``NotFound`` without the channel."""

    async def channel_price(self, channel: int) -> tuple[int, Price | None]:
        """``(owner, price)``; ``NotFound`` without the channel."""

    async def subscribe(self, m: NewMandate, sign: CreatorSigner) -> Subscribed:
        """Store the mandate and charge its first period, in one transaction. Refusals as a
        tip's, plus ``PriceChanged`` and ``Conflict`` (a live mandate for the channel)."""

    async def unsubscribe(
        self, mandate_id: str, account: int, now: int
    ) -> tuple[F.SubscriptionInfo, bool]:
        """Cancel (True when it changed now); ``NotFound`` unless the subscriber's,
        ``Closed`` when lapsed or completed."""

    async def charge_due(
        self, now: int, sign: CreatorSigner, renewal: Renewal, limit: int
    ) -> list[Renewed]:
        """Charge (or mark past due, lapsed, completed) at most ``limit`` mandates due by
        ``now``, each re-checked under its lock: one charge per period however many nodes
        sweep."""

    async def subscription(self, mandate_id: str, viewer: int) -> F.SubscriptionInfo | None:
        """The mandate, for its subscriber or the channel's owner (None for anyone else)."""

    async def subscriptions(
        self, viewer: int, channel: int, after: str, limit: int
    ) -> list[F.SubscriptionInfo]:
        """``viewer``'s own mandates (``channel`` 0) or a channel's (its owner only:
        ``Forbidden``), by mandate id after ``after``."""

    async def creator_receipts(
        self, ref: str, viewer: int, after: int, limit: int
    ) -> list[F.CreatorReceipt]:
        """Receipts of tip or mandate ``ref`` whose payer or payee is ``viewer``."""

    async def post_tips(self, channel: int, seq: int) -> list[F.TipTotal]:
        """``NotFound`` without the post."""

    async def has_access(self, channel: int, account: int, now: int) -> bool:
        """An admin of ``channel``, or a period paid for it covers ``now``."""


class Store(
    AccountStore,
    ConversationStore,
    BotStore,
    MessageStore,
    CursorStore,
    KeyDirectoryStore,
    ToDeviceStore,
    LedgerStore,
    ConsentStore,
    ReportStore,
    ModerationStore,
    PushStore,
    LinkStore,
    ChannelStore,
    CreatorStore,
    ChannelModerationStore,
    TimelineStore,
    MomentStore,
    Protocol,
):
    """Everything the server stores."""

    async def open(self) -> None:
        """Connect and apply pending migrations. ``RuntimeError`` when another process holds
        an SQLite file; the driver's error when the database cannot be reached."""

    async def aclose(self) -> None:
        """Refuse new writes, commit what is queued, then close (again: nothing)."""

    async def ping(self) -> bool:
        """True when the database answers and the last commit succeeded; never raises."""

    def statistics(self) -> StoreStatistics:
        """What health and metrics report about the store; never raises."""


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    backend: str
    """``sqlite`` or ``postgresql``."""
    queued_writes: int
    """Writes waiting for the next group commit."""
    retries: int = 0
    """Batches run again after losing a race to another node (PostgreSQL)."""
