"""Moments, their audiences, comments and likes (``Moments``, SPEC.md 22), written once for
both databases.

A Moment is ONE row whatever its audience, plus one ``moment_audience`` row per account it was
posted to (the author's own row too): "the Moments a viewer may read, newest first" is one walk
of the (account, ts, moment) index, for a viewer's feed and for the timeline alike. Bodies,
comments and likes are ciphertexts the server cannot read.

Visibility (``chatd.core.moments``) is read at every read, never frozen at posting: a viewer
sees a Moment when it is its author, or was posted to it and they are still mutual contacts
(``_SEES``); it sees a comment when it is its own, the author's, or a mutual contact's (or when
it is the author, ``_SEES_COMMENT``). Anything a caller may not see is ``NotFound``, exactly as
something that does not exist, so no answer tells a stranger a Moment is there.
"""

from __future__ import annotations

from chatd.core import moments as rules
from chatd.errors import Forbidden, Invalid, NotFound
from chatd.store.base import MomentCommentRow, MomentRow
from chatd.store.sql import Row, Scripts, Sql, Tx, reads, writes

_MUTUAL = (
    "EXISTS (SELECT 1 FROM contacts k1 WHERE k1.account_id={a} AND k1.contact_id={b})"
    " AND EXISTS (SELECT 1 FROM contacts k2 WHERE k2.account_id={b} AND k2.contact_id={a})"
)
"""SQL: accounts ``a`` and ``b`` (SQL expressions) are mutual contacts now."""

_MUTUAL_OF = (
    "FROM contacts k JOIN contacts r ON r.account_id = k.contact_id AND r.contact_id = k.account_id"
    " WHERE k.account_id=?"
)
"""SQL: the rows ``k`` of account ``?``'s mutual contacts (``k.contact_id``) now."""

_SEES = "(m.author = v.account OR (" + _MUTUAL.format(a="m.author", b="v.account") + "))"
"""SQL: the audience row ``v`` of Moment ``m`` still lets its account see it."""

_MOMENT = (
    "m.id, m.author, m.device, m.ts, m.body, m.audience,"
    " (SELECT a.handle FROM accounts a WHERE a.id = m.author)"
)
_COMMENT = (
    "c.id, c.moment, c.author, c.device, c.reply_to, c.kind, c.ts, c.body,"
    " (SELECT a.handle FROM accounts a WHERE a.id = c.author)"
)


def _moment(r: Row) -> MomentRow:
    return MomentRow(
        moment=int(r[0]), author=int(r[1]), device=int(r[2]), ts_ms=int(r[3]),
        ciphertext=bytes(r[4]), audience=int(r[5]), handle=str(r[6] or ""),
    )  # fmt: skip


def _comment(r: Row) -> MomentCommentRow:
    return MomentCommentRow(
        comment=int(r[0]), moment=int(r[1]), author=int(r[2]), device=int(r[3]),
        reply_to=int(r[4]), kind=str(r[5]), ts_ms=int(r[6]), ciphertext=bytes(r[7]),
        handle=str(r[8] or ""),
    )  # fmt: skip


async def _visible(db: Sql, moment: int, viewer: int) -> MomentRow:
    """Moment ``moment`` as ``viewer`` may see it; ``NotFound`` when it does not exist or the
    viewer may not see it (the same answer)."""
    r = await db.fetchrow(
        f"SELECT {_MOMENT} FROM moment_audience v JOIN moments m ON m.id = v.moment"
        f" WHERE v.moment=? AND v.account=? AND {_SEES}",
        moment,
        viewer,
    )
    if r is None:
        raise NotFound("no such moment")
    return _moment(r)


async def _mutual_contacts(db: Sql, account: int, limit: int) -> list[int]:
    rows = await db.fetch(
        f"SELECT k.contact_id {_MUTUAL_OF} ORDER BY k.contact_id LIMIT ?",
        account,
        limit,
    )
    return [int(r[0]) for r in rows]


async def _audience(db: Sql, moment: int, author: int) -> list[int]:
    rows = await db.fetch(
        "SELECT account FROM moment_audience WHERE moment=? AND account<>? ORDER BY account",
        moment,
        author,
    )
    return [int(r[0]) for r in rows]


