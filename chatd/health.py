"""What ``/readyz`` and ``/status`` report about this node.

``/healthz`` only says the process answers (liveness: restart it if not). ``/readyz`` says
whether a load balancer should send it clients: not while draining, not while its store does not
answer a ping, not while its broker is down (its clients would miss other nodes' messages live);
the body names which. ``/status`` is the JSON an operator reads: node, version, uptime,
connections, the broker (kind, health, URL without password, buffer, counters, lag) and the store
(backend, reachability, writes queued for the next group commit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chatd import __version__
from chatd.broker.redis import RedisBroker
from chatd.services.deps import Deps
from chatd.settings import redact_url
from chatd.store.postgres import PostgresStore
from chatd.store.writer import GroupCommitWriter

PING_TIMEOUT = 2.0
"""A store that does not answer within this counts as unreachable (readiness must not hang)."""


class Health:
    """Readiness checks and the status document for one node."""

    def __init__(self, deps: Deps, draining: Callable[[], bool]) -> None:
        self._deps = deps
        self._draining = draining
        self._started = time.monotonic()
        self.open = 0
        """Open WebSocket connections (authenticated or not), counted by the transport."""
        self.authenticated = 0

    async def store_reachable(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                return await self._deps.store.ping()
        except TimeoutError:
            return False

    async def problems(self) -> list[str]:
        """Why this node is not ready (empty: ready)."""
        return _problems(
            self._draining(), self._deps.broker.healthy(), await self.store_reachable()
        )

    async def status(self) -> dict[str, Any]:
        d = self._deps
        reachable = await self.store_reachable()
        broker_ok = d.broker.healthy()
        draining = self._draining()
        problems = _problems(draining, broker_ok, reachable)
        return {
            "node": d.settings.server.node_id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "ready": not problems,
            "problems": problems,
            "draining": draining,
            "connections": {"open": self.open, "authenticated": self.authenticated},
            "broker": self._broker(broker_ok),
            "store": self._store(reachable),
        }

    def _broker(self, healthy: bool) -> dict[str, Any]:
        b = self._deps.broker
        out: dict[str, Any] = {
            "kind": "redis" if isinstance(b, RedisBroker) else "memory",
            "healthy": healthy,
            "published": b.stats.published,
            "received": b.stats.received,
            "dropped": b.stats.dropped,
        }
        if isinstance(b, RedisBroker):
            lag = b.lag()
            out.update(
                url=redact_url(b.url),
                pending=b.pending(),
                lag_s=None if lag is None else round(lag, 6),
                heartbeats=b.heartbeats,
            )
        else:
            out.update(pending=0)
        return out

    def _store(self, reachable: bool) -> dict[str, Any]:
        store = self._deps.store
        db = self._deps.settings.store.db
        out: dict[str, Any] = {
            "backend": "postgresql" if isinstance(store, PostgresStore) else "sqlite",
            "db": redact_url(db),
            "reachable": reachable,
        }
        if isinstance(store, GroupCommitWriter):
            out["queued_writes"] = store.queued
        return out


def _problems(draining: bool, broker_ok: bool, store_ok: bool) -> list[str]:
    out = []
    if draining:
        out.append("draining")
    if not broker_ok:
        out.append("broker down")
    if not store_ok:
        out.append("store unreachable")
    return out
