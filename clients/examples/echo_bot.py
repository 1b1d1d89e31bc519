"""Echo bot: /start greets; any text sent to it (in groups: mentioning it) comes back."""

import os

from chatclient.bots import Bot, F, Router

router = Router()


@router.command("start")
async def start(msg, ctx):
    """Say hello"""
    await ctx.reply("Hi! Send me some text and I send it back.")


@router.message(F.text & (F.direct | F.mentioned))
async def echo(msg, ctx):
    return msg.text


if __name__ == "__main__":
    Bot(os.environ.get("CHATD_URL", "ws://127.0.0.1:8765/ws"), "echo_bot.key", router).run()
