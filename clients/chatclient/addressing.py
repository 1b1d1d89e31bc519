"""Which bots a text message is addressed to (``send.to``, SPEC.md 16.3), worked out the way
users expect from other messengers: pure, so it is tested without a server.

In a group or channel a bot whose access is ``addressed`` receives only the messages that name
it in ``to``. A user does not type ``to``: the client derives it from what the user wrote.

* ``/command@bot_handle ...`` names that bot; ``/command ...`` names the bots of the
  conversation that declare that command in their profile (and those that published none);
* ``@bot_handle`` anywhere in the text names that bot;
* a reply (``reply_to``) names the author of the message answered, when it is a bot.

Only bots are named: ``to`` is clear metadata the server sees, and it changes what only bots
receive (users receive everything), so naming users would tell the server more for nothing.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Final

from chatproto import limits as L

MAX_TO: Final = L.MAX_TO
"""At most this many accounts in ``send.to``."""

_COMMAND = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_.]+))?(?:\s|\Z)")
_MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9_.]{3,32})(?![\w])")


def addressees(
    text: str,
    *,
    me: int,
    handles: Mapping[int, str],
    bots: Collection[int],
    reply_sender: int = 0,
    commands: Mapping[int, Collection[str] | None] | None = None,
) -> tuple[int, ...]:
    """The bot members ``text`` is addressed to, ascending (at most ``MAX_TO``).

    ``handles``: member account -> handle; ``bots``: the members that are bots; ``me``: the
    sender (never addressed); ``reply_sender``: the author of the message answered, if any;
    ``commands``: bot -> the commands its profile declares (None, or a bot missing: unknown,
    so a bare command names it too)."""
    bot_set = set(bots) - {me}
    if not bot_set:
        return ()
    by_handle = {h.lower(): a for a, h in handles.items() if a in bot_set}
    named: set[int] = set()
    command = _COMMAND.match(text)
    if command is not None:
        name, target = command.group(1).lower(), command.group(2)
        if target is None:
            declared = commands or {}
            named |= {b for b in bot_set if name in (declared.get(b) or (name,))}
        elif target.lower().rstrip(".") in by_handle:
            named.add(by_handle[target.lower().rstrip(".")])
    for mention in _MENTION.finditer(text):
        account = by_handle.get(mention.group(1).lower().rstrip("."))
        if account is not None:
            named.add(account)
    if reply_sender in bot_set:
        named.add(reply_sender)
    return tuple(sorted(named)[:MAX_TO])


def bare_command(text: str) -> bool:
    """Whether ``text`` is a command that names no bot (``/poll ...``, not ``/poll@bot``)."""
    command = _COMMAND.match(text)
    return command is not None and command.group(2) is None
