"""chatproto.bots: the profile and ``to`` checks the server applies (and bot authors can run)."""

from __future__ import annotations

import pytest
from chatproto import bots
from chatproto import frames as F
from chatproto import limits as L
from chatproto.errors import ErrorCode

ORDER = F.MiniAppAction(
    name="order",
    title="Order",
    params=[
        F.ActionParam(name="item", type="str", choices=["tea", "cake"]),
        F.ActionParam(name="count", type="int", choices=[1, 2]),
        F.ActionParam(name="tip", type="amount", required=False, choices=["1.00 EUR"]),
        F.ActionParam(name="gift", type="bool", required=False),
    ],
    price=F.Price(amount=450, currency="EUR"),
)
MANIFEST = F.Manifest(name="shop", title="Shop", icon="🛒", actions=[ORDER])
START = F.BotCommand(name="start", description="hello")


def _code(commands: list[F.BotCommand], manifest: F.Manifest | None = None) -> ErrorCode:
    with pytest.raises(bots.BotError) as err:
        bots.check_profile(commands, manifest)
    return err.value.code


def test_a_valid_profile_round_trips_through_its_stored_form() -> None:
    roll = F.BotCommand(
        name="roll",
        params=[
            F.CommandParam(name="sides", type="int"),
            F.CommandParam(name="names", type="str", required=False),
        ],
    )
    body = bots.check_profile([START, roll], MANIFEST)
    stored = bots.decode_profile(body)
    assert stored.commands == [START, roll]
    assert stored.manifest == MANIFEST
    assert bots.decode_profile(bots.check_profile([], None)) == bots.StoredProfile()


@pytest.mark.parametrize("name", ["Start", "st art", "stärt", "/start", "a-b"])
def test_command_names_are_lower_case_letters_digits_and_underscores(name: str) -> None:
    assert _code([F.BotCommand(name=name)]) == ErrorCode.INVALID


def test_two_commands_with_one_name_are_invalid() -> None:
    assert _code([START, START]) == ErrorCode.INVALID


def test_command_parameters_are_identifiers_and_required_ones_come_first() -> None:
    def cmd(*params: F.CommandParam) -> F.BotCommand:
        return F.BotCommand(name="c", params=list(params))

    assert _code([cmd(F.CommandParam(name="1x", type="int"))]) == ErrorCode.INVALID
    assert _code([cmd(F.CommandParam(name="x", type="Int"))]) == ErrorCode.INVALID
    assert _code([cmd(*[F.CommandParam(name="x", type="int")] * 2)]) == ErrorCode.INVALID
    optional_first = cmd(
        F.CommandParam(name="a", type="int", required=False), F.CommandParam(name="b", type="int")
    )
    assert _code([optional_first]) == ErrorCode.INVALID


def _with(*params: F.ActionParam, price: F.Price | None = None) -> F.Manifest:
    return F.Manifest(
        name="shop",
        actions=[F.MiniAppAction(name="a", title="A", params=list(params), price=price)],
    )


def test_choices_must_match_their_parameter_type() -> None:
    assert _code([], _with(F.ActionParam(name="n", type="int", choices=["1"]))) == ErrorCode.INVALID
    assert _code([], _with(F.ActionParam(name="s", type="str", choices=[1]))) == ErrorCode.INVALID
    bool_choices = F.ActionParam(name="b", type="bool", choices=["yes"])
    assert _code([], _with(bool_choices)) == ErrorCode.INVALID
    twice = F.ActionParam(name="s", type="str", choices=["a", "a"])
    assert _code([], _with(twice)) == ErrorCode.INVALID


def test_amount_choices_are_money_text_with_a_currency() -> None:
    bad = F.ActionParam(name="tip", type="amount", choices=["1.005 EUR"])
    assert _code([], _with(bad)) == ErrorCode.INVALID_AMOUNT
    unknown = F.ActionParam(name="tip", type="amount", choices=["1.00 XXX"])
    assert _code([], _with(unknown)) == ErrorCode.UNKNOWN_CURRENCY
    assert bots.parse_amount_value("12.50 USD") == (1250, "USD")


def test_prices_are_positive_amounts_of_known_currencies() -> None:
    assert _code([], _with(price=F.Price(amount=0, currency="EUR"))) == ErrorCode.INVALID_AMOUNT
    assert _code([], _with(price=F.Price(amount=5, currency="EURO"))) == (
        ErrorCode.UNKNOWN_CURRENCY
    )


@pytest.mark.parametrize("name", [".shop", "-shop", "Shop", "sh op"])
def test_app_and_action_names_are_lower_case_names(name: str) -> None:
    assert _code([], F.Manifest(name=name)) == ErrorCode.INVALID
    action = F.MiniAppAction(name=name, title="t")
    assert _code([], F.Manifest(name="shop", actions=[action])) == ErrorCode.INVALID


def test_two_actions_with_one_name_are_invalid() -> None:
    assert _code([], F.Manifest(name="shop", actions=[ORDER, ORDER])) == ErrorCode.INVALID


def test_a_profile_over_the_stored_size_limit_is_invalid() -> None:
    params = [F.CommandParam(name=f"p{i}", type="str") for i in range(L.MAX_PARAMS)]
    commands = [
        F.BotCommand(name=f"c{i}", description="€" * L.MAX_DESCRIPTION_CHARS, params=params)
        for i in range(L.MAX_BOT_COMMANDS)
    ]
    assert _code(commands) == ErrorCode.INVALID


def test_to_is_made_canonical_and_refuses_repeats() -> None:
    assert bots.check_to([12, 9]) == (9, 12)
    assert bots.check_to([]) == ()
    with pytest.raises(bots.BotError) as err:
        bots.check_to([9, 12, 9])
    assert err.value.code == ErrorCode.INVALID
