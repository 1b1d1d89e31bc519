"""Contacts, blocks, privacy settings, message requests and invitations (``Consent``),
written once for both databases. Who may do what is ``core.consent``; the services ask it with
what these reads return, and these writes record the answers.

A message request is a direct conversation whose recipient is a member but has not accepted it
(a ``requests`` row, kind direct); an invitation is a ``requests`` row of a group or channel whose
invitee is not a member. Changes of membership made here (a deleted request, a blocked account's
suspended seat) lock the conversation's row first, like every membership change (``lock_conv``).
"""

from __future__ import annotations

from collections.abc import Sequence

from chatd.core import rules
from chatd.core.consent import Privacy, Relation, check_setting
from chatd.errors import NotFound
from chatd.store.base import AnswerRow, RequestRow, Seen
from chatd.store.conversations import drop_member, lock_conv
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes


async def _direct_conv(db: Sql, a: int, b: int) -> int | None:
    conv = await db.fetchval(
        "SELECT id FROM conversations WHERE direct_key=?", rules.direct_key(a, b)
    )
    return None if conv is None else int(conv)


async def _is_member(db: Sql, conv: int, account: int) -> bool:
    return bool(
        await db.fetchval("SELECT 1 FROM members WHERE conv_id=? AND account_id=?", conv, account)
    )


async def privacy(db: Sql, account: int) -> Privacy | None:
    """The settings ``account`` chose; None when it never chose (the server's defaults)."""
    r = await db.fetchrow(
        "SELECT add_me, presence, last_seen, find_me FROM privacy WHERE account_id=?",
        account,
    )
    return None if r is None else _privacy(r[0:4])


async def set_privacy(tx: Tx, account: int, privacy: Privacy) -> None:
    """Replace ``account``'s privacy settings."""
    await tx.sql.execute(
        "INSERT INTO privacy (account_id, add_me, presence, last_seen, find_me)"
        " VALUES (?,?,?,?,?)"
        " ON CONFLICT (account_id) DO UPDATE SET add_me=excluded.add_me,"
        " presence=excluded.presence, last_seen=excluded.last_seen,"
        " find_me=excluded.find_me",
        *(account, privacy.add_me, privacy.presence, privacy.last_seen, privacy.find_me),
    )


async def relations(db: Sql, target: int, actors: Sequence[int]) -> dict[int, Relation]:
    """How ``target`` sees each of ``actors``: blocked, a contact, sharing a conversation the
    target accepted (one where it has no pending request)."""
    wanted = sorted(set(actors) - {target})
    if not wanted:
        return {}
    async with db.snapshot():
        blocked = {
            int(r[0])
            for r in await db.fetch(
                "SELECT blocked_id FROM blocks WHERE account_id=? AND blocked_id = ANY(?)",
                *(target, wanted),
            )
        }
        contact = {
            int(r[0])
            for r in await db.fetch(
                "SELECT contact_id FROM contacts WHERE account_id=? AND contact_id = ANY(?)",
                *(target, wanted),
            )
        }
        shares = {
            int(r[0])
            for r in await db.fetch(
                "SELECT DISTINCT o.account_id FROM members m"
                " JOIN members o ON o.conv_id = m.conv_id"
                " WHERE m.account_id=? AND o.account_id = ANY(?)"
                " AND NOT EXISTS (SELECT 1 FROM requests r"
                "   WHERE r.conv_id = m.conv_id AND r.account_id = m.account_id)",
                *(target, wanted),
            )
        }
    return {
        a: Relation(blocked=a in blocked, contact=a in contact, shares=a in shares) for a in wanted
    }


async def seen_by(db: Sql, actor: int, targets: Sequence[int]) -> dict[int, Seen]:
    """How each of ``targets`` sees ``actor``, with its settings (None: the defaults) and
    whether it is a bot; an unknown target is left out."""
    wanted = sorted(set(targets) - {actor})
    if not wanted:
        return {}
    async with db.snapshot():
        rows = await db.fetch(
            "SELECT a.id, a.type, p.add_me, p.presence, p.last_seen, p.find_me,"
            " EXISTS (SELECT 1 FROM blocks b WHERE b.account_id = a.id"
            "   AND b.blocked_id = ?),"
            " EXISTS (SELECT 1 FROM contacts k WHERE k.account_id = a.id"
            "   AND k.contact_id = ?),"
            " EXISTS (SELECT 1 FROM members m JOIN members o ON o.conv_id = m.conv_id"
            "   WHERE m.account_id = a.id AND o.account_id = ?"
            "   AND NOT EXISTS (SELECT 1 FROM requests r"
            "     WHERE r.conv_id = m.conv_id AND r.account_id = m.account_id))"
            " FROM accounts a LEFT JOIN privacy p ON p.account_id = a.id"
            " WHERE a.id = ANY(?)",
            *(actor, actor, actor, wanted),
        )
    return {
        int(r[0]): Seen(
            Relation(blocked=bool(r[6]), contact=bool(r[7]), shares=bool(r[8])),
            None if r[2] is None else _privacy(r[2:6]),
            r[1] == "bot",
        )
        for r in rows
    }


