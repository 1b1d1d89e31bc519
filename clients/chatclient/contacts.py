"""Consent on the client's side (SPEC.md 18): message requests, invitations, contacts, blocks
and privacy settings. ``client.contacts`` is one of these; a new request arrives live as a
``RequestReceived`` event (``client.events()``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from chatproto import frames as F
from chatproto.limits import MAX_PAGE

Request = Callable[[Any, type[Any]], Awaitable[Any]]
Setting = Literal["everyone", "contacts", "nobody"]


class Contacts:
    """The account's requests, contacts, blocks and privacy settings."""

    def __init__(self, request: Request, next_id: Callable[[], int]) -> None:
        self._call = request
        self._next_id = next_id

    async def requests(self, page: int = MAX_PAGE) -> AsyncIterator[F.RequestInfo]:
        """Every pending request and invitation, ascending by conversation, a page at a time
        (however many there are, no answer passes the frame limit)."""
        after = 0
        while True:
            got: F.Requests = await self._call(
                F.ListRequests(id=self._next_id(), after=after, limit=page), F.Requests
            )
            for r in got.requests:
                yield r
            if not got.more or not got.requests:
                return
            after = got.requests[-1].conv

    async def answers(self, page: int = MAX_PAGE) -> AsyncIterator[F.AnswerInfo]:
        """The answers to this account's invitations it has yet to act on (SPEC.md 18.3): an
        accept waiting for the signed ``invite``, a decline not dismissed. The client reads
        them at every login and hands each over as an ``InvitationAnswered`` event."""
        after = (0, 0)
        while True:
            got: F.Answers = await self._call(
                F.ListAnswers(
                    id=self._next_id(), after=after[0], after_account=after[1], limit=page
                ),
                F.Answers,
            )
            for a in got.answers:
                yield a
            if not got.more or not got.answers:
                return
            after = (got.answers[-1].conv, got.answers[-1].account)

    async def dismiss(self, conv: int, account: int) -> None:
        """The decline of ``account`` to this account's invitation to ``conv`` was shown: the
        server stops keeping it (no device is told it again)."""
        await self._call(F.DismissAnswer(id=self._next_id(), conv=conv, account=account), F.Ok)

    async def accept(self, conv: int) -> None:
        """Accept the request or invitation of ``conv`` (an invitation: join it)."""
        await self._answer(conv, "accept")

    async def delete(self, conv: int) -> None:
        """Delete the request or decline the invitation of ``conv``; its sender is not told."""
        await self._answer(conv, "delete")

    async def block_sender(self, conv: int) -> None:
        """Delete the request of ``conv`` and block its sender."""
        await self._answer(conv, "block")

    async def _answer(self, conv: int, answer: Literal["accept", "delete", "block"]) -> None:
        await self._call(F.AnswerRequest(id=self._next_id(), conv=conv, answer=answer), F.Ok)

    async def block(self, account: int) -> None:
        await self._call(F.Block(id=self._next_id(), account=account), F.Ok)

    async def unblock(self, account: int) -> None:
        await self._call(F.Unblock(id=self._next_id(), account=account), F.Ok)

    async def contacts(self) -> list[int]:
        """The accounts this one accepted or messaged first."""
        return await self._list("contacts")

    async def blocked(self) -> list[int]:
        return await self._list("blocked")

    async def _list(self, which: Literal["contacts", "blocked"]) -> list[int]:
        out: list[int] = []
        while True:
            got: F.Contacts = await self._call(
                F.ListContacts(id=self._next_id(), which=which, after=out[-1] if out else 0),
                F.Contacts,
            )
            out += got.accounts
            if not got.more or not got.accounts:
                return out

    async def privacy(self) -> F.Privacy:
        got: F.Privacy = await self._call(F.GetPrivacy(id=self._next_id()), F.Privacy)
        return got

    async def set_privacy(
        self,
        *,
        add_me: Setting | None = None,
        presence: Setting | None = None,
        last_seen: Setting | None = None,
        find_me: Setting | None = None,
    ) -> F.Privacy:
        """Change the given settings (the others stay); the settings now in force. ``find_me``:
        who may find this account by its handle."""
        got: F.Privacy = await self._call(
            F.SetPrivacy(
                id=self._next_id(),
                add_me=add_me,
                presence=presence,
                last_seen=last_seen,
                find_me=find_me,
            ),
            F.Privacy,
        )
        return got
