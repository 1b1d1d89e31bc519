"""What a user of ``chatd`` and ``chat`` sees when something foreseeable goes wrong: one line
that says what to do, a non-zero exit, never a traceback. The real console scripts run as
child processes, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chatclient import Client
from chatclient.errors import AuthError

from tests.testkit import ServerProcess

BIN = Path(sys.executable).parent


async def run(*argv: str, cwd: Path, stdin: bytes = b"") -> tuple[int, str]:
    """Run a console script of this venv; (exit status, stdout + stderr)."""
    proc = await asyncio.create_subprocess_exec(
        str(BIN / argv[0]),
        *argv[1:],
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


def one_line(out: str) -> str:
    """The one line said to the user (the server's JSON log lines, e.g. "migrated", aside)."""
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith('{"ts"')]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture
async def chatd(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = ServerProcess(tmp_path / "chatd.db")
    await server.start()
    try:
        yield server
    finally:
        server.terminate()


async def test_serve_on_a_port_in_use_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, out = await run("chatd", "serve", "--port", str(port), cwd=tmp_path)
    assert status == 1
    line = one_line(out)
    assert f"chatd: cannot listen on 127.0.0.1:{port}: the address is already in use" in line
    assert "--port" in line


async def test_a_second_server_on_the_same_database_refuses_in_one_line(
    chatd: ServerProcess, tmp_path: Path
) -> None:
    status, out = await run("chatd", "serve", "--port", "0", "--db", str(chatd.db), cwd=tmp_path)
    assert status == 1
    line = one_line(out)
    assert "is in use by another chatd process" in line
    assert "its own --db" in line


async def test_a_corrupt_key_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    key = tmp_path / "bad.key"
    key.write_bytes(b"this is not a key store\n" * 10)
    status, out = await run("chat", "--key", str(key), "--server", "127.0.0.1:1", cwd=tmp_path)
    assert status == 1
    line = one_line(out)
    assert line.startswith(f"chat: {key} is not a chatd key file")
    assert "another --key" in line


async def test_an_http_address_and_one_without_ws_work(
    chatd: ServerProcess, tmp_path: Path
) -> None:
    base = f"127.0.0.1:{chatd.port}"
    status, out = await run(
        "chat", "--key", "a.key", "--server", f"http://{base}", "register", "alice", "A",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 0, out
    assert "Traceback" not in out
    assert f"chat --server ws://{base}/ws --key a.key" in out
    status, out = await run(
        "chat", "--key", "b.key", "--server", f"ws://{base}", "register", "bob", "B",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 0, out
    # ... and the account works from there on through either spelling.
    status, out = await run(
        "chat", "--key", "a.key", "--server", f"http://{base}/", cwd=tmp_path, stdin=b"/me\n"
    )
    assert status == 0, out
    assert f"@alice (account 1, device 1) on ws://{base}/ws" in out


async def test_a_wrong_path_or_scheme_says_exactly_what_is_wrong(
    chatd: ServerProcess, tmp_path: Path
) -> None:
    base = f"127.0.0.1:{chatd.port}"
    status, out = await run(
        "chat", "--key", "a.key", "--server", f"ws://{base}/chat", "register", "alice", "A",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 1
    assert one_line(out) == (
        f"chat: no chatd at ws://{base}/chat: the server answered HTTP 404 (chatd serves"
        f" clients on /ws): try --server ws://{base}/ws"
    )
    status, out = await run(
        "chat", "--key", "a.key", "--server", f"ftp://{base}", "register", "alice", "A",
        cwd=tmp_path,
    )  # fmt: skip
    assert status == 1
    assert one_line(out).startswith(f"chat: not a server address: 'ftp://{base}'")


async def test_a_key_file_in_use_by_another_chat_is_refused_in_one_line(
    chatd: ServerProcess, tmp_path: Path
) -> None:
    status, out = await run(
        "chat", "--key", "a.key", "--server", chatd.url, "register", "alice", "A", cwd=tmp_path
    )
    assert status == 0, out
    first = await asyncio.create_subprocess_exec(
        str(BIN / "chat"), "--key", "a.key", "--server", chatd.url,
        cwd=tmp_path,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert first.stdout is not None and first.stdin is not None
    try:
        async with asyncio.timeout(30):
            while b"connected as" not in await first.stdout.readline():
                pass
        status, out = await run("chat", "--key", "a.key", "--server", chatd.url, cwd=tmp_path)
        assert status == 1
        assert "is in use by another process" in one_line(out)
    finally:
        first.stdin.close()
        await first.wait()


async def test_a_server_with_another_name_gets_no_signature(tmp_path: Path) -> None:
    """SPEC 6.1: a client signs only for the server its key store belongs to (pinned at
    registration): another server relaying that one's challenge would get a login there."""
    one = ServerProcess(tmp_path / "one.db", env={"CHATD_SERVER__NAME": "one.example"})
    two = ServerProcess(tmp_path / "two.db", env={"CHATD_SERVER__NAME": "two.example"})
    await one.start()
    await two.start()
    try:
        status, out = await run(
            "chat", "--key", "a.key", "--server", one.url, "register", "alice", "A", cwd=tmp_path
        )
        assert status == 0, out
        status, out = await run("chat", "--key", "a.key", "--server", two.url, cwd=tmp_path)
        assert status == 1
        line = one_line(out)
        assert "the server calls itself 'two.example', not 'one.example'" in line
        assert "is it the server this key was registered with?" in line
        status, out = await run(
            "chat", "--key", "a.key", "--server", one.url, cwd=tmp_path, stdin=b"/me\n"
        )
        assert status == 0 and "@alice (account 1, device 1)" in out, out
    finally:
        one.terminate()
        two.terminate()


@pytest.mark.parametrize(
    ("db", "said"),
    [
        ("/proc/no/chatd.db", "chatd: cannot start: No such file or directory: '/proc/no'"),
        (
            "postgresql://chatd:secret@127.0.0.1:1/chatd",
            "chatd: cannot reach the database postgresql://chatd:***@127.0.0.1:1/chatd:",
        ),
    ],
)
async def test_a_database_that_cannot_be_opened_is_one_line(
    tmp_path: Path, db: str, said: str
) -> None:
    status, out = await run("chatd", "serve", "--port", "0", "--db", db, cwd=tmp_path)
    assert status == 1
    line = one_line(out)
    assert line.startswith(said), line
    assert "secret" not in out


async def test_the_sdk_says_what_is_wrong_with_an_address(chatd: ServerProcess) -> None:
    with pytest.raises(ValueError, match=r"not a WebSocket URL: 'http://127\.0\.0\.1"):
        Client(f"http://127.0.0.1:{chatd.port}/ws")
    with pytest.raises(AuthError, match=r"HTTP 404: nothing at ws://.*/chat; chatd serves .* /ws"):
        async with Client(f"ws://127.0.0.1:{chatd.port}/chat"):
            pass
