"""Conversations, members and membership logs (``Conversations``), written once for both
databases. Who may do what is ``core.rules``; here it is checked inside the change's own
transaction, before anything is written.

Across nodes (PostgreSQL), every change first locks its conversation's row (``lock_conv``), the
lock that also orders its seqs: the roles, members and log head read after it are those at
commit time, and two nodes never extend a log from one head. A direct conversation created
twice at once races on its unique key: the loser's batch runs again and finds the winner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import msgspec
from chatproto import kinds

from chatd.core import rules
from chatd.errors import Conflict, Forbidden, Invalid, NotFound
from chatd.store.base import (
    ConvRow,
    CreatedConv,
    LogRow,
    MemberRow,
    Membership,
    MembershipChange,
    SignedChange,
    StoredMessage,
)
from chatd.store.messages import system_message
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes


async def lock_conv(db: Sql, conv: int) -> str | None:
    """Lock ``conv``'s row until commit; its kind, or None when there is no such conversation."""
    kind = await db.fetchval("SELECT kind FROM conversations WHERE id=? FOR NO KEY UPDATE", conv)
    return None if kind is None else str(kind)


async def member_role(db: Sql, conv: int, account: int) -> str | None:
    role = await db.fetchval(
        "SELECT role FROM members WHERE conv_id=? AND account_id=?", conv, account
    )
    return None if role is None else str(role)


async def role_in(db: Sql, conv: int, account: int) -> tuple[str, str]:
    """Lock ``conv``, then ``(kind, role)`` of a member; ``NotFound`` for a non-member, as for
    no conversation."""
    kind = await lock_conv(db, conv)
    found = None if kind is None else await member_role(db, conv, account)
    if kind is None or found is None:
        raise NotFound("no such conversation")
    return kind, found


async def target_role(db: Sql, conv: int, account: int) -> str:
    found = await member_role(db, conv, account)
    if found is None:
        raise NotFound("not a member")
    return found


async def account_type(db: Sql, account: int) -> str | None:
    found = await db.fetchval("SELECT type FROM accounts WHERE id=?", account)
    return None if found is None else str(found)


async def log_head(db: Sql, conv: int) -> rules.LogHead | None:
    """``(epoch, hash, group)`` of the log's last entry; None when it has none."""
    row = await db.fetchrow(
        "SELECT epoch, hash, group_id FROM member_log WHERE conv_id=? ORDER BY epoch DESC LIMIT 1",
        conv,
    )
    return None if row is None else (int(row[0]), bytes(row[1]), bytes(row[2]))


async def link(db: Sql, conv: int, entry: SignedChange | None, *, create: bool = False) -> None:
    """Refuse (before anything is written) a change that does not extend the log."""
    rules.check_link(await log_head(db, conv), None if entry is None else entry.link, create=create)
    if entry is not None and entry.epoch == 1:
        await group_free(db, entry.group)


async def group_free(db: Sql, group: bytes) -> None:
    if await db.fetchval("SELECT 1 FROM member_log WHERE group_id=? AND epoch=1", group):
        raise Conflict("this membership log's group id belongs to another conversation")


async def log(db: Sql, conv: int, seq: int, entry: SignedChange) -> None:
    await db.execute(
        "INSERT INTO member_log (conv_id, epoch, seq, hash, group_id, body, sig)"
        " VALUES (?,?,?,?,?,?,?)",
        *(conv, entry.epoch, seq, entry.hash, entry.group, entry.body, entry.sig),
    )


async def signed_message(
    tx: Tx, conv: int, now: int, event: kinds.SystemEvent, entry: SignedChange | None
) -> StoredMessage:
    """The change's system message, carrying its signed entry, and the log row."""
    if entry is None:
        return await system_message(tx, conv, now, event)
    event = msgspec.structs.replace(event, entry=entry.body, sig=entry.sig)
    m = await system_message(tx, conv, now, event)
    await log(tx.sql, conv, m.seq, entry)
    return m


