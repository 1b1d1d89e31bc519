"""chatd's server connection swaps two websockets internals for lighter ones to keep idle
connections small (``chatd/transport/server.py``). websockets is pinned; these tests fail on an
upgrade that starts using those internals in a way the stand-ins do not support."""

from __future__ import annotations

import inspect
import re

import websockets.asyncio.connection as ws_connection


def test_websockets_only_appends_removes_and_iterates_its_drain_waiters() -> None:
    source = inspect.getsource(ws_connection)
    uses = set(re.findall(r"self\.drain_waiters(\.\w+|\)|:|\s*=|\s)", source))
    methods = {u for u in uses if u.startswith(".")}
    assert methods <= {".append", ".remove"}, methods
    assert re.search(r"for \w+ in self\.drain_waiters:", source)
