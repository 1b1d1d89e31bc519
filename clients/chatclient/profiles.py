"""Bot profiles (SPEC.md 16.1): read once per session, published by a bot after each login.

Both the conversation side (is this account a bot? a signed membership entry says so) and the
sending side (which bots declare a command, whose mini-app is this) ask here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from chatproto import frames as F

from chatclient.connection import Connection
from chatclient.errors import ChatClientError


class Profiles:
    """The bot profiles this client has read, kept for the session."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._profiles: dict[int, F.BotProfile] = {}

    async def set_bot_profile(
        self, commands: Sequence[F.BotCommand], manifest: F.Manifest | None = None
    ) -> None:
        """Publish this bot's commands and mini-app manifest (replacing the previous profile;
        bots do it after every login). ``Forbidden`` for a user account."""
        c = self._conn
        await c.call(
            F.SetBotProfile(id=c.next_id(), commands=list(commands), manifest=manifest), F.Ok
        )
        self._profiles.pop(c.keystore.account, None)

    async def bot_profile(self, account: int, *, refresh: bool = False) -> F.BotProfile:
        """A bot's profile (kept for the session; ``refresh`` reads it again). ``NotFound``
        when ``account`` is not a bot."""
        profile = None if refresh else self._profiles.get(account)
        if profile is None:
            c = self._conn
            profile = await c.call(F.GetBotProfile(id=c.next_id(), account=account), F.BotProfile)
            self._profiles[account] = profile
        return profile

    async def declared_commands(self, bot: int) -> frozenset[str] | None:
        """The commands ``bot`` declares (None: it published no profile, or it cannot be read
        now: then a bare command is sent to it too, rather than lost)."""
        try:
            profile = await self.bot_profile(bot)
        except (ChatClientError, TimeoutError):
            return None
        if not profile.updated_at and not profile.commands:
            return None
        return frozenset(c.name for c in profile.commands)

    async def bot_for_app(self, bots: Sequence[int], app: str) -> int:
        """Of the bot members ``bots`` of a conversation, the one whose mini-app is ``app`` (0:
        none): the only bot there, else the one whose profile's manifest is named ``app``."""
        bots = sorted(bots)
        if len(bots) == 1:
            return bots[0]
        for bot in bots:
            with contextlib.suppress(ChatClientError):
                manifest = (await self.bot_profile(bot)).manifest
                if manifest is not None and manifest.name == app:
                    return bot
        return 0