async def post_moment(
    tx: Tx,
    author: int,
    device: int,
    audience: list[int],
    everyone: bool,
    body: bytes,
    now: int,
    cmid: str = "",
) -> tuple[MomentRow, list[int], bool]:
    """Store a Moment of ``author`` (encrypted by its ``device``) for ``audience`` (or,
    ``everyone``, for all its mutual contacts at this instant), and return it with the audience
    it was stored for, ascending, and True. ``CONSENT_REQUIRED`` (nothing stored) when an
    account of ``audience`` is not a mutual contact of the author; ``Invalid`` when the audience
    is malformed or ``everyone`` would be more than ``MAX_AUDIENCE`` accounts.

    A ``cmid`` the author already used: the stored Moment and its audience, and False (nothing
    written), when it is a resend (``rules.check_resend``), else ``Conflict``. It is looked up
    before the audience is checked: a contact ended since the first post must not refuse the
    resend of a Moment that is stored."""
    db = tx.sql
    if cmid:
        prior = await db.fetchrow(
            f"SELECT {_MOMENT} FROM moments m WHERE m.author=? AND m.cmid=?", author, cmid
        )
        if prior is not None:
            row = _moment(prior)
            rules.check_resend((row.ciphertext,), (body,))
            return row, await _audience(db, row.moment, author), False
    rules.check_audience(author, audience, everyone)
    if len(body) > rules.MAX_MOMENT_BYTES:
        raise Invalid(f"a moment is at most {rules.MAX_MOMENT_BYTES} bytes")
    if everyone:
        chosen = await _mutual_contacts(db, author, rules.MAX_AUDIENCE + 1)
        if len(chosen) > rules.MAX_AUDIENCE:
            raise Invalid(f"more than {rules.MAX_AUDIENCE} contacts: choose an audience")
    else:
        chosen = sorted(audience)
        if chosen:
            mutual = await db.fetchval(
                f"SELECT count(*) {_MUTUAL_OF} AND k.contact_id = ANY(?)",
                author,
                chosen,
            )
            if int(mutual) != len(chosen):
                raise rules.not_contacts(len(chosen) - int(mutual))
    moment = int(
        await db.fetchval(
            "INSERT INTO moments (author, device, ts, audience, body, cmid)"
            " VALUES (?,?,?,?,?,?) RETURNING id",
            *(author, device, now, len(chosen), body, cmid or None),
        )
    )
    await db.executemany(
        "INSERT INTO moment_audience (moment, account, ts) VALUES (?,?,?)",
        [(moment, a, now) for a in [author, *chosen]],
    )
    handle = str(await db.fetchval("SELECT handle FROM accounts WHERE id=?", author) or "")
    return MomentRow(moment, author, now, body, len(chosen), device, handle), chosen, True


async def moment(db: Sql, moment: int, viewer: int) -> tuple[MomentRow, list[int]]:
    """Moment ``moment`` as ``viewer`` sees it, and the part of its audience the viewer may
    know: all of it for the author; for anyone else the audience members that are the viewer's
    own mutual contacts (those its comments are for), its author, and itself. ``NotFound``."""
    async with db.snapshot():
        row = await _visible(db, moment, viewer)
        if viewer == row.author:
            return row, await _audience(db, moment, viewer)
        rows = await db.fetch(
            "SELECT v.account FROM moment_audience v WHERE v.moment=?"
            " AND (v.account IN (?, ?) OR ("
            + _MUTUAL.format(a="v.account", b="?")
            + ")) ORDER BY v.account",
            *(moment, viewer, row.author, viewer, viewer),
        )
    return row, [int(r[0]) for r in rows]


async def _page(
    db: Sql, viewer: int, author: int | None, before: tuple[int, int] | None, limit: int
) -> list[MomentRow]:
    """A walk of the viewer's audience rows, newest first, keeping what it still sees."""
    where, args = "v.account=?", [viewer]
    if author is not None:
        where += " AND m.author=?"
        args.append(author)
    if before is not None:
        where += " AND (v.ts < ? OR (v.ts = ? AND v.moment < ?))"
        args += [before[0], before[0], before[1]]
    rows = await db.fetch(
        f"SELECT {_MOMENT} FROM moment_audience v JOIN moments m ON m.id = v.moment"
        f" WHERE {where} AND {_SEES} ORDER BY v.ts DESC, v.moment DESC LIMIT ?",
        *args,
        limit,
    )
    return [_moment(r) for r in rows]


