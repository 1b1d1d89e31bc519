"""Limits per account and per client address that hold across connections and nodes (issue 14.5).

Each connection keeps its own token bucket (``session``); on top of it:

* **frames per account**: every frame of an account's connections, on any node, takes a token
  from ONE budget (``limits.account_connections`` connections' worth);
* **pre-login frames per address**: ``register`` / ``login`` / ``link_device``;
* **registrations per address**;
* **invite link look-ups** (``preview_link``, ``join_link``) per account and per address;
* **windows**: a fixed budget per key per period (``window``), counted exactly where a token
  bucket would refill meanwhile: key claims per claimer, one-time prekeys per target handed to
  strangers, to-device items and bytes per target device from strangers (issue 14.5; they were
  counted on each node alone, so a stranger on 3 nodes got 3 budgets).

A client's address is the peer's, or, when the peer is a trusted proxy, the right-most address
of ``X-Forwarded-For`` that is not a trusted proxy (``client_address``); an IPv6 client is
counted per /64 (one subscriber's prefix). Exempt addresses (loopback by default) skip the
limits per address.

Where the buckets live: one node alone keeps them in memory (``MemoryBuckets``); several nodes
(``broker.url``) keep them in Redis (``RedisBuckets``: the same GCRA arithmetic as
``chatd.core.ratelimit.take`` as one Lua script, so a bucket is one key and one round trip).
Frames are the hot path and must not wait for Redis each: a node reserves a few tokens of an
account's budget at once (``CHUNK``, or ``1/SHARE`` of a larger burst) and spends them locally
for up to ``HOLD`` seconds. The tokens are taken from the shared budget when reserved, so an
account never gets more than its budget over all nodes, counted from its first reservation (in
a shorter window, at most one unspent reservation per node more: taken earlier, spent then); a
node's unspent reservation lapses (a little less, never more). When
Redis cannot answer, a node falls back to its own memory (bounded per node, logged once).
"""

from __future__ import annotations

import asyncio
import logging
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Protocol

import redis.asyncio as aioredis

from chatd.core.consent import Window
from chatd.core.ratelimit import Buckets, Budget, TokenBucket
from chatd.settings import LimitSettings, ServerSettings, networks, redact_url

log = logging.getLogger(__name__)

CHUNK = 8
"""Tokens of an account's frame budget a node reserves from Redis at once, at least (see
``SHARE``)."""
SHARE = 64
"""A larger budget is reserved ``burst / SHARE`` tokens at once (what a node may let lapse stays
under 2% of the burst): with the defaults (burst 300) that is ``CHUNK``, and a budget raised for
a load test (``loadtest/bench_cluster.py``: 10^6 frames/s) is asked for once per ``HOLD``, not
every 8 frames (an EVALSHA and a pass through the slow path of a frame: at 1,500 msgs/s on 2
nodes, 0.125 Redis scripts per message, now ~0.001)."""
HOLD = 10.0
"""Seconds a node may spend a reservation; then the rest lapses. Long enough that an account
sending a few frames a second asks Redis once per ``CHUNK`` frames, not once per second (at 1 s,
two nodes at 500 msgs/s cost 81% more CPU per delivery than one, against 65% without the budget;
``loadtest/bench_cluster.py``); what lapses is at most one reservation per node."""

_SCRIPT = """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local base = math.max(tat, now)
local available = math.floor((now - base) * rate + burst + 1e-9)
local granted = math.max(0, math.min(want, available))
local new = base + granted / rate
if granted > 0 then
  redis.call('SET', KEYS[1], string.format('%.17g', new), 'PX',
             math.ceil((new - now) * 1000) + 1000)
end
local retry = 0
if granted < want then retry = math.max(0, new - now - (burst - 1) / rate) end
return {granted, string.format('%.17g', retry)}
"""
"""``chatd.core.ratelimit.take`` in Redis: the same arithmetic on the bucket's ``tat`` (wall
clock seconds, passed in by the node), the key expiring once the bucket is full again."""


_WINDOW = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[1])
if used + units > tonumber(ARGV[2]) then return 0 end
if used == 0 then
  redis.call('SET', KEYS[1], units, 'PX', ARGV[3])
