"""Invite links on the client's side (SPEC.md 19): owners and admins make, list and revoke
links and answer join requests; anyone holding a link previews it and joins. ``client.links``
is one of these; a join request reaching an owner or admin arrives live as a
``JoinRequestReceived`` event (``client.events()``).

A link is text: ``chatd://join/<token>`` (``chatproto.links``); every method taking a link
also takes the bare token. An unusable link, whatever the reason, raises ``RequestError`` with
code ``LINK_INVALID``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from chatproto import frames as F
from chatproto.errors import ErrorCode
from chatproto.limits import MAX_PAGE

from chatclient.errors import RequestError

JoinRequested = F.JoinRequested
"""``join``'s answer when an owner or admin must approve first (``.conv``: the conversation)."""
Request = Callable[[Any, Any], Awaitable[Any]]
SignedChange = Callable[..., Awaitable[None]]
"""``Conversations.signed_change``: approving in a conversation with a membership log signs
the ``add`` on its verified head (E2E.md 15)."""


class Links:
    """Invite links of the conversations this account manages, and joining through one."""

    def __init__(
        self,
        request: Request,
        next_id: Callable[[], int],
        signed_change: SignedChange,
        learn: Callable[[F.ConvInfo], None],
        is_bot: Callable[[int], Awaitable[bool]],
    ) -> None:
        self._call = request
        self._next_id = next_id
        self._signed_change = signed_change
        self._learn = learn
        self._is_bot = is_bot

    async def create(
        self,
        conv: int,
        *,
        name: str = "",
        expires_in: float = 0.0,
        max_uses: int = 0,
        approval: bool = False,
    ) -> F.LinkInfo:
        """A new link to group or channel ``conv`` (owner or admin). ``expires_in``: seconds
        (0: never); ``max_uses``: joins and join requests it admits (0: no limit);
        ``approval``: a join through it waits for an owner or admin. Share ``.url``."""
        got: F.Link = await self._call(
            F.CreateLink(
                id=self._next_id(),
                conv=conv,
                name=name,
                expires_in=round(expires_in * 1000),
                max_uses=max_uses,
                approval=approval,
            ),
            F.Link,
        )
        return got.link

    async def links(self, conv: int, page: int = MAX_PAGE) -> AsyncIterator[F.LinkInfo]:
        """Every link of ``conv``, revoked and expired ones too, with its use count."""
        after = 0
        while True:
            got: F.Links = await self._call(
                F.ListLinks(id=self._next_id(), conv=conv, after=after, limit=page), F.Links
            )
            for link in got.links:
                yield link
            if not got.more or not got.links:
                return
            after = got.links[-1].link

    async def revoke(self, conv: int, link: int) -> None:
        """Revoke link ``link`` of ``conv``: it stops working at once, on every node."""
        await self._call(F.RevokeLink(id=self._next_id(), conv=conv, link=link), F.Ok)

    async def preview(self, link: str) -> F.LinkPreview:
        """The kind, title and member count of the conversation ``link`` leads to, and whether
        joining needs an admin's approval."""
        got: F.LinkPreview = await self._call(
            F.PreviewLink(id=self._next_id(), token=link), F.LinkPreview
        )
        return got

    async def join(self, link: str) -> F.ConvInfo | F.JoinRequested:
        """Join through ``link``: the conversation (joined now, or already a member), or
        ``JoinRequested`` when a join request now waits for an owner or admin (its ``conv``
        then arrives as its ``joined`` message once approved; ``cancel(conv)`` withdraws it)."""
        got = await self._call(
            F.JoinLink(id=self._next_id(), token=link), (F.Conv, F.JoinRequested)
        )
        if isinstance(got, F.Conv):
            self._learn(got.info)
            return got.info
        assert isinstance(got, F.JoinRequested)
        return got

    async def cancel(self, conv: int) -> None:
        """Withdraw this account's pending join request of ``conv``."""
        await self._call(F.CancelJoin(id=self._next_id(), conv=conv), F.Ok)

    async def requests(self, conv: int, page: int = MAX_PAGE) -> AsyncIterator[F.JoinRequestInfo]:
        """The pending join requests of ``conv`` (owner or admin), ascending by account."""
        after = 0
        while True:
            got: F.JoinRequests = await self._call(
                F.ListJoinRequests(id=self._next_id(), conv=conv, after=after, limit=page),
                F.JoinRequests,
            )
            for r in got.requests:
                yield r
            if not got.more or not got.requests:
                return
            after = got.requests[-1].account

    async def approve(self, conv: int, account: int) -> None:
        """Approve ``account``'s join request: it joins as if this account invited it (signed
        as an ``add`` when the conversation has a membership log: a user's first, a bot's with
        access ``addressed`` when the server says it is one, as ``invite`` does)."""

        def frame(e: F.SignedEntry | None) -> F.AnswerJoin:
            return F.AnswerJoin(
                id=self._next_id(), conv=conv, account=account, approve=True, entry=e
            )

        try:
            await self._signed_change(conv, frame, "add", account=account)
        except RequestError as exc:
            if exc.code != ErrorCode.INVALID or not await self._is_bot(account):
                raise
            await self._signed_change(conv, frame, "add", account=account, access="addressed")

    async def decline(self, conv: int, account: int) -> None:
        """Decline ``account``'s join request (it is not told)."""
        await self._call(
            F.AnswerJoin(id=self._next_id(), conv=conv, account=account, approve=False), F.Ok
        )
