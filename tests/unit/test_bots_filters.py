"""``chatclient.bots`` filters: what each matches, how they compose, what they refuse."""

from __future__ import annotations

import pytest
from chatclient.bots import Context, Conversation, F, Filter
from chatclient.bots.context import Me, Sender
from chatclient.events import Message
from chatproto import kinds

ME = Me(account=99, handle="helper_bot")


def msg(content: kinds.Content, *, sender: int = 7, conv: int = 1) -> Message:
    kind, body = kinds.encode_content(content)
    return Message(conv, 1, 0, sender, 1, kind, body, content)


def ctx(
    m: Message, kind: str = "group", handle: str = "ann", role: str = "member", bot: bool = False
) -> Context:
    sender = Sender(m.sender, handle, role, bot)
    return Context(m, Conversation(m.conv, kind, "t", {m.sender: sender}), sender, ME)


def check(f: Filter, content: kinds.Content | str, **kw: object) -> bool:
    c = kinds.Text(text=content) if isinstance(content, str) else content
    sender = kw.pop("sender", 7)
    conv = kw.pop("conv", 1)
    m = msg(c, sender=sender, conv=conv)  # type: ignore[arg-type]
    return f(m, ctx(m, **kw))  # type: ignore[arg-type]


def test_text_matches_text_messages_with_text_only() -> None:
    assert check(F.text, "hi")
    assert not check(F.text, "")
    assert not check(F.text, kinds.Edit(target=1, text="hi"))
    assert check(F.edit, kinds.Edit(target=1, text="hi"))
    assert not check(F.text, kinds.Reaction(target=1, emoji="+1"))


def test_contains_startswith_and_regex_are_case_insensitive_unless_asked() -> None:
    assert check(F.contains("PIZZA", "tacos"), "who wants pizza?")
    assert not check(F.contains("PIZZA", case=True), "who wants pizza?")
    assert check(F.startswith("hey"), "Hey you")
    assert not check(F.startswith("hey", case=True), "Hey you")
    assert check(F.regex(r"\border #\d+"), "where is order #42")
    assert not check(F.regex(r"^\d+$"), "12a")
    assert not check(F.contains("x"), kinds.Share(title="x"))  # not a text message


def test_kind_takes_names_or_content_classes() -> None:
    share = kinds.Share(title="a")
    assert check(F.kind("share"), share)
    assert check(F.kind(kinds.Share, kinds.Text), "t")
    assert not check(F.kind(kinds.MiniappInvoke), share)


def test_sender_handle_role_and_conversation_filters() -> None:
    assert check(F.sender(7, 8), "x")
    assert not check(F.sender(8), "x")
    assert check(F.from_account(7), "x")
    assert check(F.handle("@Ann"), "x", handle="ann")
    assert not check(F.handle("bob"), "x", handle="ann")
    assert check(F.role("owner", "admin"), "x", role="admin")
    assert not check(F.role("owner"), "x", role="member")
    assert check(F.conversation(1), "x")
    assert not check(F.conversation(2), "x")
    assert check(F.from_bot, "x", bot=True)
    assert not check(F.from_bot, "x")


def test_conversation_kind_filters() -> None:
    assert check(F.group, "x", kind="group")
    assert check(F.direct, "x", kind="direct")
    assert check(F.channel, "x", kind="channel")
    assert not check(F.group, "x", kind="direct")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@helper_bot hi", True),
        ("hi @Helper_Bot!", True),
        ("(@helper_bot)", True),
        ("@helper_bot2 hi", False),
        ("@helper_bot.x", False),
        ("mail me at a@helper_bot", False),
        ("helper_bot", False),
    ],
)
def test_mentioned_matches_the_bots_handle_as_a_whole_word(text: str, expected: bool) -> None:
    assert check(F.mentioned, text) is expected
    assert check(F.mentions("@helper_bot"), text) is expected


def test_and_or_not_compose_and_repr_shows_the_expression() -> None:
    f = F.text & (F.direct | F.mentioned) & ~F.sender(3)
    assert repr(f) == "((F.text & (F.direct | F.mentioned)) & ~F.sender(3))"
    assert check(f, "hi", kind="direct")
    assert check(f, "hi @helper_bot", kind="group")
    assert not check(f, "hi", kind="group")
    assert not check(f, "hi", kind="direct", sender=3)


def test_plain_callables_compose_with_filters() -> None:
    def long(m: Message, c: Context) -> bool:
        return len(m.text or "") > 3

    f = F.text & long
    assert repr(f) == "(F.text & F.func(long))"
    assert check(f, "hello")
    assert not check(f, "hey")
    assert check(F.func(lambda m, c: c.sender.handle == "ann", "is_ann"), "x")


def test_and_or_not_keywords_on_filters_raise_instead_of_routing_everything() -> None:
    with pytest.raises(TypeError, match="&, \\| and ~"):
        _ = F.text and F.group
    with pytest.raises(TypeError):
        _ = not F.text
