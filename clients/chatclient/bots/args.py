"""Typed handler arguments, read from the handler's signature.

    async def roll(msg, ctx, sides: int = 6, *names: str) -> None      # /roll 20 ann bob
    async def note(msg, ctx, *, text: str) -> None                     # /note the rest, verbatim
    async def vote(msg, ctx, poll: str, option: int) -> None           # action params by name

Everything after ``(msg, ctx)`` is an argument. For a command, each positional parameter takes
one word (``"quoted words"`` count as one), ``*args`` takes the remaining words, and one
keyword-only ``str`` parameter takes the remaining text as typed. For an action, parameters are
matched by name against the invocation's ``params``. Values are converted with msgspec's lax
conversion, so ``Annotated[int, msgspec.Meta(ge=1, le=100)]`` checks ranges too.

Unlike frameworks that hand the handler a list of strings, or silently drop extra words, input
that does not fit is refused with an ``ArgumentError`` naming the parameter and the usage; and
a signature this module cannot serve is refused when the handler is registered (``SetupError``).
"""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import math
import re
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from chatclient.bots.errors import ArgumentError, SetupError

_REQUIRED: Any = inspect.Parameter.empty
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S+)')
_ESCAPE = re.compile(r"\\(.)")
_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
_PLAIN: dict[type, tuple[str, str, str]] = {
    # type: (name in usage, what the user must type, type hint declared to clients)
    str: ("text", "text", "str"),
    int: ("int", "a whole number", "int"),
    float: ("number", "a number", "number"),
    bool: ("yes/no", "yes or no", "bool"),
    decimal.Decimal: ("decimal", "a decimal number", "decimal"),
    uuid.UUID: ("uuid", "a UUID", "uuid"),
    datetime.datetime: ("datetime", "a date and time (ISO 8601)", "datetime"),
    datetime.date: ("date", "a date (YYYY-MM-DD)", "date"),
    datetime.time: ("time", "a time (HH:MM)", "time"),
}

_ISO = (datetime.datetime, datetime.date, datetime.time)

ParamKind = Literal["word", "words", "rest", "named"]


@dataclass(frozen=True, slots=True)
class Param:
    """One argument of a handler: its name, type and how it takes input."""

    name: str
    annotation: Any
    kind: ParamKind
    """``word``: one word; ``words``: the remaining words (``*args``); ``rest``: the remaining
    text verbatim (keyword-only); ``named``: an action parameter matched by name."""
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED and self.kind != "words"

    @property
    def type_name(self) -> str:
        """The type as the usage line shows it (``int``, ``text``, ``yes/no``, ``red|blue``)."""
        return _describe(self.annotation)[0]

    @property
    def declared_type(self) -> str:
        """The type hint declared to clients: ``str``, ``int``, ``bool``, ``number``, ``date``,
        ... (the protocol's pattern; choices are listed separately)."""
        t, _ = _strip(self.annotation)
        if t in _PLAIN:
            return _PLAIN[t][2]
        return "int" if all(isinstance(c, int) for c in self.choices) else "str"

    @property
    def choices(self) -> list[str | int]:
        """The only values a Literal or Enum parameter takes (else empty)."""
        t, _ = _strip(self.annotation)
        if typing.get_origin(t) is Literal:
            return list(typing.get_args(t))
        if isinstance(t, type) and issubclass(t, enum.Enum):
            return [m.value for m in t]
        return []

    def usage(self) -> str:
        dots = "..." if self.kind in ("words", "rest") else ""
        inner = f"{self.name}:{self.type_name}{dots}"
        if self.required:
            return f"<{inner}>"
        if self.default is _REQUIRED or self.default is None:
            return f"[{inner}]"
        return f"[{inner}={self.default}]"


