"""Who may see and do what with a Moment (SPEC.md 22): plain rules, no I/O.

A Moment is posted by its author to an audience of its contacts. "Contacts" here means MUTUAL
contacts (each is in the other's contact list, SPEC.md 18.1: each accepted or messaged the
other): WeChat's friends are mutual, and a one-way contact (someone who only messaged the author,
or whom the author never accepted) must not be able to make the author's posts, or their own
comments, land in the other's timeline. Every rule below is read at the time of the read or the
delivery, never frozen at posting time, so a block (which ends the contact, 18.4) hides at once.

The store evaluates the same rules in SQL (``store.moments``); these functions are the reference
the services and tests use, and the place the rules are written down once.
"""

from __future__ import annotations

from typing import Final

from chatproto import limits as L
from chatproto.errors import ErrorCode

from chatd.errors import ChatdError, Conflict, Invalid

MAX_AUDIENCE: Final = L.MAX_MOMENT_AUDIENCE
"""Accounts one Moment may be posted to (the author not counted): bounds the audience rows one
post writes, the pushes it makes and the key deliveries its author's client must send."""
MAX_MOMENT_BYTES: Final = L.MAX_MOMENT_BYTES
"""The largest Moment ciphertext the server stores (a message body's bound, 11.3)."""
MAX_COMMENT_BYTES: Final = L.MAX_MOMENT_COMMENT_BYTES
"""The largest comment or like ciphertext."""


def sees_moment(viewer: int, author: int, *, in_audience: bool, mutual: bool) -> bool:
    """``viewer`` sees a Moment of ``author``: it is the author, or it was posted to it and they
    are still mutual contacts (a block or a contact ended since hides the Moment again)."""
    return viewer == author or (in_audience and mutual)


def sees_comment(viewer: int, moment_author: int, commenter: int, *, mutual: bool) -> bool:
    """WeChat's rule: a viewer who sees a Moment sees a comment or like of ``commenter`` when it
    is its own, the Moment's author's, or by one of its own (mutual) contacts; the Moment's
    author sees them all. ``mutual``: viewer and commenter are mutual contacts now."""
    return viewer in (moment_author, commenter) or commenter == moment_author or mutual


def check_audience(author: int, audience: list[int], everyone: bool) -> None:
    """The shape of a ``post_moment``'s audience, before the store checks each is a contact:
    either an explicit list or ``all`` (never both), at most ``MAX_AUDIENCE``, no duplicates,
    never the author itself (it always sees its own Moments)."""
    if everyone and audience:
        raise Invalid("give either an audience or all, not both")
    if len(audience) > MAX_AUDIENCE:
        raise Invalid(f"an audience has at most {MAX_AUDIENCE} accounts")
    if len(set(audience)) != len(audience):
        raise Invalid("the audience names an account twice")
    if author in audience:
        raise Invalid("the author is not part of its own audience")


def not_contacts(count: int) -> ChatdError:
    """The refusal of a ``post_moment`` naming ``count`` accounts that are not the author's
    mutual contacts: nothing is stored."""
    return ChatdError(
        f"{count} of these accounts are not your contacts (each must have you as a contact too)",
        ErrorCode.CONSENT_REQUIRED,
    )


def check_resend(stored: tuple[object, ...], sent: tuple[object, ...]) -> None:
    """A ``post_moment``, ``comment_moment`` or ``like_moment`` whose cmid its author already
    used: a resend (the same frame again after a lost answer) when what it asks is what was
    stored, and it is answered with the stored row; anything else is ``CONFLICT``. Answering a
    different request with the first row would tell a client that reused an id that its second
    Moment or comment was posted when it was not.

    What is compared: a Moment's ``body``; a comment's or like's (``moment``, ``kind``,
    ``reply_to``, ``body``). A body is a ciphertext under a sender key made for that one Moment
    or comment (E2E.md 18), so two different requests never share one; a Moment's audience is
    not compared (with ``all`` it is only known once stored), the stored one is answered."""
    if stored != sent:
        raise Conflict("this cmid was already used for another moment or comment")
