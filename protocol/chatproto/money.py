"""Amounts of money as integers of minor units, and the ISO 4217 table that gives each currency
its exponent. No float ever touches an amount: text is parsed digit by digit into an ``int`` and
formatted back the same way.

``parse_amount("12.50", "USD") == 1250``; ``format_amount(1250, "USD") == "12.50"``;
``parse_amount("1000", "JPY") == 1000`` (the yen has no minor unit). Input is refused rather than
rounded: a sign, an exponent, a comma, spaces, non-ASCII digits, more decimals than the currency
has, zero, or more than ``MAX_AMOUNT`` minor units.
"""

from __future__ import annotations

import re
from typing import Final

from chatproto.errors import ErrorCode, MoneyError
from chatproto.limits import MAX_ID

MAX_AMOUNT: Final = MAX_ID
"""Largest amount in minor units (2**53 - 1, exact in JSON/JavaScript clients)."""

# ISO 4217 active currencies and their minor-unit exponents (the "minor unit" column of the
# standard's list one, 2025). Fund codes and metals without a minor unit are left out, except
# CLF, UYI and UYW, which are used as currencies and give the table its 0/4-decimal cases.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD"
    " CAD CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD"
    " GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD"
    " MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP"
    " PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS"
    " TMT TOP TRY TTD TWD TZS UAH USD UYU UZS VES WST XCD XCG YER ZAR ZMW ZWG"
)

CURRENCIES: Final[dict[str, int]] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}
"""ISO 4217 alphabetic code -> number of decimal digits of its minor unit."""

_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(?:\.([0-9]+))?", re.ASCII)
_MAX_TEXT = 40


def exponent(currency: str) -> int:
    """Decimal digits of ``currency``'s minor unit; ``MoneyError(UNKNOWN_CURRENCY)`` if it is not
    an ISO 4217 code of the table (codes are upper case: ``usd`` is unknown)."""
    try:
        digits: int = CURRENCIES[currency]
    except (KeyError, TypeError):
        raise MoneyError(
            f"unknown currency {str(currency)[:8]!r}", ErrorCode.UNKNOWN_CURRENCY
        ) from None
    return digits


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def parse_amount(text: str, currency: str) -> int:
    """``text`` (``"12.50"``, ``"12.5"``, ``"12"``) as minor units of ``currency``.

    Refuses (``MoneyError(INVALID_AMOUNT)``) anything but plain ASCII digits with at most one
    ``.`` and at most ``exponent(currency)`` decimals, a leading zero before other digits, zero,
    and amounts over ``MAX_AMOUNT``. A float is a ``TypeError``: amounts are never floats."""
    if not isinstance(text, str):
        raise TypeError(f"an amount is a decimal string, not {type(text).__name__}")
    digits = exponent(currency)
    m = _AMOUNT.fullmatch(text) if len(text) <= _MAX_TEXT else None
    if m is None:
        raise MoneyError(f"not an amount: {text[:_MAX_TEXT]!r} (write it like 12.50)")
    whole, fraction = m.group(1), m.group(2) or ""
    if len(fraction) > digits:
        raise MoneyError(
            f"{currency} has {digits} decimal{'s' if digits != 1 else ''}: {text!r} has"
            f" {len(fraction)}"
        )
    scale: int = 10**digits
    minor = int(whole) * scale + (int(fraction.ljust(digits, "0")) if digits else 0)
    check_amount(minor)
    return minor


def check_amount(minor: int) -> None:
    """``MoneyError(INVALID_AMOUNT)`` unless ``0 < minor <= MAX_AMOUNT`` (an ``int``, not a bool)."""
    if type(minor) is not int:
        raise TypeError(f"an amount in minor units is an int, not {type(minor).__name__}")
    if minor <= 0:
        raise MoneyError("an amount must be more than zero")
    if minor > MAX_AMOUNT:
        raise MoneyError(f"an amount is at most {MAX_AMOUNT} minor units")


def format_amount(minor: int, currency: str) -> str:
    """``minor`` units of ``currency`` as a decimal string with all its decimals (``"12.50"``,
    ``"-3.000"`` for BHD, ``"1000"`` for JPY). Negative amounts (debits, the issuance account)
    get a leading ``-``."""
    if type(minor) is not int:
        raise TypeError(f"an amount in minor units is an int, not {type(minor).__name__}")
    digits = exponent(currency)
    sign = "-" if minor < 0 else ""
    scale: int = 10**digits
    whole, fraction = divmod(abs(minor), scale)
    if not digits:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{digits}d}"


def format_money(minor: int, currency: str) -> str:
    """``"12.50 USD"``."""
    return f"{format_amount(minor, currency)} {currency}"