else
  redis.call('INCRBY', KEYS[1], units)
end
return 1
"""
"""``chatd.core.consent.Window.take`` in Redis: the window starts with its first units and ends
when the key expires (Redis' clock: one for every node)."""


class MemoryWindows:
    """Windows by key in this node's memory (one ``Window`` per budget and period)."""

    def __init__(self) -> None:
        self._windows: dict[tuple[int, float], Window] = {}

    def take(self, key: str, now: float, budget: int, period: float, units: int) -> bool:
        window = self._windows.get((budget, period))
        if window is None:
            window = self._windows[budget, period] = Window(budget, period)
        return window.take(key, now, units)


class SharedBuckets(Protocol):
    """Buckets by key that every node of the service sees."""

    async def take(self, key: str, now: float, budget: Budget, want: int) -> tuple[int, float]:
        """``(granted, retry_after)`` as ``chatd.core.ratelimit.take``; ``now`` in wall-clock
        seconds."""
        ...

    async def window(self, key: str, now: float, budget: int, period: float, units: int) -> bool:
        """Spend ``units`` of ``key``'s ``budget`` for the current ``period`` (seconds): False
        (nothing spent) when they do not fit. ``now``: this node's monotonic clock."""
        ...

    async def aclose(self) -> None: ...


class MemoryBuckets:
    """One node: its memory is the whole truth."""

    remote = False

    def __init__(self) -> None:
        self.buckets = Buckets()
        self.windows = MemoryWindows()

    async def take(self, key: str, now: float, budget: Budget, want: int) -> tuple[int, float]:
        return self.buckets.take(key, now, budget, want)

    async def window(self, key: str, now: float, budget: int, period: float, units: int) -> bool:
        return self.windows.take(key, now, budget, period, units)

    async def aclose(self) -> None:
        pass


class RedisBuckets:
    """Buckets in Redis, one key each (``limit:<key>``); this node's memory when Redis fails."""

    remote = True

    def __init__(self, url: str, *, io_timeout: float = 1.0) -> None:
        self.url = url
        self._io_timeout = io_timeout
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=io_timeout, socket_timeout=io_timeout
        )
        self._script = self._redis.register_script(_SCRIPT)
        self._window = self._redis.register_script(_WINDOW)
        self._fallback = Buckets()
        self._fallback_windows = MemoryWindows()
        self._failing = False

    async def take(self, key: str, now: float, budget: Budget, want: int) -> tuple[int, float]:
        try:
            async with asyncio.timeout(self._io_timeout):
                granted, retry = await self._script(
                    keys=[f"limit:{key}"],
                    args=[repr(now), repr(budget.rate), repr(budget.burst), want],
                )
        except Exception as exc:  # a limit is never a reason to fail a request
            self._unreachable(exc)
            return self._fallback.take(key, now, budget, want)
        self._reachable()
        return int(granted), float(retry)

    async def window(self, key: str, now: float, budget: int, period: float, units: int) -> bool:
        try:
            async with asyncio.timeout(self._io_timeout):
                taken = await self._window(
                    keys=[f"limit:{key}"], args=[units, budget, max(1, round(period * 1000))]
                )
        except Exception as exc:  # a limit is never a reason to fail a request
            self._unreachable(exc)
            return self._fallback_windows.take(key, now, budget, period, units)
        self._reachable()
        return bool(taken)

    def _unreachable(self, exc: BaseException) -> None:
        if not self._failing:
            log.warning(
                "limits: Redis unreachable; counting on this node alone",
                extra={"broker": redact_url(self.url), "error": repr(exc)},
            )
        self._failing = True

    def _reachable(self) -> None:
        if self._failing:
            log.info("limits: Redis reachable again", extra={"broker": redact_url(self.url)})
            self._failing = False

    async def aclose(self) -> None:
        await self._redis.aclose()


class Clock(Protocol):
    def now_ms(self) -> int: ...
    def monotonic(self) -> float: ...


