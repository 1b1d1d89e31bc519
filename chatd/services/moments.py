"""Moments (SPEC.md 22): an account posts to its mutual contacts; the server stores opaque
ciphertexts once and delivers them to whom WeChat's rule lets see them.

The server enforces visibility where it can, at every read and every delivery
(``chatd.core.moments``, evaluated in SQL by ``store.moments``): a Moment reaches its author and
the audience members still its author's mutual contacts; a comment or like reaches those of
them who are the commenter's own mutual contacts (the author: all). Who may READ a body is
decided by the clients' keys (E2E.md 18): the author's client sends the Moment's key to the
audience's devices only, a commenter's client sends its comment's key to the author's and its
own contacts' devices only, so a server that broke the delivery rule would still hand out
bytes nobody else can open.

Pushes read the readers AFTER the write committed (a block committed meanwhile is obeyed), go
only to those online on some node (the presence directory), and encode each event once for all
of them (one envelope per online reader's account topic).
"""

from __future__ import annotations

from typing import assert_never

from chatproto import codec
from chatproto import frames as F

from chatd import envelope
from chatd.core import pages
from chatd.errors import RateLimited
from chatd.services.deps import Deps
from chatd.services.limits import Limits
from chatd.store.base import MomentCommentRow, MomentRow

MomentFrame = (
    F.PostMoment
    | F.GetMoment
    | F.GetMoments
    | F.GetMomentComments
    | F.CommentMoment
    | F.LikeMoment
    | F.DeleteMoment
    | F.DeleteMomentComment
)


def moment_info(r: MomentRow) -> F.MomentInfo:
    """The wire form of a stored Moment (also a timeline item's)."""
    return F.MomentInfo(
        moment=r.moment,
        author=r.author,
        handle=r.handle,
        device=r.device,
        ts=r.ts_ms,
        body=r.ciphertext,
    )


def _comment(r: MomentCommentRow, *, body: bool = True) -> F.MomentComment:
    return F.MomentComment(
        comment=r.comment,
        moment=r.moment,
        author=r.author,
        handle=r.handle,
        device=r.device,
        ts=r.ts_ms,
        kind="like" if r.kind == "like" else "comment",
        reply_to=r.reply_to,
        body=r.ciphertext if body else b"",
    )


