"""Amounts as integers of minor units: the ISO 4217 table, parsing that refuses rather than rounds,
and formatting that round-trips."""

from __future__ import annotations

import pytest
from chatproto import money
from chatproto.errors import ErrorCode, MoneyError
from hypothesis import given, settings
from hypothesis import strategies as st

CODES = sorted(money.CURRENCIES)


def test_the_table_has_the_exponents_of_iso_4217() -> None:
    expected = {
        "USD": 2,
        "EUR": 2,
        "GBP": 2,
        "CHF": 2,
        "CNY": 2,
        "INR": 2,
        "JPY": 0,
        "KRW": 0,
        "VND": 0,
        "ISK": 0,
        "BHD": 3,
        "KWD": 3,
        "OMR": 3,
        "TND": 3,
        "CLF": 4,
    }
    assert {c: money.CURRENCIES[c] for c in expected} == expected
    assert len(money.CURRENCIES) >= 150
    assert all(len(c) == 3 and c.isascii() and c.isupper() for c in money.CURRENCIES)
    assert set(money.CURRENCIES.values()) == {0, 2, 3, 4}


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "USD", 1250),
        ("12.5", "USD", 1250),
        ("12", "USD", 1200),
        ("0.01", "USD", 1),
        ("1000", "JPY", 1000),
        ("1.005", "BHD", 1005),
        ("0.0001", "CLF", 1),
        ("90071992547409.91", "USD", money.MAX_AMOUNT),
    ],
)
def test_parse_amount(text: str, currency: str, minor: int) -> None:
    assert money.parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency"),
    [
        ("12.505", "USD"),  # more decimals than the currency has: refused, never rounded
        ("12.0", "JPY"),
        ("0", "USD"),
        ("0.00", "USD"),
        ("-1", "USD"),
        ("+1", "USD"),
        ("1e2", "USD"),
        ("1E2", "USD"),
        ("inf", "USD"),
        ("nan", "USD"),
        ("1_000", "USD"),
        ("1,00", "USD"),
        ("1 000", "USD"),
        (" 1", "USD"),
        ("1 ", "USD"),
        ("1\n", "USD"),
        ("01", "USD"),
        ("1.", "USD"),
        (".5", "USD"),
        ("", "USD"),
        ("١٢", "USD"),  # Arabic-Indic digits: int() would take them
        ("\uff11\uff12", "USD"),  # fullwidth digits
        ("90071992547409.92", "USD"),
        ("9" * 41, "USD"),
    ],
)
def test_parse_amount_refuses_anything_but_a_plain_positive_decimal(
    text: str, currency: str
) -> None:
    with pytest.raises(MoneyError) as err:
        money.parse_amount(text, currency)
    assert err.value.code == ErrorCode.INVALID_AMOUNT


@pytest.mark.parametrize("currency", ["usd", "XYZ", "US", "USDX", "", "EURO"])
def test_unknown_currencies_are_refused_with_their_own_code(currency: str) -> None:
    with pytest.raises(MoneyError) as err:
        money.parse_amount("1", currency)
    assert err.value.code == ErrorCode.UNKNOWN_CURRENCY
    assert not money.is_currency(currency)


@pytest.mark.parametrize("value", [12.5, 1.0, 1250.0])
def test_floats_are_never_amounts(value: float) -> None:
    with pytest.raises(TypeError):
        money.parse_amount(value, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        money.format_amount(value, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        money.check_amount(value)  # type: ignore[arg-type]


def test_bools_are_not_amounts() -> None:
    with pytest.raises(TypeError):
        money.check_amount(True)


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (1250, "USD", "12.50"),
        (1, "USD", "0.01"),
        (0, "USD", "0.00"),
        (-1250, "USD", "-12.50"),
        (1000, "JPY", "1000"),
        (-5, "KWD", "-0.005"),
        (1, "CLF", "0.0001"),
    ],
)
def test_format_amount(minor: int, currency: str, text: str) -> None:
    assert money.format_amount(minor, currency) == text


@settings(max_examples=500)
@given(currency=st.sampled_from(CODES), minor=st.integers(1, money.MAX_AMOUNT))
def test_format_then_parse_gives_the_same_minor_units(currency: str, minor: int) -> None:
    assert money.parse_amount(money.format_amount(minor, currency), currency) == minor


@settings(max_examples=500)
@given(
    currency=st.sampled_from(CODES),
    whole=st.integers(0, 10**12),
    fraction=st.text(alphabet="0123456789", max_size=4),
)
def test_parse_then_format_keeps_the_value_with_every_decimal(
    currency: str, whole: int, fraction: str
) -> None:
    text = f"{whole}.{fraction}" if fraction else str(whole)
    digits = money.CURRENCIES[currency]
    value = whole * 10**digits + int(fraction[:digits].ljust(digits, "0") or "0")
    try:
        minor = money.parse_amount(text, currency)
    except MoneyError:
        assert len(fraction) > digits or not 0 < value <= money.MAX_AMOUNT
        return
    assert len(fraction) <= digits
    assert minor == value
    formatted = money.format_amount(minor, currency)
    assert formatted == (f"{whole}.{fraction.ljust(digits, '0')}" if digits else str(whole))


@settings(max_examples=1000)
@given(text=st.text(max_size=24), currency=st.sampled_from([*CODES[:20], "JPY", "usd"]))
def test_random_text_is_an_amount_in_range_or_a_money_error(text: str, currency: str) -> None:
    try:
        minor = money.parse_amount(text, currency)
    except MoneyError:
        return
    assert type(minor) is int
    assert 0 < minor <= money.MAX_AMOUNT
