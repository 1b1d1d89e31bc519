"""Invite links (SPEC.md 19): make, list and revoke them (owners and admins), preview and join
through one (anyone holding it), and answer join requests.

A link's token is checked here (``core.links.selector_of``: the tag under the server's secret,
in constant time) before the store is read: a guessed token costs no database read. Every
``preview_link``/``join_link`` first takes a look-up token of the caller's account and address
(``Limits.link_lookup``, shared by every node), found or not. The store does the rest in the
join's own transaction (``store.links``): the use count, revocation and expiry hold exactly,
on every node. A join admits through the ordinary ``invite`` script, so bans, history from the
join (SPEC.md 7.8) and the membership log's rules (8.5) apply as to any invite.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from chatproto import frames as F
from chatproto import links as wire

from chatd.core import links, pages
from chatd.errors import RateLimited
from chatd.services.conversations import ConversationService, signed_change
from chatd.services.deps import Deps
from chatd.services.fanout import publish_to_account
from chatd.services.limits import Limits
from chatd.store.base import JoinRequestRow, LinkRow


def _request(r: JoinRequestRow) -> F.JoinRequestInfo:
    return F.JoinRequestInfo(account=r.account, handle=r.handle, at=r.at, link=r.link)


class LinkService:
    def __init__(self, deps: Deps, conversations: ConversationService, limits: Limits) -> None:
        self._d = deps
        self._conv = conversations
        self._limits = limits
        self._secret: bytes | None = None

    async def open(self) -> None:
        """Load the server's link secret (made on first use, shared by every node)."""
        self._secret = await self._d.store.link_secret(os.urandom(links.SECRET_BYTES))

    def _key(self) -> bytes:
        assert self._secret is not None, "LinkService.open() first"
        return self._secret

    def _count(self, event: str) -> None:
        self._d.metrics.invite_links.labels(event=event).inc()

    def info(self, row: LinkRow) -> F.LinkInfo:
        return F.LinkInfo(
            link=row.id,
            conv=row.conv,
            url=wire.url(links.token(self._key(), row.selector)),
            creator=row.creator,
            created=row.created,
            name=row.name,
            expires=row.expires,
            max_uses=row.max_uses,
            uses=row.uses,
            approval=row.approval,
            revoked=row.revoked,
        )

    async def create(self, account: int, f: F.CreateLink) -> F.Link:
        row = await self._d.store.create_link(
            f.conv,
            account,
            os.urandom(wire.SELECTOR_BYTES),
            f.name,
            self._d.clock.now_ms(),
            f.expires_in,
            f.max_uses,
            f.approval,
        )
        self._count("created")
        return F.Link(re=f.id, link=self.info(row))

    async def list(self, account: int, f: F.ListLinks) -> F.Links:
        rows = await self._d.store.links_of(f.conv, account, f.after, f.limit + 1)
        infos, cut = pages.fit(self.info(r) for r in rows[: f.limit])
        return F.Links(re=f.id, links=infos, more=cut or len(rows) > f.limit)

    async def revoke(self, account: int, f: F.RevokeLink) -> None:
        await self._d.store.revoke_link(f.conv, account, f.link, self._d.clock.now_ms())
        self._count("revoked")

    async def _selector(self, account: int, address: str, text: str) -> bytes:
        retry = await self._limits.link_lookup(account, address)
        if retry is not None:
            raise RateLimited(f"too many invite link look-ups; retry in {retry:.0f} s")
        return links.selector_of(self._key(), text)

    async def preview(self, account: int, address: str, f: F.PreviewLink) -> F.LinkPreview:
        selector = await self._selector(account, address, f.token)
        p = await self._d.store.preview_link(selector, self._d.clock.now_ms())
        return F.LinkPreview(
            re=f.id,
            kind=p.kind,  # type: ignore[arg-type]
            title=p.title,
            member_count=p.member_count,
            approval=p.approval,
        )

    async def join(
        self, account: int, device: int, address: str, f: F.JoinLink
    ) -> F.Conv | F.JoinRequested:
        d = self._d
        selector = await self._selector(account, address, f.token)
        out = await d.store.join_link(selector, account, d.clock.now_ms())
        if out.state in ("joined", "requested"):
            self._count(out.state)
        if out.change is not None:
            await self._conv._apply(out.change)  # watched before its joined message goes out
        if out.state in ("requested", "pending"):
            if out.request is not None:
                await self._announce(out.conv, out.request)
            return F.JoinRequested(re=f.id, conv=out.conv)
        return F.Conv(re=f.id, info=await self._conv.get(account, device, out.conv))

    async def _announce(self, conv: int, request: JoinRequestRow) -> None:
        ev = F.JoinRequestEvent(conv=conv, request=_request(request))
        managers: Sequence[int] = await self._d.store.managers_of(conv)
        for m in managers:
            publish_to_account(self._d.hub, m, ev)
        await self._d.hub.published()

    async def requests(self, account: int, f: F.ListJoinRequests) -> F.JoinRequests:
        rows = await self._d.store.join_requests_of(f.conv, account, f.after, f.limit + 1)
        infos, cut = pages.fit(_request(r) for r in rows[: f.limit])
        return F.JoinRequests(re=f.id, conv=f.conv, requests=infos, more=cut or len(rows) > f.limit)

    async def cancel(self, account: int, f: F.CancelJoin) -> None:
        await self._d.store.cancel_join(f.conv, account)

    async def answer(self, account: int, device: int, f: F.AnswerJoin) -> None:
        d = self._d
        entry = None
        if f.approve:
            entry = await signed_change(d.store, account, device, f.entry, "add", account=f.account)
        change = await d.store.answer_join(
            f.conv, account, f.account, f.approve, d.clock.now_ms(), entry
        )
        self._count("approved" if f.approve else "declined")
        if change is not None:
            await self._conv._apply(change)
