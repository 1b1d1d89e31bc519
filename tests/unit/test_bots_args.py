"""``chatclient.bots.args``: typed handler arguments from annotations."""

from __future__ import annotations

import datetime
import enum
import uuid
from decimal import Decimal
from typing import Annotated, Any, Literal

import msgspec
import pytest
from chatclient.bots import ArgumentError, SetupError
from chatclient.bots.args import ParamInfo, Signature, inspect_handler, tokenize


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


def cmd(fn: Any) -> Signature:
    return inspect_handler(fn, command=True)


def bind(fn: Any, text: str) -> tuple[list[Any], dict[str, Any]]:
    sig = cmd(fn)
    return sig.bind_text(text, sig.usage("/x"))


def refused(fn: Any, text: str) -> str:
    with pytest.raises(ArgumentError) as info:
        bind(fn, text)
    return info.value.user_text()


async def roll(msg: Any, ctx: Any, sides: int = 6, *names: str) -> None: ...


async def note(msg: Any, ctx: Any, when: datetime.date, *, text: str) -> None: ...


async def typed(
    msg: Any,
    ctx: Any,
    n: float,
    flag: bool,
    color: Color,
    size: Literal["s", "m", "l"],
    pct: Annotated[int, msgspec.Meta(ge=0, le=100)],
    maybe: int | None = None,
) -> None: ...


def test_tokenize_keeps_quoted_words_together_and_knows_where_each_ends() -> None:
    assert tokenize('a "b c" \'d e\' "x \\" y" f"g') == [
        ("a", 1),
        ("b c", 7),
        ("d e", 13),
        ('x " y', 22),
        ('f"g', 26),
    ]
    assert tokenize("   ") == []


def test_words_are_converted_to_the_annotated_types() -> None:
    assert bind(roll, "20 ann bob") == ([20, "ann", "bob"], {})
    assert bind(roll, "") == ([6], {})
    assert bind(typed, "1.5 yes blue m 40") == ([1.5, True, Color.BLUE, "m", 40, None], {})
    assert bind(typed, "2 off red s 0 7") == ([2.0, False, Color.RED, "s", 0, 7], {})


def test_a_keyword_only_str_takes_the_rest_of_the_text_verbatim() -> None:
    assert bind(note, '2024-05-01  buy "milk"   now ') == (
        [datetime.date(2024, 5, 1)],
        {"text": 'buy "milk"   now'},
    )


@pytest.mark.parametrize(
    ("fn", "text", "message"),
    [
        (roll, "abc", "sides must be a whole number, not 'abc'"),
        (typed, "x", "n must be a number, not 'x'"),
        (typed, "nan yes red s 1", "n must be a finite number, not 'nan'"),
        (typed, "1 maybe red s 1", "flag must be yes or no, not 'maybe'"),
        (typed, "1 yes green s 1", "color must be one of red, blue, not 'green'"),
        (typed, "1 yes red xl 1", "size must be one of s, m, l, not 'xl'"),
        (typed, "1 yes red s 101", "pct: expected `int` <= 100, not '101'"),
        (typed, "1 yes red s", "missing <pct:int>"),
        (typed, "1 yes red s 1 2 3", "too many arguments: '3'"),
        (note, "2024-13-01 x", "when must be a date (YYYY-MM-DD), not '2024-13-01'"),
        (note, "2024-01-01", "missing <text:text...>"),
    ],
)
def test_bad_input_names_the_parameter_and_shows_the_usage(
    fn: Any, text: str, message: str
) -> None:
    got = refused(fn, text)
    assert got == f"{message}\nusage: {cmd(fn).usage('/x')}"


def test_usage_strings() -> None:
    assert cmd(roll).usage("/roll") == "/roll [sides:int=6] [names:text...]"
    assert cmd(note).usage("/note") == "/note <when:date> <text:text...>"
    assert cmd(typed).usage("/t") == (
        "/t <n:number> <flag:yes/no> <color:red|blue> <size:s|m|l> <pct:int> [maybe:int]"
    )


def test_schema_declares_each_parameter_with_the_protocols_type_hints() -> None:
    assert cmd(roll).schema() == (
        ParamInfo(name="sides", type="int", required=False, default=6),
        ParamInfo(name="names", type="str", required=False, repeated=True),
    )
    assert [(p.type, p.choices) for p in cmd(typed).schema()] == [
        ("number", ()),
        ("bool", ()),
        ("str", ("red", "blue")),
        ("str", ("s", "m", "l")),
        ("int", ()),
        ("int", ()),
    ]


def test_action_params_bind_by_name_with_lax_conversion() -> None:
    async def vote(msg: Any, ctx: Any, poll: str, option: int, anon: bool = False) -> None: ...

    sig = inspect_handler(vote, command=False)
    usage = sig.usage("poll.vote")
    assert usage == "poll.vote <poll:text> <option:int> [anon:yes/no=False]"
    assert sig.bind_params({"poll": "p1", "option": "2"}, usage) == {"poll": "p1", "option": 2}
    assert sig.bind_params({"poll": "p1", "option": 2, "anon": True}, usage)["anon"] is True
    with pytest.raises(ArgumentError, match="missing parameter <option:int>"):
        sig.bind_params({"poll": "p1"}, usage)
    with pytest.raises(ArgumentError, match="unknown parameter\\(s\\): colour"):
        sig.bind_params({"poll": "p1", "option": 1, "colour": "red"}, usage)
    with pytest.raises(ArgumentError, match="option must be a whole number, not 'two'"):
        sig.bind_params({"poll": "p1", "option": "two"}, usage)


def test_other_stdlib_types() -> None:
    async def h(msg: Any, ctx: Any, u: uuid.UUID, d: Decimal, t: datetime.time) -> None: ...

    u = uuid.uuid4()
    assert bind(h, f"{u} 1.10 12:30") == ([u, Decimal("1.10"), datetime.time(12, 30)], {})


def _sync(msg: Any, ctx: Any) -> None: ...


async def _one(msg: Any) -> None: ...


async def _obj(msg: Any, ctx: Any, x: object) -> None: ...


async def _union(msg: Any, ctx: Any, x: int | str) -> None: ...


async def _kwargs(msg: Any, ctx: Any, **kw: str) -> None: ...


async def _two_rests(msg: Any, ctx: Any, *words: str, text: str) -> None: ...


async def _int_rest(msg: Any, ctx: Any, *, n: int) -> None: ...


async def _star(msg: Any, ctx: Any, *words: str) -> None: ...


@pytest.mark.parametrize(
    ("fn", "command", "message"),
    [
        (_sync, True, "must be an async def"),
        (_one, True, "must take \\(msg, ctx\\)"),
        (_obj, True, "unsupported argument type"),
        (_union, True, "unsupported argument type"),
        (_kwargs, True, "cannot be filled"),
        (_two_rests, True, "nothing can follow"),
        (_int_rest, True, "must be str"),
        (_star, False, "action parameters are named"),
    ],
)
def test_signatures_that_cannot_be_served_are_refused_at_registration(
    fn: Any, command: bool, message: str
) -> None:
    with pytest.raises(SetupError, match=message):
        inspect_handler(fn, command=command)
