"""Suspended accounts (``chatd admin suspend``, SPEC.md 6.1): their logins fail with
``SUSPENDED`` (``AuthService``), and every node closes their connections.

The operator's command writes ``accounts.suspended_at`` from its own process; each node looks
every ``INTERVAL`` seconds for suspensions newer than the last it saw (one indexed read) and
closes the connections of those accounts it holds, with close code 1008.

Two races are closed: a login whose check passed just before a suspension committed re-reads
the account after it attached to the hub (``Session._logged_in``), so either it sees the
suspension or a later sweep sees its connection; and a suspension whose ``suspended_at`` (the
operator's clock) is older than one a sweep already handled, e.g. two ``suspend`` commands
committing in the other order, is still found: every sweep looks ``LOOKBACK`` back.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol, runtime_checkable

from chatd.services.deps import Deps
from chatd.services.sweeper import sweep_until

log = logging.getLogger(__name__)

INTERVAL = 1.0
"""Seconds between two looks: a suspended account's connections end within about this."""
LOOKBACK = 60_000
"""Milliseconds before the latest suspension handled that each sweep looks at again (a few
rows: the accounts suspended in the last minute; closing their connections again is a no-op)."""


@runtime_checkable
class Closable(Protocol):
    async def suspended(self) -> None: ...


class SuspensionService:
    def __init__(self, deps: Deps) -> None:
        self._d = deps
        self._stop = asyncio.Event()
        self._seen = 0
        """The latest ``suspended_at`` handled: older suspensions closed what they had to."""

    async def sweep(self) -> int:
        """Close the connections of accounts suspended since the last sweep; how many."""
        closed = 0
        for account, at in await self._d.store.suspended_after(max(0, self._seen - LOOKBACK)):
            self._seen = max(self._seen, at)
            for outlet in self._d.hub.outlets_of(account):
                if isinstance(outlet, Closable):
                    await outlet.suspended()
                    closed += 1
        return closed

    async def run(self) -> None:
        await sweep_until(self._stop, self.sweep, INTERVAL, "suspension")

    def close(self) -> None:
        self._stop.set()
