"""What ``/healthz``, ``/readyz`` and ``/status`` report about this node: three answers kept apart.

* **Alive** (``/healthz`` 200): the process answers. Not alive: restart it.
* **Ready** (``/readyz`` 200): a load balancer should send it clients, because it can accept,
  store and ack. Not ready (503, the body names why): draining, the store does not answer a ping
  within 2 s, or starting (its broker has not connected yet, for at most ``STARTUP_GRACE``).
* **Degraded** (``/readyz`` still 200, ``/status`` ``"state": "degraded"``, ``chatd_degraded``
  1): ready, but a dependency is down that costs clients something without stopping them: the
  broker (Redis). Such a node keeps storing and acking, delivers live to its own clients, and
  its clients (and the other nodes') resync when the broker is back. Taking every node out of
  rotation for it would turn a Redis outage into a total one, so it is an alert, not a 503.

``/status`` is the JSON an operator reads: node, version, uptime, state, connections, the broker
(kind, health, URL without password, buffer, counters, lag) and the store (backend,
reachability, writes queued for the next group commit).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatd import __version__
from chatd.services.deps import Deps
from chatd.settings import redact_url

PING_TIMEOUT = 2.0
"""A store that does not answer within this counts as unreachable (readiness must not hang)."""
STARTUP_GRACE = 5.0
"""Seconds after start during which a broker that has not connected yet keeps the node not
ready (so a fresh node joins with its subscriptions working); after that a broker still down
only makes it degraded: a node restarted during a Redis outage must still serve."""


class Health:
    """Readiness checks and the status document for one node."""

    def __init__(self, deps: Deps, draining: Callable[[], bool]) -> None:
        self._deps = deps
        self._draining = draining
        self._started = time.monotonic()
        self._broker_seen = False
        """The broker has been seen connected once (ends the startup grace early)."""
        self.open = 0
        """Open WebSocket connections (authenticated or not), counted by the transport."""
        self.authenticated = 0

    async def store_reachable(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT):
                return await self._deps.store.ping()
        except TimeoutError:
            return False

    async def check(self) -> Check:
        """This node's state now (pings the store: at most ``PING_TIMEOUT``), also exported as
        the ``chatd_ready``, ``chatd_degraded`` and ``chatd_draining`` gauges."""
        broker_ok = self._deps.broker.healthy()
        self._broker_seen = self._broker_seen or broker_ok
        starting = not self._broker_seen and time.monotonic() - self._started < STARTUP_GRACE
        check = Check(
            draining=self._draining(),
            store_ok=await self.store_reachable(),
            broker_ok=broker_ok,
            starting=starting,
        )
        m = self._deps.metrics
        m.ready.set(not check.problems)
        m.degraded.set(bool(check.degraded))
        m.draining.set(check.draining)
        return check

    async def metrics(self) -> bytes:
        """The ``/metrics`` body, with the health gauges brought up to date first."""
        await self.check()
        return self._deps.metrics.render()

    async def status(self) -> dict[str, Any]:
        d = self._deps
        check = await self.check()
        return {
            "node": d.settings.server.node_id,
            "version": __version__,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "state": check.state,
            "ready": not check.problems,
            "problems": check.problems,
            "degraded": check.degraded,
            "draining": check.draining,
            "connections": {"open": self.open, "authenticated": self.authenticated},
            "broker": self._broker(check.broker_ok),
            "store": self._store(check.store_ok),
        }

    def _broker(self, healthy: bool) -> dict[str, Any]:
        b = self._deps.broker
        st = b.statistics()
        out: dict[str, Any] = {
            "kind": st.kind,
            "healthy": healthy,
            "published": b.stats.published,
            "received": b.stats.received,
            "dropped": b.stats.dropped,
        }
        if b.remote:
            out.update(
                url=redact_url(st.url),
                pending=st.pending,
                lag_s=None if st.lag is None else round(st.lag, 6),
                heartbeats=st.heartbeats,
                refused=st.refusal,
            )
        else:
            out.update(pending=st.pending)
        return out

    def _store(self, reachable: bool) -> dict[str, Any]:
        st = self._deps.store.statistics()
        out: dict[str, Any] = {"backend": st.backend}
        if st.backend == "postgresql":  # a URL (redacted); never a file path (issue 14.9)
            out["db"] = redact_url(self._deps.settings.store.db)
        return out | {"reachable": reachable, "queued_writes": st.queued_writes}


@dataclass(frozen=True, slots=True)
class Check:
    """One look at the node: what ``/readyz``, ``/status`` and the health gauges report."""

    draining: bool
    store_ok: bool
    broker_ok: bool
    starting: bool

    @property
    def problems(self) -> list[str]:
        """Why this node is not ready (empty: ready, keep it in rotation)."""
        out = []
        if self.draining:
            out.append("draining")
        if not self.store_ok:
            out.append("store unreachable")
        if self.starting and not self.broker_ok:
            out.append("starting: broker not connected yet")
        return out

    @property
    def degraded(self) -> list[str]:
        """What is down although the node serves (empty: nothing)."""
        return ["broker down"] if not self.broker_ok and not self.starting else []

    @property
    def state(self) -> str:
        """``ok``, ``degraded`` (ready, in rotation, alert), ``not ready`` or ``draining``."""
        if self.draining:
            return "draining"
        if self.problems:
            return "not ready"
        return "degraded" if self.degraded else "ok"