async def add_contact(tx: Tx, account: int, contact: int, now: int) -> None:
    """``contact`` becomes a contact of ``account`` (it messaged it first)."""
    await tx.sql.execute(
        "INSERT INTO contacts (account_id, contact_id, since) VALUES (?,?,?)"
        " ON CONFLICT (account_id, contact_id) DO NOTHING",
        *(account, contact, now),
    )


async def contact_list(db: Sql, account: int, blocked: bool, after: int, limit: int) -> list[int]:
    """``account``'s contacts (or the accounts it blocked) above ``after``, ascending."""
    sql = (
        "SELECT blocked_id FROM blocks WHERE account_id=? AND blocked_id>?"
        " ORDER BY blocked_id LIMIT ?"
        if blocked
        else "SELECT contact_id FROM contacts WHERE account_id=? AND contact_id>?"
        " ORDER BY contact_id LIMIT ?"
    )
    return [int(r[0]) for r in await db.fetch(sql, account, after, limit)]


async def add_request(tx: Tx, conv: int, account: int, sender: int, now: int) -> bool:
    """Record a pending request of ``conv`` for ``account``; False when it had one."""
    n = await tx.sql.execute(
        "INSERT INTO requests (conv_id, account_id, sender, at) VALUES (?,?,?,?)"
        " ON CONFLICT (conv_id, account_id) DO NOTHING",
        *(conv, account, sender, now),
    )
    if n > 0:  # an earlier decline is old news now: the new invitation is what counts
        await tx.sql.execute("DELETE FROM declines WHERE conv_id=? AND account_id=?", conv, account)
    return n > 0


def _requests(db: Sql) -> str:
    """The SELECT of requests as ``_request`` reads them, up to its WHERE."""
    return (
        f"SELECT c.id, c.kind, r.sender, a.handle, r.at, c.title, {db.last_seq}, r.state"
        " FROM requests r JOIN conversations c ON c.id = r.conv_id"
        " JOIN accounts a ON a.id = r.sender WHERE "
    )


async def request(db: Sql, conv: int, account: int) -> RequestRow | None:
    """``account``'s request of ``conv`` (pending or accepted), or None."""
    r = await db.fetchrow(_requests(db) + "r.conv_id=? AND r.account_id=?", conv, account)
    return None if r is None else _request(r)


async def pending_convs(db: Sql, account: int, convs: Sequence[int]) -> set[int]:
    """Those of ``convs`` that are pending requests of ``account``."""
    if not convs:
        return set()
    rows = await db.fetch(
        "SELECT conv_id FROM requests WHERE account_id=? AND state='pending' AND conv_id = ANY(?)",
        account,
        list(convs),
    )
    return {int(r[0]) for r in rows}


async def requests_of(db: Sql, account: int, after: int, limit: int) -> list[RequestRow]:
    """``account``'s pending requests with conv > ``after``, ascending, at most ``limit``."""
    rows = await db.fetch(
        _requests(db) + "r.account_id=? AND r.state='pending' AND r.conv_id>?"
        " ORDER BY r.conv_id LIMIT ?",
        account,
        after,
        limit,
    )
    return [_request(r) for r in rows]


async def accept_request(tx: Tx, conv: int, account: int, now: int) -> RequestRow:
    """A direct request accepted: the conversation becomes an ordinary one for ``account``
    and its sender one of ``account``'s contacts. ``NotFound`` when there is no pending
    direct request."""
    row = await _open_request(tx.sql, conv, account)
    if row.kind != "direct":
        raise NotFound("no such request")
    await tx.sql.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    await tx.sql.execute(
        "INSERT INTO contacts (account_id, contact_id, since) VALUES (?,?,?)"
        " ON CONFLICT (account_id, contact_id) DO NOTHING",
        *(account, row.sender, now),
    )
    return row


