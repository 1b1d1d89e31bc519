"""Invite links' pure parts (SPEC.md 19.1, 19.3): the token's text form, its tag, and when a
link admits anyone, with time passed in."""

from __future__ import annotations

import os

import pytest
from chatproto import links as wire

from chatd.core import links
from chatd.errors import ChatdError

SECRET = bytes(range(32))


def state(**kw: object) -> links.LinkState:
    base: dict[str, object] = {
        "expires": 0,
        "max_uses": 0,
        "uses": 0,
        "revoked": 0,
        "creator_role": "admin",
    }
    return links.LinkState(**{**base, **kw})  # type: ignore[arg-type]


def test_a_token_round_trips_in_both_text_forms_and_only_its_tag_verifies() -> None:
    selector = os.urandom(8)
    token = links.token(SECRET, selector)
    assert len(token) == wire.TOKEN_CHARS
    for text in (token, wire.url(token), f"  {wire.url(token)}\n"):
        assert links.selector_of(SECRET, text) == selector
    with pytest.raises(links.LinkInvalid):
        links.selector_of(bytes(32), token)  # another server's secret
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token[:-1], token + "A", "chatd://join/", "", "x" * 300, "€" * 32):
        with pytest.raises(links.LinkInvalid):
            links.selector_of(SECRET, bad)


def test_every_unusable_link_is_the_same_error() -> None:
    errors = set()
    for bad in ("", "not a link", wire.url("A" * 32)):
        with pytest.raises(links.LinkInvalid) as exc:
            links.selector_of(SECRET, bad)
        errors.add((exc.value.code, exc.value.message))
    assert len(errors) == 1


def test_when_a_link_admits() -> None:
    now = 1_000_000
    assert links.usable(state(), now)
    assert links.usable(state(creator_role="owner"), now)
    assert links.usable(state(expires=now + 1), now)
    assert not links.usable(state(expires=now), now)  # expires is the first refused instant
    assert links.usable(state(max_uses=3, uses=2), now)
    assert not links.usable(state(max_uses=3, uses=3), now)
    assert not links.usable(state(revoked=5), now)
    assert not links.usable(state(creator_role="member"), now)  # demoted
    assert not links.usable(state(creator_role=None), now)  # left or removed


def test_options() -> None:
    links.check_options("group", 0)
    links.check_options("channel", links.MAX_EXPIRES_IN_MS)
    for kind, expires_in in (("direct", 0), ("group", links.MAX_EXPIRES_IN_MS + 1)):
        with pytest.raises(ChatdError):
            links.check_options(kind, expires_in)
