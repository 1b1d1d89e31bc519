"""Exceptions of the bot framework (rooted in ``ChatClientError``, the SDK's one root)."""

from __future__ import annotations

from chatclient.errors import ChatClientError


class BotError(ChatClientError):
    """Root of every exception ``chatclient.bots`` raises itself."""


class SetupError(BotError):
    """The bot is wired wrong (a handler signature, a duplicate command, a bad handle).

    Raised when the handler is registered or the bot is built, never while serving: a mistake in
    the code shows up at start, not on the first user who types the command."""


class ArgumentError(BotError):
    """A user's command or action input does not fit the handler's parameters.

    The bot answers the user with ``message`` and the usage, then hands this to the error hook
    (the default hook logs it without a traceback: it is the user's mistake, not the code's)."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def user_text(self) -> str:
        """What the user reads."""
        return f"{self.message}\nusage: {self.usage}" if self.usage else self.message