def _convs(db: Sql) -> str:
    """The conversations of member ``?`` as device ``?`` sees them (``_conv`` reads a row), the
    SQL up to ``WHERE m.account_id = ?``: the caller's ``AND`` selects which."""
    return (
        f"SELECT c.id, c.kind, c.title, {db.last_seq}, m.role,"
        " (SELECT count(*) FROM members x WHERE x.conv_id = c.id),"
        " coalesce(k.read, 0), coalesce(k.delivered, 0), m.joined_seq,"
        " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END"
        " FROM members m JOIN conversations c ON c.id = m.conv_id"
        " JOIN accounts a ON a.id = m.account_id"
        " LEFT JOIN cursors k ON k.conv_id = c.id AND k.device_id = ? WHERE m.account_id = ?"
    )


def _conv(r: Row) -> ConvRow:
    head = (int(r[0]), str(r[1]), str(r[2]), int(r[3]), str(r[4]), int(r[5]), int(r[6]))
    return ConvRow(*head, int(r[7]), int(r[8]), access=str(r[9]))


async def conversation(
    db: Sql,
    conv: int,
    account: int,
    device: int,
    member_limit: int | None = None,
    *,
    with_members: bool = True,
) -> ConvRow:
    """``conv`` as ``account`` (and ``device``'s cursors) sees it, with its members (the
    first ``member_limit`` of them by join, when given; none without ``with_members``).
    ``NotFound`` unless ``account`` is a member."""
    row = await db.fetchrow(_convs(db) + " AND m.conv_id = ?", device, account, conv)
    if row is None:
        raise NotFound("no such conversation")
    members: tuple[MemberRow, ...] = ()
    if with_members:
        limit = "" if member_limit is None else f" LIMIT {int(member_limit)}"
        members = tuple(await _members(db, " ORDER BY m.joined_seq, m.account_id" + limit, conv))
    return replace(_conv(row), members=members)


async def _members(db: Sql, rest: str, conv: int, *args: object) -> list[MemberRow]:
    """The members of ``conv`` that ``rest`` (the SQL after ``WHERE m.conv_id=?``) selects."""
    rows = await db.fetch(
        "SELECT m.account_id, m.role, a.handle, m.joined_seq,"
        " CASE WHEN a.type = 'bot' THEN m.access ELSE '' END FROM members m"
        " JOIN accounts a ON a.id = m.account_id WHERE m.conv_id=?" + rest,
        conv,
        *args,
    )
    return [MemberRow(int(a), str(r), str(h), int(j), str(x)) for a, r, h, j, x in rows]


_ADD_MEMBER = (
    "INSERT INTO members (conv_id, account_id, role, joined_seq, access) VALUES (?,?,?,?,?)"
)


async def create_conversation(
    tx: Tx,
    kind: str,
    title: str,
    creator: int,
    members: Sequence[int],
    now: int,
    entry: SignedChange | None = None,
) -> CreatedConv:
    """A new conversation (``creator`` its owner, ``members`` members) with its ``created``
    message; for ``direct``, the existing one of the two accounts if there is one
    (``existed``). ``entry`` starts its log (for an existing direct conversation without a
    log, it becomes its first entry). ``NotFound`` for an unknown account, ``Invalid`` for
    a direct conversation without exactly one other account or a roster that does not
    match, ``Conflict`` when the log's group id is another conversation's."""
    db, others = tx.sql, sorted(set(members) - {creator})
    type_of = {
        int(r[0]): str(r[1])
        for r in await db.fetch(
            "SELECT id, type FROM accounts WHERE id = ANY(?)", [creator, *others]
        )
    }
    for account in (creator, *others):
        if account not in type_of:
            raise NotFound(f"no account {account}")
    bots = {a for a, t in type_of.items() if t == "bot"}
    key = None
    if kind == "direct":
        if len(others) != 1 or len(set(members)) != 1:
            raise Invalid("a direct conversation has exactly one other account")
        key = rules.direct_key(creator, others[0])
        existing = await db.fetchval("SELECT id FROM conversations WHERE direct_key=?", key)
        if existing is not None:
            existing = int(existing)
            if entry is not None:
                await lock_conv(db, existing)
                if await log_head(db, existing) is None:
                    # A direct conversation from before logs: its first entry, now.
                    rules.check_roster(kind, creator, others, bots, entry.roster)
                    await link(db, existing, entry, create=True)
                    await log(db, existing, 0, entry)
            row = await conversation(db, existing, creator, 0, with_members=False)
            return CreatedConv(row, (), existed=True)
    if entry is not None:
        rules.check_roster(kind, creator, others, bots, entry.roster)
        await group_free(db, entry.group)
    conv = int(
        await db.fetchval(
            "INSERT INTO conversations (kind, title, created_at, direct_key) VALUES (?,?,?,?)"
            " RETURNING id",
            *(kind, "" if kind == "direct" else title, now, key),
        )
    )
    event = kinds.SystemEvent(
        event="created", actor=creator, title=title if kind != "direct" else ""
    )
    created = await signed_message(tx, conv, now, event, entry)
    creator_role = "member" if kind == "direct" else "owner"
    access = rules.initial_access(kind)
    await db.executemany(
        _ADD_MEMBER,
        [
            (conv, a, role, created.seq, access if a in bots else rules.ALL)
            for a, role in ((creator, creator_role), *((a, "member") for a in others))
        ],
    )
    tx.touched(conv)
    return CreatedConv(await conversation(db, conv, creator, 0, with_members=False), (created,))


