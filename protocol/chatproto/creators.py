"""Creators paid through the ledger, sans-I/O: the bytes a tipper's or a subscriber's device
signs, the bytes the server signs for each tip or period charge, and receipt verification
(SPEC.md 15.12-15.14; ``protocol/vectors/creators.json`` pins them).

These are new payloads with their own context strings, beside ``chatproto.payments``' (whose
bytes are unchanged): a tip intent never verifies as a transfer, a mandate never as a tip, and a
creator receipt never as a conversation's ``payment.receipt``. Same rules as 15.2: a context
string, a zero byte, one msgpack array of every field in its shortest form.
"""

from __future__ import annotations

from typing import Final

import msgspec

from chatproto import frames as F
from chatproto.e2e.primitives import SigningKey, sha256, verify
from chatproto.errors import SignatureError
from chatproto.payments import signed_payload

TIP_CONTEXT: Final = b"chatd-tip-v1"
MANDATE_CONTEXT: Final = b"chatd-mandate-v1"
CREATOR_RECEIPT_CONTEXT: Final = b"chatd-creator-receipt-v1"


def tip_payload(server: str, i: F.TipIntent) -> bytes:
    """``"chatd-tip-v1" 0x00 [server, tip_id, from, to, channel, post, amount, currency,
    expires_at]``: the post (channel, seq) is the tip's reason, bound by the signature."""
    return signed_payload(
        TIP_CONTEXT,
        (
            server,
            i.tip_id,
            i.payer,
            i.payee,
            i.channel,
            i.post,
            i.amount,
            i.currency,
            i.expires_at,
        ),
    )


def mandate_payload(server: str, i: F.MandateIntent) -> bytes:
    """``"chatd-mandate-v1" 0x00 [server, mandate_id, from, to, channel, amount, currency,
    period, periods, expires_at]``: the price the subscriber agreed to travels with the
    mandate, so a later price change never touches it."""
    return signed_payload(
        MANDATE_CONTEXT,
        (
            server,
            i.mandate_id,
            i.payer,
            i.payee,
            i.channel,
            i.amount,
            i.currency,
            i.period,
            i.periods,
            i.expires_at,
        ),
    )


Intent = F.TipIntent | F.MandateIntent


def intent_payload(server: str, i: Intent) -> bytes:
    if isinstance(i, F.TipIntent):
        return tip_payload(server, i)
    return mandate_payload(server, i)


def intent_hash(server: str, i: Intent) -> bytes:
    """SHA-256 of the signed payload: the idempotency fingerprint and what receipts commit to."""
    return sha256(intent_payload(server, i))


def sign_intent(key: SigningKey, server: str, i: Intent) -> bytes:
    return key.sign(intent_payload(server, i))


def verify_intent(public_key: bytes, sig: bytes, server: str, i: Intent) -> None:
    """``SignatureError`` unless ``sig`` is ``public_key``'s over ``i`` for ``server``."""
    verify(public_key, sig, intent_payload(server, i))


def creator_receipt_payload(server: str, r: F.CreatorReceipt) -> bytes:
    """``"chatd-creator-receipt-v1" 0x00 [server, type, ref, from, to, amount, currency,
    channel, post, n, starts, ends, intent_hash, posted_at]``: what the server signs."""
    return signed_payload(
        CREATOR_RECEIPT_CONTEXT,
        (
            server,
            r.type,
            r.ref,
            r.payer,
            r.payee,
            r.amount,
            r.currency,
            r.channel,
            r.post,
            r.n,
            r.starts,
            r.ends,
            r.intent_hash,
            r.posted_at,
        ),
    )


def sign_receipt(key: SigningKey, server: str, unsigned: F.CreatorReceipt) -> F.CreatorReceipt:
    """``unsigned`` (its ``sig`` ignored) with the server's signature."""
    return msgspec.structs.replace(
        unsigned, sig=key.sign(creator_receipt_payload(server, unsigned))
    )


def receipt_intent(r: F.CreatorReceipt) -> Intent:
    """The payer's intent as the receipt repeats it."""
    if r.type == "tip":
        return F.TipIntent(
            tip_id=r.ref,
            payer=r.payer,
            payee=r.payee,
            channel=r.channel,
            post=r.post,
            amount=r.amount,
            currency=r.currency,
            expires_at=r.intent_expires_at,
        )
    return F.MandateIntent(
        mandate_id=r.ref,
        payer=r.payer,
        payee=r.payee,
        channel=r.channel,
        amount=r.amount,
        currency=r.currency,
        period=r.period,
        periods=r.periods,
        expires_at=r.intent_expires_at,
    )


def verify_receipt(
    server: str, server_key: bytes, r: F.CreatorReceipt, *, payer_key: bytes | None = None
) -> None:
    """What the payer's and the payee's clients check before showing money as moved: the
    server's signature under its pinned payment key for ``server``; that the repeated intent
    hashes to ``intent_hash``; for a charge, that its period lies inside the mandate (``n`` in
    1 .. ``periods``, ``ends - starts`` = ``period`` seconds); and, with ``payer_key`` (the key
    of device ``device`` from the payer's signed device list), the payer's own signature, which
    the server cannot make. ``SignatureError`` otherwise."""
    if len(r.sig) != 64:
        raise SignatureError("a receipt needs the server's signature")
    verify(server_key, r.sig, creator_receipt_payload(server, r))
    if r.type == "charge":
        if not 1 <= r.n <= r.periods:
            raise SignatureError(f"charge {r.n} is outside the mandate's {r.periods} periods")
        if r.ends - r.starts != r.period * 1000 or r.post:
            raise SignatureError("the charged period is not the mandate's")
    elif r.n or r.starts or r.ends or r.period or r.periods:
        raise SignatureError("a tip carries no period")
    intent = receipt_intent(r)
    if intent_hash(server, intent) != r.intent_hash:
        raise SignatureError("the receipt's intent does not match the hash the server signed")
    if payer_key is not None:
        verify(payer_key, r.payer_sig, intent_payload(server, intent))
