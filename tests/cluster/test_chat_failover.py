"""``chat`` given every node of a cluster goes on with the next one when its node is killed:
its user does not wait for the dead node to come back (issue 21)."""

from __future__ import annotations

import asyncio
import io
import os
import re
from pathlib import Path

from chatclient import Client
from chatclient.cli import run

from .conftest import Cluster


async def wait_for(
    out: io.StringIO, pattern: str, task: asyncio.Task[int], timeout: float = 30
) -> None:
    try:
        async with asyncio.timeout(timeout):
            while re.search(pattern, out.getvalue(), re.MULTILINE) is None:
                assert not task.done(), f"chat exited ({task.result()}):\n{out.getvalue()}"
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {pattern!r} in:\n{out.getvalue()}") from None


async def test_chat_with_several_servers_moves_on_when_its_node_is_killed(
    cluster: Cluster, tmp_path: Path
) -> None:
    urls = [node.url for node in cluster.nodes]
    key = tmp_path / "dave.key"
    registered = io.StringIO()
    servers = [arg for url in urls for arg in ("--server", url)]
    assert (
        await run([*servers, "--key", str(key), "register", "dave", "Dave"], stdout=registered) == 0
    )
    assert " ".join(servers) in registered.getvalue()  # the hint repeats every server

    async with Client(urls[1:], reconnect=True) as erin:
        await erin.register("erin", "Erin")
        out = io.StringIO()
        r, w = os.pipe()
        # Commas work as well as a repeated --server.
        task = asyncio.create_task(
            run(["--server", ",".join(urls), "--key", str(key)], stdin=r, stdout=out)
        )
        try:
            os.write(w, b"/me\n")
            await wait_for(out, rf"on {re.escape(urls[0])}$", task)  # the first node first
            os.write(w, b"/dm @erin\nbefore the kill\n")
            await wait_for(out, r"dave: before the kill$", task)
            cluster.nodes[0].kill9()
            os.write(w, b"after the kill\n")
            await wait_for(out, r"dave: after the kill$", task)
            os.write(w, b"/me\n")
            await wait_for(out, rf"on {re.escape(urls[1])}$", task)  # on the next node now
            conv = await erin.direct(await erin.lookup("dave"))
            async with asyncio.timeout(30):
                while [m.text for m in await erin.history(conv)][-2:] != [
                    "before the kill",
                    "after the kill",
                ]:
                    await asyncio.sleep(0.1)
        finally:
            os.close(w)
            assert await asyncio.wait_for(task, 30) == 0
            os.close(r)
        assert "Traceback" not in out.getvalue()
