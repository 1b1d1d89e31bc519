"""Moderation of a public channel's comments and the view counts of its posts (SPEC.md 20.9):
plain rules over what the store read inside the write's transaction, time passed in.

* A **ban** from commenting stops an account's comments and new reactions in one channel until
  ``ban_until`` (0: no end); admins (the owner included) cannot be banned, and only admins ban.
* **Slow mode**: a non-admin may comment once per ``slow_mode`` seconds in the channel; a
  comment sooner is refused with the wait (``RATE_LIMITED``), so a client can show it.
* **Views**: a post counts each account once, through a keyed hash of (account, channel, seq)
  under the server's view secret (``view_tag``): the store keeps the tag, never the account, so
  no answer and no row names who viewed; whoever holds the secret can test a guess (SPEC.md 20.9
  says so).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Final

from chatproto import limits as L

from chatd.errors import Forbidden, Invalid, RateLimited

MAX_SLOW_MODE: Final = L.MAX_SLOW_MODE
"""Longest slow mode, in seconds (an hour)."""
VIEWS_PER_MINUTE: Final = 1000
"""Post views an account may report per minute, on every node together: far above what a
reader scrolling shows, and each view costs the server a write."""
VIEW_SECRET_BYTES: Final = 32
VIEW_TAG_BYTES: Final = 16
"""128 bits: tags of different (account, post) pairs never collide in practice, so a view is
never lost to another viewer's tag."""
_VIEW_CONTEXT: Final = b"chatd-view-v1\x00"


def ban_active(banned: bool, ban_until: int, now: int) -> bool:
    """A ban holds from when it was made until ``ban_until`` (0: until lifted)."""
    return banned and (ban_until == 0 or ban_until > now)


def check_comment(
    *,
    is_admin: bool,
    banned: bool,
    ban_until: int,
    last_comment: int,
    slow_mode: int,
    now: int,
    commenting: bool,
) -> None:
    """Refuse a comment (``commenting``) or a new reaction of an account banned from the
    channel's comments (``FORBIDDEN``), and a comment less than ``slow_mode`` seconds after the
    account's last one in the channel (``RATE_LIMITED``, with the wait). Admins pass both."""
    if is_admin:
        return
    if ban_active(banned, ban_until, now):
        until = "until lifted" if ban_until == 0 else f"until {ban_until} (ms)"
        raise Forbidden(f"banned from commenting in this channel {until}")
    if not commenting or slow_mode <= 0 or last_comment <= 0:
        return
    due = last_comment + slow_mode * 1000
    if now < due:
        # A clock that stepped back leaves ``due - now`` above the interval: never say more.
        wait = min(due - now, slow_mode * 1000)
        raise RateLimited(
            f"slow mode: one comment every {slow_mode} s; retry in {wait / 1000:.1f} s",
            retry_after=wait / 1000,
        )


def check_ban(*, actor_admin: bool, target_admin: bool, until: int, now: int) -> None:
    """Only an admin bans (``FORBIDDEN``), never another admin (``FORBIDDEN``), and a ban with
    an end must end in the future (``INVALID``)."""
    if not actor_admin:
        raise Forbidden("only the channel's admins ban from its comments")
    if target_admin:
        raise Forbidden("an admin of the channel cannot be banned from its comments")
    if until != 0 and until <= now:
        raise Invalid("a ban's end must be in the future (0: no end)")


def check_slow_mode(*, actor_admin: bool, seconds: int) -> None:
    if not actor_admin:
        raise Forbidden("only the channel's admins set slow mode")
    if not 0 <= seconds <= MAX_SLOW_MODE:
        raise Invalid(f"slow mode is 0 (off) to {MAX_SLOW_MODE} seconds")


def view_tag(secret: bytes, account: int, channel: int, seq: int) -> bytes:
    """What the store keeps for ``account`` having viewed post ``seq`` of ``channel``: the
    first 16 bytes of HMAC-SHA256 under the server's view secret. The same triple always gives
    the same tag (a reload counts once); without the secret a tag says nothing of the account,
    with it one can only test a guessed (account, post) pair."""
    msg = _VIEW_CONTEXT + struct.pack(">QQQ", account, channel, seq)
    return hmac.new(secret, msg, hashlib.sha256).digest()[:VIEW_TAG_BYTES]
