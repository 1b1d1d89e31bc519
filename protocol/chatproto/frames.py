"""Every frame of the chatd.v1 protocol as a frozen, typed struct.

A frame on the wire is one msgpack map whose ``t`` field names its type. Client requests carry an
``id`` chosen by the client (u32, non-zero); the server's answer to a request carries ``re`` equal
to that id: either the typed result named beside each request below, or an ``Error``. Server
frames with no ``re`` (``Deliver``, ``ReceiptEvent``, ...) are pushed events.

Field names are short on purpose (they are on every frame) but never cryptic; SPEC.md documents
each with its type and limits. Unknown fields are ignored (forward compatibility); missing
required fields, wrong types and out-of-range values are ``ProtocolError(BAD_FIELD)``.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import msgspec

from chatproto import limits as L

U32 = Annotated[int, msgspec.Meta(ge=0, le=L.MAX_U32)]
ReqId = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_U32)]
Id = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_ID)]
Seq = Annotated[int, msgspec.Meta(ge=0, le=L.MAX_ID)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=L.MAX_ID)]
Handle = Annotated[
    str,
    msgspec.Meta(
        min_length=L.MIN_HANDLE_CHARS, max_length=L.MAX_HANDLE_CHARS, pattern=L.HANDLE_PATTERN
    ),
]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_NAME_CHARS)]
Title = Annotated[str, msgspec.Meta(max_length=L.MAX_TITLE_CHARS)]
Cmid = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_CMID_CHARS)]
Kind = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_KIND_CHARS)]
Body = Annotated[bytes, msgspec.Meta(max_length=L.MAX_BODY_BYTES)]
PublicKey = Annotated[
    bytes,
    msgspec.Meta(min_length=L.ED25519_PUBLIC_KEY_BYTES, max_length=L.ED25519_PUBLIC_KEY_BYTES),
]
Signature = Annotated[
    bytes,
    msgspec.Meta(min_length=L.ED25519_SIGNATURE_BYTES, max_length=L.ED25519_SIGNATURE_BYTES),
]
Nonce = Annotated[bytes, msgspec.Meta(min_length=L.NONCE_BYTES, max_length=L.NONCE_BYTES)]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_PAGE)]
ErrorText = Annotated[str, msgspec.Meta(max_length=L.MAX_ERROR_MESSAGE_CHARS)]
X25519Key = Annotated[
    bytes,
    msgspec.Meta(min_length=L.X25519_PUBLIC_KEY_BYTES, max_length=L.X25519_PUBLIC_KEY_BYTES),
]
PrekeyBytes = Annotated[
    bytes, msgspec.Meta(min_length=L.X25519_PUBLIC_KEY_BYTES, max_length=L.MAX_PREKEY_BYTES)
]
MaybeSignature = Annotated[bytes, msgspec.Meta(max_length=L.ED25519_SIGNATURE_BYTES)]
"""A signature, or empty bytes where there is nothing signed (``device_list`` version 0)."""
MaybePublicKey = Annotated[bytes, msgspec.Meta(max_length=L.ED25519_PUBLIC_KEY_BYTES)]
DeviceListBody = Annotated[bytes, msgspec.Meta(max_length=L.MAX_DEVICE_LIST_BYTES)]
ToDeviceBody = Annotated[bytes, msgspec.Meta(max_length=L.MAX_TO_DEVICE_BYTES)]
Tid = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_ID)]

PayId = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_PAY_ID_CHARS)]
"""A transfer, red packet or request id chosen by the client (the idempotency key). The server
accepts only ``[A-Za-z0-9._-]`` (``INVALID`` otherwise); receipts of server-made postings use
ids with a ``:``, which no client id has."""
OptPayId = Annotated[str, msgspec.Meta(max_length=L.MAX_PAY_ID_CHARS)]
Amount = Annotated[int, msgspec.Meta(ge=-L.MAX_ID, le=L.MAX_ID)]
"""Minor units. Signed on the wire so that a zero or negative amount reaches the server and is
refused with ``INVALID_AMOUNT`` rather than ``BAD_FIELD``."""
CurrencyCode = Annotated[str, msgspec.Meta(max_length=L.MAX_CURRENCY_CHARS)]
"""An ISO 4217 code; anything the server does not accept is ``UNKNOWN_CURRENCY``."""
Hash32 = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
ReportReason = Annotated[str, msgspec.Meta(max_length=256)]
SplitKind = Literal["random", "equal"]
AccountType = Literal["user", "bot"]
ConvKind = Literal["direct", "group", "channel"]
Role = Literal["owner", "admin", "member"]
ReceiptType = Literal["delivered", "read"]
EntryBody = Annotated[bytes, msgspec.Meta(min_length=1, max_length=L.MAX_MEMBER_ENTRY_BYTES)]
Access = Literal["addressed", "all"]
"""A bot member's access in a group or channel (SPEC.md 16.3): ``addressed`` = only messages
whose ``to`` names it (plus server messages); ``all`` = every message."""
ToList = Annotated[list[Id], msgspec.Meta(max_length=L.MAX_TO)]
"""Accounts a message is addressed to; the server refuses duplicates (``INVALID``)."""
CommandName = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_COMMAND_CHARS)]
Description = Annotated[str, msgspec.Meta(max_length=L.MAX_DESCRIPTION_CHARS)]
ParamName = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_PARAM_NAME_CHARS)]
ParamTypeName = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_PARAM_TYPE_CHARS)]
ActionName = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_ACTION_NAME_CHARS)]
AppName = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_APP_NAME_CHARS)]
ActionParamType = Literal["str", "int", "bool", "amount"]
Choice = (
    Annotated[str, msgspec.Meta(max_length=L.MAX_CHOICE_CHARS)]
    | Annotated[int, msgspec.Meta(ge=-L.MAX_ID, le=L.MAX_ID)]
)
Icon = Annotated[str, msgspec.Meta(max_length=L.MAX_ICON_CHARS)]


class Frame(msgspec.Struct, frozen=True, kw_only=True, tag_field="t", omit_defaults=True, gc=False):
    """Base of every frame; ``t`` on the wire is the subclass's ``tag``."""


# --------------------------------------------------------------------------- client -> server


class Register(Frame, tag="register", kw_only=True, frozen=True):
    """Create an account with its first device and log that device in. -> ``Welcome``.

    ``sig`` signs ``auth.login_payload(server, nonce, device_key)`` with the new device key.
    """

    id: ReqId
    handle: Handle
    name: Name
    type: AccountType = "user"
    device_key: PublicKey
    device_name: Name
    sig: Signature
    approver: Id | None = None
    """A bot's owner's device (``type: "bot"`` only): it signed ``approval``."""
    approval: Signature | None = None
    """``auth.bot_approval_payload(server, handle, device_key)`` signed by ``approver``'s key."""


class Login(Frame, tag="login", kw_only=True, frozen=True):
    """Log a registered device in by signing this connection's challenge. -> ``Welcome``."""

    id: ReqId
    device: Id
    sig: Signature


class LinkDevice(Frame, tag="link_device", kw_only=True, frozen=True):
    """Add a new device to an account and log it in. -> ``Welcome``.

    ``approval`` is made by an existing device ``approver`` of the account over
    ``auth.device_approval_payload(server, account, device_key)``; ``sig`` proves the new device
    holds its key, over this connection's challenge.
    """

    id: ReqId
    handle: Handle
    device_key: PublicKey
    device_name: Name
    approver: Id
    approval: Signature
    sig: Signature


class Lookup(Frame, tag="lookup", kw_only=True, frozen=True):
    """Find an account by handle. -> ``Account``."""

    id: ReqId
    handle: Handle


class SignedEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A membership-log entry and its signature by the acting device (E2E.md section 15)."""

    body: EntryBody
    sig: Signature


class CreateConv(Frame, tag="create_conv", kw_only=True, frozen=True):
    """Create a conversation. -> ``Conv``.

    ``direct``: exactly one other account in ``members``; asking again returns the same one.
    ``group`` and ``channel``: the creator becomes owner, ``members`` are added as members.
    """

    id: ReqId
    kind: ConvKind
    title: Title = ""
    members: Annotated[list[Id], msgspec.Meta(max_length=L.MAX_MEMBERS_PER_REQUEST)] = []
    entry: SignedEntry | None = None
    """The signed ``create`` entry that starts the membership log (SPEC.md 8.5)."""


class ListConvs(Frame, tag="list_convs", kw_only=True, frozen=True):
    """The caller's conversations with an id above ``after``, ascending. -> ``Convs`` (a page
    that fits in a frame: ``more`` says whether the next starts after its last conversation)."""

    id: ReqId
    after: Seq = 0


class GetConv(Frame, tag="get_conv", kw_only=True, frozen=True):
    """One conversation with its members. -> ``Conv``."""

    id: ReqId
    conv: Id


class ListMembers(Frame, tag="list_members", kw_only=True, frozen=True):
    """The members of ``conv`` with an account id above ``after``, ascending. -> ``Members``."""

    id: ReqId
    conv: Id
    after: Seq = 0


class Invite(Frame, tag="invite", kw_only=True, frozen=True):
    """Add an account to a group or channel (owner or admin). -> ``Ok``."""

    id: ReqId
    conv: Id
    account: Id
    entry: SignedEntry | None = None
    """The signed membership-log entry of this change (SPEC.md 8.5)."""


class Remove(Frame, tag="remove", kw_only=True, frozen=True):
    """Remove a member (owner or admin; an admin cannot remove the owner or another admin).

    -> ``Ok``.
    """

    id: ReqId
    conv: Id
    account: Id
    entry: SignedEntry | None = None
    """The signed membership-log entry of this change (SPEC.md 8.5)."""
    ban: bool = False
    """Also ban the account (SPEC.md 18.8): it cannot be added back, nor accept an earlier
    invitation, until ``unban``."""


class Unban(Frame, tag="unban", kw_only=True, frozen=True):
    """Lift a ban of ``account`` in ``conv`` (owner or admin, SPEC.md 18.8). -> ``Ok``."""

    id: ReqId
    conv: Id
    account: Id


class SetRole(Frame, tag="set_role", kw_only=True, frozen=True):
    """Make a member admin or member (owner only). -> ``Ok``."""

    id: ReqId
    conv: Id
    account: Id
    role: Literal["admin", "member"]
    entry: SignedEntry | None = None
    """The signed membership-log entry of this change (SPEC.md 8.5)."""


class Leave(Frame, tag="leave", kw_only=True, frozen=True):
    """Leave a group or channel. -> ``Ok``."""

    id: ReqId
    conv: Id
    entry: SignedEntry | None = None
    """The signed membership-log entry of this change (SPEC.md 8.5)."""


class Rename(Frame, tag="rename", kw_only=True, frozen=True):
    """Change a group's or channel's title (owner or admin). -> ``Ok``."""

    id: ReqId
    conv: Id
    title: Title


class Send(Frame, tag="send", kw_only=True, frozen=True):
    """Append a message to a conversation. -> ``Ack`` once it is durably stored.

    ``cmid`` is the idempotency key, scoped to the sending device and conversation: resending the
    same ``cmid`` with the same kind and body returns the first ``Ack`` again and stores nothing;
    the same ``cmid`` with another kind or body is refused with ``CONFLICT``.
    """

    id: ReqId
    conv: Id
    cmid: Cmid
    kind: Kind
    body: Body
    to: ToList = []
    """The accounts this message is addressed to (a command for a bot, a mention, a reply to
    its message, a mini-app invocation): clear metadata the server stores and uses only to
    decide what an ``addressed`` bot receives (SPEC.md 16.3). Unique; at most 16."""
    fc: Hash32 | None = None
    """Franking commitment (E2E.md 17): ``chatproto.franking.commit`` of the plaintext under the
    franking key inside the ciphertext. The server binds it to the sender, conv, seq and ts in
    a tag it keeps, so a recipient can later ``report`` the message (SPEC.md 18.7)."""


class DeleteMessage(Frame, tag="delete_message", kw_only=True, frozen=True):
    """Delete message ``seq`` of ``conv`` for everyone (SPEC.md 18.9): its sender, or an owner
    or admin of a group or channel. The server stores a tombstone in its place (same seq) and
    appends a ``deleted`` system message. -> ``Ok``."""

    id: ReqId
    conv: Id
    seq: Id


class Sync(Frame, tag="sync", kw_only=True, frozen=True):
    """Receive every message of ``conv`` with seq > ``after`` as ``Deliver`` frames, in order,
    then ``Synced``; from then on live ``Deliver`` frames continue with no gap and no repeat."""

    id: ReqId
    conv: Id
    after: Seq = 0


class Fetch(Frame, tag="fetch", kw_only=True, frozen=True):
    """A page of history. -> ``Messages``.

    With ``before``: the ``limit`` messages just below that seq (newest first is NOT used: the
    page is in ascending seq order). Otherwise the ``limit`` messages just above ``after``.
    """

    id: ReqId
    conv: Id
    after: Seq = 0
    before: Seq | None = None
    limit: PageLimit = 100


class Receipt(Frame, tag="receipt", kw_only=True, frozen=True):
    """Move this device's delivered or read cursor in ``conv`` forward. -> ``Ok``.

    Cursors never move back; a lower seq is accepted and changes nothing.
    """

    id: ReqId
    conv: Id
    type: ReceiptType
    seq: Seq


class Typing(Frame, tag="typing", kw_only=True, frozen=True):
    """Tell the other members you are (or stopped) typing. Ephemeral, never stored, no reply."""

    conv: Id
    on: bool = True


class GetPresence(Frame, tag="get_presence", kw_only=True, frozen=True):
    """Presence of accounts sharing a direct conversation or group with the caller.
    -> ``PresenceList`` (accounts the caller may not see are left out)."""

    id: ReqId
    accounts: Annotated[list[Id], msgspec.Meta(max_length=L.MAX_PRESENCE_QUERY)]


class SignedPrekey(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A medium-term prekey signed by the device's identity (X25519, or ML-KEM-768 for ``pq``).

    The server stores and hands it out as is; it never checks ``sig`` (E2E.md says over what).
    """

    kid: U32
    key: PrekeyBytes
    sig: Signature


class OneTimePrekey(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A single-use X25519 prekey: handed out to at most one claimer, then deleted."""

    kid: U32
    key: X25519Key


class UploadKeys(Frame, tag="upload_keys", kw_only=True, frozen=True):
    """Publish this connection's device's end-to-end keys. -> ``KeyCount``.

    ``identity_key``/``identity_sig`` replace the device's earlier ones (a different identity key
    discards the prekeys stored for the old one); a present ``signed_prekey``/``pq_prekey``
    replaces the current one; ``one_time`` prekeys are added to the pool (a kid the device already
    has is ignored). Only ever the caller's own device: there is no device field.
    """

    id: ReqId
    identity_key: X25519Key
    identity_sig: Signature
    signed_prekey: SignedPrekey | None = None
    pq_prekey: SignedPrekey | None = None
    one_time: Annotated[
        list[OneTimePrekey], msgspec.Meta(max_length=L.MAX_ONE_TIME_PER_UPLOAD)
    ] = []


class ClaimKeys(Frame, tag="claim_keys", kw_only=True, frozen=True):
    """A key bundle for every device of ``account`` that has published keys, each taking one of
    that device's one-time prekeys (if any is left). -> ``Bundles``."""

    id: ReqId
    account: Id


class PutDeviceList(Frame, tag="put_device_list", kw_only=True, frozen=True):
    """Store the caller's account's signed device list (opaque to the server). -> ``Ok``.

    ``version`` must exceed the stored one (``CONFLICT`` otherwise).
    """

    id: ReqId
    body: DeviceListBody
    sig: Signature
    master_key: PublicKey
    version: Annotated[int, msgspec.Meta(ge=1, le=L.MAX_U32)]


class GetDeviceList(Frame, tag="get_device_list", kw_only=True, frozen=True):
    """The latest signed device list of ``account``. -> ``DeviceList``."""

    id: ReqId
    account: Id


class ToDevice(Frame, tag="to_device", kw_only=True, frozen=True):
    """Queue ``body`` for one device (any account's). -> ``Ok`` once it is durably queued."""

    id: ReqId
    device: Id
    body: ToDeviceBody


class FetchToDevice(Frame, tag="fetch_to_device", kw_only=True, frozen=True):
    """The caller's device's queued items with tid > ``after``, ascending. -> ``ToDeviceBatch``."""

    id: ReqId
    after: Seq = 0
    limit: PageLimit = 100


class AckToDevice(Frame, tag="ack_to_device", kw_only=True, frozen=True):
    """Delete the caller's device's queued items with tid <= ``up_to``. -> ``Ok``."""

    id: ReqId
    up_to: Seq


class TransferIntent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What a payer's device signs to move money (``payments.transfer_payload`` gives the exact
    bytes). ``transfer_id`` is the idempotency key; ``memo_hash`` commits to the end-to-end
    encrypted ``payment.transfer`` message that carries the memo (32 zero bytes: no memo);
    ``request_id`` names the request this transfer pays ("" for none)."""

    transfer_id: PayId
    payer: Id = msgspec.field(name="from")
    payee: Id = msgspec.field(name="to")
    amount: Amount
    currency: CurrencyCode
    conv: Id
    memo_hash: Hash32
    expires_at: Millis
    request_id: OptPayId = ""


class RedPacketIntent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a sender's device signs to fund a red packet of ``total`` split into ``shares``."""

    packet_id: PayId
    payer: Id = msgspec.field(name="from")
    conv: Id
    total: Amount
    currency: CurrencyCode
    shares: Annotated[int, msgspec.Meta(ge=1, le=L.MAX_U32)]
    split: SplitKind
    memo_hash: Hash32
    expires_at: Millis


class GetPaymentKey(Frame, tag="get_payment_key", kw_only=True, frozen=True):
    """The server's payment receipt key. -> ``PaymentKey``."""

    id: ReqId


class Pay(Frame, tag="pay", kw_only=True, frozen=True):
    """Move money: ``intent`` signed by ``device`` (a device of ``intent.payer``). -> ``Posted``
    once the transfer and its receipt are committed; the same intent again returns the same
    ``Posted`` (``replay`` set) and moves nothing."""

    id: ReqId
    intent: TransferIntent
    device: Id
    sig: Signature


class RequestPayment(Frame, tag="request_payment", kw_only=True, frozen=True):
    """Ask for money in ``conv``: the caller is the payee; ``payer`` 0 lets any other member pay.
    -> ``Posted`` (a ``request`` receipt)."""

    id: ReqId
    request_id: PayId
    conv: Id
    payer: Seq = msgspec.field(default=0, name="from")
    amount: Amount
    currency: CurrencyCode
    expires_at: Millis


class DeclineRequest(Frame, tag="decline_request", kw_only=True, frozen=True):
    """The payer refuses an open request. -> ``Posted`` (a ``declined`` receipt)."""

    id: ReqId
    request_id: PayId


class CancelRequest(Frame, tag="cancel_request", kw_only=True, frozen=True):
    """The payee withdraws an open request. -> ``Posted`` (a ``cancelled`` receipt)."""

    id: ReqId
    request_id: PayId


class SendRedPacket(Frame, tag="red_packet", kw_only=True, frozen=True):
    """Fund a red packet in ``intent.conv``: the total moves to escrow at once. -> ``Posted``."""

    id: ReqId
    intent: RedPacketIntent
    device: Id
    sig: Signature


class Claim(Frame, tag="claim", kw_only=True, frozen=True):
    """Take one share of a red packet (once per account; again returns the same share).
    -> ``Posted`` (a ``claim`` receipt)."""

    id: ReqId
    packet_id: PayId


class GetBalance(Frame, tag="balance", kw_only=True, frozen=True):
    """The caller's balances ("" = every currency it holds). -> ``Balances``."""

    id: ReqId
    currency: CurrencyCode = ""


