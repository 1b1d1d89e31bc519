from chatclient.bots import Bot, F, Router

router = Router()


@router.command("start", description="Say hello")
@router.message(F.text & F.addressed)
async def echo(msg, ctx):
    """/start says hello; text addressed to the bot (in groups: @mention, reply) comes back."""
    return "Hi! Send me some text and I send it back." if ctx.command else msg.text


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "echo_bot.key", router).run()  # --url, --keystore override
