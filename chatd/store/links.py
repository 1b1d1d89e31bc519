"""Invite links and join requests (``Links``, SPEC.md 19), written once for both databases.

Joining through a link is ONE write: it locks the conversation's row (the lock every membership
change takes, ``conversations.lock_conv``), reads the link again under it, decides with
``core.links.usable``, raises the link's use count and adds the member through the ordinary
``invite`` script (its role, ban, bot and log checks, its ``joined`` system message) or files a
join request. Two joins through one link, on one node or several, are ordered by that lock, so
``max_uses`` admits exactly that many; a revoke commits under the same lock, so no join that
commits after it finds the link usable.
"""

from __future__ import annotations

from chatd.core import links, rules
from chatd.errors import Conflict, Forbidden, NotFound
from chatd.store import conversations as C
from chatd.store.base import (
    JoinOutcome,
    JoinRequestRow,
    LinkPreviewRow,
    LinkRow,
    MembershipChange,
    SignedChange,
)
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, server_key, writes

_LINK = (
    "SELECT id, conv_id, selector, creator, name, created_at, expires_at, max_uses, uses,"
    " approval, revoked_at FROM invite_links"
)


def _link(r: Row) -> LinkRow:
    return LinkRow(
        int(r[0]),
        int(r[1]),
        bytes(r[2]),
        int(r[3]),
        str(r[4]),
        int(r[5]),
        int(r[6]),
        int(r[7]),
        int(r[8]),
        bool(r[9]),
        int(r[10]),
    )


async def _manager(db: Sql, conv: int, actor: int, *, lock: bool = True) -> str:
    """``conv``'s kind when ``actor`` is an owner or admin (``NotFound`` for a non-member,
    ``FORBIDDEN`` for a member, ``INVALID`` for a direct conversation); ``lock``: ``conv`` is
    locked first (a write's check; a read's takes no lock)."""
    found = await C.role_in(db, conv, actor) if lock else await C.member_kind(db, conv, actor)
    if found is None:
        raise NotFound("no such conversation")
    rules.check_manage_members(*found)
    return found[0]


async def _state(db: Sql, row: LinkRow) -> links.LinkState:
    return links.LinkState(
        expires=row.expires,
        max_uses=row.max_uses,
        uses=row.uses,
        revoked=row.revoked,
        creator_role=await C.member_role(db, row.conv, row.creator),
    )


async def link_secret(tx: Tx, secret: bytes) -> bytes:
    """The server's link secret, storing ``secret`` if there is none (the first node wins)."""
    return await server_key(tx, "invite_links", secret)


async def create_link(
    tx: Tx,
    conv: int,
    actor: int,
    selector: bytes,
    name: str,
    now: int,
    expires_in: int,
    max_uses: int,
    approval: bool,
) -> LinkRow:
    """A new link of ``conv`` made by ``actor`` (an owner or admin), expiring ``expires_in``
    ms from now (0: never) after at most ``max_uses`` joins (0: any), each a join request when
    ``approval``. ``NotFound`` for a non-member, ``Forbidden`` for a member, ``Invalid`` for a
    direct conversation or an expiry past a year."""
    kind = await _manager(tx.sql, conv, actor)
    links.check_options(kind, expires_in)
    r = await tx.sql.fetchrow(
        "INSERT INTO invite_links (conv_id, selector, creator, name, created_at, expires_at,"
        " max_uses, approval) VALUES (?,?,?,?,?,?,?,?) RETURNING id, conv_id, selector, creator,"
        " name, created_at, expires_at, max_uses, uses, approval, revoked_at",
        *(conv, selector, actor, name, now, now + expires_in if expires_in else 0),
        *(max_uses, int(approval)),
    )
    assert r is not None
    return _link(r)


async def links_of(db: Sql, conv: int, actor: int, after: int, limit: int) -> list[LinkRow]:
    """``conv``'s links above id ``after``, to its owners and admins."""
    await _manager(db, conv, actor, lock=False)
    rows = await db.fetch(
        _LINK + " WHERE conv_id=? AND id>? ORDER BY id LIMIT ?", conv, after, limit
    )
    return [_link(r) for r in rows]


async def revoke_link(tx: Tx, conv: int, actor: int, link: int, now: int) -> None:
    """Revoke ``link`` of ``conv`` (again: nothing); ``NotFound`` when it is not one of its."""
    await _manager(tx.sql, conv, actor)
    if not await tx.sql.fetchval("SELECT 1 FROM invite_links WHERE id=? AND conv_id=?", link, conv):
        raise NotFound("no such link")
    await tx.sql.execute(
        "UPDATE invite_links SET revoked_at=? WHERE id=? AND revoked_at=0", now, link
    )


async def _usable(db: Sql, selector: bytes, now: int, *, lock: bool) -> LinkRow:
    """The link of ``selector`` if it admits anyone now, else ``LinkInvalid``. ``lock``: its
    conversation is locked first and the link read again under the lock."""
    r = await db.fetchrow(_LINK + " WHERE selector=?", selector)
    if r is None:
        raise links.LinkInvalid
    if lock:
        await C.lock_conv(db, int(r[1]))
        r = await db.fetchrow(_LINK + " WHERE selector=? FOR UPDATE", selector)
        assert r is not None  # links are never deleted
    row = _link(r)
    if not links.usable(await _state(db, row), now):
        raise links.LinkInvalid
    return row


