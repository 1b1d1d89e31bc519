"""Bots, mini-apps and addressed messages (SPEC.md section 16): the rules both sides check.

The server refuses a ``set_bot_profile`` that ``check_profile`` refuses and a ``send`` whose ``to``
``check_to`` refuses, with the error's code; a client (the bot framework) can run the same checks
before sending to tell a bot author what is wrong while the bot starts. ``parse_amount_value``
reads the value of an ``amount`` action parameter (``"12.50 USD"``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

import msgspec

from chatproto import frames as F
from chatproto import limits as L
from chatproto import money
from chatproto.errors import ChatProtoError, ErrorCode, MoneyError

_COMMAND = re.compile(L.COMMAND_PATTERN)
_PARAM_NAME = re.compile(L.PARAM_NAME_PATTERN)
_PARAM_TYPE = re.compile(L.PARAM_TYPE_PATTERN)
_NAME = re.compile(L.NAME_PATTERN)
_encoder = msgspec.msgpack.Encoder()

ALWAYS_DELIVERED: Final = frozenset({"system", "payment.receipt"})
"""Kinds every member receives whatever its access: membership and access changes, receipts."""


class StoredProfile(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What the server stores for a bot (msgpack): its commands and manifest."""

    commands: list[F.BotCommand] = []
    manifest: F.Manifest | None = None


_profile_decoder = msgspec.msgpack.Decoder(StoredProfile)


class BotError(ChatProtoError):
    """A profile or an addressed message the protocol refuses (``INVALID`` unless a price is
    at fault: ``INVALID_AMOUNT``, ``UNKNOWN_CURRENCY``)."""

    code = ErrorCode.INVALID


def check_to(to: Sequence[int]) -> tuple[int, ...]:
    """``to`` in canonical (ascending) order; ``BotError`` for a repeated account."""
    canonical = tuple(sorted(to))
    if len(set(canonical)) != len(canonical):
        raise BotError("send.to names an account twice")
    return canonical


def _unique(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BotError(f"two {what}s are named {name!r}")
        seen.add(name)


def _check_command(c: F.BotCommand) -> None:
    if not _COMMAND.match(c.name):
        raise BotError(f"command {c.name[:40]!r}: 1-32 of a-z, 0-9 and _")
    _unique([p.name for p in c.params], f"parameter of /{c.name}")
    optional = False
    for p in c.params:
        if not _PARAM_NAME.match(p.name):
            raise BotError(f"/{c.name}: parameter {p.name[:40]!r} is not an identifier")
        if not _PARAM_TYPE.match(p.type):
            raise BotError(f"/{c.name} {p.name}: type {p.type[:20]!r} is not a-z, 0-9, _")
        if p.required and optional:
            raise BotError(f"/{c.name}: required parameter {p.name!r} after an optional one")
        optional = optional or not p.required


def parse_amount_value(value: str) -> tuple[int, str]:
    """``"12.50 USD"`` -> ``(1250, "USD")``: the value of an ``amount`` parameter. Raises
    ``MoneyError`` (``INVALID_AMOUNT`` / ``UNKNOWN_CURRENCY``)."""
    amount, _, currency = value.partition(" ")
    return money.parse_amount(amount, currency), currency


def _check_param(action: str, p: F.ActionParam) -> None:
    if not _PARAM_NAME.match(p.name):
        raise BotError(f"action {action}: parameter {p.name[:40]!r} is not an identifier")
    if not p.choices:
        return
    where = f"action {action} parameter {p.name}"
    if p.type == "bool":
        raise BotError(f"{where}: a bool parameter has no choices")
    want = int if p.type == "int" else str
    for choice in p.choices:
        if type(choice) is not want:
            raise BotError(f"{where}: choices of a {p.type} parameter are {want.__name__}s")
        if p.type == "amount":
            try:
                parse_amount_value(str(choice))
            except MoneyError as exc:
                raise BotError(f"{where}: choice {choice!r}: {exc.message}", exc.code) from None
    if len(set(p.choices)) != len(p.choices):
        raise BotError(f"{where}: a choice is listed twice")


def _check_manifest(m: F.Manifest) -> None:
    if not _NAME.match(m.name):
        raise BotError(f"mini-app name {m.name[:40]!r}: a-z, 0-9, _ . - (not first: . -)")
    _unique([a.name for a in m.actions], "action")
    for a in m.actions:
        if not _NAME.match(a.name):
            raise BotError(f"action name {a.name[:70]!r}: a-z, 0-9, _ . - (not first: . -)")
        _unique([p.name for p in a.params], f"parameter of action {a.name}")
        for p in a.params:
            _check_param(a.name, p)
        if a.price is not None:
            try:
                money.exponent(a.price.currency)
                money.check_amount(a.price.amount)
            except MoneyError as exc:
                raise BotError(f"action {a.name}: price: {exc.message}", exc.code) from None


def check_profile(commands: Sequence[F.BotCommand], manifest: F.Manifest | None) -> bytes:
    """The stored form (msgpack of ``StoredProfile``) of a valid profile; ``BotError`` naming
    the first thing wrong otherwise."""
    _unique([c.name for c in commands], "command")
    for c in commands:
        _check_command(c)
    if manifest is not None:
        _check_manifest(manifest)
    body = _encoder.encode(StoredProfile(commands=list(commands), manifest=manifest))
    if len(body) > L.MAX_BOT_PROFILE_BYTES:
        raise BotError(f"the profile takes {len(body)} bytes; at most {L.MAX_BOT_PROFILE_BYTES}")
    return body


def decode_profile(body: bytes) -> StoredProfile:
    """A stored profile (as ``check_profile`` made it)."""
    return _profile_decoder.decode(body)
