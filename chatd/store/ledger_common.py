"""What both ledger backends (``ledger_sqlite``, ``ledger_postgres``) build the same way: the
unsigned receipts of each posting, and the ids of server-made postings."""

from __future__ import annotations

from chatproto import kinds

from chatd.core import ledger
from chatd.store.base import NewRedPacket, NewRequest, NewTransfer

POSTING_TYPES = ("transfer", "red_packet", "claim", "refund", "mint")


def claim_id(packet_id: str, account: int) -> str:
    """The transfer id of ``account``'s claim of a packet (one per account: the id says so)."""
    return f"claim:{packet_id}:{account}"


def refund_id(packet_id: str) -> str:
    return f"refund:{packet_id}"


def transfer_receipt(t: NewTransfer) -> kinds.PaymentReceipt:
    return kinds.PaymentReceipt(
        type="transfer",
        ref=t.transfer_id,
        payer=t.payer,
        payee=t.payee,
        amount=t.amount,
        currency=t.currency,
        conv=t.conv,
        request_id=t.request_id,
        intent_hash=t.intent_hash,
        posted_at=t.now,
        actor=t.payer,
        sig=b"",
        memo_hash=t.memo_hash,
        intent_expires_at=t.intent_expires_at,
        device=t.device,
        payer_sig=t.payer_sig,
    )


def red_packet_receipt(p: NewRedPacket) -> kinds.PaymentReceipt:
    return kinds.PaymentReceipt(
        type="red_packet",
        ref=p.packet_id,
        payer=p.sender,
        payee=ledger.wire_account(ledger.ESCROW),
        amount=sum(p.shares),
        currency=p.currency,
        conv=p.conv,
        intent_hash=p.intent_hash,
        posted_at=p.now,
        expires_at=p.expires_at,
        shares=len(p.shares),
        actor=p.sender,
        sig=b"",
        memo_hash=p.memo_hash,
        intent_expires_at=p.intent_expires_at,
        split=p.split,
        device=p.device,
        payer_sig=p.payer_sig,
    )


def claim_receipt(
    p: ledger.PacketState, account: int, amount: int, now: int
) -> kinds.PaymentReceipt:
    return kinds.PaymentReceipt(
        type="claim",
        ref=p.packet_id,
        payer=ledger.wire_account(ledger.ESCROW),
        payee=account,
        amount=amount,
        currency=p.currency,
        conv=p.conv,
        posted_at=now,
        shares=p.claimed + 1,
        actor=account,
        sig=b"",
    )


def refund_receipt(p: ledger.PacketState, amount: int, now: int) -> kinds.PaymentReceipt:
    return kinds.PaymentReceipt(
        type="refund",
        ref=p.packet_id,
        payer=ledger.wire_account(ledger.ESCROW),
        payee=p.sender,
        amount=amount,
        currency=p.currency,
        conv=p.conv,
        posted_at=now,
        shares=len(p.shares) - p.claimed,
        sig=b"",
    )


def closing_type(state: str) -> kinds.ReceiptType:
    """The receipt type that records a request leaving ``open`` for ``state``."""
    if state == "declined":
        return "declined"
    if state == "cancelled":
        return "cancelled"
    if state == "expired":
        return "expired"
    raise ValueError(f"a request does not close as {state!r}")


def request_receipt(
    type: kinds.ReceiptType, r: NewRequest | ledger.RequestState, actor: int, now: int
) -> kinds.PaymentReceipt:
    """``request`` (opened), ``declined``, ``cancelled`` or ``expired``."""
    return kinds.PaymentReceipt(
        type=type,
        ref=r.request_id,
        payer=r.payer,
        payee=r.payee,
        amount=r.amount,
        currency=r.currency,
        conv=r.conv,
        posted_at=now,
        expires_at=r.expires_at,
        actor=actor,
        sig=b"",
    )


def packet_state(
    packet_id: str,
    conv: int,
    sender: int,
    currency: str,
    shares: str,
    claimed: int,
    expires_at: int,
    state: str,
) -> ledger.PacketState:
    """A stored packet row (``shares`` comma-separated, as stored) as the rules see it."""
    return ledger.PacketState(
        packet_id,
        conv,
        sender,
        currency,
        tuple(int(x) for x in shares.split(",")),
        claimed,
        expires_at,
        state,
    )


def shares_text(shares: tuple[int, ...]) -> str:
    return ",".join(str(x) for x in shares)