async def preview_link(db: Sql, selector: bytes, now: int) -> LinkPreviewRow:
    """What the link of ``selector`` joins, read in one snapshot; ``LinkInvalid`` when it
    admits no one now (unknown, revoked, expired or used up)."""
    async with db.snapshot():
        row = await _usable(db, selector, now, lock=False)
        r = await db.fetchrow(
            "SELECT kind, title, (SELECT count(*) FROM members WHERE conv_id = c.id)"
            " FROM conversations c WHERE id=?",
            row.conv,
        )
        assert r is not None
        logged = await C.log_head(db, row.conv) is not None
    return LinkPreviewRow(str(r[0]), str(r[1]), int(r[2]), row.approval or logged)


async def join_link(tx: Tx, selector: bytes, account: int, now: int) -> JoinOutcome:
    """``account`` joins through the link of ``selector`` (``JoinOutcome``), all under the
    conversation's lock. ``LinkInvalid`` when the link admits no one now, ``Forbidden`` when
    ``account`` is banned, or the ``invite`` refusals (as if the link's creator invited it)."""
    db = tx.sql
    row = await _usable(db, selector, now, lock=True)
    conv = row.conv
    if await C.member_role(db, conv, account) is not None:
        return JoinOutcome("member", conv)
    if await C.banned(db, conv, account):
        raise Forbidden("banned from this conversation")
    if await db.fetchval(
        "SELECT 1 FROM join_requests WHERE conv_id=? AND account_id=?", conv, account
    ):
        return JoinOutcome("pending", conv)
    async with db.savepoint():  # a refusal below undoes the use it took
        await db.execute("UPDATE invite_links SET uses = uses + 1 WHERE id=?", row.id)
        if row.approval or await C.log_head(db, conv) is not None:
            await db.execute(
                "INSERT INTO join_requests (conv_id, account_id, link_id, at) VALUES (?,?,?,?)",
                *(conv, account, row.id, now),
            )
            handle = str(await db.fetchval("SELECT handle FROM accounts WHERE id=?", account))
            return JoinOutcome(
                "requested", conv, request=JoinRequestRow(account, handle, now, row.id)
            )
        # As if the link's creator invited now: its role, the ban, a bot's rules, the system
        # message, history from the join (SPEC.md 7.8) are the ordinary invite's.
        change = await C.invite(tx, conv, row.creator, account, now)
        await db.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    return JoinOutcome("joined", conv, change=change)


async def join_requests_of(
    db: Sql, conv: int, actor: int, after: int, limit: int
) -> list[JoinRequestRow]:
    """``conv``'s pending join requests by account above ``after``, at most ``limit``, to its
    owners and admins (``NotFound`` for a non-member, ``Forbidden`` for a member)."""
    await _manager(db, conv, actor, lock=False)
    rows = await db.fetch(
        "SELECT j.account_id, a.handle, j.at, j.link_id FROM join_requests j"
        " JOIN accounts a ON a.id = j.account_id WHERE j.conv_id=? AND j.account_id>?"
        " ORDER BY j.account_id LIMIT ?",
        *(conv, after, limit),
    )
    return [JoinRequestRow(int(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


async def answer_join(
    tx: Tx,
    conv: int,
    actor: int,
    account: int,
    approve: bool,
    now: int,
    entry: SignedChange | None = None,
) -> MembershipChange | None:
    """Approve (``account`` joins as if ``actor`` invited it now) or decline a join request;
    the change when it joined. ``NotFound`` when there is no such request."""
    db = tx.sql
    await _manager(db, conv, actor)
    if not await db.fetchval(
        "SELECT 1 FROM join_requests WHERE conv_id=? AND account_id=?", conv, account
    ):
        raise NotFound("no such join request")
    change = None
    if approve:
        if await db.fetchval("SELECT suspended_at FROM accounts WHERE id=?", account):
            raise Forbidden("this account is suspended")
        try:
            change = await C.invite(tx, conv, actor, account, now, entry)
        except Conflict:
            if await C.member_role(db, conv, account) is None:
                raise  # a stale signed entry: sign again
            # Already a member (added meanwhile): the request is simply done.
    await db.execute("DELETE FROM join_requests WHERE conv_id=? AND account_id=?", conv, account)
    if change is not None:
        await db.execute("DELETE FROM requests WHERE conv_id=? AND account_id=?", conv, account)
    return change


async def cancel_join(tx: Tx, conv: int, account: int) -> None:
    """``account`` withdraws its pending join request of ``conv`` (``NotFound``: none)."""
    n = await tx.sql.execute(
        "DELETE FROM join_requests WHERE conv_id=? AND account_id=?", conv, account
    )
    if not n:
        raise NotFound("no such join request")


async def managers_of(db: Sql, conv: int) -> list[int]:
    """The owner and admins of ``conv`` (those a join request is announced to)."""
    rows = await db.fetch(
        "SELECT account_id FROM members WHERE conv_id=? AND role IN ('owner', 'admin')", conv
    )
    return [int(r[0]) for r in rows]


class Links(Scripts):
    """Every script checks the caller's role itself (owner or admin; ``NotFound`` for a
    non-member); an unusable link is ``core.links.LinkInvalid``."""

    link_secret = writes(link_secret)
    create_link = writes(create_link)
    links_of = reads(links_of)
    revoke_link = writes(revoke_link)
    preview_link = reads(preview_link)
    join_link = writes(join_link)
    join_requests_of = reads(join_requests_of)
    answer_join = writes(answer_join)
    cancel_join = writes(cancel_join)
    managers_of = reads(managers_of)
