"""Who a message is addressed to (``chatclient.addressing``, SPEC.md 16.3) and the bot filters
that read ``to``/``reply_to`` (``F.addressed``, ``F.reply``, ``F.receipt``): pure, no server."""

from __future__ import annotations

import pytest
from chatclient.addressing import MAX_TO, addressees, bare_command
from chatclient.bots import Context, Conversation, F
from chatclient.bots.context import Me, Sender
from chatclient.events import Message
from chatproto import kinds

ME, ALICE, BOB = 1, 2, 3
POLL, SHOP, ECHO = 10, 11, 12
HANDLES = {ME: "me", ALICE: "alice", BOB: "bob", POLL: "poll_bot", SHOP: "shop_bot", ECHO: "echo"}
BOTS = (POLL, SHOP, ECHO)


def to(
    text: str, reply_sender: int = 0, commands: dict[int, set[str] | None] | None = None
) -> tuple[int, ...]:
    return addressees(
        text,
        me=ME,
        handles=HANDLES,
        bots=BOTS,
        reply_sender=reply_sender,
        commands=commands,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello everyone", ()),
        ("/start@poll_bot", (POLL,)),
        ("/start@Poll_Bot now", (POLL,)),
        ("/start@someone_else", ()),  # a bot that is not here: nobody
        ("/start", BOTS),  # profiles unknown: every bot may answer it
        ("hey @shop_bot, and @echo too", (SHOP, ECHO)),
        ("mail me at bob@shop_bot.example", ()),  # not a mention
        ("@alice look", ()),  # users are never named: they receive everything anyway
        ("/ not a command", ()),
        ("/poll@poll_bot ask @shop_bot", (POLL, SHOP)),
    ],
)
def test_commands_and_mentions_name_the_bots_they_are_for(
    text: str, expected: tuple[int, ...]
) -> None:
    assert to(text) == expected


def test_a_bare_command_goes_to_the_bots_that_declare_it() -> None:
    declared: dict[int, set[str] | None] = {POLL: {"poll", "vote"}, SHOP: {"orders"}, ECHO: None}
    assert to("/poll Lunch? | A | B", commands=declared) == (POLL, ECHO)  # echo: no profile
    assert to("/orders", commands=declared) == (SHOP, ECHO)
    assert to("/nothing", commands=declared) == (ECHO,)
    assert bare_command("/poll x") and not bare_command("/poll@poll_bot x")
    assert not bare_command("hello /poll")


def test_a_reply_to_a_bot_names_it_and_the_sender_is_never_named() -> None:
    assert to("sounds good", reply_sender=SHOP) == (SHOP,)
    assert to("sounds good", reply_sender=ALICE) == ()
    assert addressees("/x", me=POLL, handles=HANDLES, bots=BOTS) == (SHOP, ECHO)
    assert addressees("hi @poll_bot", me=POLL, handles=HANDLES, bots=BOTS) == ()


def test_at_most_sixteen_are_named() -> None:
    many = {100 + i: f"bot{i:03}" for i in range(20)}
    got = addressees("/go", me=ME, handles=many, bots=many.keys())
    assert len(got) == MAX_TO == 16 and got == tuple(sorted(many))[:16]


# ---------------------------------------------------------------------- filters on to/reply_to

BOT = Me(account=POLL, handle="poll_bot")


def check(
    f: object,
    content: kinds.Content,
    *,
    to_: tuple[int, ...] = (),
    reply_to: int = 0,
    kind: str = "group",
    sender: int = ALICE,
) -> bool:
    k, body = kinds.encode_content(content)
    m = Message(5, 9, 0, sender, 1, k, body, content, to=to_, reply_to=reply_to)
    s = Sender(sender, HANDLES.get(sender, ""), "member")
    return bool(f(m, Context(m, Conversation(5, kind, "", {sender: s}), s, BOT)))  # type: ignore[operator]


def test_addressed_is_what_names_the_bot_or_anything_in_a_direct_conversation() -> None:
    hi = kinds.Text(text="hi")
    assert check(F.addressed, hi, to_=(POLL,))
    assert not check(F.addressed, hi, to_=(SHOP,))
    assert not check(F.addressed, hi)
    assert check(F.addressed, hi, kind="direct")
    assert check(F.reply, hi, reply_to=3) and not check(F.reply, hi)


def test_receipt_matches_payment_receipts_by_type() -> None:
    r = kinds.PaymentReceipt(
        type="transfer",
        ref="t1",
        payer=ALICE,
        payee=POLL,
        amount=100,
        currency="USD",
        conv=5,
        posted_at=1,
        sig=bytes(64),
    )
    assert check(F.receipt(), r, sender=0)
    assert check(F.receipt("transfer", "request"), r, sender=0)
    assert not check(F.receipt("request"), r, sender=0)
    assert not check(F.receipt(), kinds.Text(text="paid!"))
    assert repr(F.receipt("transfer")) == "F.receipt('transfer')"
