"""chatclient.bots: write a chatd bot as a few decorated handlers.

    from chatclient.bots import Bot, F, Router

    router = Router()

    @router.command("roll")
    async def roll(msg, ctx, sides: int = 6):
        \"\"\"Roll a die\"\"\"
        await ctx.reply(str(random.randint(1, sides)))

    @router.message(F.text & F.direct)
    async def echo(msg, ctx):
        await ctx.reply(msg.text)

    Bot("ws://127.0.0.1:8765/ws", "dice.key", router).run()

A bot is an account (type ``bot``) with one device, so everything it reads and sends is
end-to-end encrypted like any member's. See ``bot`` (lifecycle, ordering, delivery), ``router``
(which handler runs), ``filters`` (``F``), ``args`` (typed arguments) and ``context`` (``ctx``).
"""

from chatclient.bots.args import ParamInfo
from chatclient.bots.bot import ActionInfo, Bot, CommandInfo, ErrorHook, log_error
from chatclient.bots.context import Context, Conversation, Me, Sender, State
from chatclient.bots.errors import ArgumentError, BotError, SetupError
from chatclient.bots.filters import F, Filter
from chatclient.bots.router import Router

__all__ = [
    "ActionInfo",
    "ArgumentError",
    "Bot",
    "BotError",
    "CommandInfo",
    "Context",
    "Conversation",
    "ErrorHook",
    "F",
    "Filter",
    "Me",
    "ParamInfo",
    "Router",
    "Sender",
    "SetupError",
    "State",
    "log_error",
]
