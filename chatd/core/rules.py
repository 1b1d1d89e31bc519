"""Who may do what in a conversation. Pure functions over kinds and roles.

Each check raises the server's domain error with its wire code, or returns None. They run inside
the store's write transaction, so the role they read is the role at commit time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from chatd.errors import Forbidden, Invalid

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
