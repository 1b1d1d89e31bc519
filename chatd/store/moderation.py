"""Deleting a message for everyone (``Moderation``, SPEC.md 18.9), written once for both
databases.

The message's row keeps its seq (no hole for cursors, sync or gap filling), ts, sender, device,
cmid and franking commitment (a report of it still verifies); its kind becomes ``deleted`` and
its body the tombstone (who, when), in the same transaction as the ``deleted`` system message
that tells every member. Who may is ``core.rules.check_delete``, checked after the conversation
is locked, so a removal or demotion committed first wins.
"""

from __future__ import annotations

from chatproto import kinds

from chatd.core import rules
from chatd.errors import NotFound
from chatd.store.base import MembershipChange
from chatd.store.conversations import member_role, role_in
from chatd.store.messages import system_message
from chatd.store.sql import Scripts, Tx, writes


async def delete_message(
    tx: Tx, conv: int, seq: int, actor: int, now: int
) -> MembershipChange | None:
    """Replace message ``seq`` of ``conv`` by its tombstone and record it; None when it is one
    already. ``NotFound`` for a non-member (as for no conversation) and for a message that
    does not exist or that the actor may not read (before its join, SPEC.md 7.8); ``Forbidden``
    (``core.rules.check_delete``), ``Invalid`` (a server message)."""
    kind, actor_role = await role_in(tx.sql, conv, actor)
    joined = int(
        await tx.sql.fetchval(
            "SELECT joined_seq FROM members WHERE conv_id=? AND account_id=?", conv, actor
        )
    )
    row = await tx.sql.fetchrow(
        "SELECT sender, kind FROM messages WHERE conv_id=? AND seq=?", conv, seq
    )
    if row is None or seq < joined:
        raise NotFound("no such message")
    sender, msg_kind = int(row[0]), str(row[1])
    sender_role = actor_role if sender == actor else await member_role(tx.sql, conv, sender)
    if not rules.check_delete(kind, actor, actor_role, sender, sender_role, msg_kind):
        return None
    tombstone = kinds.encode_content(kinds.Deleted(by=actor, at=now))[1]
    await tx.sql.execute(
        "UPDATE messages SET kind=?, body=? WHERE conv_id=? AND seq=?",
        *(rules.TOMBSTONE, tombstone, conv, seq),
    )
    event = kinds.SystemEvent(event="deleted", actor=actor, account=sender, target=seq)
    return MembershipChange(conv, await system_message(tx, conv, now, event))


class Moderation(Scripts):
    delete_message = writes(delete_message)
