"""Which accounts are online on ANY node: the presence directory.

Each node knows its own connections (the hub). With several nodes, "is bob online?" and "was
that bob's last connection?" need the others' view too, so nodes record their online accounts
in a shared directory: in-process (one node: its own view is the whole truth) or in Redis.

Redis layout: one sorted set per account, ``presence:<account>``, whose members are node ids
with their lease expiry (ms) as score. A node adds itself when an account's first local
connection arrives, removes itself when the last one leaves, and renews every lease it holds
every ``ttl / 3`` seconds (one pipeline), so a node killed with -9 stops counting after ``ttl``
and a Redis that lost its data (restarted without persistence) is refilled within one renewal.
Presence is a hint, not the truth: when Redis cannot answer, a node answers from its own
connections and logs it; nothing waits longer than ``io_timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Protocol

from chatd.settings import redact_url

log = logging.getLogger(__name__)

_FAILURES = (Exception,)
"""Presence is a hint: no failure of the directory may fail a login, a close or the node
(anything unexpected is logged like an outage)."""


class PresenceDirectory(Protocol):
    async def arrive(self, account: int) -> None:
        """``account``'s first connection on this node opened."""
        ...

    async def depart(self, account: int) -> bool:
        """``account``'s last connection on this node closed. True when it is now offline on
        every node (so it is time to say so and record last_seen)."""
        ...

    async def online(self, accounts: Iterable[int]) -> set[int]:
        """Those of ``accounts`` with a connection on any node."""
        ...

    async def run(self) -> None: ...
    async def aclose(self) -> None: ...


class LocalPresence:
    """One node: the accounts connected here are all the accounts online."""

    def __init__(self) -> None:
        self._here: set[int] = set()

    async def arrive(self, account: int) -> None:
        self._here.add(account)

    async def depart(self, account: int) -> bool:
        self._here.discard(account)
        return True

    async def online(self, accounts: Iterable[int]) -> set[int]:
        return self._here.intersection(accounts)

    async def run(self) -> None:
        """Nothing to renew."""

    async def aclose(self) -> None:
        self._here.clear()


class RedisPresence:
    """Leases of this node's online accounts in Redis (see the module docstring)."""

    def __init__(self, url: str, node: str, *, ttl: float = 30.0, io_timeout: float = 1.0) -> None:
        self.url = url
        self.node = node
        self.ttl = ttl
        self._io_timeout = io_timeout
        # Imported here: the directory's protocol is imported by every service, and a node on
        # the embedded default never needs redis loaded (the store's and broker's rule too).
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=io_timeout, socket_timeout=io_timeout
        )
        self._here: set[int] = set()
        self._stop = asyncio.Event()
        self._running = False
        self._run_done = asyncio.Event()
        self._closed = False
        self._failing = False

    @staticmethod
    def _key(account: int) -> str:
        return f"presence:{account}"

    def _expiry_ms(self) -> int:
        return int((time.time() + self.ttl) * 1000)

    def _failed(self, what: str, exc: BaseException) -> None:
        if not self._failing:
            log.warning(
                "presence: Redis unreachable; answering from this node's connections",
                extra={"broker": redact_url(self.url), "op": what, "error": repr(exc)},
            )
        self._failing = True

    def _ok(self) -> None:
        if self._failing:
            log.info("presence: Redis reachable again", extra={"broker": redact_url(self.url)})
        self._failing = False

    async def arrive(self, account: int) -> None:
        self._here.add(account)
        try:
            async with asyncio.timeout(self._io_timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(self._key(account), {self.node: self._expiry_ms()})
                    pipe.pexpire(self._key(account), int(self.ttl * 2000))
                    await pipe.execute()
            self._ok()
        except _FAILURES as exc:
            self._failed("arrive", exc)

    async def depart(self, account: int) -> bool:
        self._here.discard(account)
        key = self._key(account)
        try:
            async with asyncio.timeout(self._io_timeout):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(key, self.node)
                    pipe.zcount(key, int(time.time() * 1000), "+inf")
                    _, remaining = await pipe.execute()
            self._ok()
            return int(remaining) == 0
        except _FAILURES as exc:
            self._failed("depart", exc)
            return True  # as far as this node can tell

    async def online(self, accounts: Iterable[int]) -> set[int]:
        wanted = list(dict.fromkeys(accounts))
        found = self._here.intersection(wanted)
        others = [a for a in wanted if a not in found]
        if not others:
            return found
        now = int(time.time() * 1000)
        try:
            async with asyncio.timeout(self._io_timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for account in others:
                        pipe.zcount(self._key(account), now, "+inf")
                    counts = await pipe.execute()
            self._ok()
        except _FAILURES as exc:
            self._failed("online", exc)
            return found
        return found | {a for a, n in zip(others, counts, strict=True) if int(n) > 0}

    async def run(self) -> None:
        """Renew this node's leases every ``ttl / 3`` seconds until ``aclose``."""
        self._running = True
        try:
            while not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.ttl / 3):
                        await self._stop.wait()
                if self._stop.is_set():
                    return
                await self._renew()
        finally:
            self._run_done.set()

    async def _renew(self) -> None:
        accounts = list(self._here)
        if not accounts:
            return
        expiry = self._expiry_ms()
        try:
            async with asyncio.timeout(max(self._io_timeout, len(accounts) / 50_000)):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for account in accounts:
                        pipe.zadd(self._key(account), {self.node: expiry})
                        pipe.pexpire(self._key(account), int(self.ttl * 2000))
                    await pipe.execute()
            self._ok()
        except _FAILURES as exc:
            self._failed("renew", exc)

    async def aclose(self) -> None:
        """Stop renewing and withdraw this node's leases (a clean shutdown: its accounts are
        offline here at once, not after ``ttl``). Waits for a renewal in progress first: the
        client must not close under it."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._running:
            await self._run_done.wait()
        if self._here:
            with contextlib.suppress(*_FAILURES):
                async with asyncio.timeout(self._io_timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for account in self._here:
                            pipe.zrem(self._key(account), self.node)
                        await pipe.execute()
        self._here.clear()
        await self._redis.aclose()
