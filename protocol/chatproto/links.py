"""Invite links as text (SPEC.md 19.1): ``chatd://join/<token>``, the token 32 characters of
base64url (no padding) over 24 bytes: an 8-byte selector the server finds the link by, then a
16-byte tag only the server can make (HMAC under its secret). Pure: the server checks the tag
(``chatd.core.links``), a client only reads and writes the text.

Public channel links (SPEC.md 20.1): ``chatd://channel/<handle>``. The link is only the
channel's public handle, so it holds no secret and the server never sees it: a client parses it
here and looks the channel up with ``find_channel``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from chatproto import limits as L
from chatproto.errors import ChatProtoError, ErrorCode

PREFIX: Final = "chatd://join/"
"""The shareable form is this prefix, then the token."""
SELECTOR_BYTES: Final = 8
TAG_BYTES: Final = 16
TOKEN_BYTES: Final = SELECTOR_BYTES + TAG_BYTES
TOKEN_CHARS: Final = 32
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}\Z")


def url(token: str) -> str:
    """The shareable text of ``token``."""
    return PREFIX + token


def encode_token(selector: bytes, tag: bytes) -> str:
    if len(selector) != SELECTOR_BYTES or len(tag) != TAG_BYTES:
        raise ValueError("a token is an 8-byte selector and a 16-byte tag")
    return base64.urlsafe_b64encode(selector + tag).decode("ascii")


def token_of(text: str) -> str | None:
    """The token in ``text`` (the shareable form, or the bare token; surrounding whitespace
    ignored); None when it is not one."""
    text = text.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    return text if _TOKEN.match(text) else None


def decode_token(text: str) -> tuple[bytes, bytes] | None:
    """``(selector, tag)`` of the token in ``text``; None when malformed."""
    token = token_of(text)
    if token is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(token)
    except (binascii.Error, ValueError):
        return None
    return raw[:SELECTOR_BYTES], raw[SELECTOR_BYTES:]


CHANNEL_PREFIX: Final = "chatd://channel/"
"""A public channel's shareable form is this prefix, then its handle (SPEC.md 20.1)."""


def _handle_or_raise(handle: str, text: str) -> str:
    if not L.is_handle(handle):
        raise ChatProtoError(f"not a channel link or handle: {text[:80]!r}", ErrorCode.INVALID)
    return handle


def channel_link(handle: str) -> str:
    """The shareable link of the public channel with ``handle`` (SPEC.md 2's rules, else
    ``ChatProtoError`` INVALID: a link that no client could parse back is never made)."""
    return CHANNEL_PREFIX + _handle_or_raise(handle, handle)


def parse_channel_ref(text: str) -> str:
    """The handle ``text`` names: a channel link, ``@handle`` or the bare handle, surrounding
    whitespace ignored (what a user pastes). The handle itself is taken as is (no case folding:
    handles are lowercase on the wire, so ``chatd://channel/News`` is refused, not guessed at);
    anything else raises ``ChatProtoError`` with code INVALID."""
    ref = text.strip()
    if ref.startswith(CHANNEL_PREFIX):
        ref = ref[len(CHANNEL_PREFIX) :]
    elif ref.startswith("@"):
        ref = ref[1:]
    return _handle_or_raise(ref, text)