async def conversations_of(
    db: Sql, account: int, device: int, after: int = 0, limit: int | None = None
) -> list[ConvRow]:
    """The conversations ``account`` is a member of with an id above ``after``, ascending
    by id, without members (the first ``limit`` of them, when given), but its pending
    message requests (``Consent.requests_of``)."""
    rows = await db.fetch(
        _convs(db) + " AND m.conv_id > ?"
        # A pending message request is listed apart (store.consent, SPEC.md 18.3).
        " AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.conv_id = m.conv_id"
        "   AND r.account_id = m.account_id AND r.state = 'pending')"
        " ORDER BY m.conv_id" + ("" if limit is None else f" LIMIT {int(limit)}"),
        *(device, account, after),
    )
    return [_conv(r) for r in rows]


async def members_page(db: Sql, conv: int, after: int, limit: int) -> list[MemberRow]:
    """Members of ``conv`` with an account id above ``after``, ascending, at most ``limit``
    (the caller checked access)."""
    return await _members(
        db, " AND m.account_id>? ORDER BY m.account_id LIMIT ?", conv, after, limit
    )


async def members_since(db: Sql, conv: int, accounts: Sequence[int]) -> dict[int, int]:
    """``{account: joined seq}`` of those of ``accounts`` that are members of ``conv`` now
    (a hub's re-check after a removal it had not applied, ``chatd.hub``)."""
    if not accounts:
        return {}
    rows = await db.fetch(
        "SELECT account_id, joined_seq FROM members WHERE conv_id=? AND account_id = ANY(?)",
        *(conv, list(accounts)),
    )
    return {int(a): int(s) for a, s in rows}


async def conversation_ids_of(db: Sql, account: int) -> list[int]:
    """The ids of the conversations ``account`` is a member of."""
    return [
        int(r[0]) for r in await db.fetch("SELECT conv_id FROM members WHERE account_id=?", account)
    ]


async def membership(db: Sql, conv: int, account: int) -> Membership | None:
    """``account``'s membership of ``conv`` (with its bot access), or None."""
    r = await db.fetchrow(
        "SELECT c.kind, m.role, m.joined_seq, a.type, m.access FROM members m"
        " JOIN conversations c ON c.id = m.conv_id JOIN accounts a ON a.id = m.account_id"
        " WHERE m.conv_id=? AND m.account_id=?",
        *(conv, account),
    )
    return (
        None if r is None else Membership(str(r[0]), str(r[1]), int(r[2]), r[3] == "bot", str(r[4]))
    )


async def member_kind(db: Sql, conv: int, account: int) -> tuple[str, str] | None:
    """``(conv kind, role)`` of ``account`` in ``conv``, or None when not a member."""
    found = await membership(db, conv, account)
    return None if found is None else (found.kind, found.role)


async def contacts_of(db: Sql, account: int) -> list[int]:
    """Accounts sharing a direct conversation or group with ``account`` (its presence
    audience), each once."""
    rows = await db.fetch(
        "SELECT DISTINCT o.account_id FROM members m"
        " JOIN conversations c ON c.id = m.conv_id AND c.kind IN ('direct', 'group')"
        " JOIN members o ON o.conv_id = m.conv_id AND o.account_id != m.account_id"
        " WHERE m.account_id = ?",
        account,
    )
    return [int(r[0]) for r in rows]


