"""The rules of creators' money (SPEC.md 15.12-15.14), as plain code: what a tip and a
subscription mandate must satisfy, and the state machine of a subscription, period by period.
No awaits and no I/O; time (``now``, ms) is passed in, so a test drives a year of renewals in
microseconds and the store runs the same decisions inside its transaction.

A subscription (one signed mandate: price P every period for at most N periods):

    active --charge ok--> active (paid through one more period)
    active --funds short at a renewal--> past_due --funds ok at a retry--> active
    past_due --grace over--> lapsed (terminal: no access, never charged again)
    active | past_due --subscriber cancels--> cancelled (terminal; access until paid_through)
    active --N periods charged and the last one over--> completed (terminal)

Access to a channel's paid posts is a paid period covering ``now`` (``paid_through > now``),
whatever the state: a cancelled subscription keeps what it paid for; a past-due one has none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from chatproto import frames as F
from chatproto.errors import ErrorCode

from chatd.core import ledger
from chatd.errors import Invalid

MIN_PERIOD_S: Final = 60
"""The default shortest period (``[payments] subscription_min_period``)."""
MAX_PERIOD_S: Final = 366 * 86_400
MAX_PERIODS: Final = 1_200
"""A hundred years of months: a mandate is bounded like everything else."""
LIVE: Final = frozenset({"active", "past_due"})
"""States in which the server still charges (and at most one mandate per subscriber and
channel is in one)."""


class PriceChanged(ledger.PaymentRefused):
    code = ErrorCode.PRICE_CHANGED


@dataclass(frozen=True, slots=True)
class Renewal:
    """How renewals that find the subscriber's wallet short are retried (``[payments]``)."""

    grace_ms: int = 3 * ledger.DAY_MS
    """From the time the unpaid period fell due until the subscription lapses."""
    retry_ms: int = 3_600_000
    """Between two attempts while past due."""


@dataclass(frozen=True, slots=True)
class Price:
    amount: int
    currency: str
    period: int
    """Seconds."""


@dataclass(frozen=True, slots=True)
class Sub:
    """A stored subscription, as the rules need it (times in ms)."""

    mandate_id: str
    state: str
    charged: int
    periods: int
    period_ms: int
    paid_through: int
    next_charge_at: int
    due_since: int = 0


@dataclass(frozen=True, slots=True)
class Charge:
    """Period ``n`` of a mandate, giving access from ``starts`` until ``ends``."""

    n: int
    starts: int
    ends: int


# --------------------------------------------------------------------------- without state


def check_tip(i: F.TipIntent, now: int, limits: ledger.Limits) -> None:
    """Everything about a tip intent that needs no stored state."""
    ledger.check_id(i.tip_id, "tip_id")
    ledger.check_currency(limits, i.currency)
    ledger.check_amount(i.amount)
    if i.payer == i.payee:
        raise Invalid("a creator does not tip itself")
    _per_transfer(limits, i.amount, i.currency)
    _deadline(i.expires_at, now, limits)


def check_price(
    amount: int, currency: str, period: int, limits: ledger.Limits, min_period: int = MIN_PERIOD_S
) -> None:
    """A subscription price the owner may set (amount 0 is "no price" and not checked here)."""
    ledger.check_currency(limits, currency)
    ledger.check_amount(amount)
    _per_transfer(limits, amount, currency)
    if not min_period <= period <= MAX_PERIOD_S:
        raise Invalid(f"a period is {min_period} s to {MAX_PERIOD_S // 86_400} days")


def check_mandate(
    i: F.MandateIntent, now: int, limits: ledger.Limits, min_period: int = MIN_PERIOD_S
) -> None:
    ledger.check_id(i.mandate_id, "mandate_id")
    check_price(i.amount, i.currency, i.period, limits, min_period)
    if i.payer == i.payee:
        raise Invalid("a creator does not subscribe to itself")
    if i.periods > MAX_PERIODS:
        raise Invalid(f"a mandate has at most {MAX_PERIODS} periods")
    _deadline(i.expires_at, now, limits)


def _per_transfer(limits: ledger.Limits, amount: int, currency: str) -> None:
    if amount > limits.per_transfer[currency]:
        raise ledger.OverLimit(f"over this server's limit per payment in {currency}")


def _deadline(expires_at: int, now: int, limits: ledger.Limits) -> None:
    if expires_at > now + limits.max_intent_ttl_ms:
        raise Invalid(
            f"the intent's expires_at is more than {limits.max_intent_ttl_ms // 1000} s ahead"
        )


# --------------------------------------------------------------------------- in the transaction


def check_terms(i: F.MandateIntent, owner: int, price: Price | None) -> None:
    """A mandate must pay the channel's owner its price as it is now; the price then travels
    with the mandate (a later change does not touch it)."""
    if i.payee != owner:
        raise Invalid("the mandate's payee is not the channel's owner")
    if price is None:
        raise PriceChanged("the channel has no paid subscription")
    if (i.amount, i.currency, i.period) != (price.amount, price.currency, price.period):
        raise PriceChanged("the channel's price is not the mandate's: read it again and sign anew")


def first_charge(now: int, period_ms: int) -> Charge:
    return Charge(1, now, now + period_ms)


def next_charge(s: Sub, now: int) -> Charge | None:
    """The charge a due subscription makes now; None when its periods are used up (it then
    completes). A renewal on time continues the paid period without a gap; a late one (past
    due, or a server that was down for more than a period) starts when it is paid."""
    if s.charged >= s.periods:
        return None
    late = s.state == "past_due" or now >= s.paid_through + s.period_ms
    starts = now if late else s.paid_through
    return Charge(s.charged + 1, starts, starts + s.period_ms)


def charged(s: Sub, c: Charge) -> Sub:
    """After charge ``c``: paid through its end, next due then (when the periods are used up,
    the sweep completes it then instead)."""
    return replace(
        s, state="active", charged=c.n, paid_through=c.ends, next_charge_at=c.ends, due_since=0
    )


def completed(s: Sub) -> Sub:
    return replace(s, state="completed", next_charge_at=0, due_since=0)


def refused(s: Sub, now: int, r: Renewal) -> Sub:
    """A renewal found the wallet short (nothing moved, never a partial charge): past due,
    retried every ``retry_ms``, until ``grace_ms`` after it fell due; then lapsed."""
    due = s.due_since or s.paid_through
    if now >= due + r.grace_ms:
        return replace(s, state="lapsed", next_charge_at=0, due_since=due)
    return replace(
        s, state="past_due", next_charge_at=min(now + r.retry_ms, due + r.grace_ms), due_since=due
    )


def cancel(s: Sub) -> Sub:
    """The subscriber ends a live mandate: no charge after this one."""
    if s.state not in LIVE:
        raise ledger.Closed(f"the subscription is {s.state}")
    return replace(s, state="cancelled", next_charge_at=0)


def has_access(paid_through: int, now: int) -> bool:
    return now < paid_through
