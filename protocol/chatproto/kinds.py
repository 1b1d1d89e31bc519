"""The message-kind registry and the typed content of each kind.

The server routes every kind the same way: it checks the kind is registered (or ``x-`` prefixed,
for experiments) and stores the body as opaque bytes. Only clients read bodies; they encode the
content with ``encode_content`` and read it with ``decode_content``. Once end-to-end encryption
lands the body becomes ciphertext of exactly these bytes.

``system`` (membership and title changes), ``payment.receipt`` (signed payment events) and
``deleted`` (the tombstone of a message deleted for everyone) are
server-authored and never accepted from a client.
``e2e`` is registered with no ``Content`` class: its body is opaque ciphertext (``OPAQUE_KINDS``).
``withheld`` is never stored: it is the placeholder a bot reads in place of a message it is not
entitled to (SPEC.md 16.3), with an empty body.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Final, Literal

import msgspec

from chatproto.errors import ErrorCode, ProtocolError
from chatproto.limits import MAX_BODY_BYTES, MAX_ID

SeqRef = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Amount = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
Currency = Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}\Z")]
ShortText = Annotated[str, msgspec.Meta(max_length=256)]
LongText = Annotated[str, msgspec.Meta(max_length=16_000)]


class Content(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Base of every kind's content."""

    KIND: ClassVar[str] = ""


class Text(Content, kw_only=True, frozen=True):
    KIND: ClassVar[str] = "text"
    text: LongText


class Reaction(Content, kw_only=True, frozen=True):
    KIND: ClassVar[str] = "reaction"
    target: SeqRef
    emoji: Annotated[str, msgspec.Meta(min_length=1, max_length=16)]
    remove: bool = False


class Edit(Content, kw_only=True, frozen=True):
    KIND: ClassVar[str] = "edit"
    target: SeqRef
    text: LongText


class Delete(Content, kw_only=True, frozen=True):
    """A client's request to its readers to hide message ``target`` (the ciphertext stays on
    the server; ``delete_message`` erases it, SPEC.md 18.9)."""

    KIND: ClassVar[str] = "delete"
    target: SeqRef


class Deleted(Content, kw_only=True, frozen=True):
    """The tombstone the server stores in place of a message deleted for everyone (SPEC.md
    18.9): who deleted it (``by``: its sender, or an owner or admin) and when (ms). Server
    only; the row keeps the message's seq, ts, sender and device."""

    KIND: ClassVar[str] = "deleted"
    by: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID)]
    at: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


class ReadReceipt(Content, kw_only=True, frozen=True):
    """End-to-end read receipt (the server-visible cursor is the ``Receipt`` frame)."""

    KIND: ClassVar[str] = "receipt"
    up_to: SeqRef


class PaymentTransfer(Content, kw_only=True, frozen=True):
    """The payer's end-to-end encrypted note about a transfer (or a red packet: ``transfer_id``
    is then the packet id). ``payments.memo_hash(transfer_id, memo, nonce)`` is the intent's
    ``memo_hash``, so members can check this note belongs to the receipt; ``nonce`` (16 random
    bytes) keeps the server from guessing short memos from their hash."""

    KIND: ClassVar[str] = "payment.transfer"
    transfer_id: ShortText
    amount: Amount
    currency: Currency
    memo: ShortText = ""
    nonce: Annotated[bytes, msgspec.Meta(max_length=32)] = b""


class PaymentRequest(Content, kw_only=True, frozen=True):
    KIND: ClassVar[str] = "payment.request"
    request_id: ShortText
    amount: Amount
    currency: Currency
    memo: ShortText = ""


Params = dict[ShortText, str | int | bool]
"""Action parameters by name; an ``amount`` parameter is text: ``"12.50 USD"`` (SPEC.md 16.5)."""
Account = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]


class MiniappInvoke(Content, kw_only=True, frozen=True):
    """A user invokes ``action`` of the mini-app ``app`` (the bot's manifest name). Sent with
    ``send.to`` naming the bot; ``invocation_id`` is unique per invocation (retries reuse it)."""

    KIND: ClassVar[str] = "miniapp.invoke"
    invocation_id: ShortText
    app: ShortText
    action: ShortText
    params: Params = {}


