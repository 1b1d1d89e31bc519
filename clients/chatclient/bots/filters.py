"""Composable message filters: ``F.text & F.group & ~F.sender(42)``.

A filter is a predicate over ``(msg, ctx)``; ``&``, ``|`` and ``~`` build new ones and ``repr``
shows the expression (so a log line says which filter refused what). Filters are plain and
synchronous: they look at the message, the cached conversation and the bot's own identity,
never at the network. ``and``/``or``/``not`` on filters raise ``TypeError``: Python would
evaluate them on the filter objects, not the message, and silently route everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import ClassVar

from chatproto import kinds

from chatclient.bots.context import Context
from chatclient.events import Message

Predicate = Callable[[Message, Context], bool]


class Filter:
    """A named predicate over ``(msg, ctx)``."""

    __slots__ = ("_name", "_pred")

    def __init__(self, pred: Predicate, name: str = "") -> None:
        self._pred = pred
        self._name = name or getattr(pred, "__name__", "filter")

    def __call__(self, msg: Message, ctx: Context) -> bool:
        return bool(self._pred(msg, ctx))

    def __and__(self, other: Filter) -> Filter:
        a, b = self, as_filter(other)
        return Filter(lambda m, c: a(m, c) and b(m, c), f"({a!r} & {b!r})")

    def __or__(self, other: Filter) -> Filter:
        a, b = self, as_filter(other)
        return Filter(lambda m, c: a(m, c) or b(m, c), f"({a!r} | {b!r})")

    def __invert__(self) -> Filter:
        a = self
        return Filter(lambda m, c: not a(m, c), f"~{a!r}")

    def __bool__(self) -> bool:
        raise TypeError("combine filters with &, | and ~ (not and/or/not)")

    def __repr__(self) -> str:
        return self._name


def as_filter(f: Filter | Predicate) -> Filter:
    """``f`` itself, or a plain ``(msg, ctx) -> bool`` callable wrapped as a filter."""
    if isinstance(f, Filter):
        return f
    if callable(f):
        return Filter(f, f"F.func({getattr(f, '__name__', 'predicate')})")
    raise TypeError(f"not a filter: {f!r}")


def _text(m: Message) -> str | None:
    """The text of a ``text`` message (edits are their own kind: ``F.edit``)."""
    return m.content.text if isinstance(m.content, kinds.Text) else None


def _mentions(text: str, handle: str) -> bool:
    if not handle:
        return False
    return re.search(rf"(?<![\w@])@{re.escape(handle)}(?![\w.])", text, re.IGNORECASE) is not None


def _names(values: Iterable[object]) -> str:
    return ", ".join(repr(v) for v in values)


class F:
    """The built-in filters. Attributes are filters; methods make filters."""

    any: ClassVar[Filter] = Filter(lambda m, c: True, "F.any")
    text: ClassVar[Filter] = Filter(lambda m, c: bool(_text(m)), "F.text")
    """A ``text`` message with some text (an edit is not: ``F.edit``)."""
    edit: ClassVar[Filter] = Filter(lambda m, c: isinstance(m.content, kinds.Edit), "F.edit")
    direct: ClassVar[Filter] = Filter(lambda m, c: c.conversation.kind == "direct", "F.direct")
    group: ClassVar[Filter] = Filter(lambda m, c: c.conversation.kind == "group", "F.group")
    channel: ClassVar[Filter] = Filter(lambda m, c: c.conversation.kind == "channel", "F.channel")
    from_bot: ClassVar[Filter] = Filter(lambda m, c: c.sender.bot, "F.from_bot")
    """Sent by a bot account (bots ignore each other unless ``Bot(ignore_bots=False)``)."""
    mentioned: ClassVar[Filter] = Filter(
        lambda m, c: _mentions(_text(m) or "", c.me.handle), "F.mentioned"
    )
    """The text mentions the bot (``@its_handle``)."""
    addressed: ClassVar[Filter] = Filter(
        lambda m, c: c.conversation.kind == "direct" or c.me.account in m.to, "F.addressed"
    )
    """Addressed to the bot: its ``to`` names the bot (a command for it, a mention, a reply
    to it, an invocation), or it was said in a direct conversation with the bot. A bot with
    access ``addressed`` receives nothing else in groups; one granted ``all`` tells them apart
    with this."""
    reply: ClassVar[Filter] = Filter(lambda m, c: m.reply_to != 0, "F.reply")
    """The message answers another one (``msg.reply_to`` is its seq)."""

    @staticmethod
    def contains(*needles: str, case: bool = False) -> Filter:
        """The text contains any of ``needles`` (case-insensitive unless ``case``)."""
        wanted = needles if case else tuple(n.lower() for n in needles)

        def pred(m: Message, c: Context) -> bool:
            t = _text(m)
            if t is None:
                return False
            t = t if case else t.lower()
            return any(n in t for n in wanted)

        return Filter(pred, f"F.contains({_names(needles)})")

    @staticmethod
    def startswith(*prefixes: str, case: bool = False) -> Filter:
        wanted = prefixes if case else tuple(p.lower() for p in prefixes)

        def pred(m: Message, c: Context) -> bool:
            t = _text(m)
            return t is not None and (t if case else t.lower()).startswith(wanted)

        return Filter(pred, f"F.startswith({_names(prefixes)})")

    @staticmethod
    def regex(pattern: str | re.Pattern[str], flags: int = 0) -> Filter:
        """``re.search`` finds ``pattern`` in the text."""
        rx = re.compile(pattern, flags) if isinstance(pattern, str) else pattern

        def pred(m: Message, c: Context) -> bool:
            t = _text(m)
            return t is not None and rx.search(t) is not None

        return Filter(pred, f"F.regex({rx.pattern!r})")

    @staticmethod
    def kind(*kind: str | type[kinds.Content]) -> Filter:
        """The message is of one of these kinds (names like ``"share"`` or content classes)."""
        names = frozenset(k if isinstance(k, str) else k.KIND for k in kind)
        return Filter(lambda m, c: m.kind in names, f"F.kind({_names(sorted(names))})")

    @staticmethod
    def receipt(*types: str) -> Filter:
        """A payment receipt (verified by the SDK before the bot sees it) of one of ``types``
        (``transfer``, ``request``, ...; none named: any). ``msg.content`` is the
        ``kinds.PaymentReceipt``; an order paid has ``type`` ``transfer`` and its
        ``request_id``."""
        wanted = frozenset(types)

        def pred(m: Message, c: Context) -> bool:
            r = m.content
            return isinstance(r, kinds.PaymentReceipt) and (not wanted or r.type in wanted)

        return Filter(pred, f"F.receipt({_names(sorted(wanted))})")

    @staticmethod
    def sender(*accounts: int) -> Filter:
        """Sent by one of these accounts."""
        wanted = frozenset(accounts)
        return Filter(lambda m, c: m.sender in wanted, f"F.sender({_names(accounts)})")

    from_account = sender

    @staticmethod
    def handle(*handles: str) -> Filter:
        """Sent by one of these handles (as the conversation knows its members)."""
        wanted = frozenset(h.lstrip("@").lower() for h in handles)
        return Filter(lambda m, c: c.sender.handle in wanted, f"F.handle({_names(handles)})")

    @staticmethod
    def role(*roles: str) -> Filter:
        """The sender has one of these roles here (``owner``, ``admin``, ``member``)."""
        wanted = frozenset(roles)
        return Filter(lambda m, c: c.sender.role in wanted, f"F.role({_names(roles)})")

    @staticmethod
    def conversation(*convs: int) -> Filter:
        """In one of these conversations."""
        wanted = frozenset(convs)
        return Filter(lambda m, c: m.conv in wanted, f"F.conversation({_names(convs)})")

    @staticmethod
    def mentions(*handles: str) -> Filter:
        """The text mentions any of these handles (``@name``)."""
        names = [h.lstrip("@") for h in handles]
        return Filter(
            lambda m, c: any(_mentions(_text(m) or "", h) for h in names),
            f"F.mentions({_names(names)})",
        )

    @staticmethod
    def func(pred: Predicate, name: str = "") -> Filter:
        """Any ``(msg, ctx) -> bool`` callable as a filter."""
        return Filter(pred, f"F.func({name or getattr(pred, '__name__', 'predicate')})")
