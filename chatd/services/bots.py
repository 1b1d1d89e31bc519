"""Bots (SPEC.md section 16): profiles, and what a bot member of a group or channel receives.

A profile is checked with ``chatproto.bots.check_profile`` (the rules a bot framework can run
too) and stored whole as msgpack. An access change is a store write that appends a ``bot_access``
system message in the same transaction; it is published like any membership change, and nothing
else needs re-routing: which bots a message is withheld from is decided when that message is
committed (``store.append``), so every node applies the same decision.
"""

from __future__ import annotations

from typing import Protocol

from chatproto import bots
from chatproto import frames as F

from chatd.errors import ChatdError, Forbidden, NotFound
from chatd.services.conversations import signed_change
from chatd.services.deps import Deps
from chatd.services.fanout import publish_message


class Caller(Protocol):
    """The session as the bot service sees it."""

    account: int
    is_bot: bool


class BotService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps

    async def set_profile(self, s: Caller, f: F.SetBotProfile) -> None:
        if not s.is_bot:
            raise Forbidden("only a bot account has a bot profile")
        try:
            body = bots.check_profile(f.commands, f.manifest)
        except bots.BotError as exc:
            raise ChatdError(exc.message, exc.code) from None
        await self._d.store.set_bot_profile(s.account, body, self._d.clock.now_ms())

    async def profile(self, f: F.GetBotProfile) -> F.BotProfile:
        row = await self._d.store.bot_profile(f.account)
        if row is None:
            raise NotFound("no such bot")
        stored = bots.decode_profile(row.body) if row.body else bots.StoredProfile()
        return F.BotProfile(
            re=f.id,
            account=row.account,
            commands=stored.commands,
            manifest=stored.manifest,
            updated_at=row.updated_at,
        )

    async def set_access(self, account: int, device: int, f: F.SetBotAccess) -> None:
        """Answered once the ``bot_access`` message has left this node (every member, the bot
        included, gets it; a repeat of the current access writes and sends nothing). A signed
        entry is checked as for every membership change (``conversations.signed_change``)."""
        d = self._d
        entry = await signed_change(
            d.store, account, device, f.entry, "access", account=f.account, access=f.access
        )
        change = await d.store.set_bot_access(
            f.conv, account, f.account, f.access, d.clock.now_ms(), entry
        )
        if change is None:
            return
        publish_message(d.hub, change.message)
        await d.hub.published()