async def moments_for(
    db: Sql, viewer: int, before: tuple[int, int] | None, limit: int
) -> list[MomentRow]:
    """The Moments ``viewer`` may see (its own, and those posted to it by accounts that are
    still its mutual contacts), ordered by (ts_ms, moment) descending, strictly older than
    ``before`` = (ts_ms, moment) when given; at most ``limit``."""
    return await _page(db, viewer, None, before, limit)


async def moments_of(
    db: Sql, author: int, viewer: int, before: tuple[int, int] | None, limit: int
) -> list[MomentRow]:
    """The Moments of ``author`` that ``viewer`` may see, newest first as ``moments_for``."""
    return await _page(db, viewer, author, before, limit)


async def delete_moment(tx: Tx, moment: int, account: int) -> list[int]:
    """The author deletes its Moment with its comments and likes (the rows go: nothing of it
    stays in the database); the accounts that saw it until then (the author not included).
    ``NotFound`` when ``account`` cannot see it, ``Forbidden`` when it sees it but is not its
    author."""
    db = tx.sql
    row = await _visible(db, moment, account)
    if row.author != account:
        raise Forbidden("only its author deletes a moment")
    audience = [a for a in await moment_readers(db, moment) if a != account]
    await db.execute("DELETE FROM moment_comments WHERE moment=?", moment)
    await db.execute("DELETE FROM moment_audience WHERE moment=?", moment)
    await db.execute("DELETE FROM moments WHERE id=?", moment)
    return audience


async def comment_moment(
    tx: Tx,
    moment: int,
    author: int,
    device: int,
    reply_to: int,
    kind: str,
    body: bytes,
    now: int,
    cmid: str = "",
) -> tuple[MomentCommentRow, MomentRow, bool]:
    """Store a comment (``kind`` ``comment``) or a like (``like``: one per account and Moment,
    a second one returns the first) of ``author`` under ``moment``, which it must see;
    ``reply_to`` names a comment under the same Moment the author sees (0: none). The comment,
    the Moment, and whether anything was written. ``NotFound``.

    A ``cmid`` the author already used: the stored comment (nothing written) when this is a
    resend of it (``rules.check_resend``), else ``Conflict``."""
    if kind not in ("comment", "like"):
        raise Invalid(f"a moment comment cannot be of kind {kind!r}")
    if len(body) > rules.MAX_COMMENT_BYTES:
        raise Invalid(f"a comment is at most {rules.MAX_COMMENT_BYTES} bytes")
    db = tx.sql
    row = await _visible(db, moment, author)
    if cmid:
        prior = await db.fetchrow(
            f"SELECT {_COMMENT} FROM moment_comments c WHERE c.author=? AND c.cmid=?",
            author,
            cmid,
        )
        if prior is not None:
            old = _comment(prior)
            rules.check_resend(
                (old.moment, old.kind, old.reply_to, old.ciphertext), (moment, kind, reply_to, body)
            )
            return old, row, False
    if reply_to:
        if kind == "like":
            raise Invalid("a like answers no comment")
        seen = await _comments(db, row, author, "c.id=?", [reply_to], 1)
        if not seen:
            raise NotFound("no such comment under this moment")
    if kind == "like":
        found = await _like(db, moment, author)
        if found is not None:
            return _comment(found), row, False
    cid = int(
        await db.fetchval(
            "INSERT INTO moment_comments (moment, author, device, reply_to, kind, ts, body, cmid)"
            " VALUES (?,?,?,?,?,?,?,?) RETURNING id",
            *(moment, author, device, reply_to, kind, now, body, cmid or None),
        )
    )
    handle = str(await db.fetchval("SELECT handle FROM accounts WHERE id=?", author) or "")
    made = MomentCommentRow(cid, moment, author, device, reply_to, kind, now, body, handle)
    return made, row, True


async def _like(db: Sql, moment: int, account: int) -> Row | None:
    """``account``'s like of ``moment`` (one at most), as a ``_COMMENT`` row."""
    return await db.fetchrow(
        f"SELECT {_COMMENT} FROM moment_comments c"
        " WHERE c.moment=? AND c.author=? AND c.kind='like'",
        moment,
        account,
    )


