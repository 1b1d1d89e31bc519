"""Who may do what in a conversation. Pure functions over kinds and roles.

Each check raises the server's domain error with its wire code, or returns None. They run inside
the store's write transaction, so the role they read is the role at commit time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from chatd.errors import Conflict, Forbidden, Invalid, NotFound

ConvKind = Literal["direct", "group", "channel"]
Role = Literal["owner", "admin", "member"]
MANAGERS: frozenset[str] = frozenset({"owner", "admin"})


def check_send(kind: str, role: str) -> None:
    """Channels are broadcast: only owner and admins post. Everyone posts elsewhere."""
    if kind == "channel" and role not in MANAGERS:
        raise Forbidden("only channel admins may post")


def check_manage_members(kind: str, actor_role: str) -> None:
    if kind == "direct":
        raise Invalid("a direct conversation has exactly its two members")
    if actor_role not in MANAGERS:
        raise Forbidden("only the owner or an admin may change members")


def check_remove(kind: str, actor_role: str, target_role: str) -> None:
    check_manage_members(kind, actor_role)
    if target_role == "owner":
        raise Forbidden("the owner cannot be removed")
    if target_role == "admin" and actor_role != "owner":
        raise Forbidden("only the owner may remove an admin")


def check_set_role(kind: str, actor_role: str, target_role: str) -> None:
    if kind == "direct":
        raise Invalid("a direct conversation has no roles to change")
    if actor_role != "owner":
        raise Forbidden("only the owner may change roles")
    if target_role == "owner":
        raise Invalid("the owner's role cannot be changed")


def check_rename(kind: str, actor_role: str) -> None:
    if kind == "direct":
        raise Invalid("a direct conversation has no title")
    if actor_role not in MANAGERS:
        raise Forbidden("only the owner or an admin may rename")


UNDELETABLE: frozenset[str] = frozenset({"system", "payment.receipt"})
"""Server messages: the record of the conversation and of payments is never deleted."""
TOMBSTONE = "deleted"


def check_delete(
    kind: str, actor: int, actor_role: str, sender: int, sender_role: str | None, msg_kind: str
) -> bool:
    """May ``actor`` delete a message of ``sender`` for everyone (SPEC.md 18.9)? Its sender
    always (a direct conversation included); in a group or channel the owner any member's
    message, an admin a member's or a former member's (``sender_role`` None), not the owner's
    or another admin's (as for ``remove``). False: it is a tombstone already (nothing to do)."""
    if msg_kind in UNDELETABLE:
        raise Invalid("a server message cannot be deleted")
    if msg_kind == TOMBSTONE:
        return False
    if sender == actor:
        return True
    if kind == "direct":
        raise Forbidden("only its sender may delete a message in a direct conversation")
    if actor_role not in MANAGERS:
        raise Forbidden("only its sender, the owner or an admin may delete a message")
    if actor_role == "admin" and sender_role in MANAGERS:
        raise Forbidden("only the owner may delete the owner's or an admin's message")
    return True


def check_leave(kind: str) -> None:
    if kind == "direct":
        raise Invalid("a direct conversation cannot be left")


def next_owner(remaining: Sequence[tuple[int, str, int]]) -> int | None:
    """The account to inherit ownership: the earliest-joined admin, else the earliest-joined member.

    ``remaining`` holds ``(account, role, joined_seq)`` of the members left after the owner.
    """
    admins = [m for m in remaining if m[1] == "admin"]
    pool = admins or list(remaining)
    if not pool:
        return None
    return min(pool, key=lambda m: (m[2], m[0]))[0]


# --------------------------------------------------------------------------- signed membership (SPEC.md 8.5)

LogHead = tuple[int, bytes, bytes]
"""``(epoch, hash, group)`` of the last entry of a conversation's membership log."""