class WalletHistory(Frame, tag="wallet_history", kw_only=True, frozen=True):
    """A page of the caller's ledger entries, newest first, below entry ``before``.
    -> ``WalletEntries``."""

    id: ReqId
    currency: CurrencyCode = ""
    before: Seq | None = None
    limit: PageLimit = 100


class CommandParam(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One argument of a bot command, for clients to show usage and help typing it.
    ``type`` is a display hint (``str``, ``int``, ``bool``, ``amount``, ``date``, ...)."""

    name: ParamName
    type: ParamTypeName
    required: bool = True


class BotCommand(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A command a bot answers: users type ``/name args`` (``/name@bot_handle`` in groups)."""

    name: CommandName
    description: Description = ""
    params: Annotated[list[CommandParam], msgspec.Meta(max_length=L.MAX_PARAMS)] = []


class ActionParam(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A typed parameter of a mini-app action. ``choices``, when given, are the only values a
    client offers (strings for ``str``, integers for ``int`` and ``amount``; none for ``bool``)."""

    name: ParamName
    type: ActionParamType
    required: bool = True
    choices: Annotated[list[Choice], msgspec.Meta(max_length=L.MAX_CHOICES)] = []


class Price(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What one invocation of an action costs, in minor units of an ISO 4217 currency."""

    amount: Amount
    currency: CurrencyCode


class MiniAppAction(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """An action users invoke with a ``miniapp.invoke`` whose ``action`` is ``name``."""

    name: ActionName
    title: Name
    params: Annotated[list[ActionParam], msgspec.Meta(max_length=L.MAX_PARAMS)] = []
    price: Price | None = None


class Manifest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A bot's mini-app: ``name`` is the ``app`` of its invocations; ``title`` and ``icon`` (a
    few characters, e.g. an emoji) are for display."""

    name: AppName
    title: Title = ""
    icon: Icon = ""
    actions: Annotated[list[MiniAppAction], msgspec.Meta(max_length=L.MAX_ACTIONS)] = []


class SetBotProfile(Frame, tag="set_bot_profile", kw_only=True, frozen=True):
    """Replace the calling bot's profile: its commands and its mini-app manifest. -> ``Ok``.

    Only a bot account may call it (``FORBIDDEN``); bots call it after every login."""

    id: ReqId
    commands: Annotated[list[BotCommand], msgspec.Meta(max_length=L.MAX_BOT_COMMANDS)]
    manifest: Manifest | None = None


class GetBotProfile(Frame, tag="get_bot_profile", kw_only=True, frozen=True):
    """A bot's profile. -> ``BotProfile`` (``NOT_FOUND`` when ``account`` is not a bot)."""

    id: ReqId
    account: Id


class GetMemberLog(Frame, tag="get_member_log", kw_only=True, frozen=True):
    """A page of a conversation's signed membership log. -> ``MemberLog``."""

    id: ReqId
    conv: Id
    after: U32 = 0
    """Entries with epoch > ``after``."""
    limit: PageLimit = 100


class SetBotAccess(Frame, tag="set_bot_access", kw_only=True, frozen=True):
    """Change what a bot member of a group or channel receives (owner or admin). -> ``Ok``;
    a ``system`` message ``bot_access`` tells every member, the bot included."""

    id: ReqId
    conv: Id
    account: Id
    access: Access
    entry: SignedEntry | None = None
    """The signed membership-log entry of this change (SPEC.md 8.5)."""


# --------------------------------------------------------------------------- server -> client


class Challenge(Frame, tag="challenge", kw_only=True, frozen=True):
    """The server's first frame on every connection: sign ``nonce`` to log in."""

    server: str
    nonce: Nonce
    expires_in_ms: Millis


class Welcome(Frame, tag="welcome", kw_only=True, frozen=True):
    """The connection is authenticated as ``account``/``device``."""

    re: ReqId
    account: Id
    device: Id
    handle: Handle
    server_time: Millis


class Ok(Frame, tag="ok", kw_only=True, frozen=True):
    """The request ``re`` succeeded and has no other result."""

    re: ReqId


class Error(Frame, tag="error", kw_only=True, frozen=True):
    """Request ``re`` failed (``re`` is 0 when the bad frame had no readable id).

    ``code`` is a stable ``ErrorCode``; ``msg`` is for humans and may change.
    """

    re: U32 = 0
    code: U32
    msg: ErrorText = ""
    retry_after: Millis = 0
    """``RATE_LIMITED``: milliseconds until the same request may pass, when the server knows
    (slow mode, SPEC.md 20.9; a frame budget, 11.1); 0: not said."""


class Account(Frame, tag="account", kw_only=True, frozen=True):
    re: ReqId
    account: Id
    handle: Handle
    name: Name
    type: AccountType


class Member(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    account: Id
    role: Role
    handle: Handle
    access: Access | None = None
    """Present if and only if the member is a bot: what it receives (SPEC.md 16.3)."""


class ConvInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A conversation as its members see it. ``members`` is empty in ``Convs`` listings."""

    conv: Id
    kind: ConvKind
    title: Title
    last_seq: Seq
    role: Role
    read: Seq = 0
    """The caller's device's read cursor."""
    delivered: Seq = 0
    member_count: U32 = 0
    members: list[Member] = []
    joined: Seq = 0
    """The seq at which the caller joined: end-to-end encrypted messages before it were never
    shared with the caller's devices, so a client need not wait for their keys."""
    access: Access | None = None
    """Present if and only if the caller is a bot: its own access here (SPEC.md 16.3)."""


class Conv(Frame, tag="conv", kw_only=True, frozen=True):
    re: ReqId
    info: ConvInfo


class Convs(Frame, tag="convs", kw_only=True, frozen=True):
    re: ReqId
    convs: list[ConvInfo]
    more: bool = False
    """More conversations follow the last one: ask ``list_convs`` with ``after`` = its id."""


class Members(Frame, tag="members", kw_only=True, frozen=True):
    """Answer to ``list_members``: a page ascending by account; ``more``: more follow its last."""

    re: ReqId
    conv: Id
    members: list[Member]
    more: bool


class Ack(Frame, tag="ack", kw_only=True, frozen=True):
    """``Send`` ``re`` is durably stored as message ``seq`` of ``conv``."""

    re: ReqId
    conv: Id
    cmid: Cmid
    seq: Seq
    ts: Millis


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One stored message. ``sender``/``device`` are 0 for server-authored (``system``) messages."""

    seq: Seq
    ts: Millis
    sender: Seq
    device: Seq
    cmid: Cmid | None = None
    kind: Kind
    body: Body
    to: ToList = []
    """As sent (ascending). Empty in a ``withheld`` placeholder (SPEC.md 16.3)."""
    fc: Hash32 | None = None
    """The franking commitment the message was sent with (``Send.fc``, SPEC.md 18.7): the
    receiver checks that it opens with the franking key and plaintext it decrypted."""


class Deliver(Frame, tag="deliver", kw_only=True, frozen=True):
    """A message of ``conv``, live or replayed by ``Sync``."""

    conv: Id
    seq: Seq
    ts: Millis
    sender: Seq
    device: Seq
    cmid: Cmid | None = None
    kind: Kind
    body: Body
    to: ToList = []
    """The accounts the message is addressed to, ascending (``Send.to``)."""
    fc: Hash32 | None = None
    """The franking commitment the message was sent with (``Send.fc``, SPEC.md 18.7): the
    receiver checks that it opens with the franking key and plaintext it decrypted."""


class Synced(Frame, tag="synced", kw_only=True, frozen=True):
    """``Sync`` ``re`` is complete: every message up to ``seq`` was sent before this frame."""

    re: ReqId
    conv: Id
    seq: Seq


class Messages(Frame, tag="messages", kw_only=True, frozen=True):
    """A ``Fetch`` page, ascending by seq. ``more`` says whether the range holds more."""

    re: ReqId
    conv: Id
    messages: list[Message]
    more: bool


class ReceiptEvent(Frame, tag="receipt_event", kw_only=True, frozen=True):
    """A member device's delivered/read cursor moved."""

    conv: Id
    account: Id
    device: Id
    type: ReceiptType
    seq: Seq


class TypingEvent(Frame, tag="typing_event", kw_only=True, frozen=True):
    conv: Id
    account: Id
    on: bool


class PresenceEvent(Frame, tag="presence", kw_only=True, frozen=True):
    """``account`` came online or went offline. ``last_seen`` is ms since the epoch (0 = never)."""

    account: Id
    online: bool
    last_seen: Millis


class PresenceInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    account: Id
    online: bool
    last_seen: Millis


class PresenceList(Frame, tag="presence_list", kw_only=True, frozen=True):
    re: ReqId
    presence: list[PresenceInfo]


class KeyCount(Frame, tag="key_count", kw_only=True, frozen=True):
    """Answer to ``upload_keys``: the device's unclaimed one-time prekeys after the upload."""

    re: ReqId
    one_time: U32


class Bundle(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a claimer needs to start a session with one device.

    ``signing_key`` is the device's registered Ed25519 login key (the one its ``identity_sig``
    verifies under); ``one_time`` is absent when the device's pool is empty.
    """

    device: Id
    signing_key: PublicKey
    identity_key: X25519Key
    identity_sig: Signature
    signed_prekey: SignedPrekey | None = None
    pq_prekey: SignedPrekey | None = None
    one_time: OneTimePrekey | None = None


class Bundles(Frame, tag="bundles", kw_only=True, frozen=True):
    """Answer to ``claim_keys``, one bundle per device, ascending by device id."""

    re: ReqId
    account: Id
    bundles: list[Bundle]


class DeviceList(Frame, tag="device_list", kw_only=True, frozen=True):
    """Answer to ``get_device_list``. Version 0 with empty bytes: the account stored none."""

    re: ReqId
    account: Id
    version: U32
    body: DeviceListBody
    sig: MaybeSignature
    master_key: MaybePublicKey


class DeviceListChanged(Frame, tag="device_list_changed", kw_only=True, frozen=True):
    """``account`` stored device list ``version`` (fetch it with ``get_device_list``)."""

    account: Id
    version: U32


class Resync(Frame, tag="resync", kw_only=True, frozen=True):
    """The server may have missed live messages for this connection (its node lost the broker
    for a while): sync every conversation from your cursors now. No fields."""


class ToDeviceEvent(Frame, tag="to_device_event", kw_only=True, frozen=True):
    """A to-device item, pushed live to the target device's connections. ``tid`` is assigned by
    the server, increasing per target device; the item stays queued until acknowledged."""

    tid: Tid
    sender: Id
    device: Id
    body: ToDeviceBody


class ToDeviceItem(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One queued to-device item in a ``ToDeviceBatch`` (fields as in ``ToDeviceEvent``)."""

    tid: Tid
    sender: Id
    device: Id
    body: ToDeviceBody


class ToDeviceBatch(Frame, tag="to_device_batch", kw_only=True, frozen=True):
    """Answer to ``fetch_to_device``: ascending tid; ``more`` says more items are queued."""

    re: ReqId
    events: list[ToDeviceItem]
    more: bool


class PaymentKey(Frame, tag="payment_key", kw_only=True, frozen=True):
    """The Ed25519 public key that signs every payment receipt of ``server``."""

    re: ReqId
    server: str
    key: PublicKey


class Posted(Frame, tag="posted", kw_only=True, frozen=True):
    """A payment request is committed: its receipt is message ``seq`` of ``conv`` and ``body``
    is that message's body (a ``payment.receipt``). ``replay``: it had been committed before
    (a retry), nothing moved this time."""

    re: ReqId
    conv: Id
    seq: Seq
    ts: Millis
    body: Body
    replay: bool = False


class BalanceInfo(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    currency: CurrencyCode
    amount: Amount


class Balances(Frame, tag="balances", kw_only=True, frozen=True):
    """Answer to ``balance``, ascending by currency."""

    re: ReqId
    balances: list[BalanceInfo]


class WalletEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One ledger entry of the caller's wallet: ``amount`` is signed (a debit is negative) and
    ``balance`` the wallet's balance right after it."""

    entry: Id
    ref: str
    type: str
    currency: CurrencyCode
    amount: Amount
    balance: Amount
    counterparty: Seq
    """The other side's account; 0 for the system accounts (issuance, escrow)."""
    conv: Seq
    posted_at: Millis


class WalletEntries(Frame, tag="wallet_entries", kw_only=True, frozen=True):
    """Answer to ``wallet_history``: newest first; ``more`` says older entries exist."""

    re: ReqId
    entries: list[WalletEntry]
    more: bool


class BotProfile(Frame, tag="bot_profile", kw_only=True, frozen=True):
    """Answer to ``get_bot_profile``: the bot's last ``set_bot_profile`` (``updated_at`` 0 and
    no commands: it never set one)."""

    re: ReqId
    account: Id
    commands: list[BotCommand]
    manifest: Manifest | None = None
    updated_at: Millis = 0


class LogEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One stored membership-log entry: ``seq`` is its system message's (0: none)."""

    epoch: U32
    seq: Seq
    body: EntryBody
    sig: Signature


class MemberLog(Frame, tag="member_log", kw_only=True, frozen=True):
    """Answer to ``get_member_log``: entries ascending by epoch."""

    re: ReqId
    conv: Id
    entries: list[LogEntry]
    more: bool


BlobId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{22,64}\Z")]
BlobSize = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_ID)]


class UploadToken(Frame, tag="upload_token", kw_only=True, frozen=True):
    """Ask to upload one blob of ``size`` bytes (the padded ciphertext, E2E.md 14) for
    ``conv`` (the caller must be a member). -> ``MediaToken``. Size and quotas are checked now,
    before a byte is sent (SPEC.md 17). With ``blob``: a new token for the caller's own
    unfinished upload of that blob (its token expired), nothing reserved again."""

    id: ReqId
    conv: Id
    size: BlobSize
    blob: Annotated[str, msgspec.Meta(pattern=r"^([A-Za-z0-9_-]{22,64})?\Z")] = ""


class DownloadToken(Frame, tag="download_token", kw_only=True, frozen=True):
    """Ask to download ``blob``. -> ``MediaToken``, or ``NOT_FOUND`` when the blob does not
    exist, is not complete, or is not attached to a conversation the caller is a member of
    (indistinguishable)."""

    id: ReqId
    blob: BlobId


class AttachBlob(Frame, tag="attach_blob", kw_only=True, frozen=True):
    """Say that message ``seq`` of ``conv`` (the caller's own) references ``blob`` (which the
    caller may download), or with ``seq`` 0 that members of ``conv`` may download it (before a
    forward is sent). -> ``Ok``. A blob no stored message references is deleted after its
    grace period (SPEC.md 17.5)."""

    id: ReqId
    conv: Id
    blob: BlobId
    seq: Seq = 0


class DetachBlob(Frame, tag="detach_blob", kw_only=True, frozen=True):
    """Message ``seq`` of ``conv`` (the caller's own) no longer references ``blob``: its author
    deleted it for everyone. -> ``Ok``. A blob left with no reference is deleted by the next
    sweep after its grace period (SPEC.md 17.5)."""

    id: ReqId
    conv: Id
    seq: Id
    blob: BlobId


class MediaToken(Frame, tag="media_token", kw_only=True, frozen=True):
    """Answer to ``upload_token`` / ``download_token``: a short-lived bearer ``token`` for the
    HTTP requests on ``path`` (SPEC.md 17), valid until ``expires`` (Unix ms)."""

    re: ReqId
    blob: BlobId
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    path: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    expires: Millis


# --------------------------------------------------------------------------- consent (SPEC.md 18)

PrivacySetting = Literal["everyone", "contacts", "nobody"]
"""Who a privacy setting lets in: anyone, the account's contacts, or nobody (SPEC.md 18.1)."""
Answer = Literal["accept", "delete", "block"]
ContactList = Literal["contacts", "blocked"]


class ListRequests(Frame, tag="list_requests", kw_only=True, frozen=True):
    """The caller's pending message requests and invitations, ascending by conversation,
    those after conversation ``after``. -> ``Requests``."""

    id: ReqId
    after: Seq = 0
    limit: PageLimit = 50


class AnswerRequest(Frame, tag="answer_request", kw_only=True, frozen=True):
    """Accept, delete or block a pending request or invitation of ``conv``. -> ``Ok``."""

    id: ReqId
    conv: Id
    answer: Answer


class ListAnswers(Frame, tag="list_answers", kw_only=True, frozen=True):
    """The answers to the caller's invitations it has yet to act on (SPEC.md 18.3): accepted
    ones waiting for its signed ``invite``, declines not dismissed; ascending by (``conv``,
    ``account``), those after (``after``, ``after_account``). -> ``Answers``."""

    id: ReqId
    after: Seq = 0
    after_account: Seq = 0
    limit: PageLimit = 50


class DismissAnswer(Frame, tag="dismiss_answer", kw_only=True, frozen=True):
    """The caller was told that ``account`` declined its invitation to ``conv``: the server
    stops keeping it (SPEC.md 18.3). -> ``Ok`` (nothing to dismiss: ``Ok`` as well)."""

    id: ReqId
    conv: Id
    account: Id


class Report(Frame, tag="report", kw_only=True, frozen=True):
    """Report message ``seq`` of ``conv`` to the operator, revealing its franking opening
    (SPEC.md 18.7). -> ``Reported``; ``REPORT_REFUSED`` when the opening does not verify."""

    id: ReqId
    conv: Id
    seq: Id
    plaintext: Body
    """The franked plaintext (E2E.md 17): exactly the bytes the sender committed to."""
    fk: Hash32
    """The franking key, from inside the decrypted message."""
    reason: ReportReason = ""


class Reported(Frame, tag="reported", kw_only=True, frozen=True):
    """``Report`` ``re`` verified and is stored as report ``report`` for the operator; ``sender``
    is the account the server attests sent the message."""

    re: ReqId
    report: Id
    sender: Id


PushEndpoint = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_PUSH_ENDPOINT_CHARS)]
P256Point = Annotated[bytes, msgspec.Meta(min_length=65, max_length=65)]
"""An uncompressed P-256 public key (0x04, x, y): a push subscription's ``p256dh``."""
PushAuth = Annotated[bytes, msgspec.Meta(min_length=16, max_length=16)]


