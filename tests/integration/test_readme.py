"""README.md's Python blocks run as printed: each is written to a file and run as a program, in
order, in one directory, against a real chatd (a child process), as a reader following the
README would. Only the server address is replaced (the test's server has its own port). What
the README says to do between blocks, the test does too: the operator's top-up before the
payments block, the shop bot running for the mini-app block; the bot block is itself a
long-running program, talked to, then stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client, KeyStore, Message

from tests.paykit import mint
from tests.testkit import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
README_URL = "ws://127.0.0.1:8765/ws"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", (ROOT / "README.md").read_text(), re.S | re.M)


@pytest.fixture
async def chatd(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "chatd.db")
    # The README's reader runs chatd with its defaults, consent included (SPEC 18: strangers'
    # conversations are requests), not the open consent the suite's other servers get.
    for key in [k for k in server.env if k.startswith("CHATD_CONSENT__")]:
        del server.env[key]
    await server.start()
    try:
        yield server
    finally:
        server.terminate()


async def start(path: Path, *argv: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(path),
        *argv,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def until_line(proc: asyncio.subprocess.Process, needle: bytes) -> None:
    assert proc.stdout is not None
    async with asyncio.timeout(30):
        while needle not in (line := await proc.stdout.readline()):
            assert line, "the process exited"


async def stop(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    return out.decode()


def test_every_python_block_is_a_whole_program() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")  # no top-level await / async with
        assert "import" in block


async def test_the_readme_blocks_run_as_printed(chatd: ServerProcess, tmp_path: Path) -> None:
    shop: asyncio.subprocess.Process | None = None
    try:
        for n, block in enumerate(python_blocks(), 1):
            assert README_URL in block, f"block {n} does not name the README's server"
            program = tmp_path / f"readme_{n}.py"
            program.write_text(block.replace(README_URL, chatd.url))
            if "Bot(" in block and ".run()" in block:  # a bot: it serves until stopped
                await talk_to_the_echo_bot(program, chatd, tmp_path)
                continue
            if "c.pay(" in block:  # the README: chatd wallet mint @carol 100.00 USD first
                await mint(
                    tmp_path / "chatd.db", await account_of(chatd, tmp_path, "carol"), 10_000
                )
            if "shop_bot" in block and shop is None:  # the README: with the shop running
                shop = await start(
                    ROOT / "clients/examples/shop_bot.py", "--url", chatd.url, cwd=tmp_path
                )
                await until_line(shop, b"serving")
            proc = await start(program, cwd=tmp_path)
            out = await asyncio.wait_for(proc.communicate(), 60)
            text = out[0].decode()
            assert proc.returncode == 0, f"README block {n}:\n{block}\n{text}"
            assert "Traceback" not in text
            if "dave.events()" in block:
                assert re.search(r"^dave read #\d+: hi dave$", text, re.M), text
            if "c.pay(" in block:
                assert text.splitlines()[0].startswith("12.50 USD ")
                assert text.splitlines()[-1] == "{'USD': 7862}"
            if "frank.channels" in block:
                assert text.splitlines() == [
                    "found ['erin_news']",
                    "preview []",
                    "frank got #1 from the channel: hello, followers",
                ], text
            if "gina.moments" in block:  # WeChat's rule: each reads its contacts' comments
                assert text.splitlines() == [
                    "hank sees ['at the beach']",
                    "@gina reads ['lucky!', 'enjoy']",
                    "@hank reads ['lucky!']",
                    "@ivy reads ['enjoy']",
                ], text
            if "pay_order" in block:
                assert text.strip() == "4.50 USD"
    finally:
        if shop is not None:
            await stop(shop)


async def account_of(chatd: ServerProcess, tmp_path: Path, handle: str) -> int:
    async with Client(chatd.url, KeyStore.open(tmp_path / "lookup.key")) as c:
        if not c.keystore.registered:
            await c.register("readme_reader", "Reader")
        return await c.lookup(handle)


async def talk_to_the_echo_bot(program: Path, chatd: ServerProcess, tmp_path: Path) -> None:
    bot = await start(program, cwd=tmp_path)
    try:
        await until_line(bot, b"serving")
        async with Client(chatd.url) as user:
            await user.register("echo_fan", "Fan")
            conv = await user.direct(await user.lookup("echo_bot"))
            for text in ("/start", "hello bot"):
                ack = await user.send_text(conv, text)
                async with asyncio.timeout(30):
                    async for ev in user.events():
                        mine = not isinstance(ev, Message) or ev.sender == user.account
                        if not mine and ev.seq > ack.seq and ev.text is not None:
                            break
                expected = "Hi! Send me some text and I send it back." if text == "/start" else text
                assert ev.text == expected
    finally:
        out = await stop(bot)
    assert bot.returncode == 0, out
    assert "Traceback" not in out
