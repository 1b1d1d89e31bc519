"""The SDK's outbox and read positions (issue 15, point 1): what is sent while the server is down
waits in the key store, survives a client restart and a kill -9, and goes out once, in order,
within about a second of the server's return; a client killed with -9 never shows a message
twice. Real servers (a child process, stopped and started again on the same port and database)
and real client processes."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chatclient import Client, ClientClosed, KeyStore, Message, RequestError, SendFailed
from chatclient.cli import run as run_chat
from conftest import RunningServer
from testkit import ServerProcess

T = TypeVar("T")

# A client process: "send" queues N texts in the outbox once told "go" (stdin), then says
# "queued"; "read" prints each text the application is handed, slowly. Its log and every other
# event go to stderr, which a test that waits for a line in vain shows.
CHILD = r"""
import asyncio, logging, sys
from chatclient import Client, KeyStore, Message

async def main(mode, url, keyfile, conv, n):
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    async with Client(url, KeyStore.open(keyfile), backoff_initial=0.05) as c:
        print("ready", flush=True)
        if mode == "send":
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.readline)
            tasks = [asyncio.create_task(c.send_text(conv, f"k{i}")) for i in range(n)]
            while len(c.pending(conv)) < n:
                await asyncio.sleep(0.01)
            print("queued", flush=True)
            await asyncio.sleep(3600)
        async for ev in c.events():
            if isinstance(ev, Message) and ev.conv == conv and ev.text is not None:
                print(ev.text, flush=True)
                await asyncio.sleep(0.03)
            else:  # what the test shows if it waits in vain
                print(repr(ev)[:300], file=sys.stderr, flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


@contextlib.asynccontextmanager
async def child(mode: str, url: str, keyfile: Path, conv: int, n: int = 0) -> AsyncIterator[Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        mode,
        url,
        str(keyfile),
        str(conv),
        str(n),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.log = []
    drain = asyncio.create_task(_collect(proc.stderr, proc.log))
    try:
        assert await line(proc) == "ready"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        # It ends at the pipe's end (the child is gone); a grandchild holding the pipe: stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain, 5)


async def _collect(stream: asyncio.StreamReader, into: list[str]) -> None:
    """A child's stderr, kept for the message of a wait that fails (and never left to fill the
    pipe and block the child), read in chunks: a line of any length is kept, cut."""
    while chunk := await stream.read(65536):
        into.extend(chunk.decode(errors="replace").splitlines())
        del into[:-200]


async def line(proc: Any, timeout: float = 20) -> str:
    """The child's next line; a ``TimeoutError`` carrying its stderr when none comes."""
    try:
        raw = await asyncio.wait_for(proc.stdout.readline(), timeout)
    except TimeoutError:
        log = "\n".join(proc.log[-60:])
        raise TimeoutError(f"no line from the client in {timeout} s; its stderr:\n{log}") from None
    assert raw, "the client process ended:\n" + "\n".join(proc.log[-60:])
    return str(raw.decode().strip())


async def texts(client: Client, conv: int, n: int, timeout: float = 20) -> list[Message]:
    out: list[Message] = []
    async with asyncio.timeout(timeout):
        async for ev in client.events():
            if isinstance(ev, Message) and ev.conv == conv and ev.text is not None:
                out.append(ev)
                if len(out) == n:
                    return out
    raise AssertionError(f"the client stopped after {out}")


async def next_event(client: Client, kind: type[T], timeout: float = 10) -> T:
    async with asyncio.timeout(timeout):
        async for ev in client.events():
            if isinstance(ev, kind):
                return ev
    raise AssertionError(f"no {kind.__name__}")


async def stored_texts(client: Client, conv: int) -> list[str]:
    history = await client.history(conv, limit=100)
    return [m.text for m in history if isinstance(m, Message) and m.text is not None]


async def register(url: str, keyfile: Path, handle: str) -> int:
    async with Client(url, KeyStore.open(keyfile)) as c:
        return await c.register(handle, handle.title())


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "chatd.db")
    await srv.start()
    try:
        yield srv
    finally:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill9()


async def test_messages_sent_while_the_server_is_down_go_out_once_in_order_within_a_second_of_its_return(
    node: ServerProcess, tmp_path: Path
) -> None:
    await register(node.url, tmp_path / "bob.key", "bob")
    async with (
        Client(node.url, KeyStore.open(tmp_path / "alice.key"), request_timeout=1.0) as alice,
        Client(node.url, KeyStore.open(tmp_path / "bob.key")) as bob,
    ):
        await alice.register("alice", "Alice")
        conv = await alice.direct(bob.account)
        await alice.send_text(conv, "before")
        node.kill9()
        sends = [asyncio.create_task(alice.send_text(conv, f"m{i}")) for i in range(5)]
        # Down for 5 request timeouts, and long enough for the backoff to reach its cap:
        # nothing times out, nothing is dropped.
        await asyncio.sleep(5)
        assert [m.text for m in alice.pending(conv)] == [f"m{i}" for i in range(5)]
        assert not any(t.done() for t in sends)
        await node.start()  # the same port and database
        back = time.monotonic()
        acks = await asyncio.wait_for(asyncio.gather(*sends), 20)
        waited = time.monotonic() - back
        assert [a.seq for a in acks] == sorted(a.seq for a in acks)  # in the order sent
        got = await texts(bob, conv, 6)
        assert [m.text for m in got] == ["before"] + [f"m{i}" for i in range(5)]
        assert await stored_texts(bob, conv) == ["before"] + [f"m{i}" for i in range(5)]
        assert alice.pending() == []
        print(f"acked {waited:.2f} s after the server was back")
        assert waited < 2.5  # ~1 s of capped backoff, plus login and resync on a loaded machine


async def test_an_outbox_outlives_its_client_and_the_next_client_sends_it_once(
    node: ServerProcess, tmp_path: Path
) -> None:
    """Typed while the server is down, then the application quits; a day later (another client
    on the same key store) the messages go out, with the cmids they were given, in order."""
    await register(node.url, tmp_path / "bob.key", "bob")
    keyfile = tmp_path / "alice.key"
    async with Client(node.url, KeyStore.open(keyfile)) as alice:
        await alice.register("alice", "Alice")
        conv = await alice.direct(await alice.lookup("bob"))
        node.kill9()
        sends = [asyncio.create_task(alice.send_text(conv, f"m{i}")) for i in range(3)]
        while len(alice.pending()) < 3:
            await asyncio.sleep(0.01)
        cmids = [m.cmid for m in alice.pending()]
    for task in sends:  # the waits end, the messages stay
        with pytest.raises(ClientClosed):
            await task
    await node.start()
    async with (
        Client(node.url, KeyStore.open(keyfile)) as alice,
        Client(node.url, KeyStore.open(tmp_path / "bob.key")) as bob,
    ):
        own = await texts(alice, conv, 3)
        assert [(m.text, m.cmid, m.own) for m in own] == [
            (f"m{i}", cmid, True) for i, cmid in enumerate(cmids)
        ]
        assert [m.text for m in await texts(bob, conv, 3)] == ["m0", "m1", "m2"]
        assert await stored_texts(bob, conv) == ["m0", "m1", "m2"]
        assert alice.pending() == []


async def test_a_client_killed_with_9_while_offline_sends_its_outbox_when_started_again(
    node: ServerProcess, tmp_path: Path
) -> None:
    await register(node.url, tmp_path / "bob.key", "bob")
    keyfile = tmp_path / "alice.key"
    async with Client(node.url, KeyStore.open(keyfile)) as alice:
        await alice.register("alice", "Alice")
        conv = await alice.direct(await alice.lookup("bob"))
    async with child("send", node.url, keyfile, conv, 5) as proc:
        node.kill9()
        proc.stdin.write(b"go\n")
        assert await line(proc) == "queued"
        proc.kill()  # -9: no close, nothing saved on the way out
    await node.start()
    async with (
        Client(node.url, KeyStore.open(keyfile)) as alice,
        Client(node.url, KeyStore.open(tmp_path / "bob.key")) as bob,
    ):
        assert [m.text for m in await texts(bob, conv, 5)] == [f"k{i}" for i in range(5)]
        assert await stored_texts(bob, conv) == [f"k{i}" for i in range(5)]
        while alice.pending():  # its own copies are acknowledged too
            await asyncio.sleep(0.01)


async def test_a_client_killed_with_9_never_shows_a_message_again(
    server: RunningServer, tmp_path: Path
) -> None:
    await register(server.url, tmp_path / "bob.key", "bob")
    async with Client(server.url) as alice:
        await alice.register("alice", "Alice")
        conv = await alice.direct(await alice.lookup("bob"))
        shown: list[str] = []
        async with child("read", server.url, tmp_path / "bob.key", conv) as proc:
            for i in range(30):
                await alice.send_text(conv, f"m{i}")
            while len(shown) < 10:
                shown.append(await line(proc))
            proc.kill()  # mid-stream: the rest is queued in the process, not shown
        async with child("read", server.url, tmp_path / "bob.key", conv) as proc:
            while len(shown) < 30:
                shown.append(await line(proc))
            with contextlib.suppress(TimeoutError):  # and nothing after them
                shown.append(await line(proc, timeout=0.5))
        assert shown == [f"m{i}" for i in range(30)]


async def test_chat_shows_a_line_typed_during_an_outage_as_pending_then_sent(
    node: ServerProcess, tmp_path: Path
) -> None:
    """The issue's session: the server down for longer than chat's request timeout (10 s; the
    line was dropped as 'could not connect' then), the line shown pending, then sent once."""
    await register(node.url, tmp_path / "bob.key", "bob")
    await register(node.url, tmp_path / "alice.key", "alice")
    out = io.StringIO()
    r, w = os.pipe()
    argv = ["--server", node.url, "--key", str(tmp_path / "alice.key")]
    chat = asyncio.create_task(run_chat(argv, stdin=r, stdout=out))

    async def shown(pattern: str) -> None:
        try:
            async with asyncio.timeout(30):
                while not re.search(pattern, out.getvalue(), re.MULTILINE):
                    assert not chat.done(), out.getvalue()
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"{pattern!r} not shown in 30 s:\n{out.getvalue()}") from None

    try:
        os.write(w, b"/dm @bob\n")
        # /dm's own line, not the conversation's first event: that one can come before /dm has
        # its answer, and a kill then fails /dm ("connection lost before the server answered")
        # with no conversation open for the next line.
        await shown(r"^now in \[@bob\]")
        node.kill9()
        await shown("connection lost, reconnecting")
        os.write(w, b"typed while down\n")
        await shown(r"^\[@bob\] pending: typed while down$")
        await asyncio.sleep(11)
        await node.start()
        await shown(r"^\[@bob\] \d\d:\d\d alice: typed while down$")
        async with Client(node.url, KeyStore.open(tmp_path / "bob.key")) as bob:
            conv = await bob.direct(await bob.lookup("alice"))
            assert await stored_texts(bob, conv) == ["typed while down"]
        os.write(w, b"/quit\n")
        assert await asyncio.wait_for(chat, 30) == 0
    finally:
        os.close(w)
        if not chat.done():
            chat.cancel()
        with contextlib.suppress(BaseException):
            await chat
        os.close(r)
    assert "not sent" not in out.getvalue() and "Traceback" not in out.getvalue()