class MomentService:
    def __init__(self, deps: Deps, limits: Limits) -> None:
        self._d = deps
        self._limits = limits

    async def handle(self, account: int, device: int, conn: int, f: MomentFrame) -> F.Frame:
        """Serve one Moments frame of ``account``'s connection ``conn``."""
        store = self._d.store
        match f:
            case F.PostMoment():
                return await self.post(account, device, conn, f)
            case F.GetMoment():
                row, audience = await store.moment(f.moment, account)
                return F.MomentAnswer(re=f.id, info=moment_info(row), audience=audience)
            case F.GetMoments():
                return await self.page(account, f)
            case F.GetMomentComments():
                rows = await store.moment_comments(f.moment, account, f.after, f.limit + 1)
                items, cut = pages.fit(_comment(r) for r in rows[: f.limit])
                more = cut or len(rows) > f.limit
                nxt = items[-1].comment if more and items else 0
                return F.MomentComments(re=f.id, moment=f.moment, items=items, next=nxt)
            case F.CommentMoment():
                return await self.comment(
                    account, device, conn, f.id, f.moment, f.reply_to, f.body, "comment", f.cmid
                )
            case F.LikeMoment() if not f.remove:
                return await self.comment(
                    account, device, conn, f.id, f.moment, 0, f.body, "like", f.cmid
                )
            case F.LikeMoment():
                gone = await store.unlike_moment(f.moment, account)
                if gone is not None:
                    await self._push_comment(gone, conn, deleted=True)
                return F.Ok(re=f.id)
            case F.DeleteMoment():
                audience = await store.delete_moment(f.moment, account)
                info = F.MomentInfo(moment=f.moment, author=account, ts=self._d.clock.now_ms())
                # Told to those who saw it until now (their clients drop it): ids only.
                await self._push([account, *audience], F.MomentEvent(info=info, deleted=True), conn)
                return F.Ok(re=f.id)
            case F.DeleteMomentComment():
                gone, _ = await store.delete_moment_comment(f.moment, f.comment, account)
                await self._push_comment(gone, conn, deleted=True)
                return F.Ok(re=f.id)
            case _:
                assert_never(f)

    async def post(self, account: int, device: int, conn: int, f: F.PostMoment) -> F.MomentAnswer:
        """Spend a token of the poster's budget, store the Moment (the audience is checked
        against its mutual contacts inside the write), then push it to whom sees it now. A
        resend (its ``cmid`` stored before) is answered with the stored Moment and pushes
        nothing: the first one was pushed when it was stored."""
        retry = await self._limits.moment(account)
        if retry is not None:
            raise RateLimited(f"too many moments; retry in {retry:.1f} s")
        row, audience, wrote = await self._d.store.post_moment(
            account, device, f.audience, f.all, f.body, self._d.clock.now_ms(), f.cmid
        )
        info = moment_info(row)
        if wrote:
            readers = await self._d.store.moment_readers(row.moment)
            await self._push(readers, F.MomentEvent(info=info), conn)
        return F.MomentAnswer(re=f.id, info=info, audience=audience)

    async def page(self, account: int, f: F.GetMoments) -> F.Moments:
        """A page of the Moments the caller sees (all, or one author's), newest first, cut to
        fit a frame; the cursor is the last item's (ts, moment)."""
        before = (f.before_ts, f.before) if f.before else None
        store = self._d.store
        if f.author:
            rows = await store.moments_of(f.author, account, before, f.limit + 1)
        else:
            rows = await store.moments_for(account, before, f.limit + 1)
        items, cut = pages.fit(moment_info(r) for r in rows[: f.limit])
        if (cut or len(rows) > f.limit) and items:
            return F.Moments(re=f.id, items=items, next_ts=items[-1].ts, next=items[-1].moment)
        return F.Moments(re=f.id, items=items)

    async def comment(
        self,
        account: int,
        device: int,
        conn: int,
        rid: int,
        moment: int,
        reply_to: int,
        body: bytes,
        kind: str,
        cmid: str,
    ) -> F.MomentCommented:
        """Store a comment or like and push it; a second like, or a resend (its ``cmid``
        stored before), is answered with the stored one and pushes nothing."""
        row, _, wrote = await self._d.store.comment_moment(
            moment, account, device, reply_to, kind, body, self._d.clock.now_ms(), cmid
        )
        if wrote:
            await self._push_comment(row, conn)
        return F.MomentCommented(re=rid, comment=_comment(row))

    async def _push_comment(
        self, row: MomentCommentRow, conn: int, *, deleted: bool = False
    ) -> None:
        """Push a comment (or its deletion, without a body) to those who see it now."""
        readers = await self._d.store.comment_readers(row.moment, row.author)
        event = F.MomentCommentEvent(comment=_comment(row, body=not deleted), deleted=deleted)
        await self._push(readers, event, conn)

    async def _push(self, accounts: list[int], frame: F.Frame, origin: int) -> None:
        """Encode ``frame`` once and hand it to the connections of those of ``accounts`` that
        are online (on any node), except the connection ``origin`` that caused it. Offline ones
        read it when they come back (the store is the truth): a Moment of up to 64 KiB to 5,000
        accounts must not put 5,000 copies through the broker when a few are connected."""
        hub = self._d.hub
        here = {a for a in accounts if hub.online(a)}
        online = here | await self._d.presence.online(a for a in accounts if a not in here)
        if not online:
            return
        data = codec.encode(frame)
        for a in accounts:
            if a in online:
                hub.publish(envelope.account_topic(a), envelope.EVENT, 0, origin, data)
        await hub.published()
