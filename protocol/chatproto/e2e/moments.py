"""Moments, end-to-end (E2E.md 18): which sender-key "conversation" a Moment's or a comment's
key belongs to.

A Moment and each comment or like under it is ONE sender-key message (E2E.md 7) under a sender
key made for it alone, distributed over the pairwise sessions like a conversation's (E2E.md 6,
``sender_key``). Its ``conv`` (bound into the AEAD associated data and the signature) is not a
conversation id (those are below 2^53) but a scope:

* ``MOMENTS`` (2^63) for Moment bodies;
* ``comments_of(moment)`` = 2^62 + the Moment's id for the comments and likes under it, so a
  comment cannot be shown under another Moment (its key and signature name the Moment).

A receiver keeps these keys as it keeps any sender key, by (scope, sender account, sender
device, key id), and never replaces one; a sender never reuses a key id in a scope.
"""

from __future__ import annotations

from typing import Final

from chatproto.limits import MAX_ID

MOMENTS: Final = 2**63
"""The sender-key scope of Moment bodies."""
_COMMENTS: Final = 2**62


def comments_of(moment: int) -> int:
    """The sender-key scope of the comments and likes under ``moment``."""
    if not 1 <= moment <= MAX_ID:
        raise ValueError("not a Moment id")
    return _COMMENTS + moment


def is_moment_scope(conv: int) -> bool:
    """Whether a sender key's ``conv`` is a Moments scope rather than a conversation."""
    return conv >= _COMMENTS


def moment_of(scope: int) -> int:
    """The Moment whose comments ``scope`` holds (0: the scope of Moment bodies)."""
    return 0 if scope == MOMENTS else scope - _COMMENTS
