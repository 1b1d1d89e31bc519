"""Web Push rules as plain code (SPEC.md 21): which endpoints the server will send to, which
addresses it will connect to, and how often one device may be pushed, with time passed in.

The endpoint rule exists because a push subscription is a URL a client chooses and the server
then POSTs to: left open, any account could make the server send requests into its own network
(server-side request forgery: Redis, a database, a cloud metadata service, an admin port). So the
server sends only to ``https`` on port 443 of a host NAME (never an address literal) that the
operator's allow-list names (by default the browsers' push services), and at connect time only to
public unicast addresses (a name that resolves to a private or loopback address is refused, which
also defeats DNS rebinding); redirects are never followed. Tests add explicit loopback ``http``
origins (``push.insecure_endpoints``), which nothing else can reach.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address
from urllib.parse import urlsplit

from chatproto.errors import ErrorCode
from chatproto.limits import MAX_PUSH_ENDPOINT_CHARS

from chatd.errors import ChatdError

DEFAULT_PUSH_SERVICES: tuple[str, ...] = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Brave...
    "updates.push.services.mozilla.com",  # Firefox
    "*.push.services.mozilla.com",
    "web.push.apple.com",  # Safari
    "*.push.apple.com",
    "*.notify.windows.com",  # Edge on Windows
)
"""The push services of the browsers people use: the default ``push.allowed_hosts``."""

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


class PushRefused(ChatdError):
    """The server will not send pushes to this endpoint (SPEC.md 21.2)."""

    code = ErrorCode.PUSH_REFUSED


@dataclass(frozen=True, slots=True)
class Endpoint:
    url: str
    host: str
    audience: str
    """``scheme://host[:port]``: the VAPID JWT's ``aud`` (RFC 8292 2)."""
    secure: bool
    """False only for a configured loopback test origin."""


def loopback_origin(value: str) -> tuple[str, str, int]:
    """A ``push.insecure_endpoints`` entry, ``http://<loopback address>:<port>``, as (scheme,
    host, port); ``ValueError`` for anything else (a name, a non-loopback address, https)."""
    parts = urlsplit(value)
    if parts.scheme != "http" or parts.username or parts.password or parts.port is None:
        raise ValueError(f"{value!r}: expected http://<loopback address>:<port>")
    host = parts.hostname or ""
    try:
        address = ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: the host must be a loopback address literal") from None
    if not address.is_loopback:
        raise ValueError(f"{value!r}: only loopback addresses (tests), never {host}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"{value!r}: an origin, without a path")
    return ("http", str(address), parts.port)


def host_allowed(host: str, patterns: Iterable[str]) -> bool:
    """``host`` matches a pattern: the host itself, ``*.suffix`` (any name under it), or ``*``."""
    for p in patterns:
        p = p.lower()
        if p == "*" or p == host or (p.startswith("*.") and host.endswith(p[1:])):
            return True
    return False


def check_endpoint(
    url: str, allowed_hosts: Iterable[str], insecure_endpoints: Iterable[str] = ()
) -> Endpoint:
    """The endpoint ``url`` if the server may send to it; ``PushRefused`` (saying why) if not."""
    if len(url) > MAX_PUSH_ENDPOINT_CHARS or not url.isascii() or not url.isprintable():
        raise PushRefused("not a URL")
    if any(c.isspace() or c in "\\" for c in url):
        raise PushRefused("not a URL")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise PushRefused("not a URL") from None
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise PushRefused("an endpoint has no user info and no fragment")
    host = (parts.hostname or "").lower()
    if parts.scheme == "http":
        for origin in insecure_endpoints:
            if ("http", host, port) == loopback_origin(origin):
                return Endpoint(url, host, f"http://{parts.netloc}", secure=False)
        raise PushRefused("push endpoints must be https")
    if parts.scheme != "https":
        raise PushRefused("push endpoints must be https")
    if port not in (None, 443):
        raise PushRefused("push endpoints must be on port 443")
    if not _is_name(host):
        raise PushRefused("the endpoint's host must be a DNS name, not an address")
    if not host_allowed(host, allowed_hosts):
        raise PushRefused(f"{host} is not a push service this server sends to")
    return Endpoint(url, host, f"https://{host}", secure=True)


def _is_name(host: str) -> bool:
    """A fully qualified DNS name: dotted labels, a top-level label with a letter (``127.1``,
    ``0x7f.1`` and ``2130706433`` are addresses to some resolvers), not ``localhost``."""
    labels = host.rstrip(".").split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    if labels[-1] == "localhost" or not re.search(r"[a-z]", labels[-1]):
        return False
    return not re.fullmatch(r"(0x)?[0-9a-f]+", labels[-1])


def address_allowed(address: str) -> bool:
    """The server may connect to ``address`` for a push: a public unicast address (not
    loopback, private, link-local, shared, reserved, multicast; an IPv4-mapped IPv6 address is
    judged as its IPv4 address)."""
    try:
        a: IPv4Address | IPv6Address = ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(a, IPv6Address) and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    return a.is_global and not a.is_multicast


class Windows:
    """At most one push per device per ``interval`` seconds and ``per_hour`` per clock hour
    (one node's view; ``services.push.RedisGate`` is the same rule for several nodes)."""

    def __init__(self, interval: float, per_hour: int) -> None:
        self.interval = interval
        self.per_hour = per_hour
        self._until: dict[int, float] = {}
        self._hour: dict[int, tuple[int, int]] = {}
        self._sweep_at = 4096
        """Forget lapsed windows when this many devices are held (then twice what is left):
        each claim stays O(1) on average however many devices are pushed."""

    def claim(self, device: int, now: float) -> bool:
        """True when ``device`` may be pushed now (and its window starts)."""
        if self._until.get(device, 0.0) > now:
            return False
        self._until[device] = now + self.interval
        hour = int(now // 3600)
        seen, count = self._hour.get(device, (hour, 0))
        if seen != hour:
            count = 0
        self._hour[device] = (hour, count + 1)
        if len(self._until) > self._sweep_at:
            self._forget(now)
            self._sweep_at = max(4096, 2 * len(self._until))
        return count < self.per_hour

    def reset(self, device: int) -> None:
        """``device`` connected: its next message after it leaves may be pushed at once."""
        self._until.pop(device, None)

    def _forget(self, now: float) -> None:
        hour = int(now // 3600)
        self._until = {d: t for d, t in self._until.items() if t > now}
        self._hour = {d: v for d, v in self._hour.items() if v[0] == hour}
