"""Payments, sans-I/O: the exact bytes a payer's device signs (transfer and red packet intents),
the bytes the server signs for every receipt, memo hashes, and receipt verification.

Every signed payload is a context string, a zero byte, then ONE msgpack array of the fields in a
fixed order, each in its shortest msgpack encoding (SPEC.md section 15.2 defines it for other
languages; ``protocol/vectors/payments.json`` pins it). The context strings differ, so a
signature for one purpose never verifies as another. Signatures are Ed25519 (the device's login
key for intents; the server's payment key for receipts).
"""

from __future__ import annotations

import re
import struct
from typing import Final

import msgspec

from chatproto import frames as F
from chatproto import kinds
from chatproto.e2e.primitives import SigningKey, sha256, verify
from chatproto.errors import SignatureError

TRANSFER_CONTEXT: Final = b"chatd-transfer-v2"
RED_PACKET_CONTEXT: Final = b"chatd-red-packet-v2"
RECEIPT_CONTEXT: Final = b"chatd-receipt-v1"
MEMO_CONTEXT: Final = b"chatd-memo-v1"
NO_MEMO: Final = bytes(32)
"""``memo_hash`` of an intent that has no memo message."""
MOVES_MONEY: Final = frozenset({"transfer", "red_packet", "claim", "refund"})
"""Receipt types that record a ledger transfer; the others change a request's state."""
SIGNED_BY_PAYER: Final = frozenset({"transfer", "red_packet"})
"""Receipt types that carry (and must match) a payer's signed intent."""
ESCROW: Final = 0
"""``payer``/``payee`` of receipts that move money into or out of red-packet escrow."""

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}", re.ASCII)
_encoder = msgspec.msgpack.Encoder()


def is_client_id(value: str) -> bool:
    """Whether ``value`` may be a client-chosen transfer, packet or request id."""
    return _ID.fullmatch(value) is not None


def signed_payload(context: bytes, fields: tuple[object, ...]) -> bytes:
    """What a payment or creator payload signs (SPEC.md 15.2): ``context``, a zero byte, then
    one msgpack array of ``fields`` in their shortest form."""
    return context + b"\x00" + _encoder.encode(fields)


# --------------------------------------------------------------------------- intents


def transfer_payload(server: str, i: F.TransferIntent) -> bytes:
    """``"chatd-transfer-v2" 0x00 msgpack([server, transfer_id, from, to, amount, currency,
    conv, memo_hash, expires_at, request_id])``: what the payer's device signs. ``server`` (the
    name its login challenge and receipts carry) binds the intent to one server: another server
    sharing account ids never accepts it."""
    return signed_payload(
        TRANSFER_CONTEXT,
        (
            server,
            i.transfer_id,
            i.payer,
            i.payee,
            i.amount,
            i.currency,
            i.conv,
            i.memo_hash,
            i.expires_at,
            i.request_id,
        ),
    )


def red_packet_payload(server: str, i: F.RedPacketIntent) -> bytes:
    """``"chatd-red-packet-v2" 0x00 msgpack([server, packet_id, from, conv, total, currency,
    shares, split, memo_hash, expires_at])``: what the sender's device signs."""
    return signed_payload(
        RED_PACKET_CONTEXT,
        (
            server,
            i.packet_id,
            i.payer,
            i.conv,
            i.total,
            i.currency,
            i.shares,
            i.split,
            i.memo_hash,
            i.expires_at,
        ),
    )


def intent_payload(server: str, i: F.TransferIntent | F.RedPacketIntent) -> bytes:
    if isinstance(i, F.TransferIntent):
        return transfer_payload(server, i)
    return red_packet_payload(server, i)


def intent_hash(server: str, i: F.TransferIntent | F.RedPacketIntent) -> bytes:
    """SHA-256 of the signed payload: the server's idempotency fingerprint of the intent (the same
    id with another hash is another intent) and what receipts commit to."""
    return sha256(intent_payload(server, i))


def sign_intent(key: SigningKey, server: str, i: F.TransferIntent | F.RedPacketIntent) -> bytes:
    return key.sign(intent_payload(server, i))


def verify_intent(
    public_key: bytes, sig: bytes, server: str, i: F.TransferIntent | F.RedPacketIntent
) -> None:
    """Raise ``SignatureError`` unless ``sig`` is ``public_key``'s over the intent for
    ``server``."""
    verify(public_key, sig, intent_payload(server, i))


