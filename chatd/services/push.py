"""Web Push to devices whose account is offline (SPEC.md 21; RFC 8030, 8291, 8292).

Who sends: the node that COMMITS a message. ``MessagingService`` hands every newly stored
message to ``committed`` (a dict insert, never awaited: pushing never slows the message path).
The owner task (``run``, one TaskGroup) turns what is queued into pushes: per conversation, the
push subscriptions of its members' devices (one store read), minus the senders' own; then, per
account, the presence directory (every node's connections, Redis with several nodes) says
whether it is online anywhere: an online account reads its messages live, so nothing is sent.
An offline device then needs its push window (``PushGate.claim``: one push per device per
``push.interval``, at most ``push.max_per_hour``, counted in Redis when there are other nodes),
so a device offline everywhere gets one push for a burst, whichever nodes committed it. The push
leaves ``push.coalesce`` seconds later, unless the account came online meanwhile.

Bounded: at most ``push.queue`` (conversation, sender) pairs wait (more: dropped and counted),
one pending push per device, ``push.concurrency`` requests in flight. pywebpush encrypts the
payload (RFC 8291, aes128gcm, through http_ece) and py_vapid signs the VAPID JWT (RFC 8292); the
request itself is made here with aiohttp so that redirects are never followed and every address
a push service's name resolves to is checked first (``core.push.address_allowed``: no SSRF).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import socket
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from chatproto import frames as F
from chatproto import push as payload
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from pywebpush import WebPusher

from chatd.core.push import PushRefused, Windows, address_allowed, check_endpoint
from chatd.errors import Invalid, Unavailable
from chatd.services.deps import Deps
from chatd.settings import ConfigError, PushSettings, redact_url
from chatd.store.base import PushSubscription, StoredMessage

log = logging.getLogger(__name__)

TOPIC = "chatd"
"""RFC 8030 5.4: a push service replaces an undelivered push with a newer one of the same
topic, so a device that was unreachable for hours gets one push, not one per window."""

_GATE_SCRIPT = """
if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then
  local n = redis.call('INCR', KEYS[2])
  if n == 1 then redis.call('EXPIRE', KEYS[2], 3700) end
  if n > tonumber(ARGV[2]) then return 0 end
  return 1
end
return 0
"""
"""``core.push.Windows.claim`` in Redis: the window key exists for ``interval`` ms; the hour's
counter counts the claims that passed it."""


class PushGate(Protocol):
    """The push windows of devices, as every node sees them."""

    async def claim(self, device: int, now: float) -> bool:
        """True when ``device`` may be pushed now (wall-clock ``now``); its window starts."""
        ...

    async def reset(self, device: int) -> None:
        """``device`` connected: its window ends."""
        ...

    async def aclose(self) -> None: ...


class LocalGate:
    """One node: ``core.push.Windows`` in memory."""

    def __init__(self, interval: float, per_hour: int) -> None:
        self.windows = Windows(interval, per_hour)

    async def claim(self, device: int, now: float) -> bool:
        return self.windows.claim(device, now)

    async def reset(self, device: int) -> None:
        self.windows.reset(device)

    async def aclose(self) -> None:
        pass


class RedisGate:
    """Several nodes: the windows in Redis (``push:win:<device>``, ``push:cap:<device>:<hour>``).
    When Redis cannot answer, this node's memory decides (logged once): a device may then get
    one push per node, never an unbounded number."""

    def __init__(self, url: str, interval: float, per_hour: int, io_timeout: float = 1.0) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self._interval_ms = max(1, int(interval * 1000))
        self._per_hour = per_hour
        self._io_timeout = io_timeout
        self._redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=io_timeout, socket_timeout=io_timeout
        )
        self._script = self._redis.register_script(_GATE_SCRIPT)
        self._fallback = LocalGate(interval, per_hour)
        self._failing = False

    async def claim(self, device: int, now: float) -> bool:
        hour = int(now // 3600)
        try:
            async with asyncio.timeout(self._io_timeout):
                ok = await self._script(
                    keys=[f"push:win:{device}", f"push:cap:{device}:{hour}"],
                    args=[self._interval_ms, self._per_hour],
                )
        except Exception as exc:  # a push window is never a reason to fail anything
            if not self._failing:
                log.warning(
                    "push: Redis unreachable; push windows counted on this node alone",
                    extra={"broker": redact_url(self.url), "error": repr(exc)},
                )
            self._failing = True
            return await self._fallback.claim(device, now)
        self._failing = False
        return bool(ok)

    async def reset(self, device: int) -> None:
        await self._fallback.reset(device)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._io_timeout):
                await self._redis.delete(f"push:win:{device}")

    async def aclose(self) -> None:
        await self._redis.aclose()


class _PublicOnly(AbstractResolver):
    """Resolves a push service's name and refuses it unless EVERY address is public (a name
    that resolves to 127.0.0.1 or 10.x, by mistake or by DNS rebinding, is never connected to)."""

    def __init__(self) -> None:
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if not found or not all(address_allowed(r["host"]) for r in found):
            raise OSError(f"push: {host} resolves to an address that is not public")
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass(slots=True)
class _Due:
    sub: PushSubscription
    conv: int | None
    """The one conversation of what is waiting; None once there are several."""


def load_vapid(pem: str) -> Vapid02:
    """The VAPID key of ``push.vapid_private_key`` (PEM); ``ValueError`` when it is not a P-256
    private key."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("push.vapid_private_key: not a P-256 (prime256v1) private key")
    return Vapid02.from_pem(pem.encode())