async def mark_accepted(tx: Tx, conv: int, account: int) -> RequestRow:
    """An invitation to a conversation with a signed log accepted: the next signed
    ``invite`` of ``account`` goes through (``NotFound`` when none is pending)."""
    row = await _open_request(tx.sql, conv, account)
    await tx.sql.execute(
        "UPDATE requests SET state='accepted' WHERE conv_id=? AND account_id=?",
        conv,
        account,
    )
    return row


async def drop_request(tx: Tx, conv: int, account: int) -> RequestRow:
    """Delete ``account``'s request of ``conv``. A direct one: ``account`` leaves the
    conversation too (no system message) and the pair's direct key is freed, so the
    sender's next ``create_conv`` starts a new request. ``NotFound`` when there is none."""
    row = await _open_request(tx.sql, conv, account, accepted_too=True)
    await tx.sql.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    if row.kind == "direct":
        await lock_conv(tx.sql, conv)
        await drop_member(tx, conv, account)
        await tx.sql.execute("UPDATE conversations SET direct_key=NULL WHERE id=?", conv)
    return row


async def decline_request(tx: Tx, conv: int, account: int, now: int) -> RequestRow:
    """``account`` declines its invitation to ``conv``: dropped, and the decline kept for the
    inviter until its client dismisses it (``answers_of``). ``NotFound`` unless pending."""
    row = await _open_request(tx.sql, conv, account)
    await tx.sql.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    await tx.sql.execute(
        "INSERT INTO declines (conv_id, account_id, sender, at) VALUES (?,?,?,?)"
        " ON CONFLICT (conv_id, account_id) DO UPDATE SET sender=excluded.sender, at=excluded.at",
        *(conv, account, row.sender, now),
    )
    return row