class GetPush(Frame, tag="get_push", kw_only=True, frozen=True):
    """The server's VAPID key and this device's push subscription (SPEC.md 21). ->
    ``PushConfig``."""

    id: ReqId


class SetPush(Frame, tag="set_push", kw_only=True, frozen=True):
    """Register (or replace) this device's Web Push subscription (SPEC.md 21). ->
    ``PushConfig``; ``PUSH_REFUSED`` when the server will not send to ``endpoint``."""

    id: ReqId
    endpoint: PushEndpoint
    """The push service URL the browser's ``PushSubscription`` names."""
    p256dh: P256Point
    auth: PushAuth
    show_conv: bool = False
    """The user allows pushes to name the conversation (never the sender, never content)."""


class ClearPush(Frame, tag="clear_push", kw_only=True, frozen=True):
    """Delete this device's push subscription, if any. -> ``Ok``."""

    id: ReqId


class PushConfig(Frame, tag="push_config", kw_only=True, frozen=True):
    """Answer to ``get_push`` / ``set_push``: ``vapid_key`` is the server's VAPID public key
    (the ``applicationServerKey`` to subscribe with; empty: push is off on this server);
    ``endpoint`` and ``show_conv`` are this device's subscription (``""``: none)."""

    re: ReqId
    vapid_key: Annotated[bytes, msgspec.Meta(max_length=65)]
    endpoint: Annotated[str, msgspec.Meta(max_length=L.MAX_PUSH_ENDPOINT_CHARS)] = ""
    show_conv: bool = False


