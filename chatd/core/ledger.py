"""The rules of money, as plain code: what an intent, a request or a red packet must satisfy, the
daily limit, and how a red packet is split. No awaits and no I/O; time (``now``, ms) and
randomness (``randbelow``) are passed in.

Accounts: user accounts have their ids (>= 1). Two system accounts hold the other side of every
posting that does not go from one user to another: ``ISSUANCE`` (operator top-ups; its balance
is minus the money in circulation, the only balance allowed below zero) and ``ESCROW`` (the
unclaimed rest of open red packets). On the wire both appear as account 0.

Every check raises the server's domain error carrying its wire code, or returns None. The checks
that depend on stored state (funds, the day's total, a request's or packet's state) run inside
the store's write transaction, through the functions at the bottom.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from chatproto import frames as F
from chatproto import kinds, money, payments
from chatproto.errors import ErrorCode, MoneyError

from chatd.errors import ChatdError, Forbidden, Invalid, NotFound

ISSUANCE: Final = -1
ESCROW: Final = -2
SYSTEM_ACCOUNTS: Final = frozenset({ISSUANCE, ESCROW})
DAY_MS: Final = 86_400_000


# --------------------------------------------------------------------------- refusals


class PaymentRefused(ChatdError):
    """Base of the payment refusals; nothing moved."""


class BadSignature(PaymentRefused):
    code = ErrorCode.BAD_SIGNATURE


class WrongDevice(PaymentRefused):
    code = ErrorCode.WRONG_DEVICE


class NotMember(PaymentRefused):
    code = ErrorCode.NOT_MEMBER


class Expired(PaymentRefused):
    code = ErrorCode.EXPIRED


class InsufficientFunds(PaymentRefused):
    code = ErrorCode.INSUFFICIENT_FUNDS


class OverLimit(PaymentRefused):
    code = ErrorCode.OVER_LIMIT


class UnknownCurrency(PaymentRefused):
    code = ErrorCode.UNKNOWN_CURRENCY


class InvalidAmount(PaymentRefused):
    code = ErrorCode.INVALID_AMOUNT


class Closed(PaymentRefused):
    code = ErrorCode.CLOSED


# --------------------------------------------------------------------------- limits


@dataclass(frozen=True, slots=True)
class Limits:
    """The server's payment limits (``[payments]`` in the config), in minor units and ms.

    The currencies of ``per_transfer`` are the ones this server accepts; a currency without a
    ``per_day`` entry has no daily limit."""

    per_transfer: Mapping[str, int]
    per_day: Mapping[str, int]
    max_shares: int = 200
    red_packet_ttl_ms: int = DAY_MS
    max_intent_ttl_ms: int = DAY_MS
    max_request_ttl_ms: int = 7 * DAY_MS


def parse_limits(entries: tuple[str, ...]) -> dict[str, int]:
    """``("USD:10000", "JPY:1500000")`` -> ``{"USD": 1000000, "JPY": 1500000}`` (minor units).
    Raises ``ValueError`` naming the bad entry."""
    out: dict[str, int] = {}
    for entry in entries:
        currency, sep, amount = entry.strip().partition(":")
        if not sep:
            raise ValueError(f"{entry!r}: expected CURRENCY:AMOUNT, e.g. USD:10000")
        try:
            out[currency.strip()] = money.parse_amount(amount.strip(), currency.strip())
        except MoneyError as exc:
            raise ValueError(f"{entry!r}: {exc.message}") from None
    return out


def check_currency(limits: Limits, currency: str) -> None:
    if currency not in limits.per_transfer:
        if money.is_currency(currency):
            raise UnknownCurrency(f"{currency} is not accepted by this server")
        raise UnknownCurrency(f"{currency[:8]!r} is not an ISO 4217 currency code")


def check_amount(amount: int) -> None:
    try:
        money.check_amount(amount)
    except MoneyError as exc:
        raise InvalidAmount(exc.message) from None


def check_id(value: str, what: str) -> None:
    if not payments.is_client_id(value):
        raise Invalid(f"{what} must be 1 to 64 of A-Z a-z 0-9 . _ -")


def _check_per_transfer(limits: Limits, amount: int, currency: str) -> None:
    cap = limits.per_transfer[currency]
    if amount > cap:
        raise OverLimit(
            f"{money.format_money(amount, currency)} is over this server's limit of"
            f" {money.format_money(cap, currency)} per transfer"
        )


def _check_deadline(expires_at: int, now: int, max_ttl: int, what: str) -> None:
    """Expiry in the past is decided in the store (after the idempotency look-up, so a retry
    of an applied intent still gets its first answer); here only a deadline too far ahead."""
    if expires_at > now + max_ttl:
        raise Invalid(f"{what} expires_at is more than {max_ttl // 1000} s ahead")


def check_transfer(i: F.TransferIntent, now: int, limits: Limits) -> None:
    """Everything about a transfer intent that needs no stored state."""
    check_id(i.transfer_id, "transfer_id")
    if i.request_id:
        check_id(i.request_id, "request_id")
    check_currency(limits, i.currency)
    check_amount(i.amount)
    if i.payer == i.payee:
        raise Invalid("payer and payee are the same account")
    _check_per_transfer(limits, i.amount, i.currency)
    _check_deadline(i.expires_at, now, limits.max_intent_ttl_ms, "the intent's")


def check_red_packet(i: F.RedPacketIntent, now: int, limits: Limits) -> None:
    check_id(i.packet_id, "packet_id")
    check_currency(limits, i.currency)
    check_amount(i.total)
    if i.shares > limits.max_shares:
        raise Invalid(f"a red packet has at most {limits.max_shares} shares")
    if i.total < i.shares:
        raise InvalidAmount("a red packet needs at least one minor unit per share")
    _check_per_transfer(limits, i.total, i.currency)
    _check_deadline(i.expires_at, now, limits.max_intent_ttl_ms, "the intent's")


def check_request(requester: int, f: F.RequestPayment, now: int, limits: Limits) -> None:
    check_id(f.request_id, "request_id")
    check_currency(limits, f.currency)
    check_amount(f.amount)
    if f.payer == requester:
        raise Invalid("a request asks another member to pay")
    _check_per_transfer(limits, f.amount, f.currency)
    if f.expires_at <= now:
        raise Expired("the request's expires_at has passed")
    _check_deadline(f.expires_at, now, limits.max_request_ttl_ms, "the request's")


def check_not_expired(expires_at: int, now: int, what: str) -> None:
    if now >= expires_at:
        raise Expired(f"{what} expired")


# --------------------------------------------------------------------------- in the transaction


def day_start(now: int) -> int:
    """Start (ms, UTC midnight) of the day the daily limit counts from."""
    return now - now % DAY_MS


def check_daily(spent_today: int, amount: int, currency: str, limit: int | None) -> None:
    """``spent_today``: what the payer already sent today in ``currency`` (transfers and red
    packets), read inside the transaction that posts ``amount``."""
    if limit is not None and spent_today + amount > limit:
        raise OverLimit(
            f"{money.format_money(spent_today + amount, currency)} today would pass this"
            f" server's daily limit of {money.format_money(limit, currency)}"
        )


@dataclass(frozen=True, slots=True)
class RequestState:
    """A stored pay request, as the rules need it."""

    request_id: str
    conv: int
    payee: int
    payer: int
    """0: any member but the payee."""
    amount: int
    currency: str
    expires_at: int
    state: str


def check_pays_request(
    r: RequestState | None,
    conv: int,
    payer: int,
    payee: int,
    amount: int,
    currency: str,
    now: int,
) -> None:
    """A transfer that names a request must pay exactly it, while it is open."""
    if r is None or r.conv != conv:
        raise NotFound("no such request in this conversation")
    if r.state != "open":
        raise Closed(f"the request is {r.state}")
    check_not_expired(r.expires_at, now, "the request")
    if r.payee != payee or r.payer not in (0, payer):
        raise Invalid("the transfer's payer or payee is not the request's")
    if (r.amount, r.currency) != (amount, currency):
        raise Invalid("the transfer's amount is not the request's")


def closing_type(state: str) -> kinds.ReceiptType:
    """The receipt type that records a request leaving ``open`` for ``state``."""
    if state not in ("declined", "cancelled", "expired"):
        raise ValueError(f"a request does not close as {state!r}")
    return cast(kinds.ReceiptType, state)


def check_close_request(r: RequestState | None, actor: int, state: str, now: int) -> None:
    """``declined`` by its payer, ``cancelled`` by its payee, only while open."""
    if r is None:
        raise NotFound("no such request")
    if state == "declined":
        if r.payer == 0:
            raise Forbidden("a request open to every member cannot be declined; ignore it")
        if actor != r.payer:
            raise Forbidden("only the request's payer may decline it")
    elif actor != r.payee:
        raise Forbidden("only the member who asked may cancel a request")
    if r.state != "open":
        raise Closed(f"the request is {r.state}")
    check_not_expired(r.expires_at, now, "the request")


@dataclass(frozen=True, slots=True)
class PacketState:
    packet_id: str
    conv: int
    sender: int
    currency: str
    shares: tuple[int, ...]
    claimed: int
    expires_at: int
    state: str


def next_share(p: PacketState, now: int) -> int:
    """The amount of the next claim of ``p`` (claims take the shares in order)."""
    if p.state == "refunded" or now >= p.expires_at:
        raise Expired("the red packet expired")
    if p.claimed >= len(p.shares):
        raise Closed("every share of the red packet was claimed")
    return p.shares[p.claimed]


# --------------------------------------------------------------------------- splitting


def split_equal(total: int, n: int) -> list[int]:
    """``n`` shares differing by at most one minor unit, larger first; they sum to ``total``."""
    if not 1 <= n <= total:
        raise InvalidAmount("a red packet needs 1 <= shares <= total")
    q, r = divmod(total, n)
    return [q + 1] * r + [q] * (n - r)


def split_random(total: int, n: int, randbelow: Callable[[int], int]) -> list[int]:
    """``n`` shares of at least one minor unit each, summing to ``total``, drawn uniformly among
    all such splits: ``n - 1`` distinct cut points in ``1 .. total - 1`` (Floyd's sampling, so the
    cost is ``n``, not ``total``). ``randbelow(k)`` returns a uniform int in ``0 .. k - 1``
    (``secrets.randbelow`` in the server, a seeded one in tests)."""
    if not 1 <= n <= total:
        raise InvalidAmount("a red packet needs 1 <= shares <= total")
    cuts: set[int] = set()
    span = total - 1  # cut points are 1 .. total - 1
    for j in range(span - (n - 1), span):
        t = randbelow(j + 1) + 1  # uniform in 1 .. j + 1
        cuts.add(t if t not in cuts else j + 1)
    edges = [0, *sorted(cuts), total]
    return [b - a for a, b in itertools.pairwise(edges)]


def split(total: int, n: int, kind: str, randbelow: Callable[[int], int]) -> list[int]:
    return split_equal(total, n) if kind == "equal" else split_random(total, n, randbelow)


def wire_account(account: int) -> int:
    """An account as receipts and statements show it: the system accounts are 0."""
    return 0 if account in SYSTEM_ACCOUNTS else account
