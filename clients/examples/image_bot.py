"""Send it an image (or any file) and it answers with its size and dimensions, and sends back a
small thumbnail of the image as an image of its own: files in and out of a bot, end to end
encrypted (the server relays only ciphertext)."""

import asyncio
import tempfile
from pathlib import Path

from chatclient.bots import Bot, F, Router
from chatproto import kinds

router = Router()


def shrink(src: Path, dest: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(src) as img:
        size = img.size
        small = img.convert("RGB")
        small.thumbnail((128, 128))
        small.save(dest, "JPEG", quality=80)
    return size


@router.command("start", description="What this bot does")
async def start(msg, ctx):
    return "Send me an image: I tell you its size and send you a thumbnail of it."


@router.message(F.kind(kinds.Attachment))
async def describe(msg, ctx):
    att = msg.content
    with tempfile.TemporaryDirectory() as tmp:
        src = await ctx.client.download(msg, Path(tmp) / "received")
        try:
            width, height = await asyncio.to_thread(shrink, src, Path(tmp) / "thumbnail.jpg")
        except OSError:  # not an image Pillow reads
            return f"{att.name or 'your file'}: {att.size} bytes (not an image I can read)"
        await ctx.client.send_image(msg.conv, Path(tmp) / "thumbnail.jpg")
    return f"{att.name or 'your image'}: {att.size} bytes, {width}x{height} pixels"


if __name__ == "__main__":
    Bot("ws://127.0.0.1:8765/ws", "image_bot.key", router).run()  # --url, --keystore override