async def answers_of(db: Sql, sender: int, after: tuple[int, int], limit: int) -> list[AnswerRow]:
    """The answers to ``sender``'s invitations it may still act on, ascending by (conv,
    invitee) above ``after``, at most ``limit``: the accepted invitations waiting for a signed
    ``invite`` and the declines not dismissed, of conversations where ``sender`` is an owner or
    admin now, whose invitee is not a member."""
    conv, account = after
    keep = (
        " JOIN members s ON s.conv_id = x.conv_id AND s.account_id = x.sender"
        f" AND s.role IN ({', '.join(repr(r) for r in sorted(rules.MANAGERS))})"
        " JOIN accounts a ON a.id = x.account_id"
        " WHERE x.sender=? AND (x.conv_id>? OR (x.conv_id=? AND x.account_id>?))"
        " AND NOT EXISTS (SELECT 1 FROM members m"
        "   WHERE m.conv_id = x.conv_id AND m.account_id = x.account_id)"
    )
    args = (sender, conv, conv, account)
    rows = await db.fetch(
        "SELECT conv_id, account_id, handle, answer FROM ("
        " SELECT x.conv_id, x.account_id, a.handle, 'accept' AS answer"
        " FROM requests x" + keep + " AND x.state='accepted'"
        " UNION ALL"
        " SELECT x.conv_id, x.account_id, a.handle, 'decline' AS answer"
        " FROM declines x" + keep + ") u ORDER BY conv_id, account_id LIMIT ?",
        *args,
        *args,
        limit,
    )
    return [AnswerRow(int(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


async def dismiss_decline(tx: Tx, sender: int, conv: int, account: int) -> None:
    """``sender``'s client was told ``account`` declined its invitation to ``conv``: the decline
    is no longer kept (nothing when there is none of ``sender``'s)."""
    await tx.sql.execute(
        "DELETE FROM declines WHERE conv_id=? AND account_id=? AND sender=?",
        *(conv, account, sender),
    )


async def _open_request(
    db: Sql, conv: int, account: int, *, accepted_too: bool = False
) -> RequestRow:
    """``account``'s request of ``conv``; ``NotFound`` unless it is pending (or accepted,
    with ``accepted_too``)."""
    found = await request(db, conv, account)
    if found is None or (found.state != "pending" and not accepted_too):
        raise NotFound("no such request")
    return found


async def block(tx: Tx, account: int, blocked: int, now: int) -> tuple[int, int] | None:
    """``account`` blocks ``blocked``: no longer a contact, every request from it dropped,
    and their direct conversation closed to it: ``account`` leaves it when it was still a
    request, else ``blocked``'s seat is suspended. ``(conv, who left)`` when someone left
    a conversation (the hub must stop routing it to them), else None. ``NotFound`` for an
    unknown account."""
    db = tx.sql
    if not await db.fetchval("SELECT 1 FROM accounts WHERE id=?", blocked):
        raise NotFound(f"no account {blocked}")
    if await db.fetchval(
        "SELECT 1 FROM blocks WHERE account_id=? AND blocked_id=?", account, blocked
    ):
        return None
    await db.execute("DELETE FROM contacts WHERE account_id=? AND contact_id=?", account, blocked)
    conv = await _direct_conv(db, account, blocked)
    left: tuple[int, int] | None = None
    joined = 0
    request = None
    if conv is not None:
        request = await db.fetchval(
            "SELECT state FROM requests WHERE conv_id=? AND account_id=?", conv, account
        )
    await db.execute("DELETE FROM requests WHERE account_id=? AND sender=?", account, blocked)
    if conv is not None:
        await lock_conv(db, conv)
        if request is not None:  # a request blocked: the recipient leaves it
            await drop_member(tx, conv, account)
            await db.execute("UPDATE conversations SET direct_key=NULL WHERE id=?", conv)
            left, conv = (conv, account), None
        elif await _is_member(db, conv, blocked):
            joined = int(
                await db.fetchval(
                    "SELECT joined_seq FROM members WHERE conv_id=? AND account_id=?",
                    conv,
                    blocked,
                )
            )
            await drop_member(tx, conv, blocked)
            left = (conv, blocked)
        else:
            conv = None
    await db.execute(
        "INSERT INTO blocks (account_id, blocked_id, since, conv_id, joined_seq)"
        " VALUES (?,?,?,?,?)",
        *(account, blocked, now, conv, joined),
    )
    return left


async def unblock(tx: Tx, account: int, blocked: int) -> int | None:
    """Undo ``block``; the conversation whose seat ``blocked`` gets back, if any."""
    db = tx.sql
    r = await db.fetchrow(
        "SELECT conv_id, joined_seq FROM blocks WHERE account_id=? AND blocked_id=?",
        account,
        blocked,
    )
    if r is None:
        return None
    await db.execute("DELETE FROM blocks WHERE account_id=? AND blocked_id=?", account, blocked)
    if r[0] is None:
        return None
    conv = int(r[0])
    await lock_conv(db, conv)
    if not await _is_member(db, conv, account) or await _is_member(db, conv, blocked):
        return None
    await db.execute(
        "INSERT INTO members (conv_id, account_id, role, joined_seq, access) VALUES (?,?,?,?,?)",
        *(conv, blocked, "member", int(r[1]), rules.ALL),
    )
    tx.touched(conv)
    return conv


async def queued_from(db: Sql, device: int, sender: int) -> tuple[int, int]:
    """``(items, bytes)`` ``sender`` has queued for ``device`` and not yet acknowledged."""
    r = await db.fetchrow(
        "SELECT count(*), coalesce(sum(length(body)), 0) FROM to_device"
        " WHERE device_id=? AND sender=?",
        device,
        sender,
    )
    return (0, 0) if r is None else (int(r[0]), int(r[1]))


class Consent(Scripts):
    privacy = reads(privacy)
    set_privacy = writes(set_privacy)
    relations = reads(relations)
    seen_by = reads(seen_by)
    add_contact = writes(add_contact)
    contact_list = reads(contact_list)
    add_request = writes(add_request)
    request = reads(request)
    pending_convs = reads(pending_convs)
    requests_of = reads(requests_of)
    accept_request = writes(accept_request)
    mark_accepted = writes(mark_accepted)
    drop_request = writes(drop_request)
    decline_request = writes(decline_request)
    answers_of = reads(answers_of)
    dismiss_decline = writes(dismiss_decline)
    block = writes(block)
    unblock = writes(unblock)
    queued_from = reads(queued_from)


def _privacy(r: Sequence[object]) -> Privacy:
    add_me, presence, last_seen, find_me = (check_setting(str(v)) for v in r)
    return Privacy(add_me, presence, last_seen, find_me)


def _request(r: Row) -> RequestRow:
    return RequestRow(
        conv=int(r[0]),
        kind=str(r[1]),
        sender=int(r[2]),
        handle=str(r[3]),
        at=int(r[4]),
        title=str(r[5]),
        last_seq=int(r[6]),
        state=str(r[7]),
    )