async def invite(
    tx: Tx, conv: int, actor: int, account: int, now: int, entry: SignedChange | None = None
) -> MembershipChange:
    """Add ``account`` as a member (``joined``); a bot starts with its kind's initial
    access. ``NotFound`` for no such account, ``Conflict`` when already a member,
    ``Forbidden`` when ``actor`` may not add members (or bots)."""
    kind, actor_role = await role_in(tx.sql, conv, actor)
    rules.check_manage_members(kind, actor_role)
    found = await account_type(tx.sql, account)
    if found is None:
        raise NotFound(f"no account {account}")
    bot = found == "bot"
    if bot:
        rules.check_add_bot(kind, actor_role)
    if await member_role(tx.sql, conv, account) is not None:
        raise Conflict("already a member")
    if await banned(tx.sql, conv, account):
        raise Forbidden("banned from this conversation")
    await link(tx.sql, conv, entry)
    if entry is not None:
        rules.check_new_member_access(kind, bot, entry.access)
    access = rules.initial_access(kind) if bot else rules.ALL
    event = kinds.SystemEvent(
        event="joined", actor=actor, account=account, access=access if bot else ""
    )
    m = await signed_message(tx, conv, now, event, entry)
    await tx.sql.execute(_ADD_MEMBER, *(conv, account, "member", m.seq, access))
    tx.touched(conv)
    return MembershipChange(conv, m, added=(account,))


async def drop_member(tx: Tx, conv: int, account: int) -> None:
    """``account`` stops being a member of ``conv``, with no system message of its own (the
    caller appends one, or none: a deleted request's requester is never told, nor is a
    blocked account of its seat)."""
    await tx.sql.execute("DELETE FROM members WHERE conv_id=? AND account_id=?", conv, account)
    await count_removal(tx, conv)


async def count_removal(tx: Tx, conv: int) -> None:
    """One more member of ``conv`` is gone: every message appended from now on says so in its
    envelope (``StoredMessage.removals``)."""
    await tx.sql.execute("UPDATE conversations SET removals = removals + 1 WHERE id=?", conv)
    tx.touched(conv)


async def banned(db: Sql, conv: int, account: int) -> bool:
    """Whether ``account`` is banned from ``conv`` (SPEC.md 18.8)."""
    return bool(
        await db.fetchval("SELECT 1 FROM bans WHERE conv_id=? AND account_id=?", conv, account)
    )


async def remove(
    tx: Tx,
    conv: int,
    actor: int,
    account: int,
    now: int,
    entry: SignedChange | None = None,
    ban: bool = False,
) -> MembershipChange:
    """Remove member ``account`` (``removed``). ``Invalid`` when ``account`` is the actor
    (use ``leave``), ``NotFound`` when it is not a member, ``Forbidden`` by the rules.
    ``ban``: also ban it (its pending invitation goes too; ``invite`` of it is then
    ``Forbidden``) until ``unban``."""
    kind, actor_role = await role_in(tx.sql, conv, actor)
    if account == actor:
        raise Invalid("use leave to leave a conversation")
    rules.check_remove(kind, actor_role, await target_role(tx.sql, conv, account))
    await link(tx.sql, conv, entry)
    event = kinds.SystemEvent(event="removed", actor=actor, account=account)
    m = await signed_message(tx, conv, now, event, entry)
    await drop_member(tx, conv, account)
    if ban:  # with its removal: no window in which it could be added back
        await tx.sql.execute(
            "INSERT INTO bans (conv_id, account_id, actor, at) VALUES (?,?,?,?)"
            " ON CONFLICT (conv_id, account_id) DO NOTHING",
            *(conv, account, actor, now),
        )
        await tx.sql.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    return MembershipChange(conv, m, removed=(account,))


async def unban(tx: Tx, conv: int, actor: int, account: int) -> None:
    """Lift ``account``'s ban from ``conv`` (nothing if none); ``Forbidden`` unless ``actor`` is
    an owner or admin."""
    rules.check_manage_members(*await role_in(tx.sql, conv, actor))
    await tx.sql.execute("DELETE FROM bans WHERE conv_id=? AND account_id=?", conv, account)


