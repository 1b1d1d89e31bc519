"""Rate limits as plain code with time passed in, so tests need no sleeping: a connection's
token bucket, and buckets by key (an account, an address) that one node keeps in memory and
several nodes keep in Redis with the same arithmetic (``take``)."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass


class TokenBucket:
    """Allows ``burst`` events at once and ``rate`` per second sustained."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._last = now

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are enough; True when the event may proceed."""
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def full(self, now: float) -> bool:
        """True when the bucket holds ``burst`` tokens at ``now`` (it may be forgotten)."""
        return self._tokens + (now - self._last) * self.rate >= self.burst


@dataclass(frozen=True, slots=True)
class Budget:
    """``burst`` events at once, ``rate`` per second sustained."""

    rate: float
    burst: float


def take(tat: float, now: float, budget: Budget, want: int) -> tuple[int, float, float]:
    """Take up to ``want`` tokens from a bucket kept as ONE number, its theoretical arrival
    time ``tat`` (GCRA: the bucket is full when ``tat <= now``; each token moves it 1/rate
    later; at most ``burst`` tokens ahead of ``now``). Partial grants: a node may reserve a few
    tokens at once from a bucket shared by several nodes.

    Returns ``(granted, new tat, retry_after)``: ``retry_after`` is the seconds until one
    token is back when fewer than ``want`` were granted, else 0. ``chatd.services.limits``
    runs the same arithmetic in Redis (a Lua script) for buckets shared by nodes."""
    base = max(tat, now)
    available = math.floor((now - base) * budget.rate + budget.burst + 1e-9)
    granted = max(0, min(want, available))
    new_tat = base + granted / budget.rate
    retry = 0.0
    if granted < want:
        retry = max(0.0, new_tat - now - (budget.burst - 1) / budget.rate)
    return granted, new_tat, retry


class Buckets:
    """Many buckets by key, in memory (``take`` above), with time passed in. A bucket that is
    full again is the same as no bucket, so past ``sweep_at`` keys the full ones are dropped
    (and the next sweep waits until the table doubles, so sweeps cost O(1) per insert):
    memory stays bounded by the keys active within one burst's refill time."""

    __slots__ = ("_tat", "max_keys", "sweep_at")

    def __init__(self, max_keys: int = 10_000) -> None:
        self._tat: dict[Hashable, float] = {}
        self.max_keys = max_keys
        self.sweep_at = max_keys

    def take(self, key: Hashable, now: float, budget: Budget, want: int = 1) -> tuple[int, float]:
        """``(granted, retry_after)``, as ``take``."""
        granted, tat, retry = take(self._tat.get(key, now), now, budget, want)
        if granted:
            if len(self._tat) >= self.sweep_at and key not in self._tat:
                self._tat = {k: t for k, t in self._tat.items() if t > now}
                self.sweep_at = max(self.max_keys, 2 * len(self._tat))
            self._tat[key] = tat
        return granted, retry

    def __len__(self) -> int:
        return len(self._tat)
