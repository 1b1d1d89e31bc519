"""Invite links (SPEC.md 19): the token's tag and when a link may be used. Pure, time passed in.

A token is a random 8-byte selector (the row the store finds) and a 16-byte tag, HMAC-SHA256
under the server's link secret over the selector. The store keeps the selector, never a usable
token: without the secret (in ``server_keys``, shared by every node) no row yields a link, and
a guessed token is refused by the tag check before the database is read at all. The tag is
compared in constant time. Admins can list a link again because the server recomputes its tag.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from chatproto import links as wire
from chatproto.errors import ErrorCode

from chatd.core import rules
from chatd.errors import ChatdError

SECRET_BYTES = 32
_DOMAIN = b"chatd-invite-link-v1\x00"
MAX_EXPIRES_IN_MS = 366 * 24 * 3600 * 1000
"""The longest ``expires_in`` accepted (a year); 0 stays "never"."""


class LinkInvalid(ChatdError):
    """One answer for every unusable link, whatever the reason (SPEC.md 19.3)."""

    code = ErrorCode.LINK_INVALID

    def __init__(self) -> None:
        super().__init__("this invite link is invalid or has expired")


def tag(secret: bytes, selector: bytes) -> bytes:
    return hmac.new(secret, _DOMAIN + selector, hashlib.sha256).digest()[: wire.TAG_BYTES]


def token(secret: bytes, selector: bytes) -> str:
    """The token of the link whose selector is ``selector``."""
    return wire.encode_token(selector, tag(secret, selector))


def selector_of(secret: bytes, text: str) -> bytes:
    """The selector of a link text whose tag is the server's; ``LinkInvalid`` otherwise."""
    parts = wire.decode_token(text)
    if parts is None:
        raise LinkInvalid
    selector, got = parts
    if not hmac.compare_digest(tag(secret, selector), got):
        raise LinkInvalid
    return selector


@dataclass(frozen=True, slots=True)
class LinkState:
    """What decides whether a link still admits anyone."""

    expires: int
    max_uses: int
    uses: int
    revoked: int
    creator_role: str | None
    """The creator's role in the conversation now (None: it is no longer a member)."""


def usable(link: LinkState, now: int) -> bool:
    """A link admits while it is not revoked, not expired, not used up, and its creator is still
    an owner or admin of the conversation (a demoted or departed admin's links stop)."""
    return (
        not link.revoked
        and (link.expires == 0 or now < link.expires)
        and (link.max_uses == 0 or link.uses < link.max_uses)
        and link.creator_role in rules.MANAGERS
    )


def check_options(kind: str, expires_in: int) -> None:
    """Links are for groups and channels; an expiry is at most a year ahead."""
    if kind == "direct":
        raise ChatdError("a direct conversation has no invite links", ErrorCode.INVALID)
    if expires_in > MAX_EXPIRES_IN_MS:
        raise ChatdError("a link expires within a year at most", ErrorCode.INVALID)