async def test_a_refused_message_leaves_the_outbox_with_an_error_and_a_send_failed_event(
    server: RunningServer,
) -> None:
    async with Client(server.url) as alice, Client(server.url) as bob:
        await alice.register("alice", "Alice")
        await bob.register("bob", "Bob")
        group = await bob.create("group", "Bob's", [])  # alice is not a member
        with pytest.raises(RequestError) as refused:
            await alice.send_text(group.conv, "let me in")
        failed = await next_event(alice, SendFailed)
        assert (failed.conv, failed.code) == (group.conv, refused.value.code)
        assert alice.pending() == []


async def test_a_backlog_beyond_the_rate_limit_is_stored_in_the_order_sent(
    node: ServerProcess, tmp_path: Path
) -> None:
    """More queued than the server's burst allowance (100 frames, then 50/s): the refused ones
    are sent again, and nothing overtakes them."""
    await register(node.url, tmp_path / "bob.key", "bob")
    async with Client(node.url, KeyStore.open(tmp_path / "alice.key")) as alice:
        await alice.register("alice", "Alice")
        conv = await alice.direct(await alice.lookup("bob"))
        node.kill9()
        n = 160
        sends = [asyncio.create_task(alice.send_text(conv, f"m{i}")) for i in range(n)]
        while len(alice.pending()) < n:
            await asyncio.sleep(0.01)
        await node.start()
        acks = await asyncio.wait_for(asyncio.gather(*sends), 60)
        assert [a.seq for a in acks] == sorted(a.seq for a in acks)