class Button(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A button of a card: pressing it invokes ``action`` with ``params`` (a new invocation of
    the card's mini-app, or of ``app`` of ``bot`` when set)."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    action: ShortText
    params: Params = {}
    app: ShortText = ""
    bot: Account = 0


class MiniappResult(Content, kw_only=True, frozen=True):
    """The bot's answer to one invocation, shown as a card: ``title``, ``text``, ``image``,
    ``buttons``; ``order`` asks for a payment (the bot opened that request with
    ``request_payment``: paying it is a ``pay`` with its ``request_id``); ``error`` non-empty:
    the invocation failed and says why (the card shows it)."""

    KIND: ClassVar[str] = "miniapp.result"
    invocation_id: ShortText
    title: ShortText = ""
    text: LongText = ""
    image: ShortText = ""
    buttons: Annotated[list[Button], msgspec.Meta(max_length=16)] = []
    order: PaymentRequest | None = None
    error: ShortText = ""


class Share(Content, kw_only=True, frozen=True):
    """A card shared into any conversation: a link, an image reference, or (``app`` and
    ``action`` set) a mini-app card that opens ``action`` of ``app`` of the bot ``bot``."""

    KIND: ClassVar[str] = "share"
    title: ShortText
    text: LongText = ""
    link: ShortText = ""
    image: ShortText = ""
    bot: Account = 0
    app: ShortText = ""
    action: ShortText = ""
    params: Params = {}


class Forward(Content, kw_only=True, frozen=True):
    """A message forwarded from another conversation, with attribution: the original's inner
    ``kind`` and ``body`` (decrypted by the forwarder, encrypted again for this conversation),
    its author ``sender`` and time ``ts``; ``conv``/``seq`` name the original (0: not said)."""

    KIND: ClassVar[str] = "forward"
    sender: Account
    ts: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    kind: Annotated[str, msgspec.Meta(min_length=1, max_length=32)]
    body: Annotated[bytes, msgspec.Meta(max_length=60_000)]
    conv: Account = 0
    seq: Account = 0


ReceiptType = Literal[
    "transfer", "red_packet", "claim", "refund", "request", "declined", "cancelled", "expired"
]


class PaymentReceipt(Content, kw_only=True, frozen=True):
    """Server-authored, signed record of a payment event in a conversation's sequence.

    ``transfer``, ``red_packet``, ``claim`` and ``refund`` moved money (``payer`` -> ``payee``,
    0 = the escrow account); ``request``, ``declined``, ``cancelled`` and ``expired`` change a
    request's state (``payer`` 0 = any member). ``sig`` is the server's Ed25519 signature over
    ``payments.receipt_payload``; ``memo_hash`` .. ``payer_sig`` repeat the payer's signed intent
    so members can recompute ``intent_hash`` and check the payer's own signature."""

    KIND: ClassVar[str] = "payment.receipt"
    type: ReceiptType
    ref: ShortText
    payer: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = msgspec.field(name="from")
    payee: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = msgspec.field(name="to")
    amount: Amount
    currency: Currency
    conv: SeqRef
    request_id: ShortText = ""
    intent_hash: Annotated[bytes, msgspec.Meta(max_length=32)] = b""
    posted_at: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    expires_at: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    shares: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
    actor: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    sig: Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)]
    memo_hash: Annotated[bytes, msgspec.Meta(max_length=32)] = b""
    intent_expires_at: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    split: ShortText = ""
    device: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    payer_sig: Annotated[bytes, msgspec.Meta(max_length=64)] = b""


BlobId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{22,64}\Z")]


class Attachment(Content, kw_only=True, frozen=True):
    """A file, image or voice note (E2E.md section 14), sent only inside ``e2e`` (the outer kind
    ``attachment`` is refused: the server must never see the key, name, type or thumbnail).
    ``blob`` is the server's id of the encrypted upload; ``key`` its attachment key;
    ``digest`` SHA-256 of the padded ciphertext; ``size`` the plaintext size; ``thumbnail`` a
    small JPEG/PNG (already inside the encrypted message); ``waveform`` one byte per sample."""

    KIND: ClassVar[str] = "attachment"
    blob: BlobId
    key: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    digest: Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
    size: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
    media_type: Annotated[str, msgspec.Meta(max_length=127)] = "application/octet-stream"
    name: Annotated[str, msgspec.Meta(max_length=255)] = ""
    thumbnail: Annotated[bytes, msgspec.Meta(max_length=32_768)] = b""
    width: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 0
    height: Annotated[int, msgspec.Meta(ge=0, le=65_535)] = 0
    duration_ms: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    waveform: Annotated[bytes, msgspec.Meta(max_length=256)] = b""
    caption: Annotated[str, msgspec.Meta(max_length=4_000)] = ""