class Block(Frame, tag="block", kw_only=True, frozen=True):
    """Block ``account``: it can no longer reach, add or watch the caller. -> ``Ok``."""

    id: ReqId
    account: Id


class Unblock(Frame, tag="unblock", kw_only=True, frozen=True):
    """Undo ``block``. -> ``Ok``."""

    id: ReqId
    account: Id


class ListContacts(Frame, tag="list_contacts", kw_only=True, frozen=True):
    """The caller's contacts (or the accounts it blocked), ascending by account, those after
    account ``after``. -> ``Contacts``."""

    id: ReqId
    which: ContactList = "contacts"
    after: Seq = 0
    limit: PageLimit = 100


class SetPrivacy(Frame, tag="set_privacy", kw_only=True, frozen=True):
    """Change the caller's privacy settings; an absent field keeps its value. -> ``Privacy``."""

    id: ReqId
    add_me: PrivacySetting | None = None
    presence: PrivacySetting | None = None
    last_seen: PrivacySetting | None = None
    find_me: PrivacySetting | None = None
    """Who may find the caller by its handle (``lookup``)."""


class GetPrivacy(Frame, tag="get_privacy", kw_only=True, frozen=True):
    """The caller's privacy settings. -> ``Privacy``."""

    id: ReqId


class RequestInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One pending request: a direct conversation from a non-contact, or an invitation."""

    conv: Id
    kind: ConvKind
    sender: Id
    """Who asked: the direct conversation's other member, or the inviter."""
    handle: Handle
    """The sender's handle."""
    at: Millis
    title: Title = ""
    last_seq: Seq = 0
    """The conversation's last seq when listed (a direct request's messages can be fetched)."""


class Requests(Frame, tag="requests", kw_only=True, frozen=True):
    """Answer to ``list_requests``; ``more``: more requests follow the last one."""

    re: ReqId
    requests: list[RequestInfo]
    more: bool


class AnswerInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One answer to an invitation of the caller's (``list_answers``)."""

    conv: Id
    account: Id
    """The invitee."""
    handle: Handle
    """The invitee's handle."""
    answer: Literal["accept", "decline"]


class Answers(Frame, tag="answers", kw_only=True, frozen=True):
    """Answer to ``list_answers``; ``more``: more answers follow the last one."""

    re: ReqId
    answers: list[AnswerInfo]
    more: bool


class Contacts(Frame, tag="contacts", kw_only=True, frozen=True):
    """Answer to ``list_contacts``; ``more``: more accounts follow the last one."""

    re: ReqId
    accounts: list[Id]
    more: bool


class Privacy(Frame, tag="privacy", kw_only=True, frozen=True):
    """The caller's privacy settings (answer to ``set_privacy`` and ``get_privacy``)."""

    re: ReqId
    add_me: PrivacySetting
    presence: PrivacySetting
    last_seen: PrivacySetting
    find_me: PrivacySetting = "everyone"
    """Absent on the wire when ``everyone`` (the default)."""


class RequestEvent(Frame, tag="request_event", kw_only=True, frozen=True):
    """Pushed to the target's connections when a request or invitation reaches it."""

    request: RequestInfo


class InvitationAnswered(Frame, tag="invitation_answered", kw_only=True, frozen=True):
    """Pushed to the inviter's connections when ``account`` answers its invitation to ``conv``
    (SPEC.md 18.3): ``accept`` (joined; or, with a signed log, waiting for an owner's or
    admin's signed ``invite``) or ``decline``. A block is never told."""

    conv: Id
    account: Id
    handle: Handle
    """The invitee's handle."""
    answer: Literal["accept", "decline"]
    joined: bool
    """True: a member now; False (accepted, signed log): an owner or admin must ``invite`` it."""


# --------------------------------------------------------------------------- invite links (SPEC.md 19)

LinkToken = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_LINK_CHARS)]
"""An invite link as a user pastes it: ``chatd://join/<token>`` or the bare token (SPEC.md 19.1);
anything malformed reaches the server and is answered ``LINK_INVALID``."""
LinkName = Annotated[str, msgspec.Meta(max_length=L.MAX_LINK_NAME_CHARS)]


class CreateLink(Frame, tag="create_link", kw_only=True, frozen=True):
    """Make an invite link to group or channel ``conv`` (owner or admin). -> ``Link``."""

    id: ReqId
    conv: Id
    name: LinkName = ""
    """Shown to admins only (``list_links``), never to whoever holds the link."""
    expires_in: Millis = 0
    """The link stops working this many ms after it is made (server clock); 0: never."""
    max_uses: U32 = 0
    """At most this many joins (or join requests) through it; 0: no limit."""
    approval: bool = False
    """A join through it is a join request an owner or admin approves (``answer_join``)."""


class ListLinks(Frame, tag="list_links", kw_only=True, frozen=True):
    """The invite links of ``conv`` (owner or admin), ascending by link id, those after
    ``after``. -> ``Links``."""

    id: ReqId
    conv: Id
    after: Seq = 0
    limit: PageLimit = 50


class RevokeLink(Frame, tag="revoke_link", kw_only=True, frozen=True):
    """Revoke invite link ``link`` of ``conv`` (owner or admin): it stops working at once, on
    every node. -> ``Ok``."""

    id: ReqId
    conv: Id
    link: Id


class PreviewLink(Frame, tag="preview_link", kw_only=True, frozen=True):
    """What an invite link leads to (anyone holding it). -> ``LinkPreview``."""

    id: ReqId
    token: LinkToken


class JoinLink(Frame, tag="join_link", kw_only=True, frozen=True):
    """Join through an invite link. -> ``Conv`` (joined, or already a member) or
    ``JoinRequested`` (an owner or admin must approve)."""

    id: ReqId
    token: LinkToken


class ListJoinRequests(Frame, tag="list_join_requests", kw_only=True, frozen=True):
    """Pending join requests of ``conv`` (owner or admin), ascending by account, those after
    ``after``. -> ``JoinRequests``."""

    id: ReqId
    conv: Id
    after: Seq = 0
    limit: PageLimit = 50


class AnswerJoin(Frame, tag="answer_join", kw_only=True, frozen=True):
    """Approve (the account joins as if invited by the caller) or decline ``account``'s join
    request of ``conv`` (owner or admin). -> ``Ok``."""

    id: ReqId
    conv: Id
    account: Id
    approve: bool
    entry: SignedEntry | None = None
    """Approving in a conversation with a membership log: the signed ``add`` (SPEC.md 8.5)."""


class CancelJoin(Frame, tag="cancel_join", kw_only=True, frozen=True):
    """Withdraw the caller's pending join request of ``conv``. -> ``Ok``."""

    id: ReqId
    conv: Id


class LinkInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One invite link as its conversation's owners and admins see it."""

    link: Id
    conv: Id
    url: LinkToken
    """The shareable form, ``chatd://join/<token>``."""
    creator: Id
    created: Millis
    name: LinkName = ""
    expires: Millis = 0
    """When it stops working (Unix ms, server clock); 0: never."""
    max_uses: U32 = 0
    uses: U32 = 0
    """Joins and join requests made through it so far."""
    approval: bool = False
    revoked: Millis = 0
    """When it was revoked; 0: it was not."""


class Link(Frame, tag="link", kw_only=True, frozen=True):
    """Answer to ``create_link``."""

    re: ReqId
    link: LinkInfo


class Links(Frame, tag="links", kw_only=True, frozen=True):
    """Answer to ``list_links``; ``more``: more links follow the last one."""

    re: ReqId
    links: list[LinkInfo]
    more: bool


class LinkPreview(Frame, tag="link_preview", kw_only=True, frozen=True):
    """Answer to ``preview_link``: what a user needs to decide, nothing more (no members, no
    conversation id)."""

    re: ReqId
    kind: ConvKind
    title: Title
    member_count: U32
    approval: bool = False
    """Joining makes a join request (the link asks for approval, or the conversation has a
    signed membership log, SPEC.md 19.4)."""


class JoinRequested(Frame, tag="join_requested", kw_only=True, frozen=True):
    """Answer to ``join_link``: a join request is pending; the account joins when an owner or
    admin approves it (its connections then get the conversation's ``joined`` message)."""

    re: ReqId
    conv: Id
    """The conversation asked for (``cancel_join`` names it)."""


class JoinRequestInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One pending join request."""

    account: Id
    handle: Handle
    at: Millis
    link: Id
    """The invite link it came through."""


class JoinRequests(Frame, tag="join_requests", kw_only=True, frozen=True):
    """Answer to ``list_join_requests``; ``more``: more requests follow the last one."""

    re: ReqId
    conv: Id
    requests: list[JoinRequestInfo]
    more: bool


class JoinRequestEvent(Frame, tag="join_request_event", kw_only=True, frozen=True):
    """Pushed to the owners' and admins' connections when a join request of ``conv`` arrives."""

    conv: Id
    request: JoinRequestInfo


# --------------------------------------------------------------------------- public channels
# SPEC.md 20: public channels found by handle or directory search, followed without an invite,
# and posts signed by the publisher's device over ``chatproto.posts.post_payload``.

SearchQuery = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_SEARCH_CHARS)]
SearchCursor = Annotated[str, msgspec.Meta(max_length=L.MAX_SEARCH_CHARS)]
"""Where the next page of a directory search starts: opaque, passed back as it came."""
PostKind = Annotated[str, msgspec.Meta(min_length=1, max_length=L.MAX_KIND_CHARS)]
Ver = Annotated[int, msgspec.Meta(ge=0, le=L.MAX_U32)]


class ChannelInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A public channel as anyone sees it; ``following``: the caller follows it."""

    channel: Id
    handle: Handle
    title: Title
    about: Description = ""
    owner: Id
    followers: Seq = 0
    last_seq: Seq = 0
    following: bool = False
    slow_mode: U32 = 0
    """Seconds a non-admin waits between two comments in the channel (0: off, SPEC.md 20.9)."""