async def leave(
    tx: Tx, conv: int, actor: int, now: int, entry: SignedChange | None = None
) -> MembershipChange:
    """``actor`` leaves (``left``); an owner leaving hands ownership to the next member
    (``core.rules.next_owner``) with a ``role`` message. ``Forbidden`` in a direct
    conversation."""
    kind, actor_role = await role_in(tx.sql, conv, actor)
    rules.check_leave(kind)
    await link(tx.sql, conv, entry)
    m = await signed_message(tx, conv, now, kinds.SystemEvent(event="left", actor=actor), entry)
    await drop_member(tx, conv, actor)
    if actor_role == "owner":
        remaining = await tx.sql.fetch(
            "SELECT account_id, role, joined_seq FROM members WHERE conv_id=?", conv
        )
        heir = rules.next_owner([(int(a), str(r), int(j)) for a, r, j in remaining])
        if heir is not None:
            await tx.sql.execute(
                "UPDATE members SET role='owner' WHERE conv_id=? AND account_id=?", conv, heir
            )
            event = kinds.SystemEvent(event="role", actor=0, account=heir, role="owner")
            await system_message(tx, conv, now, event)
    return MembershipChange(conv, m, removed=(actor,))


async def set_role(
    tx: Tx,
    conv: int,
    actor: int,
    account: int,
    role: str,
    now: int,
    entry: SignedChange | None = None,
) -> MembershipChange:
    """Give member ``account`` ``role`` (``role`` message). ``NotFound`` when it is not a
    member, ``Forbidden`` by the rules."""
    kind, actor_role = await role_in(tx.sql, conv, actor)
    rules.check_set_role(kind, actor_role, await target_role(tx.sql, conv, account))
    await link(tx.sql, conv, entry)
    event = kinds.SystemEvent(event="role", actor=actor, account=account, role=role)
    m = await signed_message(tx, conv, now, event, entry)
    await tx.sql.execute(
        "UPDATE members SET role=? WHERE conv_id=? AND account_id=?", role, conv, account
    )
    return MembershipChange(conv, m)


async def rename(tx: Tx, conv: int, actor: int, title: str, now: int) -> MembershipChange:
    """Set the title (``renamed`` message). ``Forbidden`` by the rules (never direct)."""
    rules.check_rename(*await role_in(tx.sql, conv, actor))
    event = kinds.SystemEvent(event="renamed", actor=actor, title=title)
    m = await system_message(tx, conv, now, event)
    await tx.sql.execute("UPDATE conversations SET title=? WHERE id=?", title, conv)
    return MembershipChange(conv, m)


async def member_log(db: Sql, conv: int, after: int, limit: int) -> list[LogRow]:
    """Entries of ``conv``'s membership log with epoch > ``after``, ascending, at most
    ``limit`` (the caller checked membership)."""
    rows = await db.fetch(
        "SELECT epoch, seq, body, sig FROM member_log WHERE conv_id=? AND epoch>?"
        " ORDER BY epoch LIMIT ?",
        *(conv, after, limit),
    )
    return [LogRow(int(e), int(q), bytes(b), bytes(g)) for e, q, b, g in rows]


class Conversations(Scripts):
    """Conversations and members. Every membership change may carry a ``SignedChange``: it is
    checked against the conversation's membership log and stored with the change, in the same
    transaction (``Conflict`` when the log moved on, ``Invalid`` when it does not match or a
    signed conversation gets an unsigned change; nothing is written then). Who may change what
    is ``core.rules`` (``Forbidden`` when the actor's role may not; ``NotFound`` when the actor
    is not a member, as for no conversation). A change returns its ``MembershipChange``: the
    system message it appended and the accounts it added or removed."""

    create_conversation = writes(create_conversation)
    conversation = reads(conversation)
    conversations_of = reads(conversations_of)
    members_page = reads(members_page)
    conversation_ids_of = reads(conversation_ids_of)
    members_since = reads(members_since)
    invite = writes(invite)
    remove = writes(remove)
    unban = writes(unban)
    is_banned = reads(banned)
    leave = writes(leave)
    set_role = writes(set_role)
    rename = writes(rename)
    member_log = reads(member_log)
    log_head = reads(log_head)
    contacts_of = reads(contacts_of)
    member_kind = reads(member_kind)
    membership = reads(membership)
