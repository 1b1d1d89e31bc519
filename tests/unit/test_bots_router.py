"""``chatclient.bots`` routers: wiring mistakes refused at build time, command parsing, and the
declared commands and actions."""

from __future__ import annotations

from typing import Any, Literal

import pytest
from chatclient.bots import Bot, Context, F, Router, SetupError
from chatclient.bots.bot import _parse_command
from chatclient.bots.router import Table
from chatclient.events import Message
from chatproto import frames as F_


async def h(msg: Message, ctx: Context) -> None: ...


async def h2(msg: Message, ctx: Context) -> None: ...


def test_an_unfiltered_handler_before_another_for_the_same_input_is_refused() -> None:
    r = Router()
    r.message()(h)
    r.message(F.text)(h2)
    with pytest.raises(SetupError, match="h2 can never run: h takes every message first"):
        Table(r)


def test_the_same_command_twice_is_fine_when_the_first_is_filtered() -> None:
    r = Router()
    r.command("start", filter=F.group)(h)
    r.command("start")(h2)
    table = Table(r)
    assert [b.route.fn for b in table.commands["start"]] == [h, h2]
    r.command("begin")(h)
    r.command("go", "begin")(h2)  # an alias clashing with an unfiltered command
    with pytest.raises(SetupError, match="every /begin"):
        Table(r)


def test_a_router_filter_guards_its_handlers_so_they_do_not_shadow() -> None:
    admin = Router("admin", filter=F.role("admin"))
    admin.command("ban")(h)
    everyone = Router("everyone")
    everyone.command("ban")(h2)
    root = Router()
    root.include(admin, everyone)
    assert [len(b.filters) for b in Table(root).commands["ban"]] == [1, 0]


def test_cycles_and_double_inclusion_are_refused() -> None:
    a, b = Router("a"), Router("b")
    a.include(b)
    with pytest.raises(SetupError, match="cycle"):
        b.include(a)
    a.command("x")(h)
    root = Router()
    root.include(a, a)
    with pytest.raises(SetupError, match="registered twice"):
        Table(root)


def test_bad_names_and_events_are_refused_when_registering() -> None:
    r = Router()
    with pytest.raises(SetupError, match="bad command name"):
        r.command("Start!")
    for name in ("", "vote", "poll.", ".vote", "Poll.vote", "poll.-x"):
        with pytest.raises(SetupError, match="bad action name"):
            r.action(name)
    with pytest.raises(SetupError, match="unknown system events"):
        r.system("exploded")


def test_message_handlers_take_no_required_arguments() -> None:
    async def needs(msg: Message, ctx: Context, n: int) -> None: ...

    with pytest.raises(SetupError, match="only command and action handlers take arguments"):
        Router().message()(needs)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/start", ("start", "", False)),
        ("/Roll 2 3", ("roll", "2 3", False)),
        ("/roll@dice_bot 20", ("roll", "20", True)),
        ("/roll@Dice_Bot\nline two", ("roll", "line two", True)),
        ("/roll@other_bot 20", False),
        ("/usr/bin/env", None),
        ("/", None),
        ("/ start", None),
        ("/" + "x" * 33, None),
    ],
)
def test_parse_command(text: str, parsed: Any) -> None:
    assert _parse_command(text, "dice_bot") == parsed


def test_the_bot_declares_commands_with_descriptions_and_adds_help() -> None:
    r = Router()

    @r.command("roll", "r")
    async def roll(msg: Message, ctx: Context, sides: int = 6) -> None:
        """Roll a die.

        More text that is not the description."""

    @r.action("dice.roll", description="Roll from a mini-app")
    async def roll_action(msg: Message, ctx: Context, sides: int) -> None: ...

    bot = Bot("ws://127.0.0.1:1/ws", "dice.key", r)
    [roll_info, help_info] = bot.commands()
    assert (roll_info.name, roll_info.aliases, roll_info.description, roll_info.usage) == (
        "roll",
        ("r",),
        "Roll a die.",
        "/roll [sides:int=6]",
    )
    assert help_info.name == "help"
    [action] = bot.actions()
    assert (action.name, action.description, [p.name for p in action.params]) == (
        "dice.roll",
        "Roll from a mini-app",
        ["sides"],
    )
    assert [c.name for c in Bot("ws://x/ws", "d.key", r, help_command=False).commands()] == ["roll"]


def test_the_profile_is_what_set_bot_profile_carries_and_passes_the_protocols_checks() -> None:
    r = Router()

    @r.command("roll", "r")
    async def roll(msg: Message, ctx: Context, sides: int = 6, *names: str) -> None:
        """Roll a die"""

    @r.action("dice.roll", price=F_.Price(amount=50, currency="USD"))
    async def roll_action(
        msg: Message, ctx: Context, kind: Literal["d6", "d20"], n: int = 1
    ) -> None:
        """Roll in the app"""

    bot = Bot("ws://x/ws", "d.key", r, app_title="Dice", app_icon="🎲")
    commands, manifest = bot.profile()
    assert [(c.name, c.description) for c in commands] == [
        ("roll", "Roll a die"),
        ("r", "Roll a die"),
        ("help", "List the commands of this bot"),
    ]
    assert commands[0].params == [
        F_.CommandParam(name="sides", type="int", required=False),
        F_.CommandParam(name="names", type="str", required=False),
    ]
    assert manifest == F_.Manifest(
        name="dice",
        title="Dice",
        icon="🎲",
        actions=[
            F_.MiniAppAction(
                name="roll",
                title="Roll in the app",
                params=[
                    F_.ActionParam(name="kind", type="str", choices=["d6", "d20"]),
                    F_.ActionParam(name="n", type="int", required=False),
                ],
                price=F_.Price(amount=50, currency="USD"),
            )
        ],
    )


def test_a_profile_the_server_would_refuse_fails_when_the_bot_starts() -> None:
    two_apps = Router()
    two_apps.action("a.x")(h)
    two_apps.action("b.y")(h2)
    with pytest.raises(SetupError, match="one mini-app; its actions name a, b"):
        Bot("ws://x/ws", "d.key", two_apps).profile()
    bad_price = Router()
    bad_price.action("a.x", price=F_.Price(amount=1, currency="XXQ"))(h)
    with pytest.raises(SetupError, match="server would refuse"):
        Bot("ws://x/ws", "d.key", bad_price).profile()
    long_icon = Router()
    long_icon.action("a.x")(h)
    with pytest.raises(SetupError, match="server would refuse"):
        Bot("ws://x/ws", "d.key", long_icon, app_icon="x" * 9).profile()


def test_the_bot_handle_comes_from_the_key_store_name_unless_given() -> None:
    assert Bot("ws://x/ws", "/tmp/Echo-Bot.key")._registration_handle() == "echo_bot"
    assert Bot("ws://x/ws", "e.key", handle="@shop")._registration_handle() == "shop"
    with pytest.raises(SetupError, match="bad bot handle"):
        Bot("ws://x/ws", "/tmp/x.key")._registration_handle()