def memo_hash(transfer_id: str, memo: str, nonce: bytes) -> bytes:
    """What an intent commits to about its end-to-end encrypted memo message
    (``payment.transfer``): ``NO_MEMO`` when there is no memo, else SHA-256 of
    ``"chatd-memo-v1" 0x00 || u16be-prefixed utf8(transfer_id) || u16be-prefixed nonce ||
    u16be-prefixed utf8(memo)``. The random ``nonce`` travels only inside the encrypted message,
    so the server cannot confirm a guessed memo."""
    if not memo:
        return NO_MEMO
    parts = [transfer_id.encode(), nonce, memo.encode()]
    return sha256(MEMO_CONTEXT + b"\x00" + b"".join(struct.pack(">H", len(p)) + p for p in parts))


# --------------------------------------------------------------------------- receipts


def receipt_payload(server: str, r: kinds.PaymentReceipt) -> bytes:
    """``"chatd-receipt-v1" 0x00 msgpack([server, type, ref, from, to, amount, currency, conv,
    request_id, intent_hash, posted_at, expires_at, shares, actor])``: what the server signs."""
    return signed_payload(
        RECEIPT_CONTEXT,
        (
            server,
            r.type,
            r.ref,
            r.payer,
            r.payee,
            r.amount,
            r.currency,
            r.conv,
            r.request_id,
            r.intent_hash,
            r.posted_at,
            r.expires_at,
            r.shares,
            r.actor,
        ),
    )


def sign_receipt(
    key: SigningKey, server: str, unsigned: kinds.PaymentReceipt
) -> kinds.PaymentReceipt:
    """``unsigned`` (its ``sig`` is ignored) with the server's signature."""
    return msgspec.structs.replace(unsigned, sig=key.sign(receipt_payload(server, unsigned)))


def receipt_intent(r: kinds.PaymentReceipt) -> F.TransferIntent | F.RedPacketIntent | None:
    """The payer's intent as a ``transfer``/``red_packet`` receipt repeats it (None for the
    other types)."""
    if r.type == "transfer":
        return F.TransferIntent(
            transfer_id=r.ref,
            payer=r.payer,
            payee=r.payee,
            amount=r.amount,
            currency=r.currency,
            conv=r.conv,
            memo_hash=r.memo_hash,
            expires_at=r.intent_expires_at,
            request_id=r.request_id,
        )
    if r.type == "red_packet":
        return F.RedPacketIntent(
            packet_id=r.ref,
            payer=r.payer,
            conv=r.conv,
            total=r.amount,
            currency=r.currency,
            shares=r.shares,
            split="equal" if r.split == "equal" else "random",
            memo_hash=r.memo_hash,
            expires_at=r.intent_expires_at,
        )
    return None


def verify_receipt(
    server: str,
    server_key: bytes,
    r: kinds.PaymentReceipt,
    *,
    conv: int | None = None,
    payer_key: bytes | None = None,
) -> None:
    """Check a receipt as a member's client must before showing it as money moved.

    Raises ``SignatureError`` unless: the server's signature verifies under ``server_key`` (the
    key ``get_payment_key`` returned, pinned by the client) for ``server``; the receipt belongs
    to ``conv`` (the conversation it arrived in, when given); and, for ``transfer`` and
    ``red_packet`` receipts, the repeated intent hashes to ``intent_hash`` (so the memo hash and
    payer's terms are the ones the server signed) and, when ``payer_key`` (the signing device's
    key) is given, the payer's own signature verifies too."""
    if len(r.sig) != 64:
        raise SignatureError("a receipt needs the server's signature")
    verify(server_key, r.sig, receipt_payload(server, r))
    if conv is not None and r.conv != conv:
        raise SignatureError(f"a receipt of conversation {r.conv} arrived in {conv}")
    intent = receipt_intent(r)
    if intent is None:
        return
    if r.type == "red_packet" and r.split not in ("random", "equal"):
        raise SignatureError("a red packet receipt without its split")
    if intent_hash(server, intent) != r.intent_hash:
        raise SignatureError("the receipt's intent does not match the hash the server signed")
    if payer_key is not None:
        verify(payer_key, r.payer_sig, intent_payload(server, intent))