async def unlike_moment(tx: Tx, moment: int, account: int) -> MomentCommentRow | None:
    """Take back ``account``'s like of ``moment`` (the like removed, or None: there was none).
    ``NotFound`` when it cannot see the Moment."""
    db = tx.sql
    await _visible(db, moment, account)
    found = await _like(db, moment, account)
    if found is None:
        return None
    await db.execute("DELETE FROM moment_comments WHERE id=?", int(found[0]))
    return _comment(found)


async def delete_moment_comment(
    tx: Tx, moment: int, comment: int, account: int
) -> tuple[MomentCommentRow, MomentRow]:
    """Delete a comment or like: by its author, or by the Moment's author. ``NotFound`` when
    ``account`` cannot see the Moment or the comment, ``Forbidden`` when it sees the comment
    but neither wrote it nor the Moment."""
    db = tx.sql
    row = await _visible(db, moment, account)
    seen = await _comments(db, row, account, "c.id=?", [comment], 1)
    if not seen:
        raise NotFound("no such comment under this moment")
    if account not in (seen[0].author, row.author):
        raise Forbidden("only its author or the moment's author deletes a comment")
    await db.execute("DELETE FROM moment_comments WHERE id=?", comment)
    return seen[0], row


async def _comments(
    db: Sql, row: MomentRow, viewer: int, where: str, args: list[object], limit: int
) -> list[MomentCommentRow]:
    """The comments of Moment ``row`` matching ``where`` that ``viewer`` may see, by id."""
    if viewer != row.author:
        where += " AND (c.author IN (?, ?) OR (" + _MUTUAL.format(a="c.author", b="?") + "))"
        args = [*args, viewer, row.author, viewer, viewer]
    rows = await db.fetch(
        f"SELECT {_COMMENT} FROM moment_comments c WHERE c.moment=? AND {where}"
        " ORDER BY c.id LIMIT ?",
        row.moment,
        *args,
        limit,
    )
    return [_comment(r) for r in rows]


async def moment_comments(
    db: Sql, moment: int, viewer: int, after: int, limit: int
) -> list[MomentCommentRow]:
    """The comments and likes of ``moment`` with an id above ``after`` that ``viewer`` may see,
    oldest first (at most ``limit``). ``NotFound`` when it cannot see the Moment."""
    async with db.snapshot():
        row = await _visible(db, moment, viewer)
        return await _comments(db, row, viewer, "c.id>?", [after], limit)


async def comment_readers(db: Sql, moment: int, commenter: int) -> list[int]:
    """The accounts that see a comment of ``commenter`` under ``moment`` now: those the Moment
    is visible to who are its author, the commenter, or the commenter's mutual contacts (all
    of them when the commenter is the author). Where a new comment is pushed."""
    rows = await db.fetch(
        "SELECT v.account FROM moment_audience v JOIN moments m ON m.id = v.moment"
        f" WHERE v.moment=? AND {_SEES} AND (m.author = ? OR v.account IN (m.author, ?) OR ("
        + _MUTUAL.format(a="v.account", b="?")
        + ")) ORDER BY v.account",
        *(moment, commenter, commenter, commenter, commenter),
    )
    return [int(r[0]) for r in rows]


async def moment_readers(db: Sql, moment: int) -> list[int]:
    """The accounts that see ``moment`` now (its author first)."""
    rows = await db.fetch(
        "SELECT v.account FROM moment_audience v JOIN moments m ON m.id = v.moment"
        f" WHERE v.moment=? AND {_SEES} ORDER BY v.account <> m.author, v.account",
        moment,
    )
    return [int(r[0]) for r in rows]


class Moments(Scripts):
    post_moment = writes(post_moment)
    moment = reads(moment)
    moments_for = reads(moments_for)
    moments_of = reads(moments_of)
    delete_moment = writes(delete_moment)
    comment_moment = writes(comment_moment)
    unlike_moment = writes(unlike_moment)
    delete_moment_comment = writes(delete_moment_comment)
    moment_comments = reads(moment_comments)
    comment_readers = reads(comment_readers)
    moment_readers = reads(moment_readers)
