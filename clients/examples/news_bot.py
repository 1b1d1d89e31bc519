"""News bot: publishes to the public channels its owner names it admin of (SPEC.md 20).

    /start                          what it does
    /news @channel headline ...     publish the headline in @channel, signed by the bot's device

The channel's owner makes the bot an admin (``client.channels.set_admin(channel, bot)``, or in
``chat``: not yet a command), then sends ``/news`` to the bot in their direct conversation. The
bot publishes only for a channel's owner (anyone else is told so) and answers with the post's
number; followers get the post live and verify it against the bot's own device key, like any
publisher's. A feed reader would call ``publish_text`` the same way from its loop.

Run: .venv/bin/python clients/examples/news_bot.py --url ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

from chatclient import NotFound, RequestError
from chatclient.bots import Bot, Context, Router
from chatclient.events import Message

router = Router("news")


@router.command("start")
async def start_cmd(msg: Message, ctx: Context) -> str:
    """What this bot does"""
    return (
        "I publish headlines to public channels whose owner made me an admin:"
        " /news @channel headline"
    )


@router.command("news")
async def news_cmd(msg: Message, ctx: Context, channel: str, *, headline: str) -> str:
    """Publish a headline: /news @channel headline"""
    handle = channel.removeprefix("@")
    channels = ctx.client.channels
    try:
        info = await channels.find(handle)
    except NotFound:
        return f"there is no public channel @{handle}"
    if info.owner != msg.sender:
        return f"only the owner of @{handle} may publish through me"
    try:
        seq = await channels.publish_text(info.channel, headline)
    except RequestError as exc:
        return f"@{handle} refused the post: {exc.server_message}"
    return f"published #{seq} in @{handle}"


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "news_bot.key", router).run()  # --url, --keystore override
