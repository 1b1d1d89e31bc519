"""Terminal sessions for the ``chat`` tests that need two people at once: a real server, each
handle registered with its own key, one ``chat`` per handle connected, and each session checked
to end cleanly (exit status 0, or 1 after a command the test made fail) when the test is done."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import RunningServer, make_settings, run_server
from integration.test_chat_cli import Terminal, _register


@contextlib.asynccontextmanager
async def connected_terminals(
    tmp_path: Path, *handles: str
) -> AsyncIterator[tuple[RunningServer, list[Terminal]]]:
    """The server and a connected ``chat`` for each of ``handles`` (registered as its title),
    in that order; each must exit with its ``expected_status`` when stdin closes at the end."""
    async with run_server(make_settings(tmp_path)) as server:
        keys = {h: tmp_path / f"{h}.key" for h in handles}
        for handle, key in keys.items():
            await _register(server.url, key, handle, handle.title())
        terminals = [Terminal(server.url, keys[h]).start() for h in handles]
        try:
            for handle, terminal in zip(handles, terminals, strict=True):
                await terminal.wait_for(f"connected as @{handle}")
            yield server, terminals
        finally:
            for terminal in terminals:
                assert await terminal.close() == terminal.expected_status
