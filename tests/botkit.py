"""Helpers for tests of bots, mini-apps and shares (issue 7) against the real server: the example
bots, an event inbox, the frames this process received and the server's files, for marker scans,
and example bots run as separate processes (to kill one)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from chatclient import Client, Message
from chatclient.events import Event
from chatproto import codec, kinds
from conftest import RunningServer

EXAMPLES = Path(__file__).resolve().parents[1] / "clients" / "examples"


def example(name: str) -> ModuleType:
    """Import ``clients/examples/<name>.py`` (without running its ``__main__`` part)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Inbox:
    """A client's events, taken by predicate; what does not match stays for later takes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pending: list[Event] = []

    async def take(
        self, pred: Callable[[Event], bool], n: int = 1, timeout: float = 8.0
    ) -> list[Any]:
        deadline = time.monotonic() + timeout
        while True:
            self.pending += self.client.events_nowait()
            hits = [i for i, ev in enumerate(self.pending) if pred(ev)]
            if len(hits) >= n:
                chosen = [self.pending[i] for i in hits[:n]]
                for i in reversed(hits[:n]):
                    del self.pending[i]
                return chosen
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(hits)}/{n} matching events; pending: {self.pending!r}")
            await asyncio.sleep(0.01)

    async def one(self, pred: Callable[[Event], bool], timeout: float = 8.0) -> Any:
        [event] = await self.take(pred, 1, timeout)
        return event

    async def quiet(self, pred: Callable[[Event], bool], wait: float = 0.3) -> None:
        """Nothing matching ``pred`` arrives within ``wait`` seconds (no duplicates, no extras)."""
        await asyncio.sleep(wait)
        self.none(pred)

    def none(self, pred: Callable[[Event], bool]) -> None:
        """Nothing matching ``pred`` has arrived so far."""
        self.pending += self.client.events_nowait()
        extra = [ev for ev in self.pending if pred(ev)]
        assert not extra, f"unexpected {extra!r}"


def sent_by(
    account: int, conv: int | None = None, kind: type[kinds.Content] = kinds.Text
) -> Callable[[Event], bool]:
    def pred(ev: Event) -> bool:
        return (
            isinstance(ev, Message)
            and ev.sender == account
            and isinstance(ev.content, kind)
            and (conv is None or ev.conv == conv)
        )

    return pred


def result_for(bot: int, inv: str | None = None) -> Callable[[Event], bool]:
    """A ``miniapp.result`` from ``bot`` (answering ``inv``, when given)."""

    def pred(ev: Event) -> bool:
        return (
            isinstance(ev, Message)
            and ev.sender == bot
            and isinstance(ev.content, kinds.MiniappResult)
            and (inv is None or ev.content.invocation_id == inv)
        )

    return pred


def text_is(account: int, conv: int, needle: str) -> Callable[[Event], bool]:
    def pred(ev: Event) -> bool:
        return sent_by(account, conv)(ev) and needle in (ev.text or "")  # type: ignore[union-attr]

    return pred


async def user(stack: contextlib.AsyncExitStack, server: RunningServer, handle: str) -> Client:
    client = await stack.enter_async_context(Client(server.url))
    await client.register(handle, handle.title())
    return client


@contextlib.contextmanager
def recorded_frames(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Every frame any SDK client of this process receives from the server (bots included)."""
    frames: list[bytes] = []
    decode = codec.decode_server

    def recording(data: bytes) -> Any:
        frames.append(bytes(data))
        return decode(data)

    monkeypatch.setattr(codec, "decode_server", recording)
    yield frames


def server_files(server: RunningServer) -> dict[str, bytes]:
    """The server's SQLite files (database, WAL, ...)."""
    db = Path(server.app.settings.store.db)
    return {p.name: p.read_bytes() for p in sorted(db.parent.glob(db.name + "*"))}


def assert_never_seen(marker: str, frames: list[bytes], server: RunningServer) -> None:
    """The server relayed and stored only ciphertext: no frame received by a client of this
    process and no byte of the server's database files holds ``marker``."""
    assert frames, "no frames were recorded"
    assert not [f for f in frames if marker.encode() in f]
    files = server_files(server)
    assert files
    assert not [name for name, data in files.items() if marker.encode() in data]


class BotProcess:
    """An example bot run as its own process (``python clients/examples/NAME.py``), with its
    key store in ``workdir``: it can be killed (SIGKILL) and started again from that store."""

    def __init__(self, name: str, url: str, workdir: Path) -> None:
        self.name, self.url, self.workdir = name, url, workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.output: list[bytes] = []
        self._reader: asyncio.Task[None] | None = None
        self._serving = asyncio.Event()

    async def start(self, timeout: float = 20.0) -> BotProcess:
        self._serving.clear()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(EXAMPLES / f"{self.name}.py"),
            "--url",
            self.url,
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = asyncio.create_task(self._read(self.proc))
        try:
            async with asyncio.timeout(timeout):
                await self._serving.wait()
        except TimeoutError:
            raise AssertionError(b"".join(self.output).decode()) from None
        return self

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            self.output.append(line)
            if b"serving" in line:
                self._serving.set()

    async def kill(self) -> None:
        """SIGKILL: no drain, no cursor saved; only what its key store committed survives."""
        await self._end(signal.SIGKILL)

    async def stop(self) -> int:
        return await self._end(signal.SIGTERM)

    async def _end(self, sig: int) -> int:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return proc.returncode if proc is not None and proc.returncode is not None else 0
        proc.send_signal(sig)
        code = await asyncio.wait_for(proc.wait(), 20)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)
        return code

    @property
    def log(self) -> str:
        return b"".join(self.output).decode(errors="replace")


@contextlib.asynccontextmanager
async def bot_process(name: str, url: str, workdir: Path) -> AsyncIterator[BotProcess]:
    bot = BotProcess(name, url, workdir)
    try:
        yield await bot.start()
    finally:
        with contextlib.suppress(ProcessLookupError):
            await bot.kill()