@dataclass(frozen=True, slots=True)
class Signature:
    """The arguments a handler takes after ``(msg, ctx)``."""

    params: tuple[Param, ...]

    def usage(self, head: str) -> str:
        return " ".join([head, *(p.usage() for p in self.params)])

    def bind_text(self, text: str, usage: str) -> tuple[list[Any], dict[str, Any]]:
        """``(args, kwargs)`` for a command whose argument text (after the command) is
        ``text``. Raises ``ArgumentError``."""
        tokens = tokenize(text)
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        i = 0
        for p in self.params:
            if p.kind == "word":
                if i < len(tokens):
                    args.append(_convert(p, tokens[i][0], usage))
                    i += 1
                elif p.required:
                    raise ArgumentError(f"missing {p.usage()}", usage)
                else:
                    args.append(p.default)
            elif p.kind == "words":
                args.extend(_convert(p, word, usage) for word, _ in tokens[i:])
                i = len(tokens)
            else:  # rest
                start = tokens[i - 1][1] if i else 0
                rest = text[start:].strip()
                i = len(tokens)
                if rest:
                    kwargs[p.name] = _convert(p, rest, usage)
                elif p.required:
                    raise ArgumentError(f"missing {p.usage()}", usage)
                else:
                    kwargs[p.name] = p.default
        if i < len(tokens):
            extra = ", ".join(repr(word) for word, _ in tokens[i:])
            raise ArgumentError(f"too many arguments: {extra}", usage)
        return args, kwargs

    def bind_params(self, params: Mapping[str, str | int | bool], usage: str) -> dict[str, Any]:
        """Keyword arguments for an action from its invocation's ``params``."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ArgumentError(f"unknown parameter(s): {', '.join(unknown)}", usage)
        kwargs: dict[str, Any] = {}
        for p in self.params:
            if p.name in params:
                kwargs[p.name] = _convert(p, params[p.name], usage)
            elif p.required:
                raise ArgumentError(f"missing parameter {p.usage()}", usage)
        return kwargs

    def schema(self) -> tuple[ParamInfo, ...]:
        """The parameters as data, for the bot's command/action declaration."""
        return tuple(
            ParamInfo(
                name=p.name,
                type=p.declared_type,
                required=p.required,
                repeated=p.kind in ("words", "rest"),
                default=None
                if p.default is _REQUIRED
                else msgspec.to_builtins(p.default, str_keys=True),
                choices=tuple(p.choices),
            )
            for p in self.params
        )


class ParamInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One declared parameter (what a client shows, and checks before invoking)."""

    name: str
    type: str
    """``str``, ``int``, ``bool``, ``number``, ``decimal``, ``uuid``, ``date``, ``time``,
    ``datetime`` (a hint: values travel as text or as the protocol's int/bool)."""
    required: bool = True
    repeated: bool = False
    default: Any = None
    choices: tuple[str | int, ...] = ()


def tokenize(text: str) -> list[tuple[str, int]]:
    """The words of ``text`` with the offset just past each. ``"a b"`` and ``'a b'`` are one
    word; ``\\"`` escapes a quote inside double quotes; an unclosed quote is literal."""
    out: list[tuple[str, int]] = []
    for m in _TOKEN.finditer(text):
        if m.group(1) is not None:
            word = _ESCAPE.sub(r"\1", m.group(1))
        elif m.group(2) is not None:
            word = m.group(2)
        else:
            word = m.group(3)
        out.append((word, m.end()))
    return out


def inspect_handler(fn: Callable[..., Any], *, command: bool) -> Signature:
    """The argument signature of ``fn``, checked now. Raises ``SetupError`` for a handler that
    is not ``async``, does not take ``(msg, ctx)`` first, or has a parameter this module cannot
    fill (an unsupported type, or a shape its kind of input cannot give)."""
    name = getattr(fn, "__qualname__", repr(fn))
    if not inspect.iscoroutinefunction(fn):
        raise SetupError(f"handler {name} must be an async def")
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise SetupError(f"cannot read the annotations of {name}: {exc}") from exc
    params = list(inspect.signature(fn).parameters.values())
    head = [p for p in params[:2] if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(head) < 2:
        raise SetupError(f"handler {name} must take (msg, ctx) as its first two parameters")
    out: list[Param] = []
    for p in params[2:]:
        annotation = hints.get(p.name, str)
        _check_type(annotation, f"{name}({p.name})")
        if p.kind == p.VAR_KEYWORD:
            raise SetupError(f"{name}: **{p.name} cannot be filled from user input")
        if not command:
            if p.kind == p.VAR_POSITIONAL:
                raise SetupError(f"{name}: action parameters are named; *{p.name} is not")
            if p.kind == p.POSITIONAL_ONLY:
                raise SetupError(f"{name}: action parameter {p.name} must accept a keyword")
            out.append(Param(p.name, annotation, "named", p.default))
        elif p.kind == p.VAR_POSITIONAL:
            out.append(Param(p.name, annotation, "words"))
        elif p.kind == p.KEYWORD_ONLY:
            if _strip(annotation)[0] is not str:
                raise SetupError(f"{name}: the keyword-only parameter {p.name} must be str")
            out.append(Param(p.name, annotation, "rest", p.default))
        else:
            out.append(Param(p.name, annotation, "word", p.default))
    if command:
        kinds = [p.kind for p in out]
        tail = [k for k in kinds if k in ("words", "rest")]
        if len(tail) > 1 or (tail and kinds[-1] not in ("words", "rest")):
            raise SetupError(
                f"{name}: after *args or a keyword-only rest parameter nothing can follow"
            )
        seen_optional = False
        for q in out:
            if q.kind == "word" and not q.required:
                seen_optional = True
            elif q.kind == "word" and seen_optional:
                raise SetupError(f"{name}: required {q.name} follows an optional parameter")
    return Signature(tuple(out))


# ---------------------------------------------------------------------- types


def _strip(annotation: Any) -> tuple[Any, bool]:
    """``(base type, optional)``: ``Annotated`` and ``| None`` removed."""
    t = annotation
    if typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    optional = False
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(t) if a is not type(None)]
        optional = len(members) < len(typing.get_args(t))
        t = members[0] if len(members) == 1 else t
    if typing.get_origin(t) is typing.Annotated:
        t = typing.get_args(t)[0]
    return t, optional


def _check_type(annotation: Any, where: str) -> None:
    t, _ = _strip(annotation)
    if t in _PLAIN:
        return
    if typing.get_origin(t) is Literal and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in typing.get_args(t)
    ):
        return
    if (
        isinstance(t, type)
        and issubclass(t, enum.Enum)
        and all(isinstance(m.value, str | int) and not isinstance(m.value, bool) for m in t)
    ):
        return
    raise SetupError(
        f"{where}: unsupported argument type {annotation!r} (use str, int, float, bool, a"
        " Literal or Enum of str/int, Decimal, UUID, date/time, optionally Annotated or | None)"
    )


def _describe(annotation: Any) -> tuple[str, str]:
    """``(name in usage, what the user must type)``."""
    t, _ = _strip(annotation)
    if t in _PLAIN:
        return _PLAIN[t][:2]
    if typing.get_origin(t) is Literal:
        choices = [str(v) for v in typing.get_args(t)]
    else:
        choices = [str(m.value) for m in t]
    return "|".join(choices), "one of " + ", ".join(choices)


def _convert(p: Param, value: str | int | bool, usage: str) -> Any:
    base, _ = _strip(p.annotation)
    what = _describe(p.annotation)[1]
    shown = value if not isinstance(value, str) or len(value) <= 40 else value[:40] + "..."
    if base is bool and isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise ArgumentError(f"{p.name} must be {what}, not {shown!r}", usage)
    try:
        if base in _ISO and isinstance(value, str):
            converted = base.fromisoformat(value)  # 3.11: "12:30", "2024-05-01 12:30", ...
        else:
            converted = msgspec.convert(value, base, strict=False)
    except (msgspec.ValidationError, ValueError):
        raise ArgumentError(f"{p.name} must be {what}, not {shown!r}", usage) from None
    if isinstance(converted, float) and not math.isfinite(converted):
        raise ArgumentError(f"{p.name} must be a finite number, not {shown!r}", usage)
    if base is not p.annotation and base not in _ISO:  # Annotated constraints (ranges, ...)
        try:
            converted = msgspec.convert(value, p.annotation, strict=False)
        except msgspec.ValidationError as exc:
            detail = str(exc).split(" - at ", 1)[0].replace("Expected", "expected")
            raise ArgumentError(f"{p.name}: {detail}, not {shown!r}", usage) from None
    return converted