def new_vapid_pem() -> tuple[bytes, bytes]:
    """A new VAPID key: (PEM of the private key, raw uncompressed public key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, _raw_public(key)


def _raw_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` (seconds or an HTTP date) as seconds from now; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - now)
    except (TypeError, ValueError, IndexError):
        return None


class PushService:
    """Push subscriptions (the frames) and the pushes themselves (see the module docstring)."""

    def __init__(self, deps: Deps, gate: PushGate | None = None) -> None:
        self._d = deps
        self.settings: PushSettings = deps.settings.push
        s = self.settings
        self._vapid: Vapid02 | None = None
        self.vapid_key = b""
        """The VAPID public key, uncompressed (empty: push is off)."""
        if s.vapid_private_key:
            try:
                self._vapid = load_vapid(s.vapid_private_key)
            except ValueError as exc:
                raise ConfigError(f"push.vapid_private_key: {exc}") from None
            self.vapid_key = _raw_public(self._vapid.private_key)
        self._gate: PushGate = gate or LocalGate(s.interval, s.max_per_hour)
        self._pending: dict[tuple[int, int], None] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._due: dict[int, _Due] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._http: aiohttp.ClientSession | None = None
        self._jwt: dict[str, tuple[dict[str, str], float]] = {}
        self._limit = asyncio.Semaphore(s.concurrency)

    @property
    def enabled(self) -> bool:
        return self._vapid is not None

    # ------------------------------------------------------------------ frames

    async def handle(
        self, account: int, device: int, frame: F.GetPush | F.SetPush | F.ClearPush
    ) -> F.PushConfig | F.Ok:
        store = self._d.store
        match frame:
            case F.GetPush():
                return self._config(frame.id, await store.push_of(device))
            case F.SetPush():
                if not self.enabled:
                    raise Unavailable("push is not enabled on this server")
                s = self.settings
                check_endpoint(frame.endpoint, s.allowed_hosts, s.insecure_endpoints)
                try:  # a key that is not on the curve could never be encrypted to
                    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), frame.p256dh)
                except ValueError:
                    raise Invalid("p256dh is not a P-256 public key") from None
                sub = PushSubscription(
                    device=device,
                    account=account,
                    endpoint=frame.endpoint,
                    p256dh=frame.p256dh,
                    auth=frame.auth,
                    show_conv=frame.show_conv,
                    created_at=self._d.clock.now_ms(),
                )
                await store.set_push(sub)
                return self._config(frame.id, sub)
            case F.ClearPush():
                await store.clear_push(device, None)
                return F.Ok(re=frame.id)

    def _config(self, rid: int, sub: PushSubscription | None) -> F.PushConfig:
        if sub is None:
            return F.PushConfig(re=rid, vapid_key=self.vapid_key)
        return F.PushConfig(
            re=rid, vapid_key=self.vapid_key, endpoint=sub.endpoint, show_conv=sub.show_conv
        )

    # ------------------------------------------------------------------ the message path

    def committed(self, m: StoredMessage) -> None:
        """Message ``m`` was stored (called on the committing node, never awaited)."""
        if self._vapid is None or self._stop.is_set() or m.sender == 0:
            return
        key = (m.conv, m.sender)
        if key in self._pending:
            return
        if len(self._pending) >= self.settings.queue:
            self._d.metrics.pushes.labels(outcome="dropped").inc()
            return
        self._pending[key] = None
        self._wake.set()

    async def connected(self, device: int) -> None:
        """``device`` logged in: it reads what was waiting, so its push window ends."""
        if self._vapid is not None:
            await self._gate.reset(device)

    # ------------------------------------------------------------------ the owner task

    async def run(self) -> None:
        """Turn committed messages into pushes until ``close``; every task it starts ends with
        it (a push still waiting or retrying at shutdown is dropped: it was only a hint)."""
        if self._vapid is None:
            await self._stop.wait()
            return
        s = self.settings
        connector = aiohttp.TCPConnector(resolver=_PublicOnly(), limit=s.concurrency)
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=s.timeout),
            trust_env=False,  # never through a proxy the environment names
        )
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                while not self._stop.is_set():
                    await self._wake.wait()
                    self._wake.clear()
                    if self._stop.is_set():
                        break
                    batch, self._pending = self._pending, {}
                    try:
                        await self._plan(batch)
                    except Exception:  # a store or Redis failure costs these pushes, not the loop
                        log.exception("push: planning failed")
                        self._d.metrics.pushes.labels(outcome="failed").inc(len(batch))
                for task in list(self._tasks):
                    task.cancel()
        finally:
            self._tg = None
            await self._http.close()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()

    async def aclose(self) -> None:
        self.close()
        await self._gate.aclose()

    async def _plan(self, batch: dict[tuple[int, int], None]) -> None:
        senders: dict[int, set[int]] = {}
        for conv, sender in batch:
            senders.setdefault(conv, set()).add(sender)
        candidates: list[tuple[PushSubscription, int]] = []
        for conv, who in senders.items():
            for sub in await self._d.store.push_targets(conv):
                if who != {sub.account}:  # someone else wrote in it
                    candidates.append((sub, conv))
        if not candidates:
            return
        online = await self._d.presence.online({sub.account for sub, _ in candidates})
        metrics = self._d.metrics.pushes
        for sub, conv in candidates:
            if sub.account in online:
                continue
            due = self._due.get(sub.device)
            if due is not None:  # one push is already waiting for this device: it covers this
                if due.conv != conv:
                    due.conv = None
                continue
            if len(self._due) >= self.settings.queue:
                metrics.labels(outcome="dropped").inc()
                continue
            if not await self._gate.claim(sub.device, time.time()):
                metrics.labels(outcome="limited").inc()
                continue
            self._due[sub.device] = _Due(sub, conv)
            assert self._tg is not None
            task = self._tg.create_task(self._deliver(sub.device), name="push")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, device: int) -> None:
        try:
            await asyncio.sleep(self.settings.coalesce)
            await self._send(self._due.pop(device))
        except Exception:  # one push's failure (the store, Redis) is logged, never fatal
            log.exception("push: failed", extra={"device": device})
            self._d.metrics.pushes.labels(outcome="failed").inc()
        finally:
            self._due.pop(device, None)

    async def _send(self, due: _Due) -> None:
        s = self.settings
        sub = due.sub
        metrics = self._d.metrics.pushes
        if await self._d.presence.online([sub.account]):
            metrics.labels(outcome="skipped").inc()
            return
        data = payload.encode(due.conv if sub.show_conv else None)
        delay = 1.0
        for attempt in range(s.retries + 1):
            async with self._limit:
                status, retry_after = await self._post(sub, data)
            if 200 <= status < 300:
                metrics.labels(outcome="sent").inc()
                return
            if status in (404, 410):  # the subscription expired or was unsubscribed
                await self._d.store.clear_push(sub.device, sub.endpoint)
                metrics.labels(outcome="gone").inc()
                log.info("push: subscription gone; deleted", extra={"device": sub.device})
                return
            if not (status == 0 or status == 429 or status >= 500) or attempt == s.retries:
                break
            wait = retry_after if retry_after is not None else delay * (0.5 + random.random())
            if wait > s.max_retry_after:
                break
            metrics.labels(outcome="retried").inc()
            await asyncio.sleep(wait)
            delay = min(delay * 2, s.max_retry_after)
        metrics.labels(outcome="failed").inc()
        log.info(
            "push: given up",
            extra={"device": sub.device, "status": status, "attempts": attempt + 1},
        )

    def _vapid_headers(self, audience: str) -> dict[str, str]:
        """The VAPID ``Authorization`` header for ``audience`` (a JWT valid 12 h, reused for
        an hour: signing per push would cost an ECDSA signature each)."""
        now = time.time()
        cached = self._jwt.get(audience)
        if cached is not None and cached[1] > now:
            return cached[0]
        assert self._vapid is not None
        claims: dict[str, Any] = {
            "aud": audience,
            "sub": self.settings.subject,
            "exp": int(now) + 12 * 3600,
        }
        headers: dict[str, str] = self._vapid.sign(claims)
        if len(self._jwt) > 64:
            self._jwt.clear()
        self._jwt[audience] = (headers, now + 3600)
        return headers

    async def _post(self, sub: PushSubscription, data: bytes) -> tuple[int, float | None]:
        """POST one push; (HTTP status, Retry-After seconds). Status 0: no answer (network)."""
        s = self.settings
        try:
            endpoint = check_endpoint(sub.endpoint, s.allowed_hosts, s.insecure_endpoints)
        except PushRefused:  # the operator's rules changed since it was stored
            return 403, None
        info = {
            "endpoint": sub.endpoint,
            "keys": {"p256dh": _b64(sub.p256dh), "auth": _b64(sub.auth)},
        }
        body = WebPusher(info).encode(data, "aes128gcm")["body"]
        headers = {
            "TTL": str(s.ttl),
            "Urgency": "normal",
            "Topic": TOPIC,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            **self._vapid_headers(endpoint.audience),
        }
        assert self._http is not None
        try:
            async with self._http.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                return resp.status, _retry_after(resp.headers.get("Retry-After"), time.time())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("push: no answer", extra={"device": sub.device, "error": repr(exc)})
            return 0, None