class SystemEvent(Content, kw_only=True, frozen=True):
    """Server-authored event in a conversation's sequence (sender 0)."""

    KIND: ClassVar[str] = "system"
    event: Literal[
        "created", "joined", "left", "removed", "role", "renamed", "bot_access", "deleted"
    ]
    actor: int
    account: int = 0
    role: str = ""
    title: str = ""
    access: str = ""
    """``bot_access``: the bot's new access; ``joined`` of a bot: its access from now on
    (``addressed`` or ``all``, SPEC.md 16.3); empty otherwise."""
    entry: bytes = b""
    """The signed membership-log entry of this change (E2E.md section 15), when the member who
    made it signed one: clients verify it; an empty one is a change no member signed."""
    sig: bytes = b""
    """``entry``'s signature by the acting device."""
    target: Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)] = 0
    """``deleted``: the seq of the message deleted for everyone (``account`` is its sender)."""


CONTENT_TYPES: Final[dict[str, type[Content]]] = {
    c.KIND: c
    for c in (
        Text,
        Reaction,
        Edit,
        Delete,
        Deleted,
        ReadReceipt,
        PaymentTransfer,
        PaymentRequest,
        MiniappInvoke,
        MiniappResult,
        Share,
        Forward,
        Attachment,
        SystemEvent,
        PaymentReceipt,
    )
}
WITHHELD: Final = "withheld"
"""The kind of the placeholder a bot reads in place of a message it may not see (SPEC.md 16.3):
sender 0, device 0, no cmid, empty body, the message's own seq and ts."""
OPAQUE_KINDS: Final = frozenset({"e2e", WITHHELD})
"""Registered kinds whose body is not a msgpack content map and has no ``Content`` class.

``e2e``: an end-to-end sender-key ciphertext (protocol/E2E.md); the plaintext inside it is a
``(kind, body)`` of the other kinds. ``decode_content`` refuses it: decrypt first.
``withheld``: an empty body; there is nothing to decode.
"""
KINDS: Final = frozenset(CONTENT_TYPES) | OPAQUE_KINDS
"""Every registered kind name."""
SERVER_ONLY_KINDS: Final = frozenset({"system", "payment.receipt", "deleted", WITHHELD})
"""Kinds only the server writes. ``system`` and ``payment.receipt`` reach every member, bots of
any access included; ``withheld`` is never stored."""
E2E_ONLY_KINDS: Final = frozenset({"attachment"})
"""Kinds a client may send only inside an ``e2e`` message (their content holds keys)."""
EXPERIMENTAL_PREFIX: Final = "x-"

_encoder = msgspec.msgpack.Encoder()
_decoders = {k: msgspec.msgpack.Decoder(t) for k, t in CONTENT_TYPES.items()}


def client_may_send(kind: str, *, inside_e2e: bool = False) -> bool:
    """Whether a client may send a message of ``kind`` (the server's only look at kinds);
    ``inside_e2e``: as the inner kind of an ``e2e`` message (``E2E_ONLY_KINDS`` are allowed)."""
    if kind in SERVER_ONLY_KINDS or (kind in E2E_ONLY_KINDS and not inside_e2e):
        return False
    return kind in KINDS or (kind.startswith(EXPERIMENTAL_PREFIX) and len(kind) > 2)


def encode_content(content: Content) -> tuple[str, bytes]:
    """``(kind, body)`` for a typed content."""
    body = _encoder.encode(content)
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(
            f"{content.KIND} body exceeds {MAX_BODY_BYTES} bytes", ErrorCode.INVALID
        )
    return str(content.KIND), body


def decode_content(kind: str, body: bytes) -> Content:
    """Typed content of a message body. Raises ``ProtocolError(BAD_FIELD)`` for a bad body and
    ``ProtocolError(UNKNOWN_FRAME)`` for a kind this build does not know or cannot decode
    (``e2e``: ciphertext, decrypt it first)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        if kind == WITHHELD:
            raise ProtocolError(
                "a withheld message has no content (SPEC.md 16.3)", ErrorCode.UNKNOWN_FRAME
            )
        if kind in OPAQUE_KINDS:
            raise ProtocolError(
                f"{kind} bodies are ciphertext: decrypt them (chatproto.e2e) before decoding",
                ErrorCode.UNKNOWN_FRAME,
            )
        raise ProtocolError(f"unknown kind {kind[:32]!r}", ErrorCode.UNKNOWN_FRAME)
    try:
        content: Content = decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ProtocolError(f"bad {kind} body: {exc}", ErrorCode.BAD_FIELD) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise ProtocolError(f"undecodable {kind} body: {exc}", ErrorCode.BAD_FIELD) from None
    return content