def check_link(head: LogHead | None, entry: LogHead | None, *, create: bool = False) -> None:
    """Whether a change may be written given the log's ``head`` and the change's signed
    ``entry`` as ``(epoch, prev, group)``: a conversation with a log takes only signed changes,
    each naming the head (a stale one is ``Conflict``: fetch the log and sign again); one
    without a log (created unsigned) takes only unsigned changes, or (``create``: its creation,
    or a direct conversation's first entry) the entry that starts it."""
    if entry is None:
        if head is not None:
            raise Invalid("this conversation's members are signed: send the change's signed entry")
        return
    epoch, prev, group = entry
    if head is None:
        if epoch != 1 or not create:
            raise Conflict("this conversation has no membership log to extend")
        return
    if epoch == 1:
        raise Conflict("this conversation's membership log has begun already")
    if epoch != head[0] + 1 or prev != head[1] or group != head[2]:
        raise Conflict("the membership log moved on: fetch it and sign the change again")


def seat_access(kind: str, bot: bool) -> str:
    """The access a signed entry gives a new member: a bot's initial access, empty for a user."""
    return initial_access(kind) if bot else ""


def check_roster(
    kind: str,
    creator: int,
    others: Sequence[int],
    bots: set[int] | frozenset[int],
    roster: Sequence[tuple[int, str, str]],
) -> None:
    """A signed ``create`` entry lists exactly the conversation's members, roles and bot
    access, as ``(account, role, access)`` ascending by account."""
    expected = sorted(
        (a, "member" if kind == "direct" or a != creator else "owner", seat_access(kind, a in bots))
        for a in {creator, *others}
    )
    if list(roster) != expected:
        raise Invalid("the signed create entry does not list exactly these members and roles")


def check_new_member_access(kind: str, bot: bool, access: str) -> None:
    if access != seat_access(kind, bot):
        raise Invalid("the signed entry gives the new member another access than the rules")


def direct_key(a: int, b: int) -> str:
    """The unique key of the direct conversation between two accounts (one per pair)."""
    lo, hi = sorted((a, b))
    return f"{lo}:{hi}"


# --------------------------------------------------------------------------- bots (SPEC.md 16)

ADDRESSED = "addressed"
ALL = "all"
ALWAYS_DELIVERED: frozenset[str] = frozenset({"system", "payment.receipt"})
"""Kinds no bot is ever denied: membership and access changes, payment receipts."""


def check_add_bot(kind: str, actor_role: str) -> None:
    """Only the owner or an admin adds a bot, whatever the rule for inviting people."""
    if kind == "direct":
        raise Invalid("a direct conversation has exactly its two members")
    if actor_role not in MANAGERS:
        raise Forbidden("only the owner or an admin may add a bot")


def initial_access(kind: str) -> str:
    """A bot gets everything in a direct conversation; elsewhere what is addressed to it."""
    return ALL if kind == "direct" else ADDRESSED


def check_set_bot_access(kind: str, actor_role: str) -> None:
    if kind == "direct":
        raise Invalid("a bot in a direct conversation always receives everything")
    if actor_role not in MANAGERS:
        raise Forbidden("only the owner or an admin may change a bot's access")


def changes_access(member: Sequence[str] | None, access: str) -> bool:
    """Whether giving a member bot ``access`` changes anything: ``member`` is its ``(access,
    account type)``; ``NotFound`` when it is not a member (None), ``Invalid`` for a user
    (only a bot has an access)."""
    if member is None:
        raise NotFound("not a member")
    if member[1] != "bot":
        raise Invalid("only a bot member has an access")
    return member[0] != access


def withheld_from(
    kind: str, sender: int, to: Sequence[int], addressed: Sequence[int]
) -> tuple[int, ...]:
    """The bots a message of ``kind`` is withheld from at commit: every member bot whose access
    is ``addressed`` (``addressed``, ascending), but the ones in ``to`` and the sender."""
    if not addressed or kind in ALWAYS_DELIVERED:
        return ()
    return tuple(b for b in addressed if b != sender and b not in to)


def hidden_from_bot(
    kind: str,
    seq: int,
    sender: int,
    to: Sequence[int],
    withheld: Sequence[int],
    bot: int,
    joined_seq: int,
) -> bool:
    """Whether bot member ``bot`` (joined at ``joined_seq``) reads a message as ``withheld``:
    it was withheld from it at commit, or it predates the bot's join; never a server message,
    one addressed to it, or its own."""
    if kind in ALWAYS_DELIVERED or bot in to or sender == bot:
        return False
    return bot in withheld or seq < joined_seq