class Limits:
    """The limits of one node (one per node, shared by its sessions)."""

    def __init__(
        self,
        limits: LimitSettings,
        server: ServerSettings,
        shared: MemoryBuckets | RedisBuckets,
        clock: Clock,
    ) -> None:
        self._shared = shared
        self._clock = clock
        n = limits.account_connections
        self.frames: Budget | None = None
        self.bot_frames: Budget | None = None
        if n > 0:
            self.frames = Budget(limits.frames_per_second * n, limits.frame_burst * n)
            self.bot_frames = Budget(limits.bot_frames_per_second * n, limits.bot_frame_burst * n)
        self.prelogin = Budget(limits.prelogin_per_ip_per_second, limits.prelogin_per_ip_burst)
        self.registrations = Budget(
            limits.registrations_per_ip_per_hour / 3600, limits.registration_burst_per_ip
        )
        self.link_lookups = Budget(limits.link_lookups_per_hour / 3600, limits.link_lookup_burst)
        self.link_lookups_per_ip = Budget(
            limits.link_lookups_per_ip_per_hour / 3600, limits.link_lookup_burst_per_ip
        )
        self.searches = Budget(limits.searches_per_minute / 60, limits.search_burst)
        self.moments = Budget(limits.moments_per_hour / 3600, limits.moment_burst)
        self._proxies = networks(server.trusted_proxies)
        self._exempt = networks(limits.exempt_addresses)
        # One node: frames are counted in memory on the spot (monotonic time). Several nodes:
        # reservations of the shared budget, spent here (``_allowance``: account -> [tokens,
        # until]) and refused here until ``_refused_until`` once Redis said the budget is empty.
        self._local: dict[int, TokenBucket] | None = None if shared.remote else {}
        """One node: each account's bucket, shared by its sessions (``account_bucket``)."""
        self._sweep_at = 10_000
        self._allowance: dict[int, list[float]] = {}
        self._refused_until: dict[int, float] = {}
        self._warned_forwarded = False

    # ------------------------------------------------------------------ addresses

    def client_address(self, peer: str | None, forwarded_for: str | None) -> str:
        """The address the limits count a connection against (see the module docstring); ""
        for an exempt one (or none known)."""
        if peer is None:
            return ""
        try:
            addr: IPv4Address | IPv6Address = ip_address(peer)
        except ValueError:
            return ""
        if forwarded_for:
            if any(addr in net for net in self._proxies):
                for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
                    try:
                        addr = ip_address(hop)
                    except ValueError:
                        break  # garbage from the client: stop at the last good hop
                    if not any(addr in net for net in self._proxies):
                        break
            elif not self._warned_forwarded:
                self._warned_forwarded = True
                log.warning(
                    "X-Forwarded-For from a peer that is not a trusted proxy: ignored (list the"
                    " proxy in server.trusted_proxies, or every client counts as the proxy)",
                    extra={"peer": peer},
                )
        if isinstance(addr, IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if any(addr in net for net in self._exempt):
            return ""
        if isinstance(addr, IPv6Address):
            return str(IPv6Network((addr, 64), strict=False).network_address) + "/64"
        return str(addr)

    async def prelogin_attempt(self, address: str) -> float | None:
        """Take a pre-login token of ``address``: None when allowed, else seconds to wait."""
        return await self._address(f"p:{address}", address, self.prelogin)

    async def registration(self, address: str) -> float | None:
        """Take a registration token of ``address``: None when allowed, else seconds to wait."""
        return await self._address(f"r:{address}", address, self.registrations)

    async def link_lookup(self, account: int, address: str) -> float | None:
        """Take a link look-up token of ``account`` and of ``address`` (SPEC.md 19.3): None
        when allowed, else seconds to wait. Every look-up counts, found or not: a guess is
        refused before the token is even checked, so no answer tells a guess apart."""
        wait = await self._take(f"la:{account}", self.link_lookups)
        if wait is not None:
            return wait
        return await self._address(f"li:{address}", address, self.link_lookups_per_ip)

    async def search(self, account: int) -> float | None:
        """Take a directory-search token of ``account`` (SPEC.md 20.2): None when allowed, else
        seconds to wait. Shared by the account's connections on every node."""
        return await self._take(f"s:{account}", self.searches)

    async def moment(self, account: int) -> float | None:
        """Take a token of ``account``'s Moment budget (SPEC.md 22.4): None when allowed, else
        seconds to wait. Shared by the account's connections on every node."""
        return await self._take(f"mo:{account}", self.moments)

    async def _address(self, key: str, address: str, budget: Budget) -> float | None:
        return await self._take(key, budget) if address else None

    async def _take(self, key: str, budget: Budget) -> float | None:
        """Take one token of ``key``'s shared ``budget`` (nothing when its rate is 0): None when
        allowed, else seconds to wait."""
        if budget.rate <= 0:
            return None
        granted, retry = await self._shared.take(key, self._clock.now_ms() / 1000, budget, 1)
        return None if granted else max(retry, 0.001)

    # ------------------------------------------------------------------ windows

    async def window(self, key: str, budget: int, period: float, units: int = 1) -> bool:
        """Spend ``units`` of ``key``'s ``budget`` per ``period`` seconds, on every node: False
        (nothing spent) when they do not fit."""
        if units > budget:
            return False
        return await self._shared.window(key, self._clock.monotonic(), budget, period, units)

    # ------------------------------------------------------------------ frames per account

    def account_bucket(self, account: int, bot: bool) -> TokenBucket | None:
        """One node: ``account``'s frame budget as ONE bucket its sessions share and check on
        each frame themselves (as cheap as their own bucket). None with several nodes (then
        ``frame_nowait``) or without a budget per account. A bucket stays while it is not full
        (closing every connection and logging in again refills nothing)."""
        budget = self.bot_frames if bot else self.frames
        if self._local is None or budget is None:
            return None
        bucket = self._local.get(account)
        if bucket is None:
            now = self._clock.monotonic()
            if len(self._local) >= self._sweep_at:
                self._local = {a: b for a, b in self._local.items() if not b.full(now)}
                self._sweep_at = max(10_000, 2 * len(self._local))
            bucket = self._local[account] = TokenBucket(budget.rate, budget.burst, now)
        return bucket

    def frame_nowait(self, account: int, bot: bool) -> bool | None:
        """Take a token of ``account``'s frame budget now: True/False when it can be told at
        once, None when Redis must be asked first (``await frame``)."""
        budget = self.bot_frames if bot else self.frames
        if budget is None:
            return True
        now = self._clock.monotonic()
        if self._local is not None:
            bucket = self.account_bucket(account, bot)
            return bucket is None or bucket.allow(now)
        allowance = self._allowance.get(account)
        if allowance is not None and allowance[1] > now and allowance[0] >= 1:
            allowance[0] -= 1
            return True
        refused = self._refused_until.get(account)
        if refused is not None:
            if refused > now:
                return False
            del self._refused_until[account]
        return None

    async def frame(self, account: int, bot: bool) -> float | None:
        """Reserve from ``account``'s shared budget and take one token: None when allowed, else
        seconds to wait (``frame_nowait`` refuses at once until then)."""
        budget = self.bot_frames if bot else self.frames
        if budget is None:
            return None
        if self.frame_nowait(account, bot):  # another connection's reservation came meanwhile
            return None
        want = max(1, min(int(budget.burst), max(CHUNK, int(budget.burst / SHARE))))
        granted, retry = await self._shared.take(
            f"a:{account}", self._clock.now_ms() / 1000, budget, want
        )
        now = self._clock.monotonic()
        if len(self._allowance) > 10_000:
            self._allowance = {a: v for a, v in self._allowance.items() if v[1] > now}
            self._refused_until = {a: t for a, t in self._refused_until.items() if t > now}
        if granted == 0:
            self._refused_until[account] = now + retry
            return max(retry, 0.001)
        allowance = self._allowance.get(account)
        if allowance is not None and allowance[1] > now:  # reserved by another connection
            allowance[0] += granted - 1
            allowance[1] = now + HOLD
        else:
            self._allowance[account] = [granted - 1, now + HOLD]
        return None

    async def aclose(self) -> None:
        await self._shared.aclose()