class Post(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Version ``ver`` of post ``seq`` of ``channel``, as its publisher's device ``device`` of
    account ``author`` signed it (``sig`` over ``chatproto.posts.post_payload``). A ``kind`` of
    ``deleted`` with empty content is the post's signed tombstone."""

    channel: Id
    seq: Id
    ver: Ver = 0
    ts: Millis
    author: Id
    device: Id
    kind: PostKind
    content: Body = b""
    sig: Signature
    paid: bool = False
    """For subscribers only (SPEC.md 15.14): signed over ``post_payload`` v2, which covers it."""
    locked: bool = False
    """A paid post shown to a reader without access: ``content`` withheld (empty), so ``sig``
    cannot verify; never set by a publisher."""
    views: Seq = 0
    """How many accounts viewed the post (``get_posts``; SPEC.md 20.9). Not signed: the
    server's count, not the publisher's word."""


class CreateChannel(Frame, tag="create_channel", kw_only=True, frozen=True):
    """Create a public channel owned (and administered) by the caller. -> ``ChannelAnswer``;
    ``HANDLE_TAKEN`` when its handle or a lookalike is another channel's."""

    id: ReqId
    handle: Handle
    title: Name
    about: Description = ""


class FindChannel(Frame, tag="find_channel", kw_only=True, frozen=True):
    """A public channel by handle. -> ``ChannelAnswer``; ``NOT_FOUND``."""

    id: ReqId
    handle: Handle


class SearchChannels(Frame, tag="search_channels", kw_only=True, frozen=True):
    """The directory: channels whose handle, title or description has a word starting with each
    word of ``query``, after the cursor ``after`` (a ``ChannelList.next``; "" for the first
    page). -> ``ChannelList``."""

    id: ReqId
    query: SearchQuery
    after: SearchCursor = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=L.MAX_SEARCH_PAGE)] = 20


class Follow(Frame, tag="follow", kw_only=True, frozen=True):
    """Follow a public channel (no invite): its new posts are pushed to the caller's
    connections. -> ``ChannelAnswer``."""

    id: ReqId
    channel: Id


class Unfollow(Frame, tag="unfollow", kw_only=True, frozen=True):
    """Stop following. -> ``ChannelAnswer``."""

    id: ReqId
    channel: Id


class SetChannelAdmin(Frame, tag="set_channel_admin", kw_only=True, frozen=True):
    """The owner lets ``account`` publish in ``channel`` (``admin`` true) or not. -> ``Ok``."""

    id: ReqId
    channel: Id
    account: Id
    admin: bool = True


class Publish(Frame, tag="publish", kw_only=True, frozen=True):
    """An admin publishes post ``seq`` (``ver`` 0: the channel's next seq), or version ``ver``
    of it (an edit; kind ``deleted``: its tombstone), signed by the connection's device.
    -> ``Published``; ``CONFLICT`` when ``seq``/``ver`` is not the next one."""

    id: ReqId
    channel: Id
    seq: Id
    ver: Ver = 0
    ts: Millis
    kind: PostKind
    content: Body = b""
    sig: Signature
    paid: bool = False


class GetPosts(Frame, tag="get_posts", kw_only=True, frozen=True):
    """The newest posts of a public channel with a seq below ``before`` (0: the newest), newest
    first; anyone may read them. -> ``Posts``."""

    id: ReqId
    channel: Id
    before: Seq = 0
    limit: PageLimit = 20


class GetPostHistory(Frame, tag="get_post_history", kw_only=True, frozen=True):
    """Every version of post ``seq``, oldest first. -> ``Posts``."""

    id: ReqId
    channel: Id
    seq: Id


Emoji = Annotated[str, msgspec.Meta(min_length=1, max_length=16)]


class CommentInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Comment ``comment`` under post ``seq``: ``reply_to`` is the comment it answers (0: the
    post itself); a deleted comment keeps its place with no content and ``deleted`` true."""

    comment: Id
    author: Id
    handle: Handle
    ts: Millis
    reply_to: Seq = 0
    kind: PostKind
    content: Body = b""
    deleted: bool = False


class ReactionCount(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    emoji: Emoji
    count: Seq
    mine: bool = False


class Comment(Frame, tag="comment", kw_only=True, frozen=True):
    """Comment on post ``seq`` of a public channel, or answer comment ``reply_to`` under it.
    -> ``Commented``."""

    id: ReqId
    channel: Id
    seq: Id
    reply_to: Seq = 0
    kind: PostKind
    content: Body


class GetComments(Frame, tag="get_comments", kw_only=True, frozen=True):
    """The comments of post ``seq`` with an id above ``after``, oldest first. -> ``Comments``."""

    id: ReqId
    channel: Id
    seq: Id
    after: Seq = 0
    limit: PageLimit = 50


class DeleteComment(Frame, tag="delete_comment", kw_only=True, frozen=True):
    """Delete a comment: its author, or an admin of the channel (moderation). -> ``Ok``."""

    id: ReqId
    channel: Id
    comment: Id


class ReactPost(Frame, tag="react_post", kw_only=True, frozen=True):
    """Add (or with ``remove``, take back) the caller's reaction ``emoji`` to post ``seq``.
    -> ``Reactions``."""

    id: ReqId
    channel: Id
    seq: Id
    emoji: Emoji
    remove: bool = False


class GetReactions(Frame, tag="get_reactions", kw_only=True, frozen=True):
    """The reaction counts of post ``seq``. -> ``Reactions``."""

    id: ReqId
    channel: Id
    seq: Id


# SPEC.md 20.9: view counts that do not say who viewed; bans from comments and slow mode.

ViewSeqs = Annotated[list[Id], msgspec.Meta(min_length=1, max_length=L.MAX_VIEW_SEQS)]
SlowMode = Annotated[int, msgspec.Meta(ge=0, le=L.MAX_SLOW_MODE)]


class ViewPosts(Frame, tag="view_posts", kw_only=True, frozen=True):
    """The caller's client showed posts ``seqs`` of ``channel``: each counts the account once,
    however often it is reported. -> ``Ok``."""

    id: ReqId
    channel: Id
    seqs: ViewSeqs


class BanCommenter(Frame, tag="ban_commenter", kw_only=True, frozen=True):
    """An admin bans ``account`` from commenting (and reacting) in ``channel`` until ``until``
    (ms; 0: until lifted), deleting its comments there with ``delete_comments``. -> ``Ok``."""

    id: ReqId
    channel: Id
    account: Id
    until: Millis = 0
    delete_comments: bool = False


class UnbanCommenter(Frame, tag="unban_commenter", kw_only=True, frozen=True):
    """An admin lifts ``account``'s ban from ``channel``'s comments. -> ``Ok``."""

    id: ReqId
    channel: Id
    account: Id


class ListCommentBans(Frame, tag="list_comment_bans", kw_only=True, frozen=True):
    """An admin lists the bans in force, by account id above ``after``. -> ``CommentBans``."""

    id: ReqId
    channel: Id
    after: Seq = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=L.MAX_BAN_PAGE)] = 50


class SetSlowMode(Frame, tag="set_slow_mode", kw_only=True, frozen=True):
    """An admin sets ``channel``'s slow mode (0: off). -> ``ChannelAnswer``."""

    id: ReqId
    channel: Id
    seconds: SlowMode


class CommentBan(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """``account`` (``handle``) may not comment until ``until`` (0: until lifted); ``by`` is the
    admin who banned it, at ``ts``."""

    account: Id
    handle: Handle
    until: Millis = 0
    by: Id
    ts: Millis


class CommentBans(Frame, tag="comment_bans", kw_only=True, frozen=True):
    """Bans in force, by account id; ``next`` is the ``after`` of the next page (0: no more)."""

    re: ReqId
    channel: Id
    items: list[CommentBan]
    next: Seq = 0


class ChannelAnswer(Frame, tag="channel", kw_only=True, frozen=True):
    re: ReqId
    info: ChannelInfo


class ChannelList(Frame, tag="channels", kw_only=True, frozen=True):
    """A page of the directory; ``next`` is the ``after`` of the next page ("": no more)."""

    re: ReqId
    items: list[ChannelInfo]
    next: SearchCursor = ""


class Published(Frame, tag="published", kw_only=True, frozen=True):
    re: ReqId
    channel: Id
    seq: Id
    ver: Ver = 0


class Posts(Frame, tag="posts", kw_only=True, frozen=True):
    """Posts of ``channel``; ``next`` is the ``before`` of the next older page (0: no more)."""

    re: ReqId
    channel: Id
    items: list[Post]
    next: Seq = 0


class Commented(Frame, tag="commented", kw_only=True, frozen=True):
    re: ReqId
    channel: Id
    seq: Id
    comment: CommentInfo


class Comments(Frame, tag="comments", kw_only=True, frozen=True):
    """Comments of post ``seq``, oldest first; ``next`` is the ``after`` of the next page (0:
    no more); ``total`` counts the post's comments that are not deleted."""

    re: ReqId
    channel: Id
    seq: Id
    items: list[CommentInfo]
    next: Seq = 0
    total: Seq = 0


class Reactions(Frame, tag="reactions", kw_only=True, frozen=True):
    """Post ``seq``'s reactions as counts per emoji (most first), ``mine`` marking the caller's."""

    re: ReqId
    channel: Id
    seq: Id
    counts: list[ReactionCount]


class CommentEvent(Frame, tag="comment_event", kw_only=True, frozen=True):
    """A new comment under post ``seq``, pushed to the connections watching the post's thread
    (``watch_post``, SPEC.md 20.7), not to the commenting connection."""

    channel: Id
    seq: Id
    comment: CommentInfo


class ReactionsEvent(Frame, tag="reactions_event", kw_only=True, frozen=True):
    """Post ``seq``'s reaction counts after recent changes, pushed to the connections watching
    the post's thread (``watch_post``, SPEC.md 20.7) at most once a second per post and node,
    however many reactions came meanwhile (``mine`` is never set: ask ``get_reactions``)."""

    channel: Id
    seq: Id
    counts: list[ReactionCount]


class PostEvent(Frame, tag="post_event", kw_only=True, frozen=True):
    """A post (or a new version of one), pushed as it is stored to the connections watching the
    feed of an account that follows or administers its channel, or the channel itself
    (SPEC.md 20.7)."""

    post: Post


# --------------------------------------------------------------------------- Moments (SPEC.md 22)
# An account posts to its (mutual) contacts; bodies, comments and likes are ciphertexts its
# clients made for that audience (E2E.md 18): the server stores and routes opaque bytes.

MomentBody = Annotated[bytes, msgspec.Meta(min_length=1, max_length=L.MAX_MOMENT_BYTES)]
MomentCommentBody = Annotated[bytes, msgspec.Meta(max_length=L.MAX_MOMENT_COMMENT_BYTES)]
Audience = Annotated[list[Id], msgspec.Meta(max_length=L.MAX_MOMENT_AUDIENCE)]
MomentCommentKind = Literal["comment", "like"]
OptHandle = Annotated[str, msgspec.Meta(max_length=L.MAX_HANDLE_CHARS)]
OptCmid = Annotated[str, msgspec.Meta(max_length=L.MAX_CMID_CHARS)]
"""A client's id of a Moment, comment or like, unique per author ("": none): a resend with the
same one is answered with what was stored (SPEC.md 22.1, "Resends")."""


class MomentInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Moment ``moment`` of ``author``, posted at ``ts`` (the server's time): ``body`` is the
    ciphertext its author's device ``device`` made for the audience."""

    moment: Id
    author: Id
    handle: OptHandle = ""
    device: Seq = 0
    ts: Millis
    body: Body = b""


class MomentComment(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A comment or a like (``kind``) of ``author`` under ``moment``; ``reply_to`` the comment
    it answers (0: the Moment); ``body`` the ciphertext its client made."""

    comment: Id
    moment: Id
    author: Id
    handle: OptHandle = ""
    device: Seq = 0
    ts: Millis
    kind: MomentCommentKind = "comment"
    reply_to: Seq = 0
    body: Body = b""


class PostMoment(Frame, tag="post_moment", kw_only=True, frozen=True):
    """Post a Moment to ``audience`` (each a mutual contact), or with ``all`` to every mutual
    contact. -> ``MomentAnswer`` (its ``audience``: whom it was stored for). The same ``cmid``
    again (a resend): the stored Moment."""

    id: ReqId
    audience: Audience = []
    all: bool = False
    body: MomentBody
    cmid: OptCmid = ""


class GetMoment(Frame, tag="get_moment", kw_only=True, frozen=True):
    """One Moment and the part of its audience the caller may know. -> ``MomentAnswer``."""

    id: ReqId
    moment: Id


class GetMoments(Frame, tag="get_moments", kw_only=True, frozen=True):
    """The Moments the caller may see (``author`` 0) or those of ``author``, newest first,
    older than the cursor (``before_ts``, ``before``) when ``before`` is not 0. -> ``Moments``."""

    id: ReqId
    author: Seq = 0
    before_ts: Millis = 0
    before: Seq = 0
    limit: PageLimit = 20


class GetMomentComments(Frame, tag="get_moment_comments", kw_only=True, frozen=True):
    """The comments and likes of ``moment`` the caller may see with an id above ``after``,
    oldest first. -> ``MomentComments``."""

    id: ReqId
    moment: Id
    after: Seq = 0
    limit: PageLimit = 50


class CommentMoment(Frame, tag="comment_moment", kw_only=True, frozen=True):
    """Comment on ``moment`` (or answer comment ``reply_to`` under it). -> ``MomentCommented``.
    The same ``cmid`` again (a resend): the stored comment."""

    id: ReqId
    moment: Id
    reply_to: Seq = 0
    body: MomentCommentBody
    cmid: OptCmid = ""


class LikeMoment(Frame, tag="like_moment", kw_only=True, frozen=True):
    """Like ``moment`` (once; again: the first like), or with ``remove`` take the like back.
    -> ``MomentCommented`` (``Ok`` for ``remove``)."""

    id: ReqId
    moment: Id
    body: MomentCommentBody = b""
    remove: bool = False
    cmid: OptCmid = ""


class DeleteMoment(Frame, tag="delete_moment", kw_only=True, frozen=True):
    """Its author deletes a Moment, its comments and likes. -> ``Ok``."""

    id: ReqId
    moment: Id


class DeleteMomentComment(Frame, tag="delete_moment_comment", kw_only=True, frozen=True):
    """Delete a comment or like: its author, or the Moment's. -> ``Ok``."""

    id: ReqId
    moment: Id
    comment: Id


class MomentAnswer(Frame, tag="moment", kw_only=True, frozen=True):
    """A Moment, and ``audience``: all of it for its author; for anyone else the audience
    members that are its own mutual contacts, the author, and itself (SPEC.md 22.3)."""

    re: ReqId
    info: MomentInfo
    audience: list[Id] = []


class Moments(Frame, tag="moments", kw_only=True, frozen=True):
    """A page of Moments, newest first; (``next_ts``, ``next``) is the cursor of the next older
    page (``next`` 0: no more)."""

    re: ReqId
    items: list[MomentInfo]
    next_ts: Millis = 0
    next: Seq = 0


class MomentComments(Frame, tag="moment_comments", kw_only=True, frozen=True):
    """Comments and likes of ``moment``, oldest first; ``next`` is the ``after`` of the next
    page (0: no more)."""

    re: ReqId
    moment: Id
    items: list[MomentComment]
    next: Seq = 0


class MomentCommented(Frame, tag="moment_commented", kw_only=True, frozen=True):
    re: ReqId
    comment: MomentComment


class MomentEvent(Frame, tag="moment_event", kw_only=True, frozen=True):
    """A new Moment (``deleted``: the Moment was deleted, ``info`` without a body), pushed to
    the connections of every account that sees it, except the posting connection."""

    info: MomentInfo
    deleted: bool = False


class MomentCommentEvent(Frame, tag="moment_comment_event", kw_only=True, frozen=True):
    """A new comment or like (``deleted``: deleted or taken back, without a body), pushed to
    the connections of the accounts that see it under WeChat's rule (SPEC.md 22.2)."""

    comment: MomentComment
    deleted: bool = False


# --------------------------------------------------------------------------- creators
# SPEC.md 15.12-15.14: tips on public posts, paid subscriptions to a public channel (a signed
# mandate charged once per period), and their receipts, which are not conversation messages
# (a public channel has no conversation) but signed records both sides fetch.

Period = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_U32)]
"""A subscription period's length in seconds."""
Periods = Annotated[int, msgspec.Meta(ge=1, le=L.MAX_U32)]
"""How many periods a mandate may charge at most (a count, where ``Period`` is seconds: the
same bounds, two meanings)."""
CreatorReceiptType = Literal["tip", "charge"]
SubscriptionState = Literal["active", "past_due", "lapsed", "cancelled", "completed"]


class TipIntent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a tipper's device signs (``chatproto.creators.tip_payload``): ``amount`` to the
    owner ``to`` of ``channel`` for its post ``post``; ``tip_id`` is the idempotency key."""

    tip_id: PayId
    payer: Id = msgspec.field(name="from")
    payee: Id = msgspec.field(name="to")
    channel: Id
    post: Id
    amount: Amount
    currency: CurrencyCode
    expires_at: Millis


class MandateIntent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """What a subscriber's device signs (``chatproto.creators.mandate_payload``): "charge me
    ``amount`` every ``period`` seconds, for at most ``periods`` periods, for ``channel``, to its
    owner ``to``". The first period is charged at once; ``expires_at`` bounds only that."""

    mandate_id: PayId
    payer: Id = msgspec.field(name="from")
    payee: Id = msgspec.field(name="to")
    channel: Id
    amount: Amount
    currency: CurrencyCode
    period: Period
    periods: Periods
    expires_at: Millis


class CreatorReceipt(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A tip or one period's charge, signed by the server's payment key over
    ``chatproto.creators.creator_receipt_payload``, with the payer's intent repeated (its hash
    and signature) so that payer and payee can each check it."""

    type: CreatorReceiptType
    ref: PayId
    """The tip id, or the mandate id of a charge."""
    payer: Seq = msgspec.field(name="from")
    payee: Seq = msgspec.field(name="to")
    amount: Amount
    currency: CurrencyCode
    channel: Id
    post: Seq = 0
    """The tipped post's seq (0 for a charge)."""
    n: Seq = 0
    """A charge's period number, 1 .. ``periods``."""
    starts: Millis = 0
    ends: Millis = 0
    """A charge's period: access from ``starts`` until ``ends``."""
    intent_hash: Hash32
    posted_at: Millis
    sig: Signature
    intent_expires_at: Millis = 0
    period: Seq = 0
    periods: Seq = 0
    """A charge's mandate terms (with ``amount``, ``currency``, ``channel``, ``to``)."""
    device: Seq = 0
    payer_sig: MaybeSignature = b""


class SubscriptionInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A mandate and where it stands. ``paid_through``: the end of the last charged period
    (access until then); ``next_charge_at``: when the server next charges (0: never again)."""

    mandate_id: PayId
    subscriber: Id
    owner: Id
    channel: Id
    amount: Amount
    currency: CurrencyCode
    period: Period
    periods: Periods
    state: SubscriptionState
    charged: Seq = 0
    paid_through: Millis = 0
    next_charge_at: Millis = 0
    created_at: Millis


class Tip(Frame, tag="tip", kw_only=True, frozen=True):
    """Tip a post: ``intent`` signed by ``device``. -> ``Tipped``; again: the same receipt."""

    id: ReqId
    intent: TipIntent
    device: Id
    sig: Signature


class SetChannelPrice(Frame, tag="set_channel_price", kw_only=True, frozen=True):
    """The owner's price of a subscription (``amount`` 0: none). Existing mandates keep theirs.
    -> ``ChannelPrice``."""

    id: ReqId
    channel: Id
    amount: Amount = 0
    currency: CurrencyCode = ""
    period: Seq = 0


class GetChannelPrice(Frame, tag="get_channel_price", kw_only=True, frozen=True):
    id: ReqId
    channel: Id


class Subscribe(Frame, tag="subscribe", kw_only=True, frozen=True):
    """Sign a mandate for ``intent.channel`` at its current price; the first period is charged
    at once. -> ``Subscribed``; again: the same answer (``replay``)."""

    id: ReqId
    intent: MandateIntent
    device: Id
    sig: Signature


class Unsubscribe(Frame, tag="unsubscribe", kw_only=True, frozen=True):
    """The subscriber ends its mandate: no further charge; access until ``paid_through``.
    -> ``SubscriptionAnswer``."""

    id: ReqId
    mandate_id: PayId


class GetSubscription(Frame, tag="get_subscription", kw_only=True, frozen=True):
    id: ReqId
    mandate_id: PayId


class ListSubscriptions(Frame, tag="list_subscriptions", kw_only=True, frozen=True):
    """The caller's own mandates (``channel`` 0), or the mandates of a channel it owns, by
    mandate id after ``after``. -> ``Subscriptions``."""

    id: ReqId
    channel: Seq = 0
    after: OptPayId = ""
    limit: PageLimit = 50


class GetCreatorReceipts(Frame, tag="get_creator_receipts", kw_only=True, frozen=True):
    """The receipts of tip or mandate ``ref`` (a charge per period, from period ``after`` + 1),
    for its payer or payee. -> ``CreatorReceipts``."""

    id: ReqId
    ref: PayId
    after: Seq = 0
    limit: PageLimit = 50


class GetPostTips(Frame, tag="get_post_tips", kw_only=True, frozen=True):
    """A post's tip count and total per currency. -> ``PostTips``."""

    id: ReqId
    channel: Id
    seq: Id


class TipTotal(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    currency: CurrencyCode
    count: Seq
    amount: Amount


class Tipped(Frame, tag="tipped", kw_only=True, frozen=True):
    re: ReqId
    receipt: CreatorReceipt
    replay: bool = False


class ChannelPrice(Frame, tag="channel_price", kw_only=True, frozen=True):
    """A channel's subscription price; ``amount`` 0: it has none."""

    re: ReqId
    channel: Id
    owner: Id
    amount: Amount = 0
    currency: CurrencyCode = ""
    period: Seq = 0


class Subscribed(Frame, tag="subscribed", kw_only=True, frozen=True):
    re: ReqId
    subscription: SubscriptionInfo
    receipt: CreatorReceipt
    replay: bool = False


class SubscriptionAnswer(Frame, tag="subscription", kw_only=True, frozen=True):
    re: ReqId
    subscription: SubscriptionInfo


class Subscriptions(Frame, tag="subscriptions", kw_only=True, frozen=True):
    """``next``: the ``after`` of the next page ("": no more)."""

    re: ReqId
    items: list[SubscriptionInfo]
    next: OptPayId = ""


class CreatorReceipts(Frame, tag="creator_receipts", kw_only=True, frozen=True):
    """``next``: the ``after`` of the next page (0: no more)."""

    re: ReqId
    items: list[CreatorReceipt]
    next: Seq = 0


class PostTips(Frame, tag="post_tips", kw_only=True, frozen=True):
    re: ReqId
    channel: Id
    seq: Id
    totals: list[TipTotal]


class TipEvent(Frame, tag="tip_event", kw_only=True, frozen=True):
    """A tip received, pushed to the creator's connections."""

    receipt: CreatorReceipt


class SubscriptionEvent(Frame, tag="subscription_event", kw_only=True, frozen=True):
    """A mandate changed (charged, past due, lapsed, cancelled, completed), pushed to the
    subscriber's and the owner's connections; ``receipt``: the charge, if it was one."""

    subscription: SubscriptionInfo
    receipt: CreatorReceipt | None = None


# --------------------------------------------------------------------------- watching, timeline
# SPEC.md 20.7 and 20.8: what a connection watches (not stored: it ends with the connection), and
# the account's timeline merging followed channels' posts and contacts' Moments.

TimelineCursor = Annotated[str, msgspec.Meta(max_length=L.MAX_TIMELINE_CURSOR_CHARS)]
"""Where the next page of the timeline starts: opaque, passed back as it came."""


class WatchFeed(Frame, tag="watch_feed", kw_only=True, frozen=True):
    """This connection gets (``on``) or no longer gets the live posts of every channel its
    account follows or administers (the feed). -> ``Ok``."""

    id: ReqId
    on: bool = True


class WatchChannel(Frame, tag="watch_channel", kw_only=True, frozen=True):
    """This connection shows ``channel``'s page: it gets the channel's live posts, following or
    not (``on`` false: no longer). -> ``Ok``; ``NOT_FOUND``."""

    id: ReqId
    channel: Id
    on: bool = True


class WatchPost(Frame, tag="watch_post", kw_only=True, frozen=True):
    """This connection shows post ``seq``'s thread: it gets its ``comment_event`` and
    ``reactions_event`` (``on`` false: no longer). -> ``Ok``; ``NOT_FOUND``."""

    id: ReqId
    channel: Id
    seq: Id
    on: bool = True


class GetTimeline(Frame, tag="get_timeline", kw_only=True, frozen=True):
    """The account's timeline after the cursor ``before`` ("": from the newest), newest first.
    -> ``Timeline``; ``INVALID`` for a cursor this server did not make."""

    id: ReqId
    before: TimelineCursor = ""
    limit: Annotated[int, msgspec.Meta(ge=1, le=L.MAX_TIMELINE_PAGE)] = 20


class TimelineItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One item of the timeline: ``at`` is the server's time it is ordered by; exactly one of
    the others is set (``post``: the current version of a channel post; ``moment``: a Moment
    the account sees, as ``get_moments`` gives it)."""

    at: Millis
    post: Post | None = None
    moment: MomentInfo | None = None


class Timeline(Frame, tag="timeline", kw_only=True, frozen=True):
    """A page of the timeline, newest first; ``next`` is the ``before`` of the next older page
    ("": no more)."""

    re: ReqId
    items: list[TimelineItem]
    next: TimelineCursor = ""


ClientFrame = (
    Register
    | Login
    | LinkDevice
    | Lookup
    | CreateConv
    | ListConvs
    | GetConv
    | ListMembers
    | Invite
    | Remove
    | SetRole
    | Leave
    | Rename
    | Send
    | Sync
    | Fetch
    | Receipt
    | Typing
    | GetPresence
    | UploadKeys
    | ClaimKeys
    | PutDeviceList
    | GetDeviceList
    | ToDevice
    | FetchToDevice
    | AckToDevice
    | GetPaymentKey
    | Pay
    | RequestPayment
    | DeclineRequest
    | CancelRequest
    | SendRedPacket
    | Claim
    | GetBalance
    | WalletHistory
    | SetBotProfile
    | GetBotProfile
    | SetBotAccess
    | GetMemberLog
    | UploadToken
    | DownloadToken
    | AttachBlob
    | DetachBlob
    | ListRequests
    | AnswerRequest
    | ListAnswers
    | DismissAnswer
    | Block
    | Unblock
    | ListContacts
    | SetPrivacy
    | GetPrivacy
    | Report
    | Unban
    | DeleteMessage
    | GetPush
    | SetPush
    | ClearPush
    | CreateLink
    | ListLinks
    | RevokeLink
    | PreviewLink
    | JoinLink
    | ListJoinRequests
    | AnswerJoin
    | CancelJoin
    | CreateChannel
    | FindChannel
    | SearchChannels
    | Follow
    | Unfollow
    | SetChannelAdmin
    | Publish
    | GetPosts
    | GetPostHistory
    | Comment
    | GetComments
    | DeleteComment
    | ReactPost
    | GetReactions
    | Tip
    | SetChannelPrice
    | GetChannelPrice
    | Subscribe
    | Unsubscribe
    | GetSubscription
    | ListSubscriptions
    | GetCreatorReceipts
    | GetPostTips
    | ViewPosts
    | BanCommenter
    | UnbanCommenter
    | ListCommentBans
    | SetSlowMode
    | WatchFeed
    | WatchChannel
    | WatchPost
    | GetTimeline
    | PostMoment
    | GetMoment
    | GetMoments
    | GetMomentComments
    | CommentMoment
    | LikeMoment
    | DeleteMoment
    | DeleteMomentComment
)
ServerFrame = (
    Challenge
    | Welcome
    | Ok
    | Error
    | Account
    | Conv
    | Convs
    | Members
    | Ack
    | Deliver
    | Synced
    | Messages
    | ReceiptEvent
    | TypingEvent
    | PresenceEvent
    | PresenceList
    | KeyCount
    | Bundles
    | DeviceList
    | DeviceListChanged
    | Resync
    | ToDeviceEvent
    | ToDeviceBatch
    | PaymentKey
    | Posted
    | Balances
    | WalletEntries
    | BotProfile
    | MemberLog
    | MediaToken
    | Requests
    | Answers
    | Contacts
    | Privacy
    | RequestEvent
    | InvitationAnswered
    | Reported
    | PushConfig
    | Link
    | Links
    | LinkPreview
    | JoinRequested
    | JoinRequests
    | JoinRequestEvent
    | ChannelAnswer
    | ChannelList
    | Published
    | Posts
    | PostEvent
    | Commented
    | Comments
    | Reactions
    | CommentEvent
    | ReactionsEvent
    | Tipped
    | ChannelPrice
    | Subscribed
    | SubscriptionAnswer
    | Subscriptions
    | CreatorReceipts
    | PostTips
    | TipEvent
    | SubscriptionEvent
    | CommentBans
    | Timeline
    | MomentAnswer
    | Moments
    | MomentComments
    | MomentCommented
    | MomentEvent
    | MomentCommentEvent
)
AnyFrame = ClientFrame | ServerFrame

CLIENT_FRAMES: tuple[type[Frame], ...] = typing.get_args(ClientFrame)
SERVER_FRAMES: tuple[type[Frame], ...] = typing.get_args(ServerFrame)
